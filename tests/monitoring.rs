//! The alert rules name only metrics the app exports (with labels it has), and they are well
//! formed: every rule has a name, an expression, a severity and a summary.

use std::collections::{BTreeMap, BTreeSet};

use vpn_shop::metrics::Metrics;
use yaml_rust2::YamlLoader;

const ALERTS: &str = include_str!("../docker/alerts.yml");
const PROMETHEUS: &str = include_str!("../docker/prometheus.yml");
const COMPOSE: &str = include_str!("../docker/compose.yml");

/// Metric names of ours (`vpn_shop_…`, `process_…`) in a PromQL expression, with the label names
/// used in its selectors and `by (…)`/`on (…)` clauses.
fn references(expr: &str) -> Vec<(String, BTreeSet<String>)> {
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
            if rest[len..].starts_with('{') {
                let end = rest[len..].find('}').expect("closed selector") + len;
                for matcher in rest[len + 1..end].split(',') {
                    let label: String = matcher
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !label.is_empty() {
                        labels.insert(label);
                    }
                }
            }
            found.push((name, labels));
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

#[test]
fn alert_rules_use_only_exported_metrics_and_labels() {
    let metrics = Metrics::new().unwrap();
    let families: BTreeMap<String, BTreeSet<String>> = metrics
        .declared()
        .iter()
        .map(|f| (f.name.clone(), f.labels.iter().cloned().collect()))
        .collect();
    assert!(families.contains_key("vpn_shop_jobs"));
    assert!(families.contains_key("vpn_shop_job_oldest_due_seconds"));
    // Histograms and summaries add suffixes to their family's name.
    let family_of = |name: &str| -> Option<&BTreeSet<String>> {
        families.get(name).or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                name.strip_suffix(suffix)
                    .and_then(|base| families.get(base))
            })
        })
    };

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
            let refs = references(expr);
            assert!(
                !refs.is_empty() || expr.contains("up{"),
                "{alert} names no metric of the app"
            );
            let mut all_labels = BTreeSet::new();
            for (name, labels) in refs {
                let Some(known) = family_of(&name) else {
                    panic!("{alert}: {name} is not a metric the app exports");
                };
                for label in &labels {
                    assert!(
                        known.contains(label),
                        "{alert}: {name} has no label {label}"
                    );
                }
                all_labels.extend(known.iter().cloned());
                referenced.insert(name);
            }
            for label in grouping_labels(expr) {
                assert!(
                    all_labels.contains(&label) || label == "instance" || label == "job",
                    "{alert}: groups by {label}, which its metrics do not have"
                );
            }
        }
    }
    assert!(names.len() >= 10, "{names:?}");
    assert!(referenced.len() >= 10, "{referenced:?}");

    // Prometheus loads them: the configuration names the file and compose mounts it.
    assert!(PROMETHEUS.contains("rule_files:") && PROMETHEUS.contains("alerts.yml"));
    assert!(COMPOSE.contains("./alerts.yml:/etc/prometheus/alerts.yml"));
}

#[test]
fn the_reference_finder_sees_names_labels_and_suffixes() {
    let refs = references(
        "sum by (kind) (rate(vpn_shop_jobs{state=\"dead\", kind=~\"p.*\"}[5m])) / process_open_fds",
    );
    assert_eq!(refs.len(), 2);
    assert_eq!(refs[0].0, "vpn_shop_jobs");
    assert_eq!(
        refs[0].1,
        ["kind", "state"].map(String::from).into_iter().collect()
    );
    assert_eq!(refs[1].0, "process_open_fds");
    assert_eq!(
        grouping_labels("sum by (kind, provider) (x) and on (kind) y"),
        ["kind", "provider"].map(String::from).into_iter().collect()
    );
}
