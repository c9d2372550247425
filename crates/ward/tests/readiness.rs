//! `/readyz` follows the store (SPEC §7, issue 10): a store that goes away turns it `503`
//! naming the store within 30 s while `/healthz` stays `200`, and it is `200` again once the
//! store is back. The store is a `redis-server` of this test's own that really stops (the
//! machine's shared Redis and PostgreSQL must stay up for other tests); the IdP case is
//! `readiness_names_the_idp_when_it_stops_answering` in admin.rs.

#[path = "support/admin_api.rs"]
mod admin_api;
mod common;
#[path = "support/procs.rs"]
mod procs;
#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use admin_api::{Admin, Answer};
use common::{Options, Ward};
use procs::{PATIENCE, free_port, unique_prefix};
use redis_server::RedisServer;

/// How soon `/readyz` must report a store that went away (issue 10).
const WITHIN: Duration = Duration::from_secs(30);

#[tokio::test]
async fn readiness_names_the_store_within_30_s_of_it_going_away_and_health_stays_up() {
    let redis_dir = tempfile::tempdir().expect("temp dir");
    let redis = RedisServer::start(free_port(), redis_dir.path()).await;
    let port = redis.port;
    let ward = Ward::start_with(on_redis(port)).await;
    let admin = Admin::start(&ward).await;
    let ready = Answer::of(admin.get("/readyz").await).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(
        ready.json()["checks"],
        serde_json::json!({ "store": "up", "idp": "up" })
    );

    let data = redis.shut_down().await;
    let gone = Instant::now();
    let unready = first_answer(&admin, 503, gone + WITHIN).await;
    assert!(gone.elapsed() < WITHIN, "503 after {:?}", gone.elapsed());
    assert_eq!(
        unready.json(),
        serde_json::json!({
            "status": "unavailable",
            "checks": { "store": "down", "idp": "up" }
        })
    );
    assert_eq!(unready.header("cache-control"), Some("no-store"));
    for internal in ["redis", "refused", "127.0.0.1", &port.to_string()] {
        assert!(!unready.body.contains(internal), "leaks {internal:?}");
    }
    let health = Answer::of(admin.get("/healthz").await).await;
    assert_eq!(
        health.status, 200,
        "the process is still up: {}",
        health.body
    );

    // Same port, same data; Ward is not restarted.
    let _redis = RedisServer::start(port, &data).await;
    let back = first_answer(&admin, 200, Instant::now() + PATIENCE).await;
    assert_eq!(back.json()["checks"]["store"], "up", "{}", back.body);
}

/// Ward on the Redis at `port`, under a key prefix of its own.
fn on_redis(port: u16) -> Options {
    let env = BTreeMap::from([
        (
            "WARD_STORE__URL".to_owned(),
            format!("redis://127.0.0.1:{port}"),
        ),
        ("WARD_STORE__KEY_PREFIX".to_owned(), unique_prefix(':')),
    ]);
    Options {
        store: "redis",
        env,
        ..Default::default()
    }
}

/// Polls `/readyz` until it answers `status` (the store's coming and going is not an event
/// Ward can tell a test about); fails at `deadline`.
async fn first_answer(admin: &Admin, status: u16, deadline: Instant) -> Answer {
    loop {
        let answer = Answer::of(admin.get("/readyz").await).await;
        if answer.status == status {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {} ({}), not {status}",
            answer.status,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
