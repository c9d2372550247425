//! Cross-site requests through Ward with a real IdP session (SPEC §4; SECURITY-CASES X-01…X-07,
//! CO-01): cross-site fetch metadata and foreign origins are refused even with the right
//! token, Ward answers preflights itself and grants CORS only to listed origins. The token
//! itself: `csrf.rs`.

mod common;

use common::Ward;
use common::csrf::{UNSAFE, assert_csrf_refused, csrf_token, method};
use common::upstream::assert_upstream_saw_nothing;
use reqwest::Method;

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
    assert_upstream_saw_nothing(&ward.upstream, "cross-site");
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
    assert_upstream_saw_nothing(&ward.upstream, "same-site, cors_origins empty");
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
    assert_upstream_saw_nothing(&ward.upstream, "preflights");
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
