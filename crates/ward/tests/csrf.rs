//! CSRF tokens through Ward with a real IdP session (SPEC §4; SECURITY-CASES X-01…X-07,
//! CO-01): every unsafe request carrying a session cookie needs the session's `X-CSRF-Token`,
//! and refusals happen before any byte goes upstream. Fetch metadata, `Origin` and CORS:
//! `csrf_origins.rs`.

mod common;

use common::Ward;
use common::csrf::{UNSAFE, assert_csrf_refused, assert_session_alive, csrf_token, method};
use common::upstream::assert_upstream_saw_nothing;
use reqwest::Method;
use ward_testkit::Browser;

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
    assert_upstream_saw_nothing(&ward.upstream, "no X-CSRF-Token");
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
    assert_upstream_saw_nothing(&ward.upstream, "wrong tokens");
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
    assert_upstream_saw_nothing(&ward.upstream, "token outside its header");
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
    assert_upstream_saw_nothing(&ward.upstream, "bob's token on alice's session");

    // A second session of the same user has its own token too.
    let (_alice_again, again_me) = ward.logged_in("alice").await;
    let reply = alice
        .post(ward.url("/api/x"))
        .header("x-csrf-token", &csrf_token(&again_me))
        .send()
        .await
        .unwrap();
    assert_csrf_refused(&reply, "token of alice's other session");
    assert_upstream_saw_nothing(&ward.upstream, "alice's other session's token");
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
    assert_upstream_saw_nothing(&ward.upstream, "duplicated token headers");
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
    assert_upstream_saw_nothing(&ward.upstream, "/public with the session cookie");

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
