//! Ward as a FAPI 2.0 client against the real IdP in its FAPI 2.0 configuration (oidc-provider's
//! `fapi` profile `2.0`, PAR required, the client registered for `private_key_jwt` with the
//! public half of a key the test makes): a whole browser login through a pushed authorization
//! request, a refresh and a logout with revocation, every IdP call authenticated by a fresh
//! assertion (the IdP refuses any `jti` it has seen, and any `aud` but its issuer); and a key
//! the IdP does not know failing the login with `invalid_client` in Ward's log.
//! (The assertion's claims, the replay and wrong-`aud` refusals: `src/oidc/client_auth/tests`.)

mod common;
#[path = "support/log_capture.rs"]
mod log_capture;

use std::sync::Arc;

use common::{Options, Ward};
use log_capture::Capture;
use ward_testkit::{Browser, ClientKey};

async fn fapi_ward() -> Ward {
    Ward::start_with(Options {
        client_key: Some(Arc::new(ClientKey::generate().expect("client key"))),
        ..Options::default()
    })
    .await
}

#[tokio::test]
async fn a_fapi_login_pushes_its_request_then_refreshes_and_revokes_with_assertions() {
    let ward = fapi_ward().await;
    let browser = Browser::new().unwrap();

    // The browser carries only client_id and request_uri (RFC 9126 §4): no PKCE challenge,
    // state, nonce, scope or redirect_uri it could read or alter.
    let start = browser
        .get(ward.url("/bff/login?returnUrl=/"))
        .await
        .unwrap();
    assert_eq!(start.status, 302);
    let authorize = url::Url::parse(start.location().unwrap()).unwrap();
    assert_eq!(
        authorize.as_str().split('?').next(),
        Some(ward.idp.url("/auth").as_str())
    );
    let names: Vec<String> = authorize
        .query_pairs()
        .map(|(n, _)| n.into_owned())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"]);
    assert_eq!(ward.idp.stats().await.unwrap().par_requests, 1);

    let back = browser
        .login_at_idp(authorize.as_str(), "alice")
        .await
        .unwrap();
    let callback = browser.follow(&back).await.unwrap();
    assert_eq!(callback.status, 302, "{}", callback.text());
    let me = browser.get(ward.url("/bff/user")).await.unwrap();
    assert_eq!(me.status, 200);
    let me = me.json().unwrap();
    assert_eq!(me["sub"], "alice");

    refresh_with_an_assertion(&ward, &browser).await;
    logout_revokes_with_an_assertion(&ward, &browser, me["csrfToken"].as_str().unwrap()).await;

    // The IdP refused nothing: no replayed jti, no wrong aud, no missing PAR.
    let logs = ward.idp.logs();
    for refusal in [
        "grant.error",
        "revocation.error",
        "pushed_authorization_request.error",
    ] {
        assert!(!logs.contains(refusal), "the IdP logged {refusal}:\n{logs}");
    }
}

/// Past the access token's expiry, an API call refreshes first (a token request with a new
/// assertion) and forwards the new token.
async fn refresh_with_an_assertion(ward: &Ward, browser: &Browser) {
    let first = browser.get(ward.url("/api/before")).await.unwrap();
    assert_eq!(first.status, 200);
    let tokens_before = ward.idp.stats().await.unwrap().token_requests;
    ward.clock.advance(301);
    let after = browser.get(ward.url("/api/after")).await.unwrap();
    assert_eq!(after.status, 200, "{}", after.text());
    assert_eq!(
        ward.idp.stats().await.unwrap().token_requests,
        tokens_before + 1
    );
    let bearer = |path: &str| {
        ward.upstream
            .requests()
            .into_iter()
            .find(|r| r.path() == path)
            .and_then(|r| r.header("authorization").map(str::to_owned))
            .expect("a bearer upstream")
    };
    assert_ne!(bearer("/api/before"), bearer("/api/after"));
}

/// Logout revokes the refresh token at the IdP, authenticated by an assertion (a refused one
/// would show in the IdP's `revocation.error` log line).
async fn logout_revokes_with_an_assertion(ward: &Ward, browser: &Browser, csrf: &str) {
    let revocations = ward.idp.stats().await.unwrap().revocations;
    let reply = browser
        .post(ward.url("/bff/logout"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(ward.idp.stats().await.unwrap().revocations, revocations + 1);
    assert_eq!(
        browser.get(ward.url("/bff/user")).await.unwrap().status,
        401
    );
}

#[tokio::test]
async fn a_key_the_idp_does_not_know_fails_the_login_with_invalid_client() {
    let capture = Capture::install();
    let other_dir = tempfile::tempdir().unwrap();
    let other_key = other_dir.path().join("not-registered.pem");
    ClientKey::generate()
        .unwrap()
        .write_pem(&other_key)
        .unwrap();
    let ward = Ward::start_with(Options {
        client_key: Some(Arc::new(ClientKey::generate().unwrap())),
        env: [(
            "WARD_OIDC__PRIVATE_KEY_FILE".to_owned(),
            other_key.display().to_string(),
        )]
        .into(),
        ..Options::default()
    })
    .await;

    let browser = Browser::new().unwrap();
    let reply = browser
        .get(ward.url("/bff/login?returnUrl=/"))
        .await
        .unwrap();
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json().unwrap()["error"], "login_failed");
    let navigation = browser
        .request(reqwest::Method::GET, ward.url("/bff/login?returnUrl=/"))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(navigation.status, 302);
    assert_eq!(navigation.location(), Some("/?bff_error=login_failed"));

    let log = capture.text();
    let line = log
        .lines()
        .find(|line| line.contains("\"login_par_failed\""))
        .unwrap_or_else(|| panic!("no login_par_failed event in:\n{log}"));
    assert!(
        line.contains("IdP refused the request: invalid_client"),
        "{line}"
    );
    assert!(!line.contains("eyJ"), "an assertion in the log: {line}");
}
