//! Route token modes against the real IdP (SPEC §5): `client` routes carry Ward's own
//! client-credentials token (cached per scope set, fetched once under concurrency, renewed
//! `refresh_skew` before expiry, IdP failures a bare 502); `user-optional` routes carry the
//! session's token when there is a session and go on anonymously otherwise, never 401.

mod common;

use std::collections::BTreeMap;

use common::flaky::Outage;
use common::{Options, Ward};
use futures_util::future::join_all;
use serde_json::Value;
use ward_testkit::{Browser, CLIENT_ID, CLIENT_SECRET, EchoUpstream, RecordedRequest, Reply};

/// A Ward whose `/svc` route (`token = "client"`, `scopes = ["api:read"]`) and `/opt` route
/// (`token = "user-optional"`) go to `svc`, an echo upstream of their own.
async fn start(svc: &EchoUpstream, mut options: Options) -> Ward {
    options.extra_toml.push_str(&format!(
        r#"
[[routes]]
prefix = "/svc"
upstream = "{url}"
token = "client"
scopes = ["api:read"]

[[routes]]
prefix = "/opt"
upstream = "{url}"
token = "user-optional"
"#,
        url = svc.url()
    ));
    Ward::start_with(options).await
}

async fn echo() -> EchoUpstream {
    EchoUpstream::start()
        .await
        .expect("start the echo upstream")
}

/// The single request `upstream` received since it was last cleared.
#[track_caller]
fn only_request(upstream: &EchoUpstream) -> RecordedRequest {
    let mut seen = upstream.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    upstream.clear();
    seen.remove(0)
}

fn bearer_of(seen: &RecordedRequest) -> String {
    let values: Vec<&str> = seen
        .headers
        .get_all("authorization")
        .iter()
        .map(|v| v.to_str().expect("visible ASCII"))
        .collect();
    assert_eq!(values.len(), 1, "exactly one Authorization");
    values[0]
        .strip_prefix("Bearer ")
        .expect("a Bearer credential")
        .to_owned()
}

#[track_caller]
fn assert_anonymous(seen: &RecordedRequest) {
    assert!(
        seen.header("authorization").is_none(),
        "forwarded without Authorization"
    );
    assert!(seen.header("cookie").is_none(), "no Ward cookie upstream");
}

#[track_caller]
fn assert_ward_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{code}: {}", reply.text());
    let body = reply.json().expect("JSON error body");
    assert_eq!(body["error"], code);
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

async fn token_requests(ward: &Ward) -> u64 {
    ward.idp.stats().await.expect("IdP stats").token_requests
}

/// The IdP's view of `token` (RFC 7662).
async fn introspect(ward: &Ward, token: &str) -> Value {
    reqwest::Client::new()
        .post(ward.idp.url("/token/introspection"))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[("token", token)])
        .send()
        .await
        .expect("introspection request")
        .json()
        .await
        .expect("introspection JSON")
}

/// The user's access token as a `user` route forwards it.
async fn users_token(ward: &Ward, browser: &Browser) -> String {
    let reply = browser.get(ward.url("/api/whoami")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    bearer_of(&only_request(&ward.upstream))
}

#[tokio::test]
async fn client_routes_carry_wards_own_token_not_the_users() {
    let svc = echo().await;
    let ward = start(&svc, Options::default()).await;
    let (browser, _) = ward.logged_in("alice").await;
    let user_token = users_token(&ward, &browser).await;

    let before = token_requests(&ward).await;
    let reply = browser.get(ward.url("/svc/items?x=1")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = only_request(&svc);
    assert_eq!(seen.path_and_query, "/svc/items?x=1");
    let client_token = bearer_of(&seen);
    assert!(client_token != user_token, "not the user's token");
    assert!(seen.header("cookie").is_none(), "no Ward cookie upstream");
    assert_eq!(token_requests(&ward).await - before, 1);

    let info = introspect(&ward, &client_token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], CLIENT_ID);
    assert_eq!(info["scope"], "api:read", "the route's scopes were sent");
    assert!(info.get("sub").is_none(), "a client token, no user: {info}");

    // The session cookie still demands the CSRF token on unsafe methods, before any token use.
    let refused = browser.post(ward.url("/svc/items")).send().await.unwrap();
    assert_ward_error(&refused, 403, "csrf_failed");
    assert!(svc.requests().is_empty(), "nothing forwarded without CSRF");

    // Without any session, and with a forged Authorization, the same cached token goes up.
    let anonymous = Browser::new().unwrap();
    let reply = anonymous
        .request(reqwest::Method::GET, ward.url("/svc/other"))
        .header("authorization", "Bearer forged")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(bearer_of(&only_request(&svc)) == client_token, "cached");
    assert_eq!(token_requests(&ward).await - before, 1, "no second fetch");
}

#[tokio::test]
async fn concurrent_client_requests_share_one_token_request() {
    let svc = echo().await;
    let ward = start(&svc, Options::default()).await;
    let browser = Browser::new().unwrap();
    let before = token_requests(&ward).await;

    let replies = join_all((0..20).map(|i| browser.get(ward.url(&format!("/svc/c/{i}"))))).await;
    for reply in &replies {
        let reply = reply.as_ref().expect("request sent");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        token_requests(&ward).await - before,
        1,
        "exactly one client_credentials request for 20 concurrent calls"
    );
    let seen = svc.requests();
    assert_eq!(seen.len(), 20);
    let first = bearer_of(&seen[0]);
    assert!(
        seen.iter().all(|r| bearer_of(r) == first),
        "one token for all"
    );
}

#[tokio::test]
async fn client_token_is_renewed_once_refresh_skew_before_it_expires() {
    let svc = echo().await;
    let ward = start(
        &svc,
        Options {
            // AT_TTL = 300 s at the IdP; renewal due at 300 − 100 = 200 s.
            env: BTreeMap::from([("WARD_OIDC__REFRESH_SKEW".to_owned(), "100s".to_owned())]),
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new().unwrap();
    let before = token_requests(&ward).await;
    assert_eq!(browser.get(ward.url("/svc/a")).await.unwrap().status, 200);
    let first = bearer_of(&only_request(&svc));

    ward.clock.advance(199);
    assert_eq!(browser.get(ward.url("/svc/b")).await.unwrap().status, 200);
    assert!(
        bearer_of(&only_request(&svc)) == first,
        "still before expiry − skew"
    );
    assert_eq!(token_requests(&ward).await - before, 1);

    ward.clock.advance(1);
    let replies = join_all((0..5).map(|i| browser.get(ward.url(&format!("/svc/r/{i}"))))).await;
    assert!(replies.iter().all(|r| r.as_ref().unwrap().status == 200));
    assert_eq!(
        token_requests(&ward).await - before,
        2,
        "renewed once, however many requests were waiting"
    );
    let renewed: Vec<String> = svc.requests().iter().map(bearer_of).collect();
    assert_eq!(renewed.len(), 5);
    assert!(renewed.iter().all(|t| *t == renewed[0]));
    assert!(renewed[0] != first, "a new token");
}

#[tokio::test]
async fn idp_failures_are_a_bare_502_and_recover() {
    let svc = echo().await;
    let ward = start(&svc, Options::default()).await;
    let browser = Browser::new().unwrap();

    for status in [500, 400] {
        ward.idp.fail_token_requests(status).await.unwrap();
        let reply = browser.get(ward.url("/svc/x")).await.unwrap();
        assert_ward_error(&reply, 502, "upstream_unavailable");
        let text = reply.text();
        for leak in ["server_error", "test hook", "forced", "token"] {
            assert!(!text.contains(leak), "IdP detail {leak:?} in {text}");
        }
        assert!(
            svc.requests().is_empty(),
            "nothing forwarded without a token"
        );
    }

    ward.idp.fail_token_requests(0).await.unwrap();
    let reply = browser.get(ward.url("/svc/x")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let token = bearer_of(&only_request(&svc));
    assert_eq!(introspect(&ward, &token).await["active"], true);
}

#[tokio::test]
async fn user_optional_forwards_anonymously_without_a_session() {
    let svc = echo().await;
    let ward = start(&svc, Options::default()).await;
    let browser = Browser::new().unwrap();

    let reply = browser.get(ward.url("/opt/feed")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_anonymous(&only_request(&svc));

    let forged = browser
        .request(reqwest::Method::GET, ward.url("/opt/feed"))
        .header("authorization", "Bearer forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status, 200);
    assert_anonymous(&only_request(&svc));

    let post = browser.post(ward.url("/opt/feed")).send().await.unwrap();
    assert_eq!(post.status, 200, "no session cookie: no CSRF token needed");
    assert_anonymous(&only_request(&svc));
}

#[tokio::test]
async fn user_optional_carries_the_users_token_with_a_session() {
    let svc = echo().await;
    let ward = start(&svc, Options::default()).await;
    let (browser, me) = ward.logged_in("alice").await;
    let user_token = users_token(&ward, &browser).await;

    let reply = browser.get(ward.url("/opt/feed")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = only_request(&svc);
    assert!(bearer_of(&seen) == user_token, "the user's token");
    assert!(seen.header("cookie").is_none(), "no Ward cookie upstream");

    // Unsafe methods with the session cookie still need the CSRF token.
    let refused = browser.post(ward.url("/opt/feed")).send().await.unwrap();
    assert_ward_error(&refused, 403, "csrf_failed");
    let wrong = browser
        .post(ward.url("/opt/feed"))
        .header("x-csrf-token", "not-the-token")
        .send()
        .await
        .unwrap();
    assert_ward_error(&wrong, 403, "csrf_failed");
    assert!(svc.requests().is_empty(), "nothing forwarded without CSRF");
    let csrf = me["csrfToken"].as_str().unwrap();
    let accepted = browser
        .post(ward.url("/opt/feed"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    assert!(
        bearer_of(&only_request(&svc)) == user_token,
        "the user's token"
    );
}

#[tokio::test]
async fn user_optional_treats_an_unusable_cookie_as_no_session() {
    let svc = echo().await;
    let ward = start(&svc, Options::default()).await;
    let (browser, _) = ward.logged_in("alice").await;
    let name = ward.cookie_name();
    let cookie = browser.cookie("localhost", &name).expect("session cookie");

    // One character changed in the middle: the id or the secret no longer fits.
    let mid = cookie.len() / 2;
    let flipped = if &cookie[mid..=mid] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &cookie[..mid], &cookie[mid + 1..]);
    for value in [tampered.as_str(), "garbage", ""] {
        let other = Browser::new().unwrap();
        other.set_cookie("localhost", &name, value);
        let reply = other.get(ward.url("/opt/feed")).await.unwrap();
        assert_eq!(reply.status, 200, "{value:?}: {}", reply.text());
        assert_anonymous(&only_request(&svc));
    }

    // An expired session is no session either (idle timeout 30 min).
    ward.clock.advance(31 * 60);
    let reply = browser.get(ward.url("/opt/feed")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_anonymous(&only_request(&svc));
    assert_eq!(
        browser.get(ward.url("/api/x")).await.unwrap().status,
        401,
        "the same cookie on a user route"
    );
}

#[tokio::test]
async fn user_optional_with_a_cookie_fails_closed_when_the_store_is_down() {
    let svc = echo().await;
    let outage = Outage::default();
    let ward = start(
        &svc,
        Options {
            outage: Some(outage.clone()),
            ..Default::default()
        },
    )
    .await;
    let (browser, _) = ward.logged_in("alice").await;

    outage.begin();
    let reply = browser.get(ward.url("/opt/feed")).await.unwrap();
    assert_ward_error(&reply, 503, "store_unavailable");
    assert!(svc.requests().is_empty(), "never forwarded as anonymous");

    let anonymous = Browser::new().unwrap();
    let reply = anonymous.get(ward.url("/opt/feed")).await.unwrap();
    assert_eq!(reply.status, 200, "no cookie: the store is not needed");
    assert_anonymous(&only_request(&svc));
    let reply = anonymous.get(ward.url("/svc/x")).await.unwrap();
    assert_eq!(reply.status, 200, "client routes need no store");
    bearer_of(&only_request(&svc));

    outage.end();
    let reply = browser.get(ward.url("/opt/feed")).await.unwrap();
    assert_eq!(reply.status, 200);
    bearer_of(&only_request(&svc));
}
