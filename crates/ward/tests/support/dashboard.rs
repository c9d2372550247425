//! The Grafana dashboard (`deploy/grafana/ward.json`) and the alert rules
//! (`deploy/prometheus/ward-rules.yml`) against a real Prometheus: the dashboard's shape, and
//! every PromQL expression of both sent to the query API, where it must parse and run. Grafana
//! itself is not available here, so no panel is rendered: this checks what Grafana would send.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::prometheus::Prometheus;

/// Panels that must show data once Ward has served a login and a proxied call.
pub const CORE_PANELS: [&str; 2] = ["Traffic by route", "Logins by result"];

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The dashboard JSON.
pub fn dashboard() -> Value {
    let text = std::fs::read_to_string(root().join("deploy/grafana/ward.json")).unwrap();
    serde_json::from_str(&text).expect("the dashboard is JSON")
}

/// The panels of `dashboard`.
fn panels(dashboard: &Value) -> &[Value] {
    dashboard["panels"].as_array().expect("panels")
}

/// A schema version, unique panel ids, and on every panel a Prometheus data source and
/// targets with a `refId` (unique in the panel) and an expression using only defined variables.
pub fn assert_well_formed(dashboard: &Value) {
    assert!(
        dashboard["schemaVersion"].as_u64().is_some(),
        "schemaVersion"
    );
    let variables: BTreeSet<&str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .map(|v| v["name"].as_str().expect("variable name"))
        .collect();
    let mut ids = BTreeSet::new();
    assert!(!panels(dashboard).is_empty(), "no panels");
    for panel in panels(dashboard) {
        let title = panel["title"].as_str().expect("title");
        let id = panel["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: id"));
        assert!(ids.insert(id), "{title}: panel id {id} repeated");
        assert_eq!(panel["datasource"]["type"], "prometheus", "{title}");
        assert!(panel["datasource"]["uid"].is_string(), "{title}: uid");
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut ref_ids = BTreeSet::new();
        for target in targets {
            let ref_id = target["refId"].as_str().expect("refId");
            assert!(ref_ids.insert(ref_id), "{title}: refId {ref_id} repeated");
            let expr = target["expr"].as_str().expect("expr");
            for used in expr.split('$').skip(1) {
                let name: String = used
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    name == "__rate_interval" || variables.contains(name.as_str()),
                    "{title}: ${name} is not a dashboard variable"
                );
            }
        }
    }
}

/// Every panel's (title, expression), with the variables as Grafana would fill them for
/// "all instances" over a short range.
pub fn expressions(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for panel in panels(dashboard) {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            out.push((
                panel["title"].as_str().expect("title").to_owned(),
                expr.replace("$__rate_interval", "1m")
                    .replace("$instance", ".+"),
            ));
        }
    }
    out
}

/// Every dashboard expression parses and runs; the core panels and the `instance` variable's
/// query return data.
pub async fn assert_dashboard_queries_run(prometheus: &Prometheus, dashboard: &Value) {
    for (title, expr) in expressions(dashboard) {
        if let Err(e) = prometheus.query(&expr).await {
            panic!("panel {title:?}: {expr}: {e}");
        }
        if CORE_PANELS.contains(&title.as_str()) {
            prometheus.non_empty(&expr).await;
        }
    }
    let instances = prometheus
        .api(
            "/api/v1/label/instance/values",
            &[("match[]", "ward_build_info")],
        )
        .await
        .expect("label_values(ward_build_info, instance)");
    assert!(
        instances.as_array().is_some_and(|list| !list.is_empty()),
        "the instance variable lists nothing: {instances}"
    );
}

/// Every alert rule of the file is loaded and evaluated without error, and its expression
/// runs through the query API too.
pub async fn assert_rules_evaluate(prometheus: &Prometheus) {
    let file = std::fs::read_to_string(root().join("deploy/prometheus/ward-rules.yml")).unwrap();
    let rules = prometheus.evaluated_rules().await;
    assert_eq!(
        rules.len(),
        file.matches("- alert:").count(),
        "every rule loaded: {rules:?}"
    );
    for rule in &rules {
        let name = &rule["name"];
        assert_eq!(rule["health"], "ok", "{name}: {}", rule["lastError"]);
        let query = rule["query"].as_str().expect("query");
        if let Err(e) = prometheus.query(query).await {
            panic!("rule {name}: {query}: {e}");
        }
    }
}
