//! Real faults under the real binary (SPEC §2, §6): a Redis server that really stops and comes
//! back, and a Ward killed with SIGKILL in the middle of a burst of logins on its embedded store.
//!
//! A PostgreSQL outage is not simulated here: the machine's one PostgreSQL server is shared by
//! every test run, and stopping it would break them.

mod common;
#[path = "support/procs.rs"]
mod procs;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use procs::{PATIENCE, WardProcess, free_port, login_across, login_from, unique_prefix};
use redis_server::RedisServer;
use ward_testkit::{Browser, EchoUpstream, Idp, IdpOptions, Reply};

/// The admin token of these tests (test-only).
const ADMIN_TOKEN: &str = "faults-admin-token-0123456789abcdef";

/// The IdP, the echo upstream and a `ward serve` configuration for `port`, in a directory of
/// its own: everything a Ward process needs but its store.
struct Stack {
    port: u16,
    config: PathBuf,
    dir: tempfile::TempDir,
    upstream: EchoUpstream,
    _idp: Idp,
}

impl Stack {
    /// Starts the IdP and the upstream and writes the configuration, with `extra` (the store
    /// and the like) appended.
    async fn start(port: u16, extra: &str) -> Self {
        let idp = Idp::start(IdpOptions::new(format!("http://localhost:{port}")))
            .await
            .expect("start the IdP");
        let upstream = EchoUpstream::start().await.expect("start the upstream");
        let dir = tempfile::tempdir().expect("temp dir");
        let config = write_config(dir.path(), port, &idp, &upstream, extra);
        Self {
            port,
            config,
            dir,
            upstream,
            _idp: idp,
        }
    }

    /// `ward serve` on this configuration, once it answers.
    async fn serve(&self) -> WardProcess {
        WardProcess::start(self.dir.path(), &self.config, self.port).await
    }
}

/// Writes a configuration for `ward serve` on `port` and returns its path.
fn write_config(dir: &Path, port: u16, idp: &Idp, upstream: &EchoUpstream, extra: &str) -> PathBuf {
    let path = dir.join("ward.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"
trusted_proxy_hops = 1

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[crypto]
keys = ["{key}"]

[telemetry]
log_format = "json"
log_level = "info"

[[routes]]
prefix = "/api"
upstream = "{api}"
token = "user"

{extra}
"#,
            issuer = idp.issuer(),
            api = upstream.url(),
            key = common::TEST_KEY,
        ),
    )
    .expect("write the configuration");
    path
}

/// Asserts `reply` is the store-unavailable answer and gives nothing of the failure away.
fn assert_store_unavailable(what: &str, reply: &Reply, redis_port: u16) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.text());
    let body = reply.json().unwrap_or_else(|e| panic!("{what}: {e:#}"));
    assert_eq!(body["error"], "store_unavailable", "{what}: {body}");
    assert!(reply.header("retry-after").is_some(), "{what}: Retry-After");
    let text = reply.text().to_lowercase();
    for internal in [
        "redis",
        "refused",
        "os error",
        "127.0.0.1",
        &redis_port.to_string(),
    ] {
        assert!(
            !text.contains(internal),
            "{what} leaks {internal:?}: {text}"
        );
    }
}

#[tokio::test]
async fn a_redis_outage_is_503_and_the_same_cookie_works_again_once_redis_is_back() {
    let redis_dir = tempfile::tempdir().expect("temp dir");
    let redis_port = free_port();
    let redis = RedisServer::start(redis_port, redis_dir.path()).await;
    let (port, admin_port) = (free_port(), free_port());
    let stack = Stack::start(port, &redis_store_and_admin(redis_port, admin_port)).await;
    let ward = stack.serve().await;
    let readyz = Readyz::new(admin_port);
    assert_eq!(readyz.get().await.status().as_u16(), 200);

    let browser = Browser::new().expect("browser");
    let csrf = log_in(&browser, &ward, "alice").await;

    let redis_dir_path = redis.shut_down().await;
    stack.upstream.clear();
    assert_a_session_is_needed_everywhere_and_unavailable(
        &ward,
        &browser,
        &csrf,
        &stack.upstream,
        redis_port,
    )
    .await;
    let unready = readyz.get().await;
    assert_eq!(unready.status().as_u16(), 503);
    let checks: serde_json::Value = unready.json().await.expect("readyz JSON");
    assert_eq!(checks["checks"]["store"], "down", "{checks}");

    // Same port, same data directory; Ward is not restarted.
    let _redis = RedisServer::start(redis_port, &redis_dir_path).await;
    let back = user_once_the_store_answers(&browser, &ward).await;
    assert_eq!(
        back.status,
        200,
        "the same cookie works again: {}\n{}",
        back.text(),
        ward.output.text()
    );
    let back = back.json().expect("JSON");
    assert_eq!(back["sub"], "alice");
    assert_eq!(back["csrfToken"], csrf.as_str());
    let api = browser.get(ward.url("/api/things")).await.expect("GET");
    assert_eq!(api.status, 200, "{}", api.text());
    assert_eq!(readyz.get().await.status().as_u16(), 200);
}

/// The Redis store at `redis_port` under a prefix of this run's own, and the admin listener.
fn redis_store_and_admin(redis_port: u16, admin_port: u16) -> String {
    format!(
        r#"
[store]
kind = "redis"
url = "redis://127.0.0.1:{redis_port}"
key_prefix = "{prefix}"

[admin]
listen = "127.0.0.1:{admin_port}"
token = "{ADMIN_TOKEN}"
"#,
        prefix = unique_prefix(':'),
    )
}

/// The admin listener's `/readyz`.
struct Readyz {
    client: reqwest::Client,
    url: String,
}

impl Readyz {
    fn new(admin_port: u16) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!("http://127.0.0.1:{admin_port}/readyz"),
        }
    }

    async fn get(&self) -> reqwest::Response {
        self.client
            .get(&self.url)
            .send()
            .await
            .expect("GET /readyz")
    }
}

/// Logs `user` in on `ward`; returns the session's CSRF token.
async fn log_in(browser: &Browser, ward: &WardProcess, user: &str) -> String {
    let callback = login_across(browser, &ward.origin, &ward.origin, user)
        .await
        .expect("log in");
    assert_eq!(callback.status, 302, "{}", callback.text());
    let me = browser.get(ward.url("/bff/user")).await.expect("GET");
    assert_eq!(me.status, 200, "{}", me.text());
    me.json().expect("JSON")["csrfToken"]
        .as_str()
        .expect("csrfToken")
        .to_owned()
}

/// With the store down: the user, the API, a new login and logout all answer 503, nothing is
/// forwarded, and the session cookie is kept.
async fn assert_a_session_is_needed_everywhere_and_unavailable(
    ward: &WardProcess,
    browser: &Browser,
    csrf: &str,
    upstream: &EchoUpstream,
    redis_port: u16,
) {
    let user = browser.get(ward.url("/bff/user")).await.expect("GET");
    assert_store_unavailable("/bff/user", &user, redis_port);
    let api = browser.get(ward.url("/api/things")).await.expect("GET");
    assert_store_unavailable("/api/things", &api, redis_port);
    assert!(
        upstream.requests().is_empty(),
        "nothing forwarded without the session"
    );
    let login = Browser::new()
        .expect("browser")
        .get(ward.url("/bff/login"))
        .await
        .expect("GET");
    assert_store_unavailable("/bff/login", &login, redis_port);
    let logout = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .expect("POST");
    assert_store_unavailable("/bff/logout", &logout, redis_port);
    assert!(
        logout.set_cookie("__Host-ward").is_none(),
        "the cookie is kept"
    );
}

/// `GET /bff/user` again until it is no longer 503 (or 30 s have passed).
async fn user_once_the_store_answers(browser: &Browser, ward: &WardProcess) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = browser.get(ward.url("/bff/user")).await.expect("GET");
        if reply.status != 503 || Instant::now() > deadline {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many logins the burst tries, at most how many at once, and after how many
/// acknowledged ones Ward is killed.
const BURST: usize = 40;
const CONCURRENCY: usize = 8;
const KILL_AFTER: usize = BURST / 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_login_survives_a_sigkill_during_a_burst_on_the_embedded_store() {
    let stack = Stack::start(
        free_port(),
        "[store]\nkind = \"embedded\"\npath = \"data/ward.db\"\n",
    )
    .await;
    let mut first = stack.serve().await;

    let mut burst = LoginBurst::start(&first.origin);
    burst.wait_for(KILL_AFTER, &first).await;
    burst.killed.store(true, Ordering::SeqCst);
    first.kill_hard().await;
    let acknowledged = burst.finish(&first).await;
    eprintln!(
        "{} of {BURST} logins acknowledged when ward was killed",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= KILL_AFTER && acknowledged.len() < BURST,
        "killed mid-burst: {} of {BURST} acknowledged",
        acknowledged.len()
    );
    drop(first);

    let restarted = stack.serve().await;
    for (user, browser) in &acknowledged {
        let me = browser.get(restarted.url("/bff/user")).await.expect("GET");
        assert_eq!(
            me.status,
            200,
            "{user}'s acknowledged session is lost: {}",
            me.text()
        );
        assert_eq!(me.json().expect("JSON")["sub"], user.as_str());
    }
    let after = Browser::new().expect("browser");
    let callback = login_across(&after, &restarted.origin, &restarted.origin, "after")
        .await
        .expect("log in after the restart");
    assert_eq!(callback.status, 302, "the store takes writes again");
    assert_a_clean_json_log(&restarted.output.text());
}

/// A user's name and the browser that holds the session it was acknowledged.
type Acknowledged = Arc<Mutex<Vec<(String, Browser)>>>;

/// [`BURST`] logins, [`CONCURRENCY`] at a time, each its own browser and client address; one
/// that got its 302 and session cookie is acknowledged.
struct LoginBurst {
    acknowledged: Acknowledged,
    acked: tokio::sync::mpsc::UnboundedReceiver<()>,
    killed: Arc<AtomicBool>,
    tasks: tokio::task::JoinSet<Result<(), String>>,
}

impl LoginBurst {
    fn start(origin: &str) -> Self {
        let acknowledged: Acknowledged = Arc::default();
        let (acked_tx, acked) = tokio::sync::mpsc::unbounded_channel::<()>();
        let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let killed = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..BURST {
            let (origin, acknowledged, acked_tx, permits, killed) = (
                origin.to_owned(),
                acknowledged.clone(),
                acked_tx.clone(),
                permits.clone(),
                killed.clone(),
            );
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore");
                one_login(i, &origin, &acknowledged, &acked_tx, &killed).await
            });
        }
        Self {
            acknowledged,
            acked,
            killed,
            tasks,
        }
    }

    /// Waits until `count` logins are acknowledged.
    async fn wait_for(&mut self, count: usize, ward: &WardProcess) {
        for n in 0..count {
            let acked = tokio::time::timeout(PATIENCE, self.acked.recv())
                .await
                .unwrap_or_else(|_| panic!("only {n} logins acknowledged\n{}", ward.output.text()));
            assert!(acked.is_some(), "the burst ended after {n} logins");
        }
    }

    /// Waits for every login; none may have failed but by the kill. The acknowledged ones.
    async fn finish(mut self, ward: &WardProcess) -> Vec<(String, Browser)> {
        let mut failures = Vec::new();
        while let Some(joined) = self.tasks.join_next().await {
            if let Err(failure) = joined.expect("a login task panicked") {
                failures.push(failure);
            }
        }
        assert!(failures.is_empty(), "{failures:#?}\n{}", ward.output.text());
        std::mem::take(&mut *self.acknowledged.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Login `i` of the burst, as `user<i>` from `10.0.0.<i + 1>`.
async fn one_login(
    i: usize,
    origin: &str,
    acknowledged: &Acknowledged,
    acked_tx: &tokio::sync::mpsc::UnboundedSender<()>,
    killed: &AtomicBool,
) -> Result<(), String> {
    let user = format!("user{i}");
    let browser = Browser::new().expect("browser");
    let ip = format!("10.0.0.{}", i + 1);
    match login_from(&browser, origin, origin, &user, Some(&ip)).await {
        Ok(reply) if reply.status == 302 && reply.set_cookie("__Host-ward").is_some() => {
            acknowledged
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((user, browser));
            let _ = acked_tx.send(());
            Ok(())
        }
        Ok(reply) => Err(format!(
            "{user}: the callback answered {}: {}",
            reply.status,
            reply.text()
        )),
        // Cut off by the kill: not acknowledged, and that is all it means.
        Err(_) if killed.load(Ordering::SeqCst) => Ok(()),
        Err(err) => Err(format!("{user} failed before the kill: {err:#}")),
    }
}

/// The restart logged JSON lines with levels, and no trouble with the killed store's file.
fn assert_a_clean_json_log(log: &str) {
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "listening" && l["level"] == "INFO"),
        "the restart logged JSON lines with levels:\n{log}"
    );
    let troubles: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["level"] == "ERROR" || l["level"] == "WARN" || l["event"] == "store_error")
        .collect();
    assert!(
        troubles.is_empty(),
        "the restart on the killed store's file logged trouble: {troubles:#?}"
    );
}
