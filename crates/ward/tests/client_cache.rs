//! `[store] client_cache` on Redis: two instances of Ward on one real Redis, each with its own
//! tracking connection and cache. Unlike `cache_ttl`, nothing waits for a time to live: a
//! logout or refresh on one instance reaches the other by Redis's `invalidate` push, and the
//! other instance refuses the session on the very next request.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Options, Ward};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_instance_is_seen_by_the_other_on_the_next_request() {
    let ward = Ward::start_with(Options {
        store: "redis",
        env: [("WARD_STORE__CLIENT_CACHE".to_owned(), "true".to_owned())].into(),
        ..Options::default()
    })
    .await;
    assert!(ward.state.config.store.client_cache);
    let peer_instance = ward.peer().await;
    let peer = peer_instance.origin.clone();

    // Alice's session, read (and cached) by both instances, several times each.
    let (alice, me) = ward.logged_in("alice").await;
    let csrf = me["csrfToken"].as_str().expect("csrfToken").to_owned();
    for origin in [&ward.origin, &peer, &ward.origin, &peer] {
        let reply = alice.get(format!("{origin}/api/a")).await.expect("GET");
        assert_eq!(reply.status, 200, "{origin}");
    }

    // The logout answers clear the cookie in each browser; a copy replayed afterwards (another
    // tab, a stolen cookie) is what must be refused, so the test keeps one and puts it back.
    let name = ward.cookie_name();

    // Bob logs out through the instance that cached his session: gone there at once.
    let (bob, me) = ward.logged_in("bob").await;
    let bob_csrf = me["csrfToken"].as_str().expect("csrfToken").to_owned();
    assert_eq!(bob.get(ward.url("/api/b")).await.expect("GET").status, 200);
    let bob_cookie = bob.cookie("localhost", &name).expect("bob's cookie");
    let out = bob
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", &bob_csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status, 200);
    bob.set_cookie("localhost", &name, &bob_cookie);
    assert_eq!(bob.get(ward.url("/api/b")).await.expect("GET").status, 401);

    // Alice logs out through the peer: the first instance refuses her next request, with no
    // time to live to wait for (the clock does not move).
    let alice_cookie = alice.cookie("localhost", &name).expect("alice's cookie");
    let out = alice
        .post(format!("{peer}/bff/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status, 200);
    alice.set_cookie("localhost", &name, &alice_cookie);
    let after = alice.get(ward.url("/api/a")).await.expect("GET");
    assert_eq!(
        after.status, 401,
        "another instance's logout, on the very next request"
    );
    ward.stop().await;
}

/// A `redis-server` of this test alone (its command counts are Ward's), killed on drop.
struct PrivateRedis {
    child: Child,
    url: String,
}

impl PrivateRedis {
    fn start(dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        }
    }

    /// Calls of `command` so far (`INFO commandstats`).
    fn calls(&self, command: &str) -> u64 {
        let mut conn = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection())
            .expect("stats connection");
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .expect("INFO");
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("a count"))
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The saving, counted by Redis: `REQUESTS` proxied requests of one session read its record
/// (`HMGET`) once per request without the cache, and once in all with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cache_saves_the_record_read_of_every_request_but_the_first() {
    const REQUESTS: u64 = 50;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut reads = Vec::new();
    for cached in [false, true] {
        let redis = PrivateRedis::start(dir.path());
        let ward = Ward::start_with(Options {
            store: "redis",
            env: [
                ("WARD_STORE__URL".to_owned(), redis.url.clone()),
                ("WARD_STORE__CLIENT_CACHE".to_owned(), cached.to_string()),
            ]
            .into(),
            ..Options::default()
        })
        .await;
        let (alice, _) = ward.logged_in("alice").await;
        let before = redis.calls("hmget");
        for _ in 0..REQUESTS {
            let reply = alice.get(ward.url("/api/a")).await.expect("GET");
            assert_eq!(reply.status, 200);
        }
        let during = redis.calls("hmget") - before;
        println!("client_cache = {cached}: {during} record reads (HMGET) for {REQUESTS} requests");
        reads.push(during);
        ward.stop().await;
    }
    assert_eq!(
        reads[0], REQUESTS,
        "without the cache: one read per request"
    );
    assert!(
        reads[1] <= 1,
        "with it: at most the first ({} reads)",
        reads[1]
    );
}
