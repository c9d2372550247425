//! A real Prometheus server for tests (Debian package `prometheus`): scraping one target every
//! second, loading Ward's alert rules, and its HTTP query API. Without the tools a test fails
//! under `CI=true` and is skipped, loudly, elsewhere ([`have`]).

#![allow(dead_code)] // each test binary uses a different part

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::served::{PATIENCE, free_port};

/// Whether `tool` is on the PATH; under `CI=true` its absence fails the test.
pub fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is not installed (Debian package prometheus; scripts/test installs it)"
        );
        eprintln!("SKIPPED: {tool} is not installed (Debian package prometheus)");
    }
    found
}

/// A Prometheus server scraping `target` and evaluating `rules` every second, on loopback,
/// its data in a temp dir; killed on drop.
pub struct Prometheus {
    child: Child,
    url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub fn start(target: &str, rules: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files: ['{rules}']\n\
                 scrape_configs:\n  - job_name: ward\n    static_configs:\n      - targets: ['{target}']\n",
                rules = rules.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// `GET <api path>` with `params`: the `data` of a `success` answer, or Prometheus's
    /// error text (`Err`) when it refused the request (e.g. a query that does not parse).
    pub async fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let reply = self
            .http
            .get(format!("{}{path}", self.url))
            .query(params)
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let body: Value = reply.json().await.map_err(|e| format!("not JSON: {e}"))?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(format!("{}: {}", body["errorType"], body["error"]))
        }
    }

    /// The instant vector of `query` now (`Err`: Prometheus refused it).
    pub async fn query(&self, query: &str) -> Result<Vec<Value>, String> {
        let data = self.api("/api/v1/query", &[("query", query)]).await?;
        match data["result"].as_array() {
            Some(result) if data["resultType"] == "vector" => Ok(result.clone()),
            _ => Ok(vec![data["result"].clone()]),
        }
    }

    /// Polls until `query` has a sample and returns the first one's value (bounded wait: the
    /// scrape is an event we cannot be told about).
    pub async fn value_of(&self, query: &str) -> f64 {
        let result = self.non_empty(query).await;
        result[0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{query}: no number in {result:?}"))
    }

    /// Polls until `query` parses and has at least one sample; returns them.
    pub async fn non_empty(&self, query: &str) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.query(query).await {
                Ok(result) if !result.is_empty() => return result,
                Err(e) if e.contains("bad_data") => panic!("{query}: {e}"),
                _ => {}
            }
            assert!(Instant::now() < deadline, "prometheus never had {query}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls until every loaded alerting rule has been evaluated; returns them (each with its
    /// `name`, `query`, `health` and `lastError`).
    pub async fn evaluated_rules(&self) -> Vec<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let data = self.api("/api/v1/rules", &[]).await.unwrap_or_default();
            let rules: Vec<Value> = data["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            if !rules.is_empty() && rules.iter().all(|rule| rule["health"] != "unknown") {
                return rules;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus never evaluated the rules: {data}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
