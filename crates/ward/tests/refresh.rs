//! Access-token refresh before forwarding (SPEC §5; SECURITY-CASES RF-01..RF-04, T-12, F-7)
//! against the real IdP, which rotates the refresh token on every use.
//!
//! The IdP issues 120-second access tokens; Ward's refresh skew is the default 60 s. Ward's
//! clock is advanced to bring a token into the skew (61 s: still valid) or past its expiry
//! (121 s); the IdP, on real time, refreshes either.

mod common;

use std::sync::Arc;

use common::{Options, Ward};
use ward::session::refresh::BACKOFF;
use ward_testkit::{Browser, CLIENT_ID, CLIENT_SECRET, IdpStats};

const AT_TTL: u64 = 120;
/// Into the 60-second skew (the token expires within it), token still valid.
const INTO_SKEW: u64 = AT_TTL - 60;
/// Past the token's expiry.
const PAST_EXPIRY: u64 = AT_TTL + 1;

async fn start() -> Ward {
    Ward::start_with(Options {
        idp: |idp| idp.at_ttl = Some(AT_TTL),
        ..Options::default()
    })
    .await
}

async fn stats(ward: &Ward) -> IdpStats {
    ward.idp.stats().await.expect("IdP stats")
}

/// `GET /api/x` on `origin`: its status and the bearer token the upstream received for it
/// (each call uses its own path, so concurrent calls are told apart).
async fn call(ward: &Ward, browser: &Browser, origin: &str, n: usize) -> (u16, Option<String>) {
    let path = format!("/api/refresh-{n}");
    let reply = browser
        .get(format!("{origin}{path}"))
        .await
        .expect("GET /api");
    let bearer = ward
        .upstream
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path() == path)
        .and_then(|r| r.header("authorization").map(str::to_owned));
    (reply.status.as_u16(), bearer)
}

/// One call that must succeed; the bearer it carried.
async fn bearer(ward: &Ward, browser: &Browser, n: usize) -> String {
    let (status, bearer) = call(ward, browser, &ward.origin, n).await;
    assert_eq!(status, 200);
    bearer.expect("the upstream received a bearer token")
}

/// `count` concurrent calls through clones of `browser` (one jar, one session) on each of
/// `origins`; their statuses and bearers.
async fn burst(
    ward: &Arc<Ward>,
    browser: &Browser,
    origins: &[String],
    count: usize,
) -> Vec<(u16, Option<String>)> {
    let mut tasks = Vec::new();
    for (i, origin) in origins.iter().enumerate() {
        for j in 0..count {
            let (ward, browser, origin) = (ward.clone(), browser.clone(), origin.clone());
            let n = 1000 + i * count + j;
            tasks.push(tokio::spawn(async move {
                call(&ward, &browser, &origin, n).await
            }));
        }
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("request task"));
    }
    results
}

async fn user_status(ward: &Ward, browser: &Browser) -> u16 {
    browser
        .get(ward.url("/bff/user"))
        .await
        .expect("GET /bff/user")
        .status
        .as_u16()
}

#[tokio::test]
async fn a_token_within_the_skew_is_refreshed_once_before_forwarding() {
    let ward = start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let before = bearer(&ward, &browser, 1).await;
    let at_login = stats(&ward).await;

    ward.clock.advance(INTO_SKEW - 1);
    assert_eq!(bearer(&ward, &browser, 2).await, before, "outside the skew");
    assert_eq!(stats(&ward).await, at_login);

    ward.clock.advance(1);
    let refreshed = bearer(&ward, &browser, 3).await;
    assert_ne!(refreshed, before, "the upstream sees the new access token");
    let after = stats(&ward).await;
    assert_eq!(after.token_requests, at_login.token_requests + 1);

    assert_eq!(bearer(&ward, &browser, 4).await, refreshed);
    assert_eq!(stats(&ward).await, after, "no second refresh");
    assert_eq!(user_status(&ward, &browser).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_at_expiry_refresh_once_and_rotation_keeps_the_session() {
    let ward = Arc::new(start().await);
    let (browser, _) = ward.logged_in("alice").await;
    let before = bearer(&ward, &browser, 1).await;
    let at_login = stats(&ward).await;

    ward.clock.advance(PAST_EXPIRY);
    let results = burst(&ward, &browser, std::slice::from_ref(&ward.origin), 50).await;
    let first = results[0].1.clone().expect("bearer");
    assert_ne!(first, before);
    for (status, sent) in &results {
        assert_eq!(*status, 200);
        assert_eq!(
            sent.as_deref(),
            Some(first.as_str()),
            "all use the one new token"
        );
    }
    assert_eq!(
        stats(&ward).await.token_requests,
        at_login.token_requests + 1
    );

    // The session lives on, and the rotated refresh token was kept: a later refresh works
    // (the old one would be `invalid_grant` now).
    assert_eq!(bearer(&ward, &browser, 2).await, first);
    ward.clock.advance(PAST_EXPIRY);
    let again = bearer(&ward, &browser, 3).await;
    assert_ne!(again, first);
    assert_eq!(
        stats(&ward).await.token_requests,
        at_login.token_requests + 2
    );
    assert_eq!(user_status(&ward, &browser).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_a_store_refresh_once() {
    two_instances_refresh_once(start().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_refresh_once() {
    two_instances_refresh_once(start_on("redis").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_postgres_refresh_once() {
    two_instances_refresh_once(start_on("postgres").await).await;
}

async fn start_on(store: &'static str) -> Ward {
    Ward::start_with(Options {
        idp: |idp| idp.at_ttl = Some(AT_TTL),
        store,
        ..Options::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_with_a_read_cache_refresh_once() {
    // With `[store] cache_ttl`, each instance may hold a copy of the session read before the
    // other refreshed it: refreshes still decide on the record as Redis holds it now.
    let ward = Ward::start_with(Options {
        idp: |idp| idp.at_ttl = Some(AT_TTL),
        store: "redis",
        env: [("WARD_STORE__CACHE_TTL".to_owned(), "10s".to_owned())].into(),
        ..Options::default()
    })
    .await;
    two_instances_refresh_once(ward).await;
}

async fn two_instances_refresh_once(ward: Ward) {
    let ward = Arc::new(ward);
    let peer = ward.peer().await;
    let (browser, _) = ward.logged_in("alice").await;
    let before = bearer(&ward, &browser, 1).await;
    let (status, on_peer) = call(&ward, &browser, &peer.origin, 2).await;
    assert_eq!((status, on_peer.as_deref()), (200, Some(before.as_str())));
    let at_login = stats(&ward).await;

    ward.clock.advance(PAST_EXPIRY);
    let origins = [ward.origin.clone(), peer.origin.clone()];
    let results = burst(&ward, &browser, &origins, 25).await;
    let first = results[0].1.clone().expect("bearer");
    assert_ne!(first, before);
    for (status, sent) in &results {
        assert_eq!(*status, 200);
        assert_eq!(sent.as_deref(), Some(first.as_str()));
    }
    assert_eq!(
        stats(&ward).await.token_requests,
        at_login.token_requests + 1
    );

    // Either instance refreshes next time with the rotated refresh token.
    ward.clock.advance(PAST_EXPIRY);
    let (status, again) = call(&ward, &browser, &peer.origin, 3).await;
    assert_eq!(status, 200);
    assert_ne!(again.as_deref(), Some(first.as_str()));
    assert_eq!(bearer(&ward, &browser, 4).await, again.unwrap());
    assert_eq!(
        stats(&ward).await.token_requests,
        at_login.token_requests + 2
    );
}

#[tokio::test]
async fn a_revoked_refresh_token_ends_the_session_with_one_token_request() {
    let ward = start().await;
    let (browser, _) = ward.logged_in("alice").await;
    // White-box: the refresh token, revoked at the IdP behind Ward's back (RFC 7009).
    let cookies = browser.cookie_header_for(&ward.url("/api/x"));
    let session = ward
        .state
        .sessions
        .load(cookies.as_deref())
        .await
        .unwrap()
        .expect("session");
    let refresh_token = session.data.refresh_token.clone().expect("refresh token");
    let revoked = reqwest::Client::new()
        .post(ward.idp.url("/token/revocation"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("token", refresh_token.expose()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .expect("revocation");
    assert!(revoked.status().is_success());
    let at_revocation = stats(&ward).await;

    ward.clock.advance(INTO_SKEW);
    let reply = browser.get(ward.url("/api/x")).await.unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json().unwrap()["error"], "unauthenticated");
    let cleared = reply
        .set_cookie(&ward.cookie_name())
        .expect("the session cookie is expired");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(
        stats(&ward).await.token_requests,
        at_revocation.token_requests + 1,
        "no retry"
    );
    assert!(
        ward.state
            .sessions
            .load(cookies.as_deref())
            .await
            .unwrap()
            .is_none(),
        "record deleted"
    );
    assert_eq!(user_status(&ward, &browser).await, 401);
}

#[tokio::test]
async fn a_refreshed_id_token_from_another_issuer_ends_the_session() {
    let ward = start().await;
    let (browser, _) = ward.logged_in("alice").await;
    ward.idp.set_id_token_mode("wrong-iss").await.unwrap();
    ward.clock.advance(INTO_SKEW);
    let reply = browser.get(ward.url("/api/x")).await.unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(user_status(&ward, &browser).await, 401);
}

#[tokio::test]
async fn a_refreshed_id_token_without_nonce_is_accepted() {
    let ward = start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let before = bearer(&ward, &browser, 1).await;
    ward.idp.set_id_token_mode("no-nonce").await.unwrap();
    ward.clock.advance(INTO_SKEW);
    assert_ne!(bearer(&ward, &browser, 2).await, before);
    assert_eq!(user_status(&ward, &browser).await, 200);
}

#[tokio::test]
async fn a_transient_failure_forwards_the_still_valid_token_and_backs_off() {
    let ward = start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let before = bearer(&ward, &browser, 1).await;
    ward.idp.fail_token_requests(500).await.unwrap();
    let at_failure = stats(&ward).await;

    ward.clock.advance(INTO_SKEW);
    assert_eq!(
        bearer(&ward, &browser, 2).await,
        before,
        "old token, no logout"
    );
    assert_eq!(
        stats(&ward).await.token_requests,
        at_failure.token_requests + 1
    );
    // Within the back-off the IdP is not asked again.
    assert_eq!(bearer(&ward, &browser, 3).await, before);
    assert_eq!(
        stats(&ward).await.token_requests,
        at_failure.token_requests + 1
    );
    assert_eq!(user_status(&ward, &browser).await, 200);

    ward.idp.fail_token_requests(0).await.unwrap();
    ward.clock.advance(BACKOFF);
    assert_ne!(bearer(&ward, &browser, 4).await, before);
}

#[tokio::test]
async fn a_transient_failure_with_an_expired_token_is_a_502_without_logout() {
    let ward = start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let before = bearer(&ward, &browser, 1).await;
    // An OAuth `server_error` answer is transient too (not `invalid_grant`).
    ward.idp.fail_token_requests(400).await.unwrap();
    ward.clock.advance(PAST_EXPIRY);
    let forwarded = ward.upstream.requests().len();
    let reply = browser.get(ward.url("/api/x")).await.unwrap();
    assert_eq!(reply.status, 502);
    assert_eq!(reply.json().unwrap()["error"], "upstream_unavailable");
    assert_eq!(
        reply.header("retry-after"),
        Some(BACKOFF.to_string().as_str())
    );
    assert_eq!(
        ward.upstream.requests().len(),
        forwarded,
        "an expired token is never forwarded"
    );
    assert_eq!(user_status(&ward, &browser).await, 200, "no logout");

    ward.idp.fail_token_requests(0).await.unwrap();
    ward.clock.advance(BACKOFF);
    assert_ne!(bearer(&ward, &browser, 2).await, before);
}
