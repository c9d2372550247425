//! `/metrics` of the real `ward serve` (SPEC §7, §8): served by the admin listener without a
//! token, valid for `promtool check metrics`, scraped by a real Prometheus server, counting a
//! login, and holding no token, cookie, code or CSRF token in any label after a whole session.
//! The same Prometheus then runs every PromQL expression of the Grafana dashboard and every
//! alert rule (support/dashboard.rs): Grafana is not installable here, so the dashboard is
//! validated by what it would ask Prometheus, not rendered.
//!
//! `promtool` and `prometheus` come from Debian's `prometheus` package (`scripts/test`
//! installs it). Without them the test fails under `CI=true` and is skipped, loudly, elsewhere.

#[path = "support/dashboard.rs"]
mod dashboard;
#[path = "support/prometheus.rs"]
mod prometheus;
#[path = "support/secrets.rs"]
mod secrets;
#[path = "support/served.rs"]
mod served;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use prometheus::{Prometheus, have};
use secrets::{WalkedLogin, id_token_hint, last_bearer, leaked};
use served::{Served, free_port, wait_until_serving};
use ward_testkit::{Browser, EchoUpstream, Idp, IdpOptions};

/// The key ring entry of this test (test-only key).
const KEY: &str = "met1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// The admin token of this test.
const ADMIN_TOKEN: &str = "metrics-admin-token-0123456789abcdef";

/// `promtool check metrics` on `exposition`: its complaints, empty when valid.
fn promtool_check(exposition: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        complaints
    } else {
        format!("exit {:?}: {complaints}", output.status)
    }
}

#[tokio::test]
async fn metrics_are_valid_scraped_by_prometheus_and_hold_no_secret() {
    if !have("promtool") || !have("prometheus") {
        return;
    }
    let port = free_port();
    let admin_port = free_port();
    let origin = format!("http://localhost:{port}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let idp = Idp::start(IdpOptions::new(origin.clone()))
        .await
        .expect("start the IdP");
    let upstream = EchoUpstream::start().await.expect("start the upstream");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), port, admin_port, &idp, &upstream);
    let served = Served::start(&config);
    wait_until_serving(&served, &origin).await;
    let rules = dashboard::root().join("deploy/prometheus/ward-rules.yml");
    let prometheus = Prometheus::start(&format!("127.0.0.1:{admin_port}"), &rules);

    let browser = Browser::new().unwrap();
    probes_need_no_token_and_admin_does(&admin).await;
    let login = WalkedLogin::walk(&browser, &origin, "alice", || served.output_so_far()).await;
    let (csrf, access_token, id_token) = use_and_log_out(&browser, &origin, &upstream).await;

    let scrape = Browser::new()
        .unwrap()
        .get(format!("{admin}/metrics"))
        .await
        .unwrap();
    assert_eq!(scrape.status, 200);
    let text = scrape.text();
    assert_eq!(promtool_check(&text), "", "promtool check metrics");
    assert_the_walk_was_counted(&text);
    let secrets = login
        .with(csrf, access_token, id_token)
        .named_with_configured(KEY);
    let found = leaked(&text, &secrets);
    assert!(found.is_empty(), "/metrics holds: {found:?}");
    assert!(!text.contains("eyJ"), "/metrics holds something JWT-shaped");
    assert!(!text.contains(ADMIN_TOKEN));

    let logins = prometheus
        .value_of("ward_logins_total{result=\"success\"}")
        .await;
    assert_eq!(logins, 1.0, "the login as Prometheus scraped it");
    // What Grafana and the rule evaluator would ask, after a login and a proxied call.
    dashboard::assert_dashboard_queries_run(&prometheus, &dashboard::dashboard()).await;
    dashboard::assert_rules_evaluate(&prometheus).await;
    drop(prometheus);
    let (status, _, stderr) = served.terminate();
    assert!(status.success(), "{stderr}");
}

/// After the login: one API call, one POST refused without the CSRF token, the logout. The
/// CSRF token, the access token the upstream saw and the ID token of the logout URL.
async fn use_and_log_out(
    browser: &Browser,
    origin: &str,
    upstream: &EchoUpstream,
) -> (String, String, String) {
    let me = browser.get(format!("{origin}/bff/user")).await.unwrap();
    let csrf = me.json().unwrap()["csrfToken"].as_str().unwrap().to_owned();
    let api = browser
        .get(format!("{origin}/api/things?x=1"))
        .await
        .unwrap();
    assert_eq!(api.status, 200);
    let access_token = last_bearer(upstream);
    let refused = browser
        .post(format!("{origin}/api/things"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    // Refused by the head checks, before routing: counted under `refused`.
    let long = browser
        .get(format!("{origin}/api/{}", "a".repeat(9 * 1024)))
        .await
        .unwrap();
    assert_eq!(long.status, 414);
    let logout = browser
        .post(format!("{origin}/bff/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200);
    let id_token = id_token_hint(&logout);
    (csrf, access_token, id_token)
}

/// The scrape counts the walk: the login, the refusal, each route's requests, the upstream
/// and IdP calls, the events, no session left; and no raw path became a label.
fn assert_the_walk_was_counted(text: &str) {
    for sample in [
        "ward_logins_total{result=\"success\"} 1\n",
        "ward_csrf_rejections_total{reason=\"token\"} 1\n",
        "ward_http_requests_total{route=\"/api\",method=\"GET\",status=\"200\"} 1\n",
        "ward_http_requests_total{route=\"/api\",method=\"POST\",status=\"403\"} 1\n",
        "ward_http_requests_total{route=\"/bff/callback\",method=\"GET\",status=\"302\"} 1\n",
        "ward_http_requests_total{route=\"refused\",method=\"GET\",status=\"414\"} 1\n",
        "ward_upstream_request_duration_seconds_count{route=\"/api\"} 1\n",
        "ward_idp_request_duration_seconds_count{endpoint=\"token\"} 1\n",
        "ward_security_events_total{event=\"login_succeeded\"} 1\n",
        "ward_security_events_total{event=\"other\"} 0\n",
        "ward_sessions_active 0\n",
    ] {
        assert!(text.contains(sample), "no {sample:?} in\n{text}");
    }
    assert!(!text.contains("/api/things"), "a raw path became a label");
}

/// `/healthz`, `/readyz`, `/metrics` answer without a token; `/admin/*` does not.
async fn probes_need_no_token_and_admin_does(admin: &str) {
    let browser = Browser::new().unwrap();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let reply = browser.get(format!("{admin}{path}")).await.unwrap();
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    let refused = browser
        .get(format!("{admin}/admin/sessions?sub=alice"))
        .await
        .unwrap();
    assert_eq!(refused.status, 401);
}

/// `ward check | head -1`, made deterministic: the reader closes the pipe before Ward writes
/// its first line. The closed pipe ends the command quietly, exit status 0, no panic.
#[test]
fn check_and_keygen_into_a_closed_pipe_exit_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ward.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://localhost:8080"
[oidc]
issuer = "http://127.0.0.1:9/"
client_id = "bff"
client_secret = "bff-secret"
[store]
kind = "memory"
[crypto]
keys = ["{KEY}"]
"#
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    for args in [vec!["check", "--config", config.as_str()], vec!["keygen"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ward");
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            output.status.success(),
            "{args:?}: exit {:?}: {stderr}",
            output.status
        );
    }
}

/// Writes `ward.toml` into `dir`: public listener on `port`, admin on `admin_port`, an
/// embedded store, one user route `/api`.
fn write_config(
    dir: &Path,
    port: u16,
    admin_port: u16,
    idp: &Idp,
    upstream: &EchoUpstream,
) -> PathBuf {
    let config = dir.join("ward.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "embedded"
path = "data/ward.db"

[crypto]
keys = ["{KEY}"]

[logout]
id_token_hint = true

[admin]
listen = "127.0.0.1:{admin_port}"
token = "{ADMIN_TOKEN}"

[telemetry]
log_format = "json"
log_level = "info"

[[routes]]
prefix = "/api"
upstream = "{api}"
token = "user"
"#,
            issuer = idp.issuer(),
            api = upstream.url(),
        ),
    )
    .unwrap();
    config
}

/// The alert rules load in Prometheus, the dashboard is well formed, and the dashboard and
/// rules query only families Ward exposes.
#[test]
fn alert_rules_and_dashboard_use_only_ward_metrics() {
    if !have("promtool") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rules = root.join("deploy/prometheus/ward-rules.yml");
    let checked = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    let exposed = ward::telemetry::metrics::render(None);
    dashboard::assert_well_formed(&dashboard::dashboard());
    let dashboard = std::fs::read_to_string(root.join("deploy/grafana/ward.json")).unwrap();
    let rules = std::fs::read_to_string(&rules).unwrap();
    for text in [&dashboard, &rules] {
        for (at, _) in text.match_indices("ward_") {
            let name: String = text[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = name.trim_end_matches("_bucket");
            assert!(
                exposed.contains(&format!("# TYPE {family} ")),
                "{name} is not a Ward metric"
            );
        }
    }
}
