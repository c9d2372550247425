//! The admin listener (SPEC §7): health, readiness and session administration behind the
//! admin token, on its own socket; and `ward sessions list|revoke` on the store alone.

mod common;

use std::path::Path;
use std::time::Duration;

use common::flaky::Outage;
use common::{Options, TEST_KEY, Ward};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use ward::config::AdminConfig;
use ward::secret::SecretString;
use ward_testkit::Browser;

/// The admin token of these tests (test-only).
const ADMIN_TOKEN: &str = "admin-test-token-0123456789abcdef";
/// How long one `ward` command may run.
const PATIENCE: Duration = Duration::from_secs(60);

/// The admin listener of a running Ward, on a loopback port of its own.
struct Admin {
    base: String,
    http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl Admin {
    async fn start(ward: &Ward) -> Admin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let base = format!("http://{}", listener.local_addr().expect("admin address"));
        let config = AdminConfig {
            listen: listener.local_addr().expect("admin address"),
            token: SecretString::new(ADMIN_TOKEN),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(ward::server::run_admin(
            listener,
            ward.state.clone(),
            config,
            async {
                let _ = stopped.await;
            },
        ));
        Admin {
            base,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("admin GET")
    }

    async fn sessions(&self, method: reqwest::Method, sub: &str, token: Option<&str>) -> Answer {
        let mut request = self
            .http
            .request(method, self.url("/admin/sessions"))
            .query(&[("sub", sub)]);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::of(request.send().await.expect("admin request")).await
    }
}

/// A finished admin response.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    async fn of(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("admin body"),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

async fn status_of(browser: &Browser, url: String) -> u16 {
    browser.get(url).await.expect("GET").status.as_u16()
}

#[tokio::test]
async fn the_admin_api_lists_and_revokes_one_subjects_sessions_behind_the_token() {
    let ward = Ward::start().await;
    let admin = Admin::start(&ward).await;
    let (alice_1, me) = ward.logged_in("alice").await;
    let (alice_2, _) = ward.logged_in("alice").await;
    let (bob, _) = ward.logged_in("bob").await;
    let sub = me["sub"].as_str().expect("sub").to_owned();
    assert_eq!(status_of(&alice_1, ward.url("/api/who")).await, 200);
    let bearer = ward
        .upstream
        .last()
        .and_then(|r| r.header("authorization").map(str::to_owned))
        .expect("the upstream saw alice's access token");
    let access_token = bearer.trim_start_matches("Bearer ").to_owned();

    for token in [None, Some("wrong-token"), Some(&ADMIN_TOKEN[1..])] {
        let refused = admin.sessions(reqwest::Method::GET, &sub, token).await;
        assert_eq!(refused.status, 401, "{token:?}: {}", refused.body);
        assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
        assert_eq!(refused.header("cache-control"), Some("no-store"));
        assert_eq!(refused.json()["error"], "unauthenticated");
    }
    let basic = Answer::of(
        admin
            .http
            .get(admin.url("/admin/sessions?sub=alice"))
            .basic_auth("admin", Some(ADMIN_TOKEN))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(basic.status, 401, "only a bearer token is accepted");
    let no_sub = Answer::of(
        admin
            .http
            .get(admin.url("/admin/sessions"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(no_sub.status, 400);
    assert_eq!(no_sub.json()["error"], "bad_request");

    let listed = admin
        .sessions(reqwest::Method::GET, &sub, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.header("cache-control"), Some("no-store"));
    let entries = listed.json();
    let entries = entries.as_array().expect("a JSON array");
    assert_eq!(entries.len(), 2, "{}", listed.body);
    let now = ward.clock_now();
    for entry in entries {
        let fields: Vec<&str> = entry
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, ["createdAt", "expiresAt", "id", "lastSeen"]);
        assert_eq!(entry["id"].as_str().expect("id").len(), 8);
        let created = entry["createdAt"].as_u64().expect("createdAt");
        let last_seen = entry["lastSeen"].as_u64().expect("lastSeen");
        let expires = entry["expiresAt"].as_u64().expect("expiresAt");
        assert!(created <= last_seen && last_seen <= now, "{entry}");
        assert!(expires > now && expires <= created + 8 * 3600, "{entry}");
    }
    assert_ne!(entries[0]["id"], entries[1]["id"]);
    let mut secrets = vec![sub.clone(), access_token, "alice@example.test".to_owned()];
    for browser in [&alice_1, &alice_2] {
        secrets.push(browser.cookie("localhost", "__Host-ward").expect("cookie"));
    }
    secrets.push(me["csrfToken"].as_str().expect("csrf").to_owned());
    for secret in &secrets {
        assert!(!listed.body.contains(secret.as_str()), "leaks {secret:?}");
    }

    let revoked = admin
        .sessions(reqwest::Method::DELETE, &sub, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.json(), serde_json::json!({ "revoked": 2 }));
    assert_eq!(revoked.header("cache-control"), Some("no-store"));

    assert_eq!(status_of(&alice_1, ward.url("/bff/user")).await, 401);
    assert_eq!(status_of(&alice_2, ward.url("/bff/user")).await, 401);
    assert_eq!(status_of(&alice_1, ward.url("/api/who")).await, 401);
    assert_eq!(status_of(&bob, ward.url("/bff/user")).await, 200);
    let again = admin
        .sessions(reqwest::Method::GET, &sub, Some(ADMIN_TOKEN))
        .await;
    assert_eq!(again.json(), serde_json::json!([]));
    let unauthenticated_delete = admin.sessions(reqwest::Method::DELETE, "bob", None).await;
    assert_eq!(unauthenticated_delete.status, 401);
    assert_eq!(status_of(&bob, ward.url("/bff/user")).await, 200);
}

#[tokio::test]
async fn the_cookie_store_has_no_sessions_to_administer_and_says_so() {
    let ward = Ward::start_with(Options {
        store: "cookie",
        ..Default::default()
    })
    .await;
    let admin = Admin::start(&ward).await;
    ward.logged_in("alice").await;
    for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
        let answer = admin
            .sessions(method.clone(), "alice", Some(ADMIN_TOKEN))
            .await;
        assert_eq!(answer.status, 404, "{method}: {}", answer.body);
        assert_eq!(answer.json()["error"], "not_found");
    }
    let refused = admin.sessions(reqwest::Method::GET, "alice", None).await;
    assert_eq!(refused.status, 401, "the token is checked first");
}

#[tokio::test]
async fn the_admin_endpoints_are_not_served_on_the_public_listener() {
    let ward = Ward::start().await;
    let (_browser, me) = ward.logged_in("alice").await;
    let sub = me["sub"].as_str().expect("sub");
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/admin/sessions"] {
        let response = http
            .delete(ward.url(path))
            .query(&[("sub", sub)])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_ne!(response.status().as_u16(), 200, "{path}");
        let listed = http
            .get(ward.url(path))
            .query(&[("sub", sub)])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.status().as_u16(), 404, "{path}");
    }
}

#[tokio::test]
async fn readiness_names_the_idp_when_it_stops_answering() {
    let mut ward = Ward::start().await;
    let admin = Admin::start(&ward).await;
    let ready = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.json()["checks"],
        serde_json::json!({ "store": "up", "idp": "up" })
    );

    ward.idp.stop().await.expect("stop the IdP");
    // A probe's answer is reused for a few seconds of Ward's clock; after that the IdP is asked.
    ward.clock.advance(5);
    let unready = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(unready.status, 503, "{}", unready.body);
    assert_eq!(
        unready.json(),
        serde_json::json!({
            "status": "unavailable",
            "checks": { "store": "up", "idp": "down" }
        })
    );
    assert_eq!(unready.header("cache-control"), Some("no-store"));
    assert_eq!(Answer::of(admin.get("/healthz").await).await.status, 200);
}

#[tokio::test]
async fn health_is_the_process_and_readiness_follows_the_store() {
    let outage = Outage::default();
    let ward = Ward::start_with(Options {
        outage: Some(outage.clone()),
        ..Default::default()
    })
    .await;
    let admin = Admin::start(&ward).await;

    let health = Answer::of(admin.get("/healthz").await).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({ "status": "ok" }));
    assert_eq!(health.header("cache-control"), Some("no-store"));
    let ready = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["status"], "ok");

    outage.begin();
    let unready = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(unready.status, 503);
    assert_eq!(
        unready.json(),
        serde_json::json!({
            "status": "unavailable",
            "checks": { "store": "down", "idp": "up" }
        })
    );
    assert_eq!(unready.header("cache-control"), Some("no-store"));
    let listing = admin
        .sessions(reqwest::Method::GET, "alice", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(listing.status, 503);
    assert_eq!(listing.json()["error"], "store_unavailable");
    assert!(!listing.body.contains("injected"), "no internals");
    let revoking = admin
        .sessions(reqwest::Method::DELETE, "alice", Some(ADMIN_TOKEN))
        .await;
    assert_eq!(revoking.status, 503);
    assert_eq!(
        Answer::of(admin.get("/healthz").await).await.status,
        200,
        "the process is still up"
    );

    outage.end();
    let back = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(back.status, 200, "{}", back.body);
    let unknown = Answer::of(admin.get("/metricz").await).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "not_found");
}

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
    let config = config.to_str().expect("utf-8 path");

    let busy = ward_cli(
        &["sessions", "list", "--sub", &sub, "--config", config],
        data.path(),
    )
    .await;
    assert!(!busy.success, "{busy}");
    assert!(busy.stderr.contains("in use by a running Ward"), "{busy}");
    assert!(busy.stderr.contains("/admin/sessions"), "{busy}");
    ward.stop().await;

    let listed = ward_cli(
        &["sessions", "list", "--sub", &sub, "--config", config],
        data.path(),
    )
    .await;
    assert!(listed.success, "{listed}");
    assert!(listed.stdout.starts_with("ID "), "{listed}");
    assert_eq!(rows(&listed).len(), 1, "{listed}");
    let json = ward_cli(
        &[
            "sessions", "list", "--sub", &sub, "--json", "--config", config,
        ],
        data.path(),
    )
    .await;
    assert!(json.success, "{json}");
    let lines: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{json}");
    assert_eq!(lines[0]["id"].as_str().map(str::len), Some(8));
    assert!(lines[0]["expiresAt"].as_u64() > lines[0]["createdAt"].as_u64());
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

    let revoked = ward_cli(
        &["sessions", "revoke", "--sub", &sub, "--config", config],
        data.path(),
    )
    .await;
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
    let after = ward_cli(
        &["sessions", "list", "--sub", &sub, "--config", config],
        data.path(),
    )
    .await;
    assert!(after.success, "{after}");
    assert!(rows(&after).is_empty(), "{after}");
    let bob_listed = ward_cli(
        &["sessions", "list", "--sub", &bob_sub, "--config", config],
        data.path(),
    )
    .await;
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

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("bound address").port()
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
            issuer = idp.issuer(),
        ),
    )
    .unwrap();
    let mut serve = tokio::process::Command::new(env!("CARGO_BIN_EXE_ward"));
    serve
        .args(["serve", "--config", "ward.toml"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (name, _) in std::env::vars() {
        if name.starts_with("WARD_") {
            serve.env_remove(name);
        }
    }
    let child = serve.spawn().expect("start ward serve");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let http = reqwest::Client::new();
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
    let ready = http.get(format!("{admin}/readyz")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    let browser = Browser::new().unwrap();
    let start = browser
        .get(format!("{origin}/bff/login?returnUrl=/"))
        .await
        .unwrap();
    let back = browser
        .login_at_idp(start.location().expect("to the IdP"), "alice")
        .await
        .unwrap();
    assert_eq!(browser.follow(&back).await.unwrap().status, 302);
    let me = browser.get(format!("{origin}/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    let sub = me.json().unwrap()["sub"].as_str().unwrap().to_owned();

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

    let pid = child.id().expect("ward is running").to_string();
    let sent = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(sent.success());
    let output = tokio::time::timeout(PATIENCE, child.wait_with_output())
        .await
        .expect("ward exits after SIGTERM")
        .expect("ward output");
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
