//! The compose stack as shipped: `docker/.env.example` names every setting the app reads and
//! every variable compose.yml needs, and compose.yml limits, restarts and fences in each service.
//! Prometheus's rules and Alertmanager's configuration pass promtool and amtool, for every choice
//! of receivers. And the security review: every test SECURITY.md names as the proof of a defence exists.

use std::collections::BTreeSet;

use vpn_shop::config::VARS;
use yaml_rust2::{Yaml, YamlLoader};

const COMPOSE: &str = include_str!("../../docker/compose.yml");
const ENV_EXAMPLE: &str = include_str!("../../docker/.env.example");

/// `NAME` of each `NAME=…` line, with whether it is commented out (`#NAME=…`).
fn assignments() -> Vec<(String, bool)> {
    ENV_EXAMPLE
        .lines()
        .filter_map(|line| {
            let (commented, rest) = match line.strip_prefix('#') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (name, _) = rest.split_once('=')?;
            let is_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            is_name.then(|| (name.to_owned(), commented))
        })
        .collect()
}

/// Variables compose.yml interpolates (`${NAME}`, `${NAME:-…}`, `${NAME:?…}`).
fn compose_variables() -> BTreeSet<String> {
    COMPOSE
        .split("${")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn env_example_lists_every_setting_and_what_compose_needs() {
    let lines = assignments();
    let names: BTreeSet<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
    for var in VARS {
        assert!(
            names.contains(var.name),
            "docker/.env.example lacks {}",
            var.name
        );
    }
    assert_eq!(names.len(), lines.len(), "a variable twice: {lines:?}");
    let needed = compose_variables();
    assert!(needed.contains("POSTGRES_PASSWORD"), "{needed:?}");
    for name in &needed {
        assert!(
            lines.iter().any(|(n, commented)| n == name && !commented),
            "compose.yml uses {name}, which docker/.env.example does not set"
        );
    }
    // Anything else set (not commented) is a setting of the app.
    for (name, commented) in &lines {
        assert!(
            *commented || needed.contains(name) || VARS.iter().any(|v| v.name == name),
            "docker/.env.example sets {name}, which nothing reads"
        );
    }
    // What compose.yml sets for the app is not set twice.
    let app = &YamlLoader::load_from_str(COMPOSE).unwrap()[0]["services"]["app"];
    for (key, _) in app["environment"].as_hash().expect("app environment") {
        let key = key.as_str().unwrap();
        assert!(
            lines.iter().any(|(n, commented)| n == key && *commented),
            "{key} is set by compose.yml: keep it commented in .env.example"
        );
    }
}

#[test]
fn every_service_is_limited_restarted_and_fenced_in() {
    let doc = &YamlLoader::load_from_str(COMPOSE).expect("compose.yml is YAML")[0];
    assert_eq!(doc["name"].as_str(), Some("vpn-shop"));
    let services = doc["services"].as_hash().expect("services");
    let mut published = BTreeSet::new();
    for (name, service) in services {
        let name = name.as_str().unwrap();
        assert_eq!(
            service["restart"].as_str(),
            Some("unless-stopped"),
            "{name}: restart policy"
        );
        let limits = &service["deploy"]["resources"]["limits"];
        assert!(limits["memory"].as_str().is_some(), "{name}: memory limit");
        assert!(limits["cpus"].as_str().is_some(), "{name}: cpu limit");
        let networks: Vec<&str> = service["networks"]
            .as_vec()
            .unwrap_or_else(|| panic!("{name}: networks"))
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert!(networks.contains(&"internal"), "{name}: {networks:?}");
        if let Some(ports) = service["ports"].as_vec() {
            published.insert(name);
            assert!(networks.contains(&"edge"), "{name} publishes a port");
            for port in ports {
                let port = port.as_str().expect("a port as a string");
                assert!(
                    port.contains(":-127.0.0.1:"),
                    "{name}: {port} is published on loopback by default"
                );
            }
        } else if name == "alertmanager" {
            // It sends to Telegram and the mail server; nothing reaches it from outside.
            assert_eq!(networks, ["internal", "edge"], "{name}");
        } else {
            assert_eq!(
                networks,
                ["internal"],
                "{name} stays on the internal network"
            );
        }
    }
    assert_eq!(
        published,
        BTreeSet::from(["app", "grafana"]),
        "only the app and Grafana are reachable from the host"
    );
    assert_eq!(doc["networks"]["internal"]["internal"], Yaml::Boolean(true));
    assert!(doc["volumes"]["pgdata"].is_null() && !doc["volumes"]["pgdata"].is_badvalue());
}

/// Backquoted `a::b::name` names in `cell`; `…::name` continues the path of the name before it.
fn test_names(cell: &str, previous: &mut String) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|name| {
            let name = match name.strip_prefix("…::") {
                Some(rest) => {
                    let (path, _) = previous.rsplit_once("::")?;
                    format!("{path}::{rest}")
                }
                None => name.to_owned(),
            };
            let plain = name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == ':');
            (name.contains("::") && plain).then(|| {
                previous.clone_from(&name);
                name
            })
        })
        .collect()
}

/// Where test `name` must be defined: `area::test` in tests/it/area.rs, `module::path::tests::test`
/// in src/module/path(.rs|/mod.rs); `None` for a name of neither shape (a function, a module).
fn test_files(name: &str) -> Option<(String, Vec<String>)> {
    let root = env!("CARGO_MANIFEST_DIR");
    let parts: Vec<&str> = name.split("::").collect();
    let (function, path) = parts.split_last()?;
    let files = match path {
        [area] => vec![format!("{root}/tests/it/{area}.rs")],
        [module @ .., "tests"] => {
            let module = module.join("/");
            vec![
                format!("{root}/src/{module}.rs"),
                format!("{root}/src/{module}/mod.rs"),
            ]
        }
        _ => return None,
    };
    Some((function.to_string(), files))
}

fn defines(files: &[String], function: &str) -> bool {
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|src| src.contains(&format!("fn {function}(")))
    })
}

#[test]
fn every_test_security_md_names_exists() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/SECURITY.md"))
        .expect("SECURITY.md");
    let mut previous = String::new();
    // The test column of the threat table.
    let names: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("| **"))
        .filter_map(|l| l.trim_end_matches('|').rsplit('|').next())
        .flat_map(|cell| test_names(cell, &mut previous))
        .collect();
    assert!(names.len() >= 15, "too few test names found: {names:?}");
    for name in &names {
        let Some((function, files)) = test_files(name) else {
            panic!("SECURITY.md names {name}: neither `area::test` nor `module::tests::test`");
        };
        assert!(
            defines(&files, &function),
            "SECURITY.md names {name}, but no `fn {function}(` in {files:?}"
        );
    }
}

/// The manual names tests as the proof of what it says (the money-safety table, the model test…):
/// each `area::test` whose area is a module of tests/it, and each `module::tests::test`, exists.
#[test]
fn every_test_the_manual_names_exists() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut checked = 0;
    for entry in std::fs::read_dir(format!("{root}/docs/src")).expect("docs/src") {
        let path = entry.expect("a chapter").path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a chapter");
        let mut previous = String::new();
        for name in text.lines().flat_map(|l| test_names(l, &mut previous)) {
            let Some((function, files)) = test_files(&name) else {
                continue;
            };
            let area_is_tests = files.iter().any(|f| std::path::Path::new(f).exists())
                || name.contains("::tests::");
            if !area_is_tests || !function.chars().any(|c| c == '_') {
                continue;
            }
            checked += 1;
            assert!(
                defines(&files, &function),
                "{} names {name}, but no `fn {function}(` in {files:?}",
                path.display()
            );
        }
    }
    assert!(
        checked >= 20,
        "too few test names found in docs/src: {checked}"
    );
}

const PROMETHEUS: &str = include_str!("../../docker/prometheus.yml");
const RENDER_CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/docker/alertmanager/render-config.sh"
);

/// A tool of the `prometheus` / `prometheus-alertmanager` Debian packages, found on PATH. Where
/// it is missing the checks that need it are left out with a line saying so — unless
/// `REQUIRE_MONITORING_TOOLS` is set, as `.ci/run` does after installing them: there a missing
/// tool fails the test, so CI always checks the rules and the configuration.
fn monitoring_tool(name: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    let advice = "install the Debian packages prometheus and prometheus-alertmanager \
                  (.ci/run does), or the tools from prometheus.io";
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("REQUIRE_MONITORING_TOOLS").is_some() => panic!(
            "{name} is not installed, so the alert rules and the Alertmanager configuration \
             cannot be checked: {advice}"
        ),
        None => {
            eprintln!("{name} is not installed: this check is left out; {advice}");
            None
        }
    }
}

/// Runs `program args…`; its success and its output (stdout and stderr).
fn run(program: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// render-config.sh with only these variables set; the configuration, or its error.
fn render_alertmanager_config(vars: &[(&str, &str)]) -> Result<String, String> {
    let out = std::process::Command::new("sh")
        .arg(RENDER_CONFIG)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .output()
        .expect("sh runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).expect("UTF-8"))
    } else {
        Err(stderr)
    }
}

const TELEGRAM_RECEIVER: [(&str, &str); 2] = [
    (
        "ALERTMANAGER_TELEGRAM_BOT_TOKEN",
        "123456789:AAEhBP0av18e3ZmDDs4kWXMhvmCtwcg9Qh8",
    ),
    ("ALERTMANAGER_TELEGRAM_CHAT_IDS", "7001, -1001234567890"),
];
const EMAIL_RECEIVER: [(&str, &str); 5] = [
    (
        "ALERTMANAGER_EMAIL_TO",
        "owner@example.com, ops@example.com",
    ),
    (
        "ALERTMANAGER_EMAIL_FROM",
        "VPN Shop alerts <alerts@example.com>",
    ),
    ("ALERTMANAGER_SMTP_SMARTHOST", "smtp.example.com:587"),
    ("ALERTMANAGER_SMTP_USERNAME", "alerts@example.com"),
    ("ALERTMANAGER_SMTP_PASSWORD", "it's a \"pass\": word"),
];

#[test]
fn prometheus_sends_its_alerts_to_the_alertmanager_of_the_stack() {
    let prometheus = &YamlLoader::load_from_str(PROMETHEUS).unwrap()[0];
    assert_eq!(
        prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0].as_str(),
        Some("alertmanager:9093")
    );
    let doc = &YamlLoader::load_from_str(COMPOSE).unwrap()[0];
    let service = &doc["services"]["alertmanager"];
    assert!(
        service["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("prom/alertmanager:v")),
        "{service:?}"
    );
    let depends = doc["services"]["prometheus"]["depends_on"].as_vec();
    assert!(
        depends.is_some_and(|d| d.iter().any(|s| s.as_str() == Some("alertmanager"))),
        "Prometheus starts after Alertmanager"
    );
    // The script runs from the mounted directory, writes into memory, then Alertmanager reads it.
    let command = service["command"][0].as_str().expect("a shell command");
    assert!(
        command
            .contains("sh /etc/alertmanager/render-config.sh > /run/alertmanager/alertmanager.yml")
            && command.contains(
                "exec /bin/alertmanager --config.file=/run/alertmanager/alertmanager.yml"
            ),
        "{command}"
    );
    let volumes: Vec<&str> = service["volumes"]
        .as_vec()
        .expect("volumes")
        .iter()
        .filter_map(Yaml::as_str)
        .collect();
    assert!(
        volumes.contains(&"./alertmanager:/etc/alertmanager:ro"),
        "{volumes:?}"
    );
    assert!(
        service["tmpfs"]
            .as_vec()
            .is_some_and(|t| t.iter().any(|m| m.as_str() == Some("/run/alertmanager"))),
        "the rendered configuration (with the secrets) stays in memory"
    );
    // Every variable the script reads reaches the container.
    let script = std::fs::read_to_string(RENDER_CONFIG).unwrap();
    let read: BTreeSet<String> = script
        .split("${")
        .skip(1)
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect()
        })
        .collect();
    assert!(read.len() >= 8, "{read:?}");
    for name in &read {
        assert_eq!(
            service["environment"][name.as_str()].as_str(),
            Some(
                format!(
                    "${{{name}:-{}}}",
                    if name.ends_with("REQUIRE_TLS") {
                        "true"
                    } else {
                        ""
                    }
                )
                .as_str()
            ),
            "compose.yml passes {name} to Alertmanager"
        );
    }
}

#[test]
fn promtool_accepts_the_alert_rules_and_refuses_a_broken_one() {
    let Some(promtool) = monitoring_tool("promtool") else {
        return;
    };
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/alerts.yml");
    let (ok, out) = run(&promtool, &["check", "rules", rules]);
    assert!(ok, "promtool check rules docker/alerts.yml:\n{out}");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/prometheus.yml");
    let (ok, out) = run(&promtool, &["check", "config", "--syntax-only", config]);
    assert!(ok, "promtool check config docker/prometheus.yml:\n{out}");

    // The check is real: an expression that does not parse fails it.
    let rules_text = std::fs::read_to_string(rules).unwrap();
    let broken = rules_text.replacen("up{job=\"vpn-shop\"} == 0", "up{job=\"vpn-shop\" == 0", 1);
    assert_ne!(broken, rules_text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.yml");
    std::fs::write(&path, broken).unwrap();
    let (ok, out) = run(&promtool, &["check", "rules", path.to_str().unwrap()]);
    assert!(!ok && out.contains("VpnShopDown"), "{out}");
}

#[test]
fn amtool_accepts_the_alertmanager_config_for_every_choice_of_receivers() {
    let Some(amtool) = monitoring_tool("amtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let both: Vec<(&str, &str)> = TELEGRAM_RECEIVER
        .iter()
        .chain(&EMAIL_RECEIVER)
        .copied()
        .collect();
    for (choice, vars) in [
        ("none", &[][..]),
        ("telegram", &TELEGRAM_RECEIVER[..]),
        ("email", &EMAIL_RECEIVER[..]),
        ("telegram and email", &both[..]),
    ] {
        let config = render_alertmanager_config(vars)
            .unwrap_or_else(|e| panic!("{choice}: render-config.sh failed: {e}"));
        let path = dir.path().join("alertmanager.yml");
        std::fs::write(&path, &config).unwrap();
        let (ok, out) = run(&amtool, &["check-config", path.to_str().unwrap()]);
        assert!(ok, "{choice}: amtool check-config:\n{out}\n{config}");
        assert!(
            out.contains("1 templates"),
            "{choice}: the template is found:\n{out}"
        );
        let doc = &YamlLoader::load_from_str(&config).unwrap()[0];
        let receiver = &doc["receivers"][0];
        let chats: Vec<i64> = receiver["telegram_configs"]
            .as_vec()
            .map(|c| {
                c.iter()
                    .map(|t| t["chat_id"].as_i64().expect("a chat id"))
                    .collect()
            })
            .unwrap_or_default();
        let emails = receiver["email_configs"].as_vec().map_or(0, Vec::len);
        match choice {
            "none" => assert!(chats.is_empty() && emails == 0, "{config}"),
            "telegram" => assert!(chats == [7001, -1001234567890] && emails == 0, "{config}"),
            "email" => assert!(chats.is_empty() && emails == 1, "{config}"),
            _ => assert!(chats.len() == 2 && emails == 1, "{config}"),
        }
        if choice == "email" {
            // Quotes in a secret stay that secret.
            let email = &receiver["email_configs"][0];
            assert_eq!(
                email["auth_password"].as_str(),
                Some("it's a \"pass\": word")
            );
            assert_eq!(
                email["to"].as_str(),
                Some("owner@example.com, ops@example.com")
            );
        }
    }

    // The check is real: a route to a receiver that does not exist fails it.
    let config = render_alertmanager_config(&TELEGRAM_RECEIVER).unwrap();
    let broken = config.replacen("receiver: admins", "receiver: nobody", 1);
    let path = dir.path().join("broken.yml");
    std::fs::write(&path, broken).unwrap();
    let (ok, out) = run(&amtool, &["check-config", path.to_str().unwrap()]);
    assert!(!ok && out.contains("undefined receiver"), "{out}");
}

#[test]
fn render_config_refuses_a_half_set_receiver_naming_the_variable() {
    for (vars, names) in [
        (&TELEGRAM_RECEIVER[..1], "ALERTMANAGER_TELEGRAM_CHAT_IDS"),
        (&TELEGRAM_RECEIVER[1..], "ALERTMANAGER_TELEGRAM_BOT_TOKEN"),
        (&EMAIL_RECEIVER[..1], "ALERTMANAGER_EMAIL_FROM"),
        (&EMAIL_RECEIVER[..2], "ALERTMANAGER_SMTP_SMARTHOST"),
    ] {
        let error = render_alertmanager_config(vars).expect_err(names);
        assert!(error.contains(names), "{names}: {error}");
    }
    for (name, value) in [
        ("ALERTMANAGER_TELEGRAM_CHAT_IDS", "@my_admin"),
        ("ALERTMANAGER_TELEGRAM_CHAT_IDS", "7001,70-02"),
        ("ALERTMANAGER_TELEGRAM_BOT_TOKEN", "not-a-token"),
        ("ALERTMANAGER_SMTP_REQUIRE_TLS", "yes"),
    ] {
        let mut vars = TELEGRAM_RECEIVER.to_vec();
        vars.retain(|(n, _)| *n != name);
        vars.push((name, value));
        let error = render_alertmanager_config(&vars).expect_err(value);
        assert!(error.contains(name), "{name}={value}: {error}");
    }
}

#[test]
fn the_telegram_alert_message_lists_the_group_and_escapes_its_text() {
    let Some(amtool) = monitoring_tool("amtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.json");
    let alert = |status: &str, kind: &str, summary: &str, ends: &str| {
        serde_json::json!({
            "status": status,
            "labels": {"alertname": "VpnShopDeadJobs", "severity": "warning", "kind": kind},
            "annotations": {"summary": summary, "description": "See GET /api/v1/jobs?state=dead."},
            "startsAt": "2025-03-01T09:15:00Z",
            "endsAt": ends,
        })
    };
    let group = serde_json::json!({
        "receiver": "admins",
        "status": "firing",
        "alerts": [
            alert("firing", "provision", "2 dead provision job(s)", "0001-01-01T00:00:00Z"),
            alert("firing", "notify", "1 dead notify job(s) <b>&", "0001-01-01T00:00:00Z"),
            alert("resolved", "panel_delete", "1 dead panel_delete job(s)", "2025-03-01T09:30:00Z"),
        ],
        "groupLabels": {"alertname": "VpnShopDeadJobs"},
        "commonLabels": {"alertname": "VpnShopDeadJobs", "severity": "warning"},
        "commonAnnotations": {"description": "See GET /api/v1/jobs?state=dead."},
        "externalURL": "http://alertmanager:9093",
    });
    std::fs::write(&data, group.to_string()).unwrap();
    let glob = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/alertmanager/*.tmpl");
    // The text render-config.sh gives Telegram.
    let config = render_alertmanager_config(&TELEGRAM_RECEIVER).unwrap();
    let doc = &YamlLoader::load_from_str(&config).unwrap()[0];
    let telegram = &doc["receivers"][0]["telegram_configs"][0];
    assert_eq!(telegram["parse_mode"].as_str(), Some("HTML"));
    let message = telegram["message"].as_str().unwrap();
    let (ok, out) = run(
        &amtool,
        &[
            "template",
            "render",
            &format!("--template.glob={glob}"),
            &format!("--template.text={message}"),
            &format!("--template.data={}", data.display()),
        ],
    );
    assert!(ok, "{out}");
    assert_eq!(
        out.trim_end(),
        "🟠 <b>VpnShopDeadJobs</b> · warning · 2 firing\n\
         • 2 dead provision job(s) (since 2025-03-01 09:15 UTC)\n\
         • 1 dead notify job(s) &lt;b&gt;&amp; (since 2025-03-01 09:15 UTC)\n\
         \n\
         See GET /api/v1/jobs?state=dead.\n\
         \n\
         ✅ <b>VpnShopDeadJobs</b> · 1 resolved\n\
         • 1 dead panel_delete job(s) (ended 2025-03-01 09:30 UTC)"
    );
}
