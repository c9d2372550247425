//! The real `ward serve` process (SPEC §7, §8): configured from a file plus a `WARD_*`
//! override, it serves a whole session, prints no secret on stdout or stderr, and on SIGTERM
//! drains, logs `shutdown` and exits 0.

#[path = "support/secrets.rs"]
mod secrets;
#[path = "support/served.rs"]
mod served;

use std::path::{Path, PathBuf};

use secrets::{WalkedLogin, id_token_hint, last_bearer, leaked};
use serde_json::Value;
use served::{Served, free_port, wait_until_serving};
use ward_testkit::{Browser, EchoUpstream, Idp, IdpOptions};

/// The key ring entry of this test (test-only key).
const KEY: &str = "bin1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
#[tokio::test]
async fn served_binary_logs_no_secret_and_shuts_down_gracefully_on_sigterm() {
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let idp = Idp::start(IdpOptions::new(origin.clone()))
        .await
        .expect("start the IdP");
    let upstream = EchoUpstream::start().await.expect("start the upstream");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), port, &idp, &upstream);

    let mut served = Served::start(&config);
    wait_until_serving(&served, &origin).await;
    survives_a_sighup(&mut served).await;

    let browser = Browser::new().unwrap();
    let login = WalkedLogin::walk(&browser, &origin, "alice", || served.output_so_far()).await;
    let (csrf, access_token) = use_the_api(&browser, &origin, &upstream).await;
    let id_token = log_out(&browser, &origin, &csrf).await;

    let (status, stdout, stderr) = served.terminate();
    let output = format!("{stdout}\n{stderr}");
    let secrets = login
        .with(csrf, access_token, id_token)
        .named_with_configured(KEY);
    let found = leaked(&output, &secrets);
    assert!(found.is_empty(), "ward's output holds: {found:?}");
    assert!(
        !output.contains("eyJ"),
        "ward's output holds something JWT-shaped"
    );

    assert!(
        status.success(),
        "exit status {status:?}\nstderr:\n{stderr}"
    );
    assert_the_session_and_the_shutdown_were_logged(&stdout);
    assert!(
        dir.path().join("data/ward.db").is_file(),
        "relative store path resolved against the config's directory"
    );
}

/// `systemctl reload` sends SIGHUP: without TLS there is nothing to reload, and the process
/// must neither end nor restart (SIGHUP's default action would end it).
async fn survives_a_sighup(served: &mut Served) {
    let sent = std::process::Command::new("kill")
        .args(["-HUP", &served.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -HUP failed");
    let deadline = std::time::Instant::now() + served::PATIENCE;
    while !served.output_so_far().contains("SIGHUP: nothing to reload") {
        assert!(
            served.is_running(),
            "SIGHUP ended ward\n{}",
            served.output_so_far()
        );
        assert!(std::time::Instant::now() < deadline, "SIGHUP never logged");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(served.is_running(), "ward exited after SIGHUP");
}

/// Writes `ward.toml` into `dir`: serving on `port`, an embedded store at the relative path
/// `data/ward.db`, JSON logs at `info` (`WARD_TELEMETRY__LOG_LEVEL` raises it).
fn write_config(dir: &Path, port: u16, idp: &Idp, upstream: &EchoUpstream) -> PathBuf {
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

/// Reads the user and calls the API, then is refused a POST without the CSRF token; the
/// session's CSRF token and the access token the upstream received.
async fn use_the_api(browser: &Browser, origin: &str, upstream: &EchoUpstream) -> (String, String) {
    let me = browser.get(format!("{origin}/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    let csrf = me.json().unwrap()["csrfToken"].as_str().unwrap().to_owned();
    let api = browser.get(format!("{origin}/api/things")).await.unwrap();
    assert_eq!(api.status, 200);
    let access_token = last_bearer(upstream);
    let refused = browser
        .post(format!("{origin}/api/things"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status, 403);
    (csrf, access_token)
}

/// Logs out with `csrf`; the ID token of the logout URL.
async fn log_out(browser: &Browser, origin: &str, csrf: &str) -> String {
    let logout = browser
        .post(format!("{origin}/bff/logout"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200);
    id_token_hint(&logout)
}

/// Every stdout line is JSON; each step of the session and of the shutdown has its event, the
/// drain came after the signal, and each request its access line.
fn assert_the_session_and_the_shutdown_were_logged(stdout: &str) {
    let lines: Vec<Value> = stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON log line: {l}")))
        .collect();
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    for event in [
        "listening",
        "login_started",
        "login_succeeded",
        "csrf_rejected",
        "session_ended",
        "shutdown",
        "stopped",
    ] {
        assert!(events.contains(&event), "no {event} event in {events:?}");
    }
    let position = |event: &str| events.iter().position(|e| *e == event);
    assert!(
        position("shutdown") < position("stopped"),
        "drained after the signal"
    );
    let access = lines
        .iter()
        .filter(|l| l["target"] == "ward::access" && l["status"].is_u64())
        .count();
    // The readiness poll's 401, then login, callback, user, API, refused POST, logout.
    assert_eq!(access, 7, "one access line per request");
}
