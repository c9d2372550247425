//! `[store] cache_ttl` on Redis: two instances of Ward on one real Redis, each with its own
//! connection and read cache. An instance sees its own logout at once; another instance's
//! logout reaches it at the latest when the time to live has passed (on the injected clock:
//! the test advances it instead of waiting).

mod common;

use std::time::Duration;

use common::{Options, Ward};

const TTL: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_elsewhere_arrives_within_the_time_to_live_and_at_once_here() {
    let ward = Ward::start_with(Options {
        store: "redis",
        env: [(
            "WARD_STORE__CACHE_TTL".to_owned(),
            format!("{}ms", TTL.as_millis()),
        )]
        .into(),
        ..Options::default()
    })
    .await;
    assert_eq!(ward.state.config.store.cache_ttl, TTL);
    let peer_instance = ward.peer().await;
    let peer = peer_instance.origin.clone();

    // Alice's session, read (and cached) by both instances.
    let (alice, me) = ward.logged_in("alice").await;
    let csrf = me["csrfToken"].as_str().expect("csrfToken").to_owned();
    for origin in [&ward.origin, &peer] {
        let reply = alice.get(format!("{origin}/api/a")).await.expect("GET");
        assert_eq!(reply.status, 200, "{origin}");
    }
    // Bob's session, ended through the instance that cached it: gone there at once.
    let (bob, me) = ward.logged_in("bob").await;
    let bob_csrf = me["csrfToken"].as_str().expect("csrfToken").to_owned();
    assert_eq!(bob.get(ward.url("/api/b")).await.expect("GET").status, 200);
    let out = bob
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", &bob_csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status, 200);
    let after = bob.get(ward.url("/api/b")).await.expect("GET");
    assert_eq!(
        after.status, 401,
        "this instance's own logout is seen at once"
    );

    // Alice logs out through the peer; the first instance may answer from its cache until the
    // time to live has passed, and never after.
    let out = alice
        .post(format!("{peer}/bff/logout"))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status, 200);
    // Within the time to live the first instance may still answer from its cache; past it,
    // never (both instances read the same injected clock).
    ward.clock
        .advance_millis(u64::try_from(TTL.as_millis()).expect("small"));
    let after = alice.get(ward.url("/api/a")).await.expect("GET");
    assert_eq!(
        after.status, 401,
        "another instance's logout, after the time to live"
    );
    ward.stop().await;
}
