//! The alert rules and the Grafana dashboards name only metrics the app exports (with labels it
//! has), and they are well formed and provisioned: every rule has a name, an expression, a
//! severity and a summary; every panel queries the provisioned Prometheus. And a shop just
//! started already exports every series they query.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use support::app::spawn_app;
use vpn_shop::metrics::Metrics;
use yaml_rust2::YamlLoader;

const ALERTS: &str = include_str!("../../docker/alerts.yml");
const PROMETHEUS: &str = include_str!("../../docker/prometheus.yml");
const COMPOSE: &str = include_str!("../../docker/compose.yml");

/// A metric of ours named in a PromQL expression.
#[derive(Debug, PartialEq)]
struct Reference {
    name: String,
    /// Label names its selector matches on.
    labels: BTreeSet<String>,
    /// The selector's exact matchers (`label="value"`).
    exact: BTreeMap<String, String>,
}

/// Metrics of ours (`vpn_shop_…`, `process_…`) in a PromQL expression, with their selectors.
fn references(expr: &str) -> Vec<Reference> {
    let mut found = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &expr[i..];
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        if starts_word && (rest.starts_with("vpn_shop_") || rest.starts_with("process_")) {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let name = rest[..len].to_owned();
            let mut labels = BTreeSet::new();
            let mut exact = BTreeMap::new();
            if rest[len..].starts_with('{') {
                let end = rest[len..].find('}').expect("closed selector") + len;
                for matcher in rest[len + 1..end].split(',') {
                    let matcher = matcher.trim();
                    let label: String = matcher
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if label.is_empty() {
                        continue;
                    }
                    let operand = matcher[label.len()..].trim_start();
                    if let Some(value) = operand.strip_prefix("=\"") {
                        exact.insert(label.clone(), value.trim_end_matches('"').to_owned());
                    }
                    labels.insert(label);
                }
            }
            found.push(Reference {
                name,
                labels,
                exact,
            });
            i += len;
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    found
}

/// Label names in `by (…)` and `on (…)` clauses.
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for keyword in ["by (", "on (", "by(", "on("] {
        for piece in expr.split(keyword).skip(1) {
            let inside = &piece[..piece.find(')').expect("closed clause")];
            labels.extend(inside.split(',').map(|l| l.trim().to_owned()));
        }
    }
    labels
}

/// The Grafana dashboards in docker/grafana/dashboards.
fn dashboards() -> Vec<serde_json::Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/grafana/dashboards");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// Every PromQL expression the alert rules and the dashboards evaluate, with where it is.
fn queries() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let alerts = YamlLoader::load_from_str(ALERTS).expect("alerts.yml is YAML");
    for group in alerts[0]["groups"].as_vec().expect("groups") {
        for rule in group["rules"].as_vec().expect("rules") {
            let alert = rule["alert"].as_str().expect("an alert name");
            found.push((
                alert.to_owned(),
                rule["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    for board in dashboards() {
        for panel in board["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let what = format!("{} / {}", board["title"], panel["title"]);
                found.push((what, target["expr"].as_str().expect("expr").to_owned()));
            }
        }
    }
    found
}

/// The metric families the app declares, with their label names.
fn families() -> BTreeMap<String, BTreeSet<String>> {
    let metrics = Metrics::new().unwrap();
    let families: BTreeMap<String, BTreeSet<String>> = metrics
        .declared()
        .iter()
        .map(|f| (f.name.clone(), f.labels.iter().cloned().collect()))
        .collect();
    assert!(families.contains_key("vpn_shop_jobs"));
    assert!(families.contains_key("vpn_shop_job_oldest_due_seconds"));
    families
}

/// Checks one PromQL expression against the app's families; returns the metrics it names.
fn check_expr(
    families: &BTreeMap<String, BTreeSet<String>>,
    what: &str,
    expr: &str,
) -> BTreeSet<String> {
    // A histogram's series add `_bucket` (with the `le` label), `_sum` and `_count`.
    let family_of = |name: &str| -> Option<BTreeSet<String>> {
        families.get(name).cloned().or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                let mut labels = families.get(base)?.clone();
                labels.insert("le".to_owned());
                Some(labels)
            })
        })
    };
    let refs = references(expr);
    assert!(
        !refs.is_empty() || expr.contains("up{"),
        "{what} names no metric of the app"
    );
    let mut named = BTreeSet::new();
    let mut all_labels = BTreeSet::new();
    for Reference { name, labels, .. } in refs {
        let Some(known) = family_of(&name) else {
            panic!("{what}: {name} is not a metric the app exports");
        };
        for label in &labels {
            assert!(known.contains(label), "{what}: {name} has no label {label}");
        }
        all_labels.extend(known);
        named.insert(name);
    }
    for label in grouping_labels(expr) {
        assert!(
            all_labels.contains(&label) || label == "instance" || label == "job",
            "{what}: groups by {label}, which its metrics do not have"
        );
    }
    named
}

#[test]
fn alert_rules_use_only_exported_metrics_and_labels() {
    let families = families();
    let docs = YamlLoader::load_from_str(ALERTS).expect("alerts.yml is YAML");
    let groups = docs[0]["groups"].as_vec().expect("groups");
    let mut names = BTreeSet::new();
    let mut referenced = BTreeSet::new();
    for group in groups {
        assert!(group["name"].as_str().is_some(), "a group without a name");
        for rule in group["rules"].as_vec().expect("rules") {
            let alert = rule["alert"].as_str().expect("every rule is an alert");
            assert!(names.insert(alert.to_owned()), "{alert} is defined twice");
            let expr = rule["expr"].as_str().expect("expr");
            assert!(
                matches!(
                    rule["labels"]["severity"].as_str(),
                    Some("critical" | "warning")
                ),
                "{alert}: severity must be critical or warning"
            );
            assert!(
                rule["annotations"]["summary"].as_str().is_some()
                    && rule["annotations"]["description"].as_str().is_some(),
                "{alert}: summary and description"
            );
            if let Some(wait) = rule["for"].as_str() {
                assert!(
                    wait.ends_with('m') || wait.ends_with('s') || wait.ends_with('h'),
                    "{alert}: `for` is a duration"
                );
            }
            referenced.extend(check_expr(&families, alert, expr));
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    assert!(referenced.len() >= 10, "{referenced:?}");
    // What was paid reaches the panel: the queue of panel jobs and the check of paid access
    // have their alerts.
    for (alert, metric) in [
        (
            "VpnShopProvisioningStuck",
            "vpn_shop_job_oldest_due_seconds",
        ),
        ("VpnShopPaidUnprovisioned", "vpn_shop_paid_unprovisioned"),
        ("VpnShopPaymentAnomaly", "vpn_shop_payment_anomalies_total"),
    ] {
        assert!(names.contains(alert), "{alert} is missing");
        let rule = groups
            .iter()
            .flat_map(|g| g["rules"].as_vec().expect("rules"))
            .find(|r| r["alert"].as_str() == Some(alert))
            .expect("the rule");
        assert!(
            rule["expr"].as_str().is_some_and(|e| e.contains(metric)),
            "{alert} watches {metric}"
        );
    }

    // Prometheus loads them: the configuration names the file and compose mounts it.
    assert!(PROMETHEUS.contains("rule_files:") && PROMETHEUS.contains("alerts.yml"));
    assert!(COMPOSE.contains("./alerts.yml:/etc/prometheus/alerts.yml"));
}

#[test]
fn dashboards_use_only_exported_metrics_and_are_provisioned() {
    let families = families();
    let mut boards = 0;
    let mut referenced = BTreeSet::new();
    let mut uids = BTreeSet::new();
    for board in dashboards() {
        boards += 1;
        let uid = board["uid"].as_str().expect("a dashboard uid");
        assert!(uids.insert(uid.to_owned()), "uid {uid} twice");
        let title = board["title"].as_str().expect("a title");
        let panels = board["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{title} has no panels");
        let mut ids = BTreeSet::new();
        for panel in panels {
            let name = format!(
                "{title} / {}",
                panel["title"].as_str().expect("panel title")
            );
            assert!(
                ids.insert(panel["id"].as_i64().expect("panel id")),
                "{name}: id twice"
            );
            assert_eq!(panel["datasource"]["uid"], "prometheus", "{name}");
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name} queries nothing");
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                referenced.extend(check_expr(&families, &name, expr));
            }
        }
    }
    assert!(boards >= 5, "{boards} dashboards");
    assert!(referenced.len() >= 35, "{referenced:?}");

    // Grafana finds the data source and the dashboards, and compose mounts them.
    let datasource = include_str!("../../docker/grafana/provisioning/datasources/prometheus.yml");
    let source = &YamlLoader::load_from_str(datasource).unwrap()[0]["datasources"][0];
    assert_eq!(source["uid"].as_str(), Some("prometheus"));
    assert_eq!(source["url"].as_str(), Some("http://prometheus:9090"));
    let provider = include_str!("../../docker/grafana/provisioning/dashboards/vpn-shop.yml");
    let provider = &YamlLoader::load_from_str(provider).unwrap()[0]["providers"][0];
    let path = provider["options"]["path"].as_str().unwrap();
    assert!(
        COMPOSE.contains(&format!("./grafana/dashboards:{path}")),
        "{path}"
    );
    assert!(COMPOSE.contains("./grafana/provisioning:/etc/grafana/provisioning"));
}

#[test]
fn prometheus_scrapes_with_the_metrics_token_of_the_compose_stack() {
    // /metrics shows revenue and user counts: the stack sets METRICS_TOKEN and Prometheus sends
    // it as a bearer token, read from the file its container writes from the same variable.
    let prometheus = &YamlLoader::load_from_str(PROMETHEUS).unwrap()[0];
    let job = &prometheus["scrape_configs"][0];
    assert_eq!(job["metrics_path"].as_str(), Some("/metrics"));
    let auth = &job["authorization"];
    assert_eq!(auth["type"].as_str(), Some("Bearer"), "{job:?}");
    let file = auth["credentials_file"]
        .as_str()
        .unwrap_or_else(|| panic!("the scrape has no credentials_file: {job:?}"));
    let compose = &YamlLoader::load_from_str(COMPOSE).unwrap()[0]["services"]["prometheus"];
    assert_eq!(
        compose["environment"]["METRICS_TOKEN"].as_str(),
        Some("${METRICS_TOKEN:?set METRICS_TOKEN in docker/.env}"),
        "Prometheus gets the token, and the stack does not start without one"
    );
    let command = compose["command"][0].as_str().expect("a shell command");
    // `$$` is Compose's escape of `$`: the container's shell expands it, not Compose.
    assert!(
        command.contains(&format!("\"$$METRICS_TOKEN\" > {file}")),
        "{command}"
    );
    assert!(command.contains("exec /bin/prometheus"), "{command}");
    let dir = file.rsplit_once('/').unwrap().0;
    assert!(
        compose["tmpfs"]
            .as_vec()
            .is_some_and(|t| t.iter().any(|m| m.as_str() == Some(dir))),
        "the token stays in memory ({dir} is a tmpfs)"
    );
}

#[test]
fn the_reference_finder_sees_names_labels_and_suffixes() {
    let refs = references(
        "sum by (kind) (rate(vpn_shop_jobs{state=\"dead\", kind=~\"p.*\"}[5m])) / process_open_fds",
    );
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].name, "vpn_shop_jobs");
    assert_eq!(
        refs[0].labels,
        ["kind", "state"].map(String::from).into_iter().collect()
    );
    assert_eq!(
        refs[0].exact,
        BTreeMap::from([("state".to_owned(), "dead".to_owned())])
    );
    assert_eq!(refs[1].name, "process_open_fds");
    assert!(refs[1].exact.is_empty());
    assert_eq!(
        grouping_labels("sum by (kind, provider) (x) and on (kind) y"),
        ["kind", "provider"].map(String::from).into_iter().collect()
    );
}

/// The samples of a text exposition: metric name and labels of each line.
fn samples(exposition: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut found = Vec::new();
    for line in exposition.lines().filter(|l| !l.starts_with('#')) {
        let name_end = line.find(['{', ' ']).expect("a sample line");
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        while let Some(after) = rest.strip_prefix(['{', ',']) {
            let (label, quoted) = after.split_once("=\"").expect("label=\"value\"");
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next().expect("a closed label value") {
                    (_, '\\') => value.extend(chars.next().map(|(_, c)| c)),
                    (at, '"') => break at,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(label.to_owned(), value);
            rest = &quoted[end + 1..];
        }
        found.push((line[..name_end].to_owned(), labels));
    }
    found
}

/// A shop just started (no panel, no payment provider, no traffic) already exports every series
/// a dashboard or an alert rule queries, with the label values their selectors name: a panel
/// shows 0 instead of "No data", and `rate()`/`increase()` see the first event.
#[actix_rt::test]
async fn every_queried_family_is_exported_from_the_start() {
    let app = spawn_app(&[]).await;
    let text = app.get("/metrics", None).await.text().await.unwrap();
    app.shutdown().await;
    let exported = samples(&text);
    let mut missing = BTreeMap::<String, BTreeSet<String>>::new();
    let mut checked = 0;
    for (what, expr) in queries() {
        for reference in references(&expr) {
            checked += 1;
            let present = exported.iter().any(|(name, labels)| {
                *name == reference.name
                    && reference
                        .exact
                        .iter()
                        .all(|(label, value)| labels.get(label) == Some(value))
            });
            if !present {
                let series = format!("{}{:?}", reference.name, reference.exact);
                missing.entry(series).or_default().insert(what.clone());
            }
        }
    }
    assert!(checked >= 80, "only {checked} references found");
    let families: BTreeSet<&str> = missing
        .keys()
        .map(|series| series.split('{').next().unwrap_or(series))
        .collect();
    assert!(
        missing.is_empty(),
        "{} series of {} families are missing from /metrics at start: {missing:#?}\n{text}",
        missing.len(),
        families.len(),
    );
}
