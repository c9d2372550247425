//! The login flow against the real IdP: login, user, logout, transactions, expiry (SPEC §1-§3).

mod common;

use common::Ward;
use ward_testkit::{Browser, Reply};

#[tokio::test]
async fn user_without_session_is_unauthenticated_with_security_headers() {
    let ward = Ward::start().await;
    let reply = Browser::new()
        .unwrap()
        .get(ward.url("/bff/user"))
        .await
        .unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.json().unwrap()["error"], "unauthenticated");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
}

#[tokio::test]
async fn login_redirect_carries_pkce_s256_state_and_nonce() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    let reply = browser
        .get(ward.url("/bff/login?returnUrl=/app"))
        .await
        .unwrap();
    assert_eq!(reply.status, 302);
    let location = reply.location_url().unwrap();
    assert!(
        location.as_str().starts_with(&ward.idp.url("/auth")),
        "{location}"
    );
    let param = |name: &str| reply.location_param(name).unwrap_or_default();
    assert_eq!(param("code_challenge_method"), "S256");
    assert_eq!(param("code_challenge").len(), 43);
    assert_eq!(param("state").len(), 43);
    assert_eq!(param("nonce").len(), 43);
    assert_eq!(param("response_type"), "code");
    assert_eq!(param("client_id"), "bff");
    assert_eq!(param("redirect_uri"), ward.url("/bff/callback"));
    assert!(param("scope").split(' ').any(|s| s == "openid"));
    assert!(reply.location_param("client_secret").is_none());
    assert!(reply.location_param("code_verifier").is_none());
    let tx_cookie = reply
        .set_cookie("__Host-ward-tx")
        .expect("login binding cookie");
    for attr in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=600",
    ] {
        assert!(tx_cookie.contains(attr), "{attr} missing");
    }
    let again = browser.get(ward.url("/bff/login")).await.unwrap();
    assert_ne!(again.location_param("state"), reply.location_param("state"));
    assert_ne!(
        again.location_param("code_challenge"),
        reply.location_param("code_challenge")
    );
}

#[tokio::test]
async fn full_login_sets_host_cookie_and_user_returns_profile_without_tokens() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    let callback = ward.login(&browser, "alice", "/app/page").await;
    assert_eq!(callback.location(), Some("/app/page"));
    let cookie = callback.set_cookie("__Host-ward").expect("session cookie");
    for attr in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
        "Max-Age=28",
    ] {
        assert!(cookie.contains(attr), "{attr} missing");
    }
    assert!(!cookie.contains("Domain"), "a __Host- cookie has no Domain");

    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    assert_eq!(me.header("cache-control"), Some("no-store"));
    let body = me.json().unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["claims"]["email"], "alice@example.test");
    assert_eq!(body["claims"]["name"], "Test alice");
    assert_eq!(body["csrfToken"].as_str().unwrap().len(), 43);
    let now = ward.clock_now();
    assert_eq!(body["expiresAt"].as_u64().unwrap(), now + 30 * 60);
    assert_eq!(body["absoluteExpiresAt"].as_u64().unwrap(), now + 8 * 3600);
    let text = me.text();
    for forbidden in [
        "access_token",
        "refresh_token",
        "id_token",
        "accessToken",
        "idToken",
    ] {
        assert!(!text.contains(forbidden), "{forbidden} in /bff/user");
    }
}

#[tokio::test]
async fn two_tabs_logging_in_at_once_both_succeed() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    let first = browser
        .get(ward.url("/bff/login?returnUrl=/one"))
        .await
        .unwrap();
    let second = browser
        .get(ward.url("/bff/login?returnUrl=/two"))
        .await
        .unwrap();
    let back_second = browser
        .login_at_idp(second.location().unwrap(), "alice")
        .await
        .unwrap();
    let back_first = browser
        .login_at_idp(first.location().unwrap(), "alice")
        .await
        .unwrap();
    let done_second = browser.follow(&back_second).await.unwrap();
    let done_first = browser.follow(&back_first).await.unwrap();
    assert_eq!(done_second.location(), Some("/two"));
    assert_eq!(done_first.location(), Some("/one"));
}

#[tokio::test]
async fn replayed_callback_is_refused_without_a_session() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    let start = browser.get(ward.url("/bff/login")).await.unwrap();
    let back = browser
        .login_at_idp(start.location().unwrap(), "alice")
        .await
        .unwrap();
    let first = browser.follow(&back).await.unwrap();
    assert_eq!(first.status, 302);
    let replay = browser.follow(&back).await.unwrap();
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json().unwrap()["error"], "login_failed");
    assert!(replay.set_cookie("__Host-ward").is_none());
}

#[tokio::test]
async fn callback_in_another_browser_fails_and_leaves_the_login_usable() {
    let ward = Ward::start().await;
    let victim = Browser::new().unwrap();
    let start = victim.get(ward.url("/bff/login")).await.unwrap();
    let back = victim
        .login_at_idp(start.location().unwrap(), "alice")
        .await
        .unwrap();

    let attacker = victim.fresh().unwrap();
    let stolen = attacker.follow(&back).await.unwrap();
    assert_eq!(stolen.status, 400);
    assert_eq!(stolen.json().unwrap()["error"], "login_failed");
    assert!(stolen.set_cookie("__Host-ward").is_none());

    let genuine = victim.follow(&back).await.unwrap();
    assert_eq!(genuine.status, 302);
    assert!(genuine.set_cookie("__Host-ward").is_some());
}

#[tokio::test]
async fn malformed_callbacks_fail_as_login_failed() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    browser.get(ward.url("/bff/login")).await.unwrap();
    for query in [
        "",
        "?code=abc",
        "?state=abc",
        "?code=abc&state=unknown-state",
        "?code=abc&state=abc&state=def",
    ] {
        let reply = browser
            .get(ward.url(&format!("/bff/callback{query}")))
            .await
            .unwrap();
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.json().unwrap()["error"], "login_failed", "{query}");
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
}

#[tokio::test]
async fn idp_error_redirects_to_error_path_with_the_code() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    let start = browser.get(ward.url("/bff/login")).await.unwrap();
    let back = browser
        .abort_at_idp(start.location().unwrap())
        .await
        .unwrap();
    let reply = browser.follow(&back).await.unwrap();
    assert_eq!(reply.status, 302);
    assert_eq!(reply.location(), Some("/?bff_error=access_denied"));
    assert!(reply.set_cookie("__Host-ward").is_none());
}

#[tokio::test]
async fn the_state_is_checked_before_an_idp_error_is_reported() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    browser.get(ward.url("/bff/login")).await.unwrap();
    // RFC 6749 §10.12: an error "from the IdP" without this browser's state is forged or
    // replayed; it gets no redirect that a page could use to shape the error page.
    for query in [
        "?error=access_denied",
        "?error=access_denied&state=unknown-state",
    ] {
        let reply = browser
            .get(ward.url(&format!("/bff/callback{query}")))
            .await
            .unwrap();
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.json().unwrap()["error"], "login_failed", "{query}");
        assert!(reply.location().is_none(), "{query}");
    }
}

#[tokio::test]
async fn a_failed_exchange_is_400_or_for_a_navigation_a_redirect_to_the_error_page() {
    let ward = Ward::start().await;
    for (navigation, expected) in [(false, 400), (true, 302)] {
        let browser = Browser::new().unwrap();
        let start = browser.get(ward.url("/bff/login")).await.unwrap();
        let tx_state = start.location_param("state").expect("state");
        let mut request = browser.request(
            reqwest::Method::GET,
            ward.url(&format!("/bff/callback?code=forged-code&state={tx_state}")),
        );
        if navigation {
            request = request.header("sec-fetch-mode", "navigate");
        }
        let reply = request.send().await.unwrap();
        assert_eq!(reply.status, expected, "navigation: {navigation}");
        if navigation {
            assert_eq!(reply.location(), Some("/?bff_error=login_failed"));
        } else {
            assert_eq!(reply.json().unwrap()["error"], "login_failed");
        }
        assert!(reply.set_cookie("__Host-ward").is_none());
    }
}

#[tokio::test]
async fn login_again_issues_a_new_session_id_and_ends_the_old_one() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let old = browser.cookie("localhost", "__Host-ward").unwrap();
    // /bff/login is a same-site navigation: the Strict cookie comes along…
    let start = browser.get(ward.url("/bff/login")).await.unwrap();
    let back = browser
        .login_at_idp(start.location().unwrap(), "alice")
        .await
        .unwrap();
    // …but not on the IdP's cross-site redirect to the callback, as in a real browser.
    browser.remove_cookie("localhost", "__Host-ward");
    let callback = browser.follow(&back).await.unwrap();
    assert_eq!(callback.status, 302);
    let new = browser.cookie("localhost", "__Host-ward").unwrap();
    assert_ne!(old, new);
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        200
    );
    let replay = browser
        .request(reqwest::Method::GET, ward.url("/bff/user"))
        .header("cookie", &format!("__Host-ward={old}"))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status, 401, "the pre-login session must be gone");
}

#[tokio::test]
async fn logout_requires_csrf_then_ends_session_and_revokes_refresh_token() {
    let ward = Ward::start().await;
    let (browser, me) = ward.logged_in("alice").await;
    let csrf = me["csrfToken"].as_str().unwrap();

    let refused = browser.post(ward.url("/bff/logout")).send().await.unwrap();
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json().unwrap()["error"], "csrf_failed");
    let wrong = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", "not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status, 403);
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        200
    );

    let cookie = browser.cookie("localhost", "__Host-ward").unwrap();
    let before = ward.idp.stats().await.unwrap().revocations;
    let reply = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_rp_initiated_logout_without_a_hint(&ward, &reply);
    assert!(
        reply
            .set_cookie("__Host-ward")
            .unwrap()
            .contains("Max-Age=0")
    );
    assert_eq!(ward.idp.stats().await.unwrap().revocations, before + 1);

    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        401
    );
    let replay = browser
        .request(reqwest::Method::GET, ward.url("/bff/user"))
        .header("cookie", &format!("__Host-ward={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status, 401,
        "a logged-out cookie must not come back to life"
    );
}

/// The logout answer's `logoutUrl` ends the session at the IdP and comes back to Ward, without
/// an `id_token_hint` (not configured).
#[track_caller]
fn assert_rp_initiated_logout_without_a_hint(ward: &Ward, reply: &Reply) {
    let logout_url = url::Url::parse(reply.json().unwrap()["logoutUrl"].as_str().unwrap()).unwrap();
    assert!(
        logout_url
            .as_str()
            .starts_with(&ward.idp.url("/session/end"))
    );
    let params: std::collections::HashMap<_, _> = logout_url.query_pairs().into_owned().collect();
    assert_eq!(params["client_id"], "bff");
    assert_eq!(params["post_logout_redirect_uri"], ward.url("/"));
    assert!(!params["state"].is_empty());
    assert!(!params.contains_key("id_token_hint"));
}

#[tokio::test]
async fn logout_without_a_session_is_idempotent() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    for _ in 0..2 {
        let reply = browser.post(ward.url("/bff/logout")).send().await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json().unwrap()["logoutUrl"], "/");
    }
}

#[tokio::test]
async fn logout_url_carries_id_token_hint_only_when_configured() {
    let ward = Ward::start_with(common::Options {
        extra_toml: "[logout]\nid_token_hint = true\nredirect_path = \"/bye\"\n".into(),
        ..Default::default()
    })
    .await;
    let (browser, me) = ward.logged_in("alice").await;
    let reply = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", me["csrfToken"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let logout_url = url::Url::parse(reply.json().unwrap()["logoutUrl"].as_str().unwrap()).unwrap();
    let params: std::collections::HashMap<_, _> = logout_url.query_pairs().into_owned().collect();
    let hint = ward_testkit::jwt_claims(&params["id_token_hint"]).unwrap();
    assert_eq!(hint["sub"], "alice");
    assert_eq!(params["post_logout_redirect_uri"], ward.url("/bye"));
}

#[tokio::test]
async fn idle_session_expires_and_use_slides_it() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    ward.clock.advance(20 * 60);
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        200
    );
    ward.clock.advance(20 * 60);
    let slid = browser
        .get(ward.url("/bff/user?slide=false"))
        .await
        .unwrap();
    assert_eq!(slid.status, 200, "used 20 minutes ago: still alive");
    ward.clock.advance(15 * 60);
    let reply = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(reply.status, 401, "slide=false must not have extended it");
}

#[tokio::test]
async fn absolute_timeout_ends_a_session_in_constant_use() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    for _ in 0..16 {
        ward.clock.advance(29 * 60);
        let reply = browser.get(ward.url("/bff/user")).await.unwrap();
        assert_eq!(reply.status, 200);
    }
    ward.clock.advance(29 * 60);
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        401
    );
}

#[tokio::test]
async fn tampered_or_oversized_cookies_are_no_session_never_a_500() {
    let ward = Ward::start().await;
    let (browser, _) = ward.logged_in("alice").await;
    let good = browser.cookie("localhost", "__Host-ward").unwrap();
    let mut flipped = good.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let variants = [
        String::from_utf8(flipped).unwrap(),
        good.replacen("v1.", "v9.", 1),
        format!("{good}{good}"),
        "x".repeat(6000),
        "v1.".to_owned(),
        "%00%ff".to_owned(),
        String::new(),
    ];
    for value in variants {
        let reply = browser
            .request(reqwest::Method::GET, ward.url("/bff/user"))
            .header("cookie", &format!("__Host-ward={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status, 401, "{} chars", value.len());
        let api = browser
            .request(reqwest::Method::GET, ward.url("/api/x"))
            .header("cookie", &format!("__Host-ward={value}"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status, 401);
    }
    assert!(ward.upstream.requests().is_empty());
}

#[tokio::test]
async fn unknown_paths_are_json_404_and_wrong_methods_405() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    let reply = browser.get(ward.url("/nowhere")).await.unwrap();
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json().unwrap()["error"], "not_found");
    let reply = browser.get(ward.url("/bff/nothing")).await.unwrap();
    assert_eq!(reply.status, 404);
    let reply = browser.post(ward.url("/bff/user")).send().await.unwrap();
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn idp_error_spends_the_login_transaction() {
    let ward = Ward::start().await;
    let browser = Browser::new().unwrap();
    let start = browser.get(ward.url("/bff/login")).await.unwrap();
    let authorize = start.location().unwrap().to_owned();
    let aborted = browser.abort_at_idp(&authorize).await.unwrap();
    assert_eq!(browser.follow(&aborted).await.unwrap().status, 302);

    let before = ward.idp.stats().await.unwrap().token_requests;
    let back = browser.login_at_idp(&authorize, "alice").await.unwrap();
    let late = browser.follow(&back).await.unwrap();
    assert_eq!(
        late.status, 400,
        "the aborted login's state must not finish a login"
    );
    assert_eq!(ward.idp.stats().await.unwrap().token_requests, before);
}

#[tokio::test]
async fn unknown_bff_paths_are_404_even_with_an_spa_fallback() {
    let page = ward_testkit::repo_root().join("demo/page");
    let ward = Ward::start_with(common::Options {
        extra_toml: format!("[static]\ndir = \"{}\"\n", page.display()),
        ..Default::default()
    })
    .await;
    let browser = Browser::new().unwrap();
    assert_eq!(
        browser
            .get(ward.url("/some/client/route"))
            .await
            .unwrap()
            .status,
        200
    );
    for path in ["/bff/nothing", "/bff", "/bff/user/extra"] {
        let reply = browser.get(ward.url(path)).await.unwrap();
        assert_eq!(reply.status, 404, "{path}");
        assert_eq!(reply.json().unwrap()["error"], "not_found");
    }
    let asset = browser.get(ward.url("/style.css")).await.unwrap();
    assert_eq!(asset.status, 200);
    assert_eq!(asset.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(asset.header("x-content-type-options"), Some("nosniff"));
}
