//! `[store] kind = "cookie"`: the whole flow with sessions carried by the browser (SPEC §6).

mod common;

use common::{Options, Ward};
use ward_testkit::Browser;

fn cookie_mode() -> Options {
    Options {
        store: "cookie",
        ..Default::default()
    }
}

#[tokio::test]
async fn login_api_call_and_logout_work_with_sessions_in_cookies() {
    let ward = Ward::start_with(cookie_mode()).await;
    let browser = Browser::new().unwrap();
    let callback = ward.login(&browser, "alice", "/app").await;
    assert_eq!(callback.location(), Some("/app"));
    let chunks: Vec<&str> = callback
        .set_cookies()
        .into_iter()
        .filter(|c| c.starts_with("__Host-ward.s"))
        .collect();
    assert!(!chunks.is_empty(), "the sealed session travels in cookies");
    for chunk in &chunks {
        assert!(chunk.len() < 4096, "each cookie within browser limits");
        for attr in ["Path=/", "Secure", "HttpOnly", "SameSite=Strict"] {
            assert!(chunk.contains(attr), "{attr}");
        }
    }
    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    let me = me.json().unwrap();
    assert_eq!(me["sub"], "alice");

    let api = browser.get(ward.url("/api/orders")).await.unwrap();
    assert_eq!(api.status, 200);
    let seen = ward.upstream.last().unwrap();
    assert!(seen.header("authorization").unwrap().starts_with("Bearer "));
    let cookie = seen.header("cookie").unwrap_or("");
    assert!(
        !cookie.contains("__Host-ward"),
        "no Ward cookie reaches the API"
    );

    let refused = browser.post(ward.url("/api/orders")).send().await.unwrap();
    assert_eq!(refused.status, 403);
    let logout = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", me["csrfToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status, 200);
    assert!(
        logout
            .set_cookies()
            .iter()
            .filter(|c| c.starts_with("__Host-ward"))
            .all(|c| c.contains("Max-Age=0")),
        "logout expires every Ward cookie"
    );
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        401
    );
}

#[tokio::test]
async fn sessions_in_cookies_survive_a_restart_and_slide_by_rewriting_them() {
    let ward = Ward::start_with(cookie_mode()).await;
    let (browser, _) = ward.logged_in("alice").await;
    ward.clock.advance(20 * 60);
    let slid = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(slid.status, 200);
    assert!(
        slid.set_cookies()
            .iter()
            .any(|c| c.starts_with("__Host-ward.s0")),
        "the idle timer travels in the cookie, so sliding rewrites it"
    );
    ward.stop().await;

    let again = Ward::start_with(cookie_mode()).await;
    let me = browser.get(again.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200, "nothing lived in the old process");
    assert_eq!(me.json().unwrap()["sub"], "alice");
}

#[tokio::test]
async fn tampered_or_foreign_cookie_chunks_are_no_session_and_backchannel_is_absent() {
    let ward = Ward::start_with(cookie_mode()).await;
    let (browser, _) = ward.logged_in("alice").await;
    let chunk = browser.cookie("localhost", "__Host-ward.s0").unwrap();
    let mut bytes = chunk.into_bytes();
    let at = bytes.len() - 5;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    browser.set_cookie(
        "localhost",
        "__Host-ward.s0",
        &String::from_utf8(bytes).unwrap(),
    );
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        401
    );

    let (bob, _) = ward.logged_in("bob").await;
    let bobs = bob.cookie("localhost", "__Host-ward.s0").unwrap();
    browser.set_cookie("localhost", "__Host-ward.s0", &bobs);
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        401,
        "bob's record does not open with alice's session cookie"
    );

    let bcl = Browser::new()
        .unwrap()
        .post(ward.url("/bff/backchannel-logout"))
        .form(&[("logout_token", "x.y.z")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        bcl.status, 404,
        "no back-channel logout without server-side sessions"
    );
}

#[tokio::test]
async fn key_rotation_keeps_cookie_sessions_and_retiring_the_key_logs_them_out() {
    const NEW: &str = "test2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8";
    let ward = Ward::start_with(cookie_mode()).await;
    let (browser, _) = ward.logged_in("alice").await;
    let sealed_under_old = browser.cookie("localhost", "__Host-ward.s0").unwrap();
    ward.stop().await;

    let rotated = Ward::start_with(Options {
        keys: vec![NEW.to_owned(), common::TEST_KEY.to_owned()],
        ..cookie_mode()
    })
    .await;
    rotated.clock.advance(2 * 60);
    let me = browser.get(rotated.url("/bff/user")).await.unwrap();
    assert_eq!(
        me.status, 200,
        "sessions sealed under the old key still open"
    );
    let resealed = browser.cookie("localhost", "__Host-ward.s0").unwrap();
    assert_ne!(
        resealed, sealed_under_old,
        "the next request re-seals under the new key"
    );
    rotated.stop().await;

    let retired = Ward::start_with(Options {
        keys: vec![NEW.to_owned()],
        ..cookie_mode()
    })
    .await;
    let stale = browser.fresh().unwrap();
    stale.set_cookie(
        "localhost",
        "__Host-ward",
        &browser.cookie("localhost", "__Host-ward").unwrap(),
    );
    stale.set_cookie("localhost", "__Host-ward.s0", &sealed_under_old);
    let reply = stale.get(retired.url("/bff/user")).await.unwrap();
    assert_eq!(
        reply.status, 401,
        "an old-key session reads as logged out, not as an error"
    );
    assert_eq!(
        browser.get(retired.url("/bff/user")).await.unwrap().status,
        200
    );
}
