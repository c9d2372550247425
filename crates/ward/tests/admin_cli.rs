//! The admin surface of the binary (SPEC §7): `ward sessions list|revoke` on the store alone,
//! refused while a Ward holds it, and `ward serve` starting the admin listener from its
//! configuration.

#[path = "support/admin_api.rs"]
mod admin_api;
mod common;
#[path = "support/procs.rs"]
mod procs;

use std::path::Path;
use std::time::Duration;

use admin_api::{ADMIN_TOKEN, status_of};
use common::{Options, TEST_KEY, Ward};
use procs::{PATIENCE, free_port};
use ward_testkit::Browser;

/// What a finished `ward` run printed.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "success={}\n--- stdout\n{}\n--- stderr\n{}",
            self.success, self.stdout, self.stderr
        )
    }
}

/// Runs `ward <args>` in `dir` without any inherited `WARD_*` variable.
async fn ward_cli(args: &[&str], dir: &Path) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ward"));
    command.args(args).current_dir(dir).kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("WARD_") {
            command.env_remove(name);
        }
    }
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("ward finished in time")
        .expect("run ward");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A configuration for the CLI on the store and keys of a harness Ward in `dir`.
fn cli_config(dir: &Path, ward: &Ward) -> String {
    format!(
        r#"
[server]
public_url = "{origin}"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "embedded"
path = "{db}"

[crypto]
keys = ["{TEST_KEY}"]

[telemetry]
log_format = "json"
log_level = "info"
"#,
        origin = ward.origin,
        issuer = ward.idp.issuer(),
        db = dir.join("ward.db").display(),
    )
}

async fn embedded(dir: &Path) -> Ward {
    Ward::start_with(Options {
        store: "embedded",
        data_dir: Some(dir.to_owned()),
        keys: vec![TEST_KEY.into()],
        ..Default::default()
    })
    .await
}

/// Rows of `ward sessions list` (the table without its header).
fn rows(run: &Run) -> Vec<&str> {
    run.stdout
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .collect()
}

/// `ward sessions …` on one configuration file, run in `dir`.
struct SessionsCli<'a> {
    dir: &'a Path,
    config: &'a str,
}

impl SessionsCli<'_> {
    /// `ward sessions <args> --config <config>`.
    async fn run(&self, args: &[&str]) -> Run {
        let mut all = vec!["sessions"];
        all.extend_from_slice(args);
        all.extend(["--config", self.config]);
        ward_cli(&all, self.dir).await
    }
}

/// `--json` prints one object per session: an 8-character id and its times.
fn assert_one_json_line(json: &Run) {
    assert!(json.success, "{json}");
    let lines: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{json}");
    assert_eq!(lines[0]["id"].as_str().map(str::len), Some(8));
    assert!(lines[0]["expiresAt"].as_u64() > lines[0]["createdAt"].as_u64());
}

#[tokio::test]
async fn ward_sessions_lists_and_revokes_through_the_store_and_refuses_a_store_in_use() {
    let data = tempfile::tempdir().unwrap();
    let ward = embedded(data.path()).await;
    let (alice, me) = ward.logged_in("alice").await;
    let (bob, bob_me) = ward.logged_in("bob").await;
    let sub = me["sub"].as_str().expect("sub").to_owned();
    let bob_sub = bob_me["sub"].as_str().expect("sub").to_owned();
    let config = data.path().join("cli.toml");
    std::fs::write(&config, cli_config(data.path(), &ward)).unwrap();
    let cli = SessionsCli {
        dir: data.path(),
        config: config.to_str().expect("utf-8 path"),
    };

    let busy = cli.run(&["list", "--sub", &sub]).await;
    assert!(!busy.success, "{busy}");
    assert!(busy.stderr.contains("in use by a running Ward"), "{busy}");
    assert!(busy.stderr.contains("/admin/sessions"), "{busy}");
    ward.stop().await;

    let listed = cli.run(&["list", "--sub", &sub]).await;
    assert!(listed.success, "{listed}");
    assert!(listed.stdout.starts_with("ID "), "{listed}");
    assert_eq!(rows(&listed).len(), 1, "{listed}");
    let json = cli.run(&["list", "--sub", &sub, "--json"]).await;
    assert_one_json_line(&json);
    let alice_cookie = alice.cookie("localhost", "__Host-ward").expect("cookie");
    for run in [&listed, &json] {
        for secret in [
            alice_cookie.as_str(),
            me["csrfToken"].as_str().unwrap(),
            "alice@",
        ] {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{run}"
            );
        }
    }

    let revoked = cli.run(&["revoke", "--sub", &sub]).await;
    assert!(revoked.success, "{revoked}");
    assert_eq!(revoked.stdout.trim(), "revoked 1 session(s)", "{revoked}");
    assert!(
        revoked.stderr.contains("session_revoked"),
        "audit line: {revoked}"
    );
    assert!(
        !revoked.stderr.contains(sub.as_str()),
        "the sub only hashed: {revoked}"
    );
    let after = cli.run(&["list", "--sub", &sub]).await;
    assert!(after.success, "{after}");
    assert!(rows(&after).is_empty(), "{after}");
    let bob_listed = cli.run(&["list", "--sub", &bob_sub]).await;
    assert_eq!(rows(&bob_listed).len(), 1, "{bob_listed}");

    let restarted = embedded(data.path()).await;
    assert_eq!(status_of(&alice, restarted.url("/bff/user")).await, 401);
    assert_eq!(status_of(&bob, restarted.url("/bff/user")).await, 200);
    restarted.stop().await;
}

#[tokio::test]
async fn ward_sessions_refuses_a_memory_store_and_points_at_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ward.toml"),
        format!(
            r#"
[oidc]
issuer = "http://127.0.0.1:9"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "memory"

[crypto]
keys = ["{TEST_KEY}"]
"#
        ),
    )
    .unwrap();

    let run = ward_cli(&["sessions", "revoke", "--sub", "alice"], dir.path()).await;

    assert!(!run.success, "{run}");
    assert!(run.stderr.contains("admin API"), "{run}");
}

#[tokio::test]
async fn ward_serve_starts_the_admin_listener_from_its_configuration_and_stops_it_on_sigterm() {
    let (port, admin_port) = (free_port(), free_port());
    let origin = format!("http://localhost:{port}");
    let idp = ward_testkit::Idp::start(ward_testkit::IdpOptions::new(origin.clone()))
        .await
        .expect("start the IdP");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ward.toml"),
        serve_config(port, admin_port, &origin, idp.issuer()),
    )
    .unwrap();
    let child = spawn_serve(dir.path());
    let admin = format!("http://127.0.0.1:{admin_port}");
    let http = reqwest::Client::new();
    wait_until_healthy(&http, &admin).await;
    let ready = http.get(format!("{admin}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    let browser = Browser::new().unwrap();
    let sub = log_in(&browser, &origin, "alice").await;

    let busy = ward_cli(&["sessions", "list", "--sub", &sub], dir.path()).await;
    assert!(!busy.success, "{busy}");
    assert!(
        busy.stderr
            .contains(&format!("http://127.0.0.1:{admin_port}/admin/sessions")),
        "points at this Ward's admin API: {busy}"
    );
    let revoked = http
        .delete(format!("{admin}/admin/sessions"))
        .query(&[("sub", &sub)])
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status().as_u16(), 200);
    assert_eq!(
        revoked.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({ "revoked": 1 })
    );
    let after = browser.get(format!("{origin}/bff/user")).await.unwrap();
    assert_eq!(after.status, 401);

    let output = terminate(child).await;
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{:?}\n{logs}", output.status);
    assert!(logs.contains("\"admin_listening\""), "{logs}");
    assert!(logs.contains("\"session_revoked\""), "{logs}");
    assert!(logs.contains("\"stopped\""), "{logs}");
    assert!(
        http.get(format!("{admin}/healthz")).send().await.is_err(),
        "the admin listener is closed"
    );
}

/// `ward.toml` of a served Ward on `port` with its admin listener on `admin_port`.
fn serve_config(port: u16, admin_port: u16, origin: &str, issuer: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "{origin}"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "embedded"
path = "data/ward.db"

[crypto]
keys = ["{TEST_KEY}"]

[admin]
listen = "127.0.0.1:{admin_port}"
token = "{ADMIN_TOKEN}"

[telemetry]
log_format = "json"
log_level = "info"
"#,
    )
}

/// `ward serve --config ward.toml` in `dir`, without inherited `WARD_*` variables, its output
/// piped.
fn spawn_serve(dir: &Path) -> tokio::process::Child {
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_ward"));
    serve
        .args(["serve", "--config", "ward.toml"])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("WARD_") {
            serve.env_remove(name);
        }
    }
    serve.spawn().expect("start ward serve")
}

/// Polls the admin listener's `/healthz` until it answers (`200`), at most [`PATIENCE`].
async fn wait_until_healthy(http: &reqwest::Client, admin: &str) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(up) = http.get(format!("{admin}/healthz")).send().await {
            assert_eq!(up.status().as_u16(), 200);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "admin listener never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs `user` in at the served Ward on `origin`; their `sub`.
async fn log_in(browser: &Browser, origin: &str, user: &str) -> String {
    let start = browser
        .get(format!("{origin}/bff/login?returnUrl=/"))
        .await
        .unwrap();
    let back = browser
        .login_at_idp(start.location().expect("to the IdP"), user)
        .await
        .unwrap();
    assert_eq!(browser.follow(&back).await.unwrap().status, 302);
    let me = browser.get(format!("{origin}/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    me.json().unwrap()["sub"].as_str().unwrap().to_owned()
}

/// SIGTERM, then everything the process printed once it exited.
async fn terminate(child: tokio::process::Child) -> std::process::Output {
    let pid = child.id().expect("ward is running").to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(sent.success());
    tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("ward exits after SIGTERM")
        .expect("ward output")
}
