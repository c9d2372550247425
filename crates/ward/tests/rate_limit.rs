//! Rate limits (SPEC §7, SECURITY-CASES RL-01, RL-02): a login flood from one address, the
//! per-session API budget, cookies naming no session, anonymous traffic, spoofed
//! `X-Forwarded-For`, a limit shared by two instances on one store, and a failing counter.

mod common;

use common::flaky::Outage;
use common::{Options, Ward};
use reqwest::Method;
use ward_testkit::{Browser, Reply};

fn with(extra_toml: &str) -> Options {
    Options {
        extra_toml: extra_toml.to_owned(),
        ..Default::default()
    }
}

async fn start_login(ward: &Ward, forwarded_for: Option<&str>) -> Reply {
    let browser = Browser::new().unwrap();
    let mut request = browser.request(Method::GET, ward.url("/bff/login?returnUrl=/"));
    if let Some(value) = forwarded_for {
        request = request.header("x-forwarded-for", value);
    }
    request.send().await.unwrap()
}

fn assert_rate_limited(reply: &Reply) -> u64 {
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["error"], "rate_limited");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    let retry_after: u64 = reply
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry_after >= 1);
    retry_after
}

#[tokio::test]
async fn a_login_flood_from_one_address_is_429_with_retry_after_until_the_window_slides() {
    // The defaults: 20 a minute, /bff/login and /bff/callback on one budget.
    let ward = Ward::start().await;
    for _ in 0..19 {
        assert_eq!(start_login(&ward, None).await.status, 302);
    }
    let callback = Browser::new()
        .unwrap()
        .get(ward.url("/bff/callback?state=forged&code=x"))
        .await
        .unwrap();
    assert_eq!(
        callback.status, 400,
        "the 20th request, a callback, still counts"
    );
    let refused = start_login(&ward, None).await;
    let retry_after = assert_rate_limited(&refused);
    assert!((60..=62).contains(&retry_after), "{retry_after}");
    let callback = Browser::new()
        .unwrap()
        .get(ward.url("/bff/callback?state=forged&code=x"))
        .await
        .unwrap();
    assert_rate_limited(&callback);

    ward.clock.advance(retry_after - 1);
    assert_eq!(
        start_login(&ward, None).await.status,
        429,
        "not a second early"
    );
    ward.clock.advance(1);
    assert_eq!(start_login(&ward, None).await.status, 302, "allowed again");
}

#[tokio::test]
async fn rotating_x_forwarded_for_from_an_untrusted_peer_does_not_evade_the_login_limit() {
    let ward = Ward::start_with(with("[rate_limit]\nlogin = { limit = 3, window = \"1m\" }")).await;
    for i in 0..3 {
        let spoofed = format!("198.51.100.{i}");
        assert_eq!(start_login(&ward, Some(&spoofed)).await.status, 302);
    }
    let refused = start_login(&ward, Some("198.51.100.200")).await;
    assert_rate_limited(&refused);
}

#[tokio::test]
async fn the_api_limit_counts_per_session_and_sessions_are_independent() {
    let ward = Ward::start_with(with("[rate_limit]\napi = { limit = 3, window = \"1m\" }")).await;
    let (alice, _) = ward.logged_in("alice").await;
    let (bob, _) = ward.logged_in("bob").await;
    for _ in 0..3 {
        assert_eq!(alice.get(ward.url("/api/data")).await.unwrap().status, 200);
    }
    ward.upstream.clear();
    let refused = alice.get(ward.url("/api/data")).await.unwrap();
    assert_rate_limited(&refused);
    assert!(
        ward.upstream.requests().is_empty(),
        "a refused call never goes upstream"
    );
    for _ in 0..3 {
        assert_eq!(bob.get(ward.url("/api/data")).await.unwrap().status, 200);
    }
    assert_eq!(
        alice.get(ward.url("/bff/user")).await.unwrap().status,
        200,
        "the API budget is not the session"
    );
}

#[tokio::test]
async fn cookies_naming_no_session_are_429_past_the_invalid_session_limit() {
    let ward = Ward::start_with(with(
        "[rate_limit]\ninvalid_session = { limit = 4, window = \"1m\" }",
    ))
    .await;
    let cookie = format!("{}=guessed-{}", ward.cookie_name(), "A".repeat(40));
    let guess = |path: &'static str| {
        let cookie = cookie.clone();
        let url = ward.url(path);
        async move {
            Browser::new()
                .unwrap()
                .request(Method::GET, url)
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap()
        }
    };
    for _ in 0..2 {
        assert_eq!(guess("/bff/user").await.status, 401);
        assert_eq!(guess("/api/data").await.status, 401);
    }
    assert_rate_limited(&guess("/bff/user").await);
    assert_rate_limited(&guess("/api/data").await);
    let (alice, _) = ward.logged_in("alice").await;
    assert_eq!(
        alice.get(ward.url("/api/data")).await.unwrap().status,
        200,
        "a live session is not an invalid one"
    );
}

#[tokio::test]
async fn anonymous_route_requests_are_limited_per_address_whatever_cookie_they_carry() {
    let ward = Ward::start_with(with(
        "[rate_limit]\nanonymous = { limit = 3, window = \"1m\" }",
    ))
    .await;
    let browser = Browser::new().unwrap();
    for _ in 0..2 {
        assert_eq!(
            browser.get(ward.url("/public/a")).await.unwrap().status,
            200
        );
    }
    // A cookie that the route never loads does not make the request a session's.
    let with_cookie = browser
        .request(Method::GET, ward.url("/public/a"))
        .header("cookie", &format!("{}=anything", ward.cookie_name()))
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status, 200);
    assert_rate_limited(&browser.get(ward.url("/public/a")).await.unwrap());
}

async fn two_instances_share_one_login_limit(store: &'static str) {
    let ward = Ward::start_with(Options {
        store,
        extra_toml: "[rate_limit]\nlogin = { limit = 4, window = \"1m\" }\nbackend = \"store\""
            .to_owned(),
        ..Default::default()
    })
    .await;
    let peer = ward.peer().await;
    let login_at = |origin: String| async move {
        Browser::new()
            .unwrap()
            .get(format!("{origin}/bff/login?returnUrl=/"))
            .await
            .unwrap()
    };
    for _ in 0..2 {
        assert_eq!(login_at(ward.origin.clone()).await.status, 302);
        assert_eq!(login_at(peer.origin.clone()).await.status, 302);
    }
    let retry_after = assert_rate_limited(&login_at(peer.origin.clone()).await);
    assert_rate_limited(&login_at(ward.origin.clone()).await);
    ward.clock.advance(retry_after);
    assert_eq!(login_at(peer.origin.clone()).await.status, 302);
}

#[tokio::test]
async fn two_instances_on_one_redis_share_one_login_limit() {
    two_instances_share_one_login_limit("redis").await;
}

#[tokio::test]
async fn two_instances_on_one_postgres_share_one_login_limit() {
    two_instances_share_one_login_limit("postgres").await;
}

#[tokio::test]
async fn two_local_instances_count_on_their_own() {
    // The documented contrast: `backend = "local"` is a limit per instance.
    let ward = Ward::start_with(Options {
        store: "redis",
        extra_toml: "[rate_limit]\nlogin = { limit = 2, window = \"1m\" }".to_owned(),
        ..Default::default()
    })
    .await;
    let peer = ward.peer().await;
    for origin in [&ward.origin, &ward.origin, &peer.origin, &peer.origin] {
        let url = format!("{origin}/bff/login?returnUrl=/");
        assert_eq!(Browser::new().unwrap().get(url).await.unwrap().status, 302);
    }
}

#[tokio::test]
async fn a_failing_counter_refuses_logins_and_lets_other_traffic_through() {
    let outage = Outage::default();
    let ward = Ward::start_with(Options {
        outage: Some(outage.clone()),
        extra_toml: "[rate_limit]\nanonymous = { limit = 1, window = \"1m\" }\nbackend = \"store\""
            .to_owned(),
        ..Default::default()
    })
    .await;
    outage.begin();
    let login = start_login(&ward, None).await;
    assert_eq!(login.status, 503, "login fails closed");
    assert_eq!(login.json().unwrap()["error"], "store_unavailable");
    let browser = Browser::new().unwrap();
    for _ in 0..3 {
        let public = browser.get(ward.url("/public/a")).await.unwrap();
        assert_eq!(
            public.status, 200,
            "anonymous traffic fails open, unlimited"
        );
    }
    outage.end();
    assert_eq!(start_login(&ward, None).await.status, 302);
    // Counting resumes with the store; what passed during the outage was not counted.
    assert_eq!(
        browser.get(ward.url("/public/a")).await.unwrap().status,
        200
    );
    assert_rate_limited(&browser.get(ward.url("/public/a")).await.unwrap());
}
