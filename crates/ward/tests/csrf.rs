//! CSRF enforcement through Ward with a real IdP session (SPEC §4; SECURITY-CASES X-01…X-07,
//! CO-01): every unsafe request carrying a session cookie needs the session's `X-CSRF-Token`,
//! cross-site fetch metadata is refused, and refusals happen before any byte goes upstream.

mod common;

use common::Ward;
use reqwest::Method;
use serde_json::Value;
use ward_testkit::{Browser, Reply};

/// Unsafe methods: the four of SPEC §4, one that no allowlist would name, and a lower-case
/// `post` (method names are case-sensitive, RFC 9110 §9.1: it is not `POST`, and not safe).
const UNSAFE: [&str; 6] = ["POST", "PUT", "PATCH", "DELETE", "PROPFIND", "post"];

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("a valid method token")
}

fn csrf_token(me: &Value) -> String {
    me["csrfToken"]
        .as_str()
        .expect("/bff/user carries csrfToken")
        .to_owned()
}

/// A Ward refusal with `403 csrf_failed`, the JSON error shape, no new cookie.
#[track_caller]
fn assert_csrf_refused(reply: &Reply, what: &str) {
    assert_eq!(reply.status, 403, "{what}: {}", reply.text());
    let body = reply.json().expect("JSON error body");
    assert_eq!(body["error"], "csrf_failed", "{what}");
    assert!(body["message"].is_string(), "{what}");
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
    assert!(
        reply.set_cookies().is_empty(),
        "{what}: a refusal sets no cookie"
    );
}

#[track_caller]
fn assert_upstream_saw_nothing(ward: &Ward, what: &str) {
    let seen = ward.upstream.requests();
    assert!(seen.is_empty(), "{what}: the upstream received {seen:?}");
}

/// The session is still alive (a refusal must not end or rotate it).
async fn assert_session_alive(ward: &Ward, browser: &Browser, csrf: &str) {
    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    assert_eq!(csrf_token(&me.json().unwrap()), csrf);
}

#[tokio::test]
async fn unsafe_methods_without_a_token_are_refused_before_the_upstream() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    for name in UNSAFE {
        let reply = browser
            .request(method(name), ward.url("/api/x"))
            .header("content-type", "application/json")
            .body(r#"{"amount":1000}"#)
            .send()
            .await
            .unwrap();
        assert_csrf_refused(&reply, name);
    }
    assert_upstream_saw_nothing(&ward, "no X-CSRF-Token");
    assert_session_alive(&ward, &browser, &csrf_token(&me)).await;
}

#[tokio::test]
async fn wrong_empty_or_altered_tokens_are_refused() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let good = csrf_token(&me);
    let swapped_case: String = good
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect();
    let wrong = [
        "not-the-token".to_owned(),
        String::new(),
        swapped_case,
        format!("{good}="),
        format!("{good}x"),
        good[..good.len() - 1].to_owned(),
    ];
    for name in UNSAFE {
        for value in &wrong {
            let reply = browser
                .request(method(name), ward.url("/api/x"))
                .header("x-csrf-token", value)
                .send()
                .await
                .unwrap();
            assert_csrf_refused(&reply, &format!("{name} with a {}-char token", value.len()));
        }
    }
    assert_upstream_saw_nothing(&ward, "wrong tokens");
    assert_session_alive(&ward, &browser, &good).await;
}

#[tokio::test]
async fn the_token_anywhere_but_its_header_is_refused() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let good = csrf_token(&me);
    let in_query = browser
        .post(ward.url(&format!("/api/x?csrfToken={good}&x-csrf-token={good}")))
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&in_query, "token in the query");
    let in_form = browser
        .post(ward.url("/api/x"))
        .form(&[("x-csrf-token", &good), ("csrfToken", &good)])
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&in_form, "token in a form body");
    let in_json = browser
        .post(ward.url("/api/x"))
        .json(&serde_json::json!({ "csrfToken": good }))
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&in_json, "token in a JSON body");
    let session = browser.cookie("localhost", "__Host-ward").unwrap();
    let in_cookie = browser
        .post(ward.url("/api/x"))
        .header(
            "cookie",
            &format!("__Host-ward={session}; x-csrf-token={good}"),
        )
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&in_cookie, "token in a cookie");
    assert_upstream_saw_nothing(&ward, "token outside its header");
}

#[tokio::test]
async fn another_sessions_token_is_refused() {
    let ward = Ward::start().await;
    let (alice, alice_me) = ward.logged_in("alice").await;
    let (_bob, bob_me) = ward.logged_in("bob").await;
    let bobs = csrf_token(&bob_me);
    assert_ne!(bobs, csrf_token(&alice_me));
    for name in UNSAFE {
        let reply = alice
            .request(method(name), ward.url("/api/x"))
            .header("x-csrf-token", &bobs)
            .send()
            .await
            .unwrap();
        assert_csrf_refused(&reply, name);
    }
    assert_upstream_saw_nothing(&ward, "bob's token on alice's session");

    // A second session of the same user has its own token too.
    let (_alice_again, again_me) = ward.logged_in("alice").await;
    let reply = alice
        .post(ward.url("/api/x"))
        .header("x-csrf-token", &csrf_token(&again_me))
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&reply, "token of alice's other session");
    assert_upstream_saw_nothing(&ward, "alice's other session's token");
}

#[tokio::test]
async fn two_token_headers_are_refused_even_when_both_are_right() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let good = csrf_token(&me);
    for (first, second) in [
        (good.as_str(), good.as_str()),
        (good.as_str(), "wrong"),
        ("wrong", good.as_str()),
    ] {
        let reply = browser
            .post(ward.url("/api/x"))
            .header("x-csrf-token", first)
            .header("x-csrf-token", second)
            .send()
            .await
            .unwrap();
        assert_csrf_refused(&reply, "two X-CSRF-Token headers");
    }
    let combined = browser
        .post(ward.url("/api/x"))
        .header("x-csrf-token", &format!("{good}, {good}"))
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&combined, "two values in one header");
    assert_upstream_saw_nothing(&ward, "duplicated token headers");
}

#[tokio::test]
async fn the_right_token_forwards_every_unsafe_method() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let good = csrf_token(&me);
    for name in UNSAFE {
        let reply = browser
            .request(method(name), ward.url("/api/x"))
            .header("x-csrf-token", &good)
            .body("payload")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
        let seen = ward.upstream.last().expect("forwarded");
        assert_eq!(seen.method.as_str(), name);
        assert_eq!(seen.path_and_query, "/api/x");
        assert_eq!(&seen.body[..], b"payload");
    }
    assert_eq!(ward.upstream.requests().len(), UNSAFE.len());
}

#[tokio::test]
async fn safe_methods_need_no_token() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
        let reply = browser
            .request(m.clone(), ward.url("/api/x"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{m}");
        let seen = ward.upstream.last().expect("forwarded");
        assert_eq!(seen.method, m);
    }
    assert_eq!(ward.upstream.requests().len(), 3);
}

#[tokio::test]
async fn cross_site_fetch_metadata_is_refused_even_with_the_right_token() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let good = csrf_token(&me);
    for name in UNSAFE {
        let reply = browser
            .request(method(name), ward.url("/api/x"))
            .header("x-csrf-token", &good)
            .header("sec-fetch-site", "cross-site")
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert_csrf_refused(&reply, name);
    }
    assert_upstream_saw_nothing(&ward, "cross-site");
}

#[tokio::test]
async fn same_site_from_an_unlisted_origin_is_refused_even_with_the_right_token() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let good = csrf_token(&me);
    for origin in [
        Some("http://sibling.localhost"),
        Some("null"),
        Some(ward.origin.as_str()),
        None,
    ] {
        let mut request = browser
            .post(ward.url("/api/x"))
            .header("x-csrf-token", &good)
            .header("sec-fetch-site", "same-site");
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        let reply = request.send().await.unwrap();
        assert_csrf_refused(&reply, &format!("same-site from {origin:?}"));
    }
    assert_upstream_saw_nothing(&ward, "same-site, cors_origins empty");
}

#[tokio::test]
async fn same_origin_with_the_right_token_is_forwarded() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let reply = browser
        .post(ward.url("/api/x"))
        .header("x-csrf-token", &csrf_token(&me))
        .header("sec-fetch-site", "same-origin")
        .header("origin", &ward.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(ward.upstream.requests().len(), 1);
    // The same request without the token is still refused: fetch metadata is defence in
    // depth, never a replacement for the token.
    let reply = browser
        .post(ward.url("/api/x"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", &ward.origin)
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&reply, "same-origin without a token");
    assert_eq!(ward.upstream.requests().len(), 1);
}

#[tokio::test]
async fn a_tokenless_route_still_needs_the_token_when_the_session_cookie_is_sent() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    for name in UNSAFE {
        let reply = browser
            .request(method(name), ward.url("/public/x"))
            .send()
            .await
            .unwrap();
        assert_csrf_refused(&reply, name);
    }
    assert_upstream_saw_nothing(&ward, "/public with the session cookie");

    let reply = browser
        .post(ward.url("/public/x"))
        .header("x-csrf-token", &csrf_token(&me))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = ward.upstream.last().expect("forwarded");
    assert_eq!(seen.path_and_query, "/x");
    assert!(seen.header("authorization").is_none());
}

#[tokio::test]
async fn a_tokenless_route_without_cookies_needs_no_token() {
    let ward = Ward::start().await;
    let anonymous = Browser::new().unwrap();
    for name in UNSAFE {
        let reply = anonymous
            .request(method(name), ward.url("/public/x"))
            .body("anonymous")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{name}: {}", reply.text());
        let seen = ward.upstream.last().expect("forwarded");
        assert_eq!(seen.method.as_str(), name);
        assert_eq!(seen.path_and_query, "/x");
    }
    // Fetch metadata applies without a session too.
    let reply = anonymous
        .post(ward.url("/public/x"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&reply, "anonymous cross-site POST");
    assert_eq!(ward.upstream.requests().len(), UNSAFE.len());
}

#[tokio::test]
async fn logout_without_a_token_is_refused_and_the_session_survives() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let reply = browser.post(ward.url("/bff/logout")).send().await.unwrap();
    assert_csrf_refused(&reply, "logout without a token");
    assert_session_alive(&ward, &browser, &csrf_token(&me)).await;
}

#[tokio::test]
async fn a_preflight_from_an_unlisted_origin_is_refused_by_ward() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    for path in ["/api/x", "/public/x", "/bff/user", "/bff/logout"] {
        for origin in [
            "http://evil.example",
            "null",
            "http://localhost.evil.example",
        ] {
            let reply = browser
                .request(Method::OPTIONS, ward.url(path))
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "x-csrf-token")
                .send()
                .await
                .unwrap();
            let what = format!("preflight {path} from {origin}");
            assert_csrf_refused(&reply, &what);
            for name in reply.headers.keys() {
                assert!(
                    !name.as_str().starts_with("access-control-"),
                    "{what}: {name}"
                );
            }
        }
    }
    assert_upstream_saw_nothing(&ward, "preflights");
}

#[tokio::test]
async fn a_simple_cross_origin_request_gets_no_cors_permission() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    for path in ["/api/x", "/bff/user"] {
        let reply = browser
            .request(Method::GET, ward.url(path))
            .header("origin", "http://evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{path}");
        for name in reply.headers.keys() {
            assert!(
                !name.as_str().starts_with("access-control-"),
                "{path}: {name}"
            );
        }
    }
}

#[tokio::test]
async fn the_token_is_stable_within_a_session_and_new_for_each_session() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let first = csrf_token(&me);
    assert_eq!(first.len(), 43, "32 bytes, base64url without padding");
    for _ in 0..3 {
        let again = browser.get(ward.url("/bff/user")).await.unwrap();
        assert_eq!(csrf_token(&again.json().unwrap()), first);
    }
    // A token in use keeps working: it is not single-use.
    for _ in 0..2 {
        let reply = browser
            .post(ward.url("/api/x"))
            .header("x-csrf-token", &first)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }

    let (_other, other_me) = ward.logged_in("alice").await;
    assert_ne!(
        csrf_token(&other_me),
        first,
        "another session, another token"
    );

    ward.login(&browser, "alice", "/").await;
    let relogged = browser.get(ward.url("/bff/user")).await.unwrap();
    let rotated = csrf_token(&relogged.json().unwrap());
    assert_ne!(rotated, first, "a new login rotates the token");
    let stale = browser
        .post(ward.url("/api/x"))
        .header("x-csrf-token", &first)
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&stale, "the previous session's token");
}

#[tokio::test]
async fn method_override_headers_cannot_turn_a_safe_request_into_an_unsafe_one() {
    // SECURITY-CASES X-03: under the GET exemption, a header that frameworks read as the real
    // method must be refused (400) or stripped; forwarded, it is a CSRF bypass for any
    // upstream that honours it (Express method-override, Rails, Symfony, ASP.NET…).
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    for name in [
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    ] {
        let reply = browser
            .request(Method::GET, ward.url("/api/x"))
            .header(name, "DELETE")
            .send()
            .await
            .unwrap();
        if reply.status == 200 {
            let seen = ward.upstream.last().expect("forwarded");
            assert!(
                seen.header(name).is_none(),
                "{name} reached the upstream on a GET without a CSRF token"
            );
        } else {
            assert_eq!(reply.status, 400, "{name}: refused as a bad request");
        }
    }
}

fn with_cors_origin(origin: &str) -> common::Options {
    let mut options = common::Options::default();
    options.env.insert(
        "WARD_SERVER__CORS_ORIGINS".to_owned(),
        format!("[\"{origin}\"]"),
    );
    options
}

#[tokio::test]
async fn a_listed_origin_gets_cors_permission_and_still_needs_the_token() {
    let admin = "http://admin.localhost:9";
    let ward = Ward::start_with(with_cors_origin(admin)).await;
    let (browser, me) = ward.logged_in("alice").await;
    let preflight = browser
        .request(reqwest::Method::OPTIONS, ward.url("/api/x"))
        .header("origin", admin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "x-csrf-token, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(admin));
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("x-csrf-token")
    );
    assert!(
        ward.upstream.requests().is_empty(),
        "Ward answers preflights itself"
    );

    let without_token = browser
        .post(ward.url("/api/x"))
        .header("origin", admin)
        .header("sec-fetch-site", "same-site")
        .send()
        .await
        .unwrap();
    assert_eq!(without_token.status, 403);
    let with_token = browser
        .post(ward.url("/api/x"))
        .header("origin", admin)
        .header("sec-fetch-site", "same-site")
        .header("x-csrf-token", me["csrfToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status, 200);
    assert_eq!(
        with_token.header("access-control-allow-origin"),
        Some(admin)
    );
    assert!(with_token.header("vary").unwrap_or("").contains("Origin"));
}

#[tokio::test]
async fn without_fetch_metadata_a_foreign_origin_is_refused_even_with_the_token() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let token = me["csrfToken"].as_str().unwrap();
    for origin in ["http://evil.example", "null", "http://localhost:1"] {
        let reply = browser
            .post(ward.url("/api/x"))
            .header("origin", origin)
            .header("x-csrf-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 403, "{origin}");
        let logout = browser
            .post(ward.url("/bff/logout"))
            .header("origin", origin)
            .header("x-csrf-token", token)
            .send()
            .await
            .unwrap();
        assert_eq!(logout.status, 403, "{origin}");
    }
    assert!(ward.upstream.requests().is_empty());
    let own = browser
        .post(ward.url("/api/x"))
        .header("origin", &ward.origin)
        .header("x-csrf-token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        own.status, 200,
        "Ward's own origin passes to the token check"
    );
}

#[tokio::test]
async fn a_cross_site_get_never_rides_the_session_to_the_api() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let reply = browser
        .request(Method::GET, ward.url("/api/report"))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json().unwrap()["error"], "csrf_failed");
    assert!(ward.upstream.requests().is_empty());
    let same_origin = browser
        .request(Method::GET, ward.url("/api/report"))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(same_origin.status, 200);
}
