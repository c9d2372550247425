//! Shared by the Redis test files: the machine's Redis, unique key prefixes with cleanup, and
//! throw-away `redis-server` processes (single or a 3-master cluster) on free loopback ports.

#![allow(dead_code)] // Each test file uses a part.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ward_store::ManualClock;
use ward_store::conformance::Guarded;
use ward_store_redis::RedisStore;

/// The Redis the conformance suite runs against (`WARD_TEST_REDIS_URL`, default the local one).
pub fn redis_url() -> String {
    std::env::var("WARD_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// `url` without its user information, for panic messages.
fn address_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, hosts)| hosts);
            format!("{scheme}://{rest}")
        }
        None => "<not a URL>".to_owned(),
    }
}

/// A key prefix no other test (or test process) uses.
pub fn unique_prefix() -> String {
    format!(
        "wardtest:{}:{:016x}:",
        std::process::id(),
        rand::random::<u64>()
    )
}

/// Connects a store to `url` under `prefix`; a test never skips silently, so an unreachable
/// Redis fails it loudly, naming the address.
pub async fn connect(url: &str, prefix: &str, clock: Arc<ManualClock>) -> RedisStore {
    match RedisStore::connect(url, prefix, clock).await {
        Ok(store) => store,
        Err(error) => panic!(
            "Redis is unreachable at {} ({}). Start it (redis-server --port 6379 --bind \
             127.0.0.1) or point WARD_TEST_REDIS_URL at one.",
            address_of(url),
            chain(&error)
        ),
    }
}

/// An error and its causes, one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}

/// Deletes every key under a prefix when dropped (also when the test panicked).
pub struct Cleanup {
    pub url: String,
    pub prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Best effort on a separate, blocking connection: the test's runtime may be gone.
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection() else {
            return;
        };
        for key in keys_under(&mut conn, &self.prefix) {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(key).query(&mut conn);
        }
    }
}

/// Every key under `prefix` (SCAN, never KEYS). The prefix is made of `wardtest:`, digits and
/// hex, so it needs no glob escaping.
pub fn keys_under(conn: &mut redis::Connection, prefix: &str) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(conn)
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// A store on the machine's Redis under a fresh prefix, deleted again after the test.
pub async fn standalone_store(clock: Arc<ManualClock>) -> Guarded<RedisStore> {
    let (url, prefix) = (redis_url(), unique_prefix());
    let store = connect(&url, &prefix, clock).await;
    Guarded::new(store, Cleanup { url, prefix })
}

/// Polls `ready` every 20 ms until it holds, failing after `within`.
pub fn wait_until(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `redis-server` child process, killed when dropped.
pub struct Server {
    pub port: u16,
    child: Child,
}

impl Server {
    /// Starts `redis-server` on a free loopback port with its files in `dir`; `cluster` enables
    /// cluster mode (whose bus port, +10000, is checked free too). Returns once it answers PING.
    pub fn start(dir: &Path, cluster: bool) -> Self {
        Self::start_with(dir, cluster, &[])
    }

    /// [`Server::start`] with extra `redis-server` arguments (`["--requirepass", "…"]`).
    /// Readiness is a TCP connect plus any reply to PING (an auth error counts).
    pub fn start_with(dir: &Path, cluster: bool, extra: &[&str]) -> Self {
        Self::launch(dir, free_port(cluster), cluster, extra)
    }

    /// A single server on `port` again (one a dropped [`Server`] had), with files in `dir`.
    pub fn start_on(dir: &Path, port: u16) -> Self {
        Self::launch(dir, port, false, &[])
    }

    fn launch(dir: &Path, port: u16, cluster: bool, extra: &[&str]) -> Self {
        let dir = dir.join(port.to_string());
        std::fs::create_dir_all(&dir).expect("server dir");
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if cluster {
            command.args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ]);
        }
        let child = command
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let server = Self { port, child };
        wait_until(
            "redis-server to answer PING",
            Duration::from_secs(10),
            || server.ping(),
        );
        server
    }

    /// [`Server::start_with`] from async code (on a blocking thread: it waits for PING).
    pub async fn spawn(dir: &Path, extra: &[&str]) -> Self {
        let (dir, extra) = (
            dir.to_owned(),
            extra.iter().map(|&a| a.to_owned()).collect::<Vec<_>>(),
        );
        tokio::task::spawn_blocking(move || {
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            Self::start_with(&dir, false, &extra)
        })
        .await
        .expect("server")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection()
    }

    fn ping(&self) -> bool {
        match self
            .connection()
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
        {
            Ok(_) => true,
            Err(e) => e.code().is_some(), // the server answered, if only to refuse
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 now (and, for a cluster node, its bus port too). Another process
/// could take it before the server binds; then the server fails to answer and the test says so.
fn free_port(cluster: bool) -> u16 {
    for _ in 0..100 {
        // Below 55535 so that the cluster bus port (+10000) exists.
        let port = 20_000 + (rand::random::<u16>() % 35_000);
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && (!cluster || free(port + 10_000)) {
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// A 3-master Redis Cluster of child processes, stopped when dropped.
pub struct Cluster {
    pub nodes: Vec<Server>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let nodes: Vec<Server> = (0..3).map(|_| Server::start(dir.path(), true)).collect();
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-cli must be installed");
        assert!(status.success(), "redis-cli --cluster create failed");
        for node in &nodes {
            wait_until("cluster_state:ok", Duration::from_secs(30), || {
                node.connection()
                    .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            });
        }
        Self { nodes, _dir: dir }
    }

    /// `redis+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        format!("redis+cluster://{}", seeds.join(","))
    }
}
