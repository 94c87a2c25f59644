//! The compose stack as shipped: `docker/.env.example` names every setting the app reads and
//! every variable compose.yml needs, and compose.yml limits, restarts and fences in each service.
//! And the security review: every test SECURITY.md names as the proof of a defence exists.

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
