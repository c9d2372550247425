//! The real `ward serve` process (SPEC §7, §8): configured from a file plus a `WARD_*`
//! override, it serves a whole session, prints no secret on stdout or stderr, and on SIGTERM
//! drains, logs `shutdown` and exits 0.

#[path = "support/secrets.rs"]
mod secrets;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use secrets::{WalkedLogin, id_token_hint, last_bearer, leaked};
use serde_json::Value;
use ward_testkit::{Browser, EchoUpstream, Idp, IdpOptions};

/// The key ring entry of this test (test-only key).
const KEY: &str = "bin1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
/// How long Ward may take to start answering, or to exit after SIGTERM.
const PATIENCE: Duration = Duration::from_secs(60);

/// A child's output stream, drained on a thread into a shared buffer.
struct Drain {
    buffer: Arc<Mutex<Vec<u8>>>,
    thread: JoinHandle<()>,
}

impl Drain {
    fn start(mut stream: impl Read + Send + 'static) -> Self {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&buffer);
        let thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stream.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Self { buffer, thread }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .buffer
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        )
        .into_owned()
    }

    /// Everything, once the stream has closed.
    fn finish(self) -> String {
        let Self { buffer, thread } = self;
        thread.join().expect("output reader");
        let bytes = buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The `ward serve` child; killed on drop if the test ends early.
struct Served {
    child: Child,
    stdout: Option<Drain>,
    stderr: Option<Drain>,
}

impl Served {
    fn start(config: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ward"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("WARD_TELEMETRY__LOG_LEVEL", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ward serve");
        let stdout = child.stdout.take().map(Drain::start);
        let stderr = child.stderr.take().map(Drain::start);
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// Output so far, for failure messages while it runs.
    fn output_so_far(&self) -> String {
        let part = |d: &Option<Drain>| d.as_ref().map(Drain::text).unwrap_or_default();
        format!(
            "stdout:\n{}\nstderr:\n{}",
            part(&self.stdout),
            part(&self.stderr)
        )
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the status, stdout, stderr.
    fn terminate(mut self) -> (ExitStatus, String, String) {
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for ward") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "ward did not exit after SIGTERM\n{}",
                self.output_so_far()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let stdout = self.stdout.take().map(Drain::finish).unwrap_or_default();
        let stderr = self.stderr.take().map(Drain::finish).unwrap_or_default();
        (status, stdout, stderr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    listener.local_addr().expect("bound address").port()
}

/// Polls `GET /bff/user` until Ward answers (401: up, no session), or gives up.
async fn wait_until_serving(served: &Served, origin: &str) {
    let browser = Browser::new().unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(reply) = browser.get(format!("{origin}/bff/user")).await {
            assert_eq!(reply.status, 401, "{}", reply.text());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ward never answered\n{}",
            served.output_so_far()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

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

    let served = Served::start(&config);
    wait_until_serving(&served, &origin).await;

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
