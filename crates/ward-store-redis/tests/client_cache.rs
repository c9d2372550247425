//! The opt-in client cache (`Options::client_cache`) against a real Redis: two stores sharing
//! one Redis stand for two Ward instances. Each change made by the other one must reach the
//! cache by Redis's `invalidate` push (waited for as an event, with a bounded timeout), a lost
//! tracking connection must empty it, and an outage must fail closed.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use ward_store::conformance::START;
use ward_store::{ManualClock, Record, SessionStore, StoreError};
use ward_store_redis::{CacheEvent, CacheStats, Options, RedisStore};

use support::{Cleanup, Server, chain, redis_url, unique_prefix};

/// How long an event may take before the test fails (it takes milliseconds).
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn record(value: &[u8]) -> Record {
    Record {
        value: value.to_vec(),
        expires_at: START + 600,
        indexes: vec!["i:sub:2c26b46b".to_owned()],
        created_at: START,
        updated_at: START,
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START))
}

async fn open(url: &str, prefix: &str, cached: bool) -> RedisStore {
    let options = Options::default().client_cache(cached);
    match RedisStore::connect_with(url, prefix, clock(), None, options).await {
        Ok(store) => store,
        Err(error) => panic!(
            "Redis is unreachable at {url} ({}). Start it (redis-server --port 6379 --bind \
             127.0.0.1) or point WARD_TEST_REDIS_URL at one.",
            chain(&error)
        ),
    }
}

/// Instance A (with the cache) and instance B (without), on the machine's Redis.
async fn instances() -> (RedisStore, RedisStore, Cleanup) {
    let (url, prefix) = (redis_url(), unique_prefix());
    let a = open(&url, &prefix, true).await;
    let b = open(&url, &prefix, false).await;
    (a, b, Cleanup { url, prefix })
}

fn stats(store: &RedisStore) -> CacheStats {
    store.client_cache_stats().expect("the client cache is on")
}

/// Waits for the first event that `wanted` accepts.
async fn wait_for(
    events: &mut broadcast::Receiver<CacheEvent>,
    what: &str,
    wanted: impl Fn(&CacheEvent) -> bool,
) -> CacheEvent {
    let found = tokio::time::timeout(EVENT_TIMEOUT, async {
        loop {
            match events.recv().await {
                Ok(event) if wanted(&event) => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("the cache stopped"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {what} within {EVENT_TIMEOUT:?}"))
}

fn invalidated(event: &CacheEvent) -> bool {
    matches!(event, CacheEvent::Invalidated { .. })
}

fn flushed(event: &CacheEvent) -> bool {
    matches!(event, CacheEvent::Flushed { .. })
}

/// Reads `key` through `a` twice: the second read is served from the cache.
async fn cache_on(a: &RedisStore, key: &str, value: &[u8]) {
    assert_eq!(a.get(key).await.expect("get").as_deref(), Some(value));
    let before = stats(a);
    assert_eq!(a.get(key).await.expect("get").as_deref(), Some(value));
    let after = stats(a);
    assert_eq!(
        after.hits,
        before.hits + 1,
        "the second read was served from the cache"
    );
    assert_eq!(after.misses, before.misses);
}

#[tokio::test]
async fn another_instances_update_and_delete_reach_the_cache_by_invalidation() {
    let (a, b, _cleanup) = instances().await;
    b.put("s:k", record(b"v1")).await.expect("put");
    cache_on(&a, "s:k", b"v1").await;

    // Instance B refreshes the session: A's copy goes, A reads the new record.
    let mut events = a.client_cache_events().expect("events");
    assert!(b.replace("s:k", record(b"v2")).await.expect("replace"));
    wait_for(&mut events, "invalidation after B's replace", invalidated).await;
    assert_eq!(
        a.get("s:k").await.expect("get").as_deref(),
        Some(&b"v2"[..])
    );
    cache_on(&a, "s:k", b"v2").await;

    // Instance B logs the session out: A no longer finds it.
    assert!(b.delete("s:k").await.expect("delete"));
    wait_for(&mut events, "invalidation after B's delete", invalidated).await;
    assert_eq!(a.get("s:k").await.expect("get"), None);
    let totals = stats(&a);
    assert!(totals.invalidations >= 2, "{totals:?}");
    assert_eq!(totals.flushes, 0, "no connection was lost: {totals:?}");
}

#[tokio::test]
async fn this_instances_own_writes_are_seen_at_once() {
    let (a, _b, _cleanup) = instances().await;
    a.put("s:k", record(b"v1")).await.expect("put");
    cache_on(&a, "s:k", b"v1").await;
    assert!(a.replace("s:k", record(b"v2")).await.expect("replace"));
    assert_eq!(
        a.get("s:k").await.expect("get").as_deref(),
        Some(&b"v2"[..])
    );
    assert!(
        a.replace_if("s:k", b"v2", record(b"v3"))
            .await
            .expect("replace_if")
    );
    assert_eq!(
        a.get("s:k").await.expect("get").as_deref(),
        Some(&b"v3"[..])
    );
    assert_eq!(
        a.take("s:k").await.expect("take").as_deref(),
        Some(&b"v3"[..])
    );
    assert_eq!(a.get("s:k").await.expect("get"), None);
}

#[tokio::test]
async fn a_current_read_and_an_expired_record_never_answer_from_the_cache() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let _cleanup = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let clock = clock();
    let a = RedisStore::connect_with(
        &url,
        &prefix,
        clock.clone(),
        None,
        Options::default().client_cache(true),
    )
    .await
    .expect("connect");
    a.put("s:k", record(b"v1")).await.expect("put");
    cache_on(&a, "s:k", b"v1").await;
    let hits = stats(&a).hits;
    assert_eq!(
        a.get_current("s:k").await.expect("get_current").as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(stats(&a).hits, hits, "get_current read Redis");
    clock.advance(600);
    assert_eq!(
        a.get("s:k").await.expect("get"),
        None,
        "expired by the clock"
    );
}

#[tokio::test]
async fn a_killed_tracking_connection_flushes_the_cache_and_tracking_comes_back() {
    let (a, b, cleanup) = instances().await;
    b.put("s:k", record(b"v1")).await.expect("put");
    cache_on(&a, "s:k", b"v1").await;
    let first = stats(&a).connection_id.expect("tracking connection id");

    let mut events = a.client_cache_events().expect("events");
    let mut admin = redis::Client::open(cleanup.url.as_str())
        .and_then(|c| c.get_connection())
        .expect("admin connection");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(first)
        .query(&mut admin)
        .expect("CLIENT KILL");
    assert_eq!(killed, 1);
    wait_for(&mut events, "a flush after the kill", flushed).await;

    // Whatever happened meanwhile, A reads Redis again: the entry was dropped.
    assert!(b.replace("s:k", record(b"v2")).await.expect("replace"));
    let misses = stats(&a).misses;
    assert_eq!(
        a.get("s:k").await.expect("get").as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(stats(&a).misses, misses + 1, "not served from the cache");

    // A new tracking connection comes up, and invalidations flow on it.
    if stats(&a).connection_id.is_none_or(|id| id == first) {
        wait_for(&mut events, "the reconnection", |e| {
            *e == CacheEvent::Connected
        })
        .await;
    }
    let second = stats(&a).connection_id.expect("new tracking connection");
    assert_ne!(second, first);
    cache_on(&a, "s:k", b"v2").await;
    assert!(b.delete("s:k").await.expect("delete"));
    wait_for(
        &mut events,
        "invalidation on the new connection",
        invalidated,
    )
    .await;
    assert_eq!(a.get("s:k").await.expect("get"), None);
}

/// Log lines of the current thread, for the no-secret check.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// On one thread, so the cache's tasks log into the capture too.
#[tokio::test(flavor = "current_thread")]
async fn an_outage_fails_closed_and_logs_no_record_bytes() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer({
            let captured = captured.clone();
            move || captured.clone()
        })
        .finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::spawn(dir.path(), &[]).await;
    let (url, prefix) = (server.url(), unique_prefix());
    let a = open(&url, &prefix, true).await;
    const KEY: &str = "s:9f86d081884c7d65";
    const VALUE: &[u8] = b"sealed-record-bytes-7f3a";
    a.put(KEY, record(VALUE)).await.expect("put");
    cache_on(&a, KEY, VALUE).await;

    let mut events = a.client_cache_events().expect("events");
    drop(server);
    wait_for(&mut events, "a flush when Redis went away", flushed).await;
    assert!(!stats(&a).connected);
    let hits = stats(&a).hits;
    match a.get(KEY).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable while Redis is down, got {other:?}"),
    }
    assert_eq!(stats(&a).hits, hits, "nothing served from the cache");

    let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).into_owned();
    assert!(
        logs.contains("tracking connection"),
        "the reconnection attempts were logged: {logs}"
    );
    for secret in [std::str::from_utf8(VALUE).expect("ascii"), KEY, "9f86d081"] {
        assert!(!logs.contains(secret), "{secret} logged: {logs}");
    }
    let debug = format!("{a:?}");
    assert!(
        !debug.contains(KEY) && debug.contains("client_cache: true"),
        "{debug}"
    );
}

#[tokio::test]
async fn a_cluster_url_is_refused_with_a_clear_error() {
    let error = RedisStore::connect_with(
        "redis+cluster://127.0.0.1:6379",
        "ward:",
        clock(),
        None,
        Options::default().client_cache(true),
    )
    .await
    .expect_err("refused");
    let text = chain(&error);
    assert!(
        text.contains("the client cache is not supported on a Redis Cluster"),
        "{text}"
    );
}

#[tokio::test]
async fn without_the_option_nothing_is_cached() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let _cleanup = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let store = open(&url, &prefix, false).await;
    assert!(store.client_cache_stats().is_none());
    assert!(store.client_cache_events().is_none());
}

/// A connection that stays open but answers nothing (here: Redis paused) delivers no
/// invalidation either: the heartbeat notices and the cache stops serving.
#[tokio::test]
async fn a_silent_tracking_connection_ends_the_lease_and_flushes_the_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::spawn(dir.path(), &[]).await;
    let a = open(&server.url(), &unique_prefix(), true).await;
    a.put("s:k", record(b"v1")).await.expect("put");
    cache_on(&a, "s:k", b"v1").await;

    let mut events = a.client_cache_events().expect("events");
    let mut admin = server.connection().expect("admin connection");
    let paused = std::time::Instant::now();
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "4000", "ALL"])
        .query(&mut admin)
        .expect("CLIENT PAUSE");
    let CacheEvent::Flushed { at } = wait_for(&mut events, "a flush", flushed).await else {
        unreachable!()
    };
    assert!(!stats(&a).connected);
    let after = at.duration_since(paused);
    assert!(
        after < Duration::from_secs(4),
        "the flush came {after:?} into the pause: from the heartbeat, within the lease"
    );
}

/// A server that refuses `CLIENT` (here renamed away; in the field Redis 5, or a proxy that
/// does not pass tracking on) fails the store's start, naming the tracking connection.
#[tokio::test]
async fn a_server_without_client_tracking_fails_the_start_clearly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::spawn(dir.path(), &["--rename-command", "CLIENT", ""]).await;
    let url = server.url();
    let plain = RedisStore::connect(&url, "ward:", clock()).await;
    assert!(plain.is_ok(), "the store itself needs no CLIENT command");
    let error = RedisStore::connect_with(
        &url,
        "ward:",
        clock(),
        None,
        Options::default().client_cache(true),
    )
    .await
    .expect_err("refused");
    let text = chain(&error);
    assert!(
        text.contains("the client cache's tracking connection (RESP3, CLIENT TRACKING ON) failed"),
        "{text}"
    );
}

/// Dropping the store closes its tracking connection (nothing keeps it alive in a cycle).
#[tokio::test]
async fn a_dropped_store_closes_its_tracking_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::spawn(dir.path(), &[]).await;
    let a = open(&server.url(), &unique_prefix(), true).await;
    let id = stats(&a).connection_id.expect("tracking connection id");
    let mut admin = server.connection().expect("admin connection");
    let listed = |admin: &mut redis::Connection| -> bool {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query(admin)
            .expect("CLIENT LIST");
        list.lines()
            .any(|line| line.starts_with(&format!("id={id} ")))
    };
    assert!(listed(&mut admin), "the tracking connection is open");
    drop(a);
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    while listed(&mut admin) {
        assert!(
            std::time::Instant::now() < deadline,
            "the tracking connection stayed open after the store was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
