//! Measures the client cache's invalidation window on a real Redis: instance A (with
//! `client_cache`) holds a record in its cache, instance B (another Ward, without) logs it out
//! or refreshes it, and the time until A's entry is gone is taken from A's `Invalidated`
//! event. Also counts the Redis reads the cache saves.
//!
//! ```text
//! cargo run -p ward-store-redis --example invalidation_window -- [trials] [redis-url]
//! ```
//! (defaults: 1000 trials, `redis://127.0.0.1:6379`; keys under a fresh prefix, deleted after).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use ward_store::{Record, SessionStore, SystemClock};
use ward_store_redis::{CacheEvent, Options, RedisStore};

/// Record reads per session in the saving count (a page's worth of API calls).
const READS_PER_SESSION: u64 = 20;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let trials: usize = args
        .next()
        .map(|n| n.parse().expect("trials: a number"))
        .unwrap_or(1000);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("wardbench:{}:{:016x}:", std::process::id(), rand_suffix());
    let clock = Arc::new(SystemClock);

    let a = RedisStore::connect_with(
        &url,
        &prefix,
        clock.clone(),
        None,
        Options::default().client_cache(true),
    )
    .await
    .expect("instance A (client cache) connects");
    let b = RedisStore::connect(&url, &prefix, clock.clone())
        .await
        .expect("instance B connects");
    let mut events = a.client_cache_events().expect("events");

    let now = ward_store::Clock::now(&*clock);
    let record = |value: &[u8]| Record {
        value: value.to_vec(),
        expires_at: now + 3600,
        indexes: vec!["i:sub:bench".to_owned()],
        created_at: now,
        updated_at: now,
    };

    // A bare one-command write (DEL of the record's key) from a third connection: the window
    // from Redis executing a change to A's removal, without the store's other round trips.
    let mut raw = redis::Client::open(url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let mut logout = Vec::with_capacity(trials);
    let mut bare = Vec::with_capacity(trials);
    let mut refresh = Vec::with_capacity(trials);
    for trial in 0..trials {
        let key = format!("s:{trial:08x}");
        b.put(&key, record(b"sealed-v1")).await.expect("put");
        cache(&a, &key).await;
        refresh.push(
            timed(&mut events, async {
                b.replace(&key, record(b"sealed-v2"))
                    .await
                    .expect("replace")
            })
            .await,
        );
        assert_eq!(
            a.get(&key).await.expect("get").as_deref(),
            Some(&b"sealed-v2"[..])
        );
        cache(&a, &key).await;
        logout.push(timed(&mut events, async { b.delete(&key).await.expect("delete") }).await);
        assert_eq!(a.get(&key).await.expect("get"), None, "logout seen");
        b.put(&key, record(b"sealed-v3")).await.expect("put");
        cache(&a, &key).await;
        let del = redis::cmd("DEL").arg(format!("{prefix}r:{key}")).clone();
        let conn = &mut raw;
        bare.push(
            timed(&mut events, async move {
                del.query_async::<i64>(conn).await.expect("DEL") == 1
            })
            .await,
        );
        assert_eq!(a.get(&key).await.expect("get"), None, "DEL seen");
    }

    println!("client cache invalidation window, {trials} trials each, {url}");
    println!("(from B's call: start / return of B's write; to: A's entry removed)");
    report("logout (delete), from start", &logout, |t| t.from_start);
    report("logout (delete), from return", &logout, |t| t.from_return);
    report("refresh (replace), from start", &refresh, |t| t.from_start);
    report("refresh (replace), from return", &refresh, |t| {
        t.from_return
    });
    report("one DEL, from send", &bare, |t| t.from_start);
    report("one DEL, from reply", &bare, |t| t.from_return);
    let before = |all: &[Trial]| all.iter().filter(|t| t.before_return).count();
    println!(
        "removed before the call returned: logout {}/{trials}, refresh {}/{trials}, DEL {}/{trials}",
        before(&logout),
        before(&refresh),
        before(&bare)
    );

    // The saving: one session read READS_PER_SESSION times (one per proxied request).
    let stats = a.client_cache_stats().expect("stats");
    let key = "s:saving";
    b.put(key, record(b"sealed")).await.expect("put");
    for _ in 0..READS_PER_SESSION {
        a.get(key).await.expect("get");
    }
    let after = a.client_cache_stats().expect("stats");
    println!(
        "{READS_PER_SESSION} reads of one session: {} went to Redis, {} were served from the cache",
        after.misses - stats.misses,
        after.hits - stats.hits
    );
    println!("totals: {after:?}");

    // Clean up: every key under the prefix.
    let _ = b.delete(key).await;
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("cleanup connection");
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .unwrap_or_default();
    for key in keys {
        let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(key).query_async(&mut conn).await;
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Reads `key` through `a` until it is served from the cache.
async fn cache(a: &RedisStore, key: &str) {
    for _ in 0..10 {
        let before = a.client_cache_stats().expect("stats").hits;
        a.get(key).await.expect("get");
        if a.client_cache_stats().expect("stats").hits > before {
            return;
        }
    }
    panic!("the record never came from the cache");
}

struct Trial {
    from_start: Duration,
    from_return: Duration,
    before_return: bool,
}

/// Runs B's write and times A's `Invalidated` event against its start and its return.
async fn timed(
    events: &mut broadcast::Receiver<CacheEvent>,
    write: impl Future<Output = bool>,
) -> Trial {
    while events.try_recv().is_ok() {}
    let start = Instant::now();
    assert!(write.await, "the write found its record");
    let returned = Instant::now();
    let at = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Ok(CacheEvent::Invalidated { at, .. }) => return at,
                Ok(CacheEvent::Flushed { .. }) => panic!("the tracking connection was lost"),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("the cache stopped"),
            }
        }
    })
    .await
    .expect("an invalidation within 5 s");
    Trial {
        from_start: at.saturating_duration_since(start),
        from_return: at.saturating_duration_since(returned),
        before_return: at < returned,
    }
}

fn report(what: &str, trials: &[Trial], pick: impl Fn(&Trial) -> Duration) {
    let mut ms: Vec<f64> = trials.iter().map(|t| pick(t).as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what:32} p50 {:7.3} ms  p99 {:7.3} ms  max {:7.3} ms",
        at(0.50),
        at(0.99),
        ms[ms.len() - 1]
    );
}
