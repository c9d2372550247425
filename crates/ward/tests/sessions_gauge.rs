//! `ward_sessions_active` is the store's own count of live sessions (issue 10), on every
//! backend: sessions of every instance, a logout seen at once (after the count interval), an
//! expiry no instance observed seen too, and a second instance on the same store reporting
//! the same number (so dashboards take `max`, not `sum`). Time moves on Ward's injected clock.
//! Redis and PostgreSQL are the machine's; an unreachable one fails the test, never skips it.

#[path = "support/admin_api.rs"]
mod admin_api;
#[path = "support/backend/mod.rs"]
mod backend;
mod common;
#[path = "support/session_probe.rs"]
mod session_probe;

use std::sync::Arc;

use admin_api::Admin;
use backend::{Backend, Kind};
use common::{Options, TEST_KEY, Ward};
use ward::session::live::COUNT_INTERVAL;
use ward_store::Clock;

/// Instantiates `counts_live_sessions(kind)` as one `#[tokio::test]` per `name => kind`.
macro_rules! per_backend {
    ($($name:ident => $kind:expr),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                counts_live_sessions($kind).await;
            }
        )+
    };
}

per_backend!(
    sessions_active_memory => None,
    sessions_active_embedded => Some(Kind::Embedded),
    sessions_active_redis => Some(Kind::Redis),
    sessions_active_postgres => Some(Kind::Postgres),
);

/// The cookie store keeps sessions in browsers: the family is there, without a sample (a gap
/// rather than a made-up number).
#[tokio::test]
async fn the_cookie_store_has_no_count_to_show() {
    let ward = Ward::start_with(Options {
        store: "cookie",
        ..Default::default()
    })
    .await;
    let admin = Admin::start(&ward).await;
    ward.logged_in("alice").await;
    ward.clock.advance(COUNT_INTERVAL);
    assert_eq!(sessions_active(&admin).await, None);
}

async fn counts_live_sessions(kind: Option<Kind>) {
    let backend = match kind {
        Some(kind) => Some(Backend::new(kind).await),
        None => None,
    };
    let ward = match &backend {
        Some(backend) => backend.start(&[TEST_KEY]).await,
        None => Ward::start().await,
    };
    let admin = Admin::start(&ward).await;
    assert_eq!(sessions_active(&admin).await, Some(0), "no session yet");

    let (_alice, _) = ward.logged_in("alice").await;
    let (bob, bob_me) = ward.logged_in("bob").await;
    assert_eq!(
        sessions_active(&admin).await,
        Some(0),
        "counted at most once per interval"
    );
    ward.clock.advance(COUNT_INTERVAL);
    assert_eq!(sessions_active(&admin).await, Some(2));
    if matches!(kind, Some(Kind::Redis | Kind::Postgres)) {
        let other = second_instance(&ward).await;
        assert_eq!(
            other.sessions.live_count().await,
            Some(2),
            "an instance that made none sees the store's sessions"
        );
    }

    let logout = bob
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", bob_me["csrfToken"].as_str().expect("csrf"))
        .send()
        .await
        .expect("logout");
    assert_eq!(logout.status, 200);
    ward.clock.advance(COUNT_INTERVAL);
    assert_eq!(sessions_active(&admin).await, Some(1), "bob logged out");

    // Alice's session times out; no instance sees it happen, the store's count does.
    let session = &ward.state.config.session;
    let lifetime = session.idle_timeout.min(session.absolute_timeout);
    ward.clock.advance(lifetime.as_secs());
    assert_eq!(sessions_active(&admin).await, Some(0), "alice's expired");
}

/// Another Ward on `ward`'s configuration and store, with a connection of its own.
async fn second_instance(ward: &Ward) -> ward::state::SharedState {
    let clock: Arc<dyn Clock> = ward.clock.clone();
    let store = ward::server::open_store(&ward.state.config, clock.clone())
        .await
        .expect("a second connection to the store");
    ward::server::build_state_with_store(ward.state.config.clone(), clock, store)
        .await
        .expect("a second instance")
}

/// The `ward_sessions_active` sample of a `/metrics` scrape; `None` when it has none.
async fn sessions_active(admin: &Admin) -> Option<u64> {
    let scrape = admin.get("/metrics").await;
    assert_eq!(scrape.status().as_u16(), 200);
    let text = scrape.text().await.expect("scrape");
    assert!(
        text.contains("# TYPE ward_sessions_active gauge\n"),
        "the family is always exposed"
    );
    text.lines()
        .find_map(|line| line.strip_prefix("ward_sessions_active "))
        .map(|value| value.parse().expect("a count"))
}
