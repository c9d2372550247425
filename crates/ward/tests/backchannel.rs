//! Back-channel logout against the real IdP (SPEC §2 `POST /bff/backchannel-logout`;
//! SECURITY-CASES O-02…O-09, X-08): the IdP ends a user's session at Ward server to server,
//! only the sessions the token names end, and every invalid, replayed or malformed request is
//! `400 invalid_logout_token` with no session touched.

mod common;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::flaky::Outage;
use common::logout_tokens::{
    EVENT, ValidClaims, assert_claims_refused, assert_forgeries_refused, assert_headers_refused,
    assert_invalid, assert_ok, claim_flaws, claims, end_idp_session, post_token, sign, user_status,
    wait_for_idp_log,
};
use common::{Options, TEST_KEY, Ward};
use serde_json::{Value, json};
use ward_testkit::Browser;

async fn sid_of(ward: &Ward, browser: &Browser) -> String {
    let cookies = browser.cookie_header_for(&ward.url("/"));
    let session = ward
        .state
        .sessions
        .load(cookies.as_deref())
        .await
        .expect("store")
        .expect("a session");
    session.data.sid.clone().expect("the ID token had a sid")
}

#[tokio::test]
async fn idp_logout_ends_that_browsers_session_and_no_other() {
    let ward = Ward::start().await;
    let (alice, _) = ward.logged_in("alice").await;
    let (bob, _) = ward.logged_in("bob").await;

    end_idp_session(&ward, &alice).await;
    let logs = wait_for_idp_log(&ward, "backchannel.", 1).await;
    assert!(
        logs.contains("backchannel.success client=bff sub=alice"),
        "{logs}"
    );
    assert!(!logs.contains("backchannel.error"), "{logs}");

    assert_eq!(
        user_status(&ward, &alice).await,
        401,
        "alice's session ended"
    );
    assert_eq!(
        user_status(&ward, &bob).await,
        200,
        "bob's session lives on"
    );
}

#[tokio::test]
async fn token_with_sid_ends_only_the_session_of_that_idp_session() {
    let ward = Ward::start().await;
    let (laptop, _) = ward.logged_in("alice").await;
    let (phone, _) = ward.logged_in("alice").await;
    let sid = sid_of(&ward, &laptop).await;
    assert_ne!(sid, sid_of(&ward, &phone).await, "two IdP sessions");

    let token = sign(&ward, &claims(&ward, Some("alice"), Some(&sid)), json!({})).await;
    assert_ok(&post_token(&ward, &token).await);
    assert_eq!(user_status(&ward, &laptop).await, 401);
    assert_eq!(user_status(&ward, &phone).await, 200);

    // The same without `sub` (sid alone is enough).
    let sid = sid_of(&ward, &phone).await;
    let token = sign(&ward, &claims(&ward, None, Some(&sid)), json!({})).await;
    assert_ok(&post_token(&ward, &token).await);
    assert_eq!(user_status(&ward, &phone).await, 401);
}

#[tokio::test]
async fn token_with_only_sub_ends_every_session_of_that_user() {
    let ward = Ward::start().await;
    let (laptop, _) = ward.logged_in("alice").await;
    let (phone, _) = ward.logged_in("alice").await;
    let (bob, _) = ward.logged_in("bob").await;

    let token = sign(&ward, &claims(&ward, Some("alice"), None), json!({})).await;
    assert_ok(&post_token(&ward, &token).await);
    assert_eq!(user_status(&ward, &laptop).await, 401);
    assert_eq!(user_status(&ward, &phone).await, 401);
    assert_eq!(user_status(&ward, &bob).await, 200);
}

#[tokio::test]
async fn mismatched_or_unknown_sub_and_sid_end_nothing() {
    let ward = Ward::start().await;
    let (alice, _) = ward.logged_in("alice").await;
    let (bob, _) = ward.logged_in("bob").await;
    let bobs_sid = sid_of(&ward, &bob).await;

    for (sub, sid) in [
        (Some("alice"), Some(bobs_sid.as_str())),
        (Some("carol"), None),
        (None, Some("no-such-idp-session")),
        (Some("alice"), Some("no-such-idp-session")),
    ] {
        let token = sign(&ward, &claims(&ward, sub, sid), json!({})).await;
        assert_ok(&post_token(&ward, &token).await);
    }
    assert_eq!(user_status(&ward, &alice).await, 200);
    assert_eq!(user_status(&ward, &bob).await, 200);
}

#[tokio::test]
async fn replayed_token_is_refused_and_spares_a_later_session() {
    let ward = Ward::start().await;
    let (alice, _) = ward.logged_in("alice").await;
    let token = sign(&ward, &claims(&ward, Some("alice"), None), json!({})).await;
    assert_ok(&post_token(&ward, &token).await);
    assert_eq!(user_status(&ward, &alice).await, 401);

    // A new login, then the captured token again: refused, the new session lives.
    ward.login(&alice, "alice", "/").await;
    assert_eq!(user_status(&ward, &alice).await, 200);
    assert_invalid(&post_token(&ward, &token).await, "replay");
    assert_eq!(user_status(&ward, &alice).await, 200);
}

#[tokio::test]
async fn invalid_tokens_are_refused_and_end_nothing() {
    let ward = Ward::start().await;
    let (alice, _) = ward.logged_in("alice").await;
    let sid = sid_of(&ward, &alice).await;
    let claims = ValidClaims {
        ward: &ward,
        sub: "alice",
        sid: &sid,
    };
    assert_claims_refused(&ward, claim_flaws(&claims, ward.clock_now())).await;
    assert_claims_refused(&ward, more_claim_flaws(&claims)).await;
    let headers = vec![
        ("typ at+jwt", json!({ "typ": "at+jwt" })),
        ("typ JOSE", json!({ "typ": "JOSE" })),
        ("unknown kid", json!({ "kid": "made-up" })),
        (
            "embedded jwk",
            json!({ "jwk": { "kty": "oct", "k": "AAAA" } }),
        ),
    ];
    assert_headers_refused(&ward, &claims, headers).await;
    let token = sign(&ward, &claims.valid(), json!({})).await;
    assert_forgeries_refused(&ward, &token, &claims).await;

    // The user's own ID token is not a logout token (nonce, no events, typ).
    let cookies = alice.cookie_header_for(&ward.url("/"));
    let session = ward.state.sessions.load(cookies.as_deref()).await.unwrap();
    let id_token = session.unwrap().data.id_token.expose().to_owned();
    assert_invalid(&post_token(&ward, &id_token).await, "ID token");

    assert_eq!(user_status(&ward, &alice).await, 200, "nothing ended");
    // A valid token still works afterwards: nothing above was remembered as its jti.
    let token = sign(&ward, &claims.valid(), json!({})).await;
    assert_ok(&post_token(&ward, &token).await);
    assert_eq!(user_status(&ward, &alice).await, 401);
}

/// Claim flaws beyond [`claim_flaws`]: a second audience, an event that is not an object, no
/// `iat`.
fn more_claim_flaws(claims: &ValidClaims<'_>) -> Vec<(&'static str, Value)> {
    vec![
        ("extra aud", claims.with("aud", json!(["bff", "other"]))),
        (
            "event not an object",
            claims.with("events", json!({ EVENT: true })),
        ),
        ("no iat", claims.without(&["iat"])),
    ]
}

#[tokio::test]
async fn logout_tokens_typed_jwt_or_untyped_end_the_session() {
    let ward = Ward::start().await;
    for header in [
        json!({ "typ": "JWT" }),
        json!({ "typ": null }),
        json!({ "typ": "application/logout+jwt" }),
    ] {
        let (alice, _) = ward.logged_in("alice").await;
        let sid = sid_of(&ward, &alice).await;
        let claims = claims(&ward, Some("alice"), Some(&sid));
        let token = sign(&ward, &claims, header.clone()).await;
        assert_ok(&post_token(&ward, &token).await);
        assert_eq!(user_status(&ward, &alice).await, 401, "{header}");
    }
}

#[tokio::test]
async fn malformed_requests_are_refused_without_touching_sessions() {
    let ward = Ward::start().await;
    let (alice, _) = ward.logged_in("alice").await;
    let url = ward.url("/bff/backchannel-logout");
    let token = sign(&ward, &claims(&ward, Some("alice"), None), json!({})).await;
    let server = Browser::new().unwrap();

    assert_malformed_bodies_refused(&server, &url, &token).await;

    // A cross-site form carrying the victim's cookie is refused before the endpoint.
    let cross_site = alice
        .post(&url)
        .header("origin", "https://evil.example")
        .header("sec-fetch-site", "cross-site")
        .form(&[("logout_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status, 403);
    // The victim's cookie on a same-site request proves nothing either.
    let with_cookie = alice
        .post(&url)
        .form(&[("logout_token", "x")])
        .send()
        .await
        .unwrap();
    assert_invalid(&with_cookie, "cookie but no valid token");

    assert_eq!(user_status(&ward, &alice).await, 200, "nothing ended");
    // None of the refusals spent the token.
    assert_ok(&post_token(&ward, &token).await);
    assert_eq!(user_status(&ward, &alice).await, 401);
}

/// A GET, a JSON body, a form without or with two `logout_token` fields and an oversized body:
/// each refused before any token is read.
async fn assert_malformed_bodies_refused(server: &Browser, url: &str, token: &str) {
    let get = server.get(url).await.unwrap();
    assert_eq!(get.status, 405);
    let as_json = server
        .post(url)
        .json(&json!({ "logout_token": token }))
        .send()
        .await
        .unwrap();
    assert_invalid(&as_json, "JSON body");
    let missing = server
        .post(url)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_invalid(&missing, "no logout_token field");
    let twice = server
        .post(url)
        .form(&[("logout_token", token), ("logout_token", token)])
        .send()
        .await
        .unwrap();
    assert_invalid(&twice, "two logout_token fields");
    let huge = format!("logout_token={}", "A".repeat(1 << 20));
    let oversized = server
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(oversized.status, 413, "{}", oversized.text());
    assert_eq!(oversized.json().unwrap()["error"], "payload_too_large");
}

#[tokio::test]
async fn store_outage_is_503_and_the_same_token_works_once_the_store_is_back() {
    let outage = Outage::default();
    let ward = Ward::start_with(Options {
        outage: Some(outage.clone()),
        ..Default::default()
    })
    .await;
    let (alice, _) = ward.logged_in("alice").await;
    let token = sign(&ward, &claims(&ward, Some("alice"), None), json!({})).await;

    outage.begin();
    let reply = post_token(&ward, &token).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json().unwrap()["error"], "store_unavailable");
    outage.end();

    assert_eq!(user_status(&ward, &alice).await, 200);
    assert_ok(&post_token(&ward, &token).await);
    assert_eq!(user_status(&ward, &alice).await, 401);
}

#[tokio::test]
async fn a_logout_the_store_failed_to_carry_out_is_accepted_again_when_the_idp_retries() {
    let outage = Outage::default();
    let ward = Ward::start_with(Options {
        outage: Some(outage.clone()),
        ..Default::default()
    })
    .await;
    let (alice, _) = ward.logged_in("alice").await;
    let token = sign(&ward, &claims(&ward, Some("alice"), None), json!({})).await;

    outage.begin_deletes();
    let reply = post_token(&ward, &token).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    outage.end();

    assert_eq!(
        user_status(&ward, &alice).await,
        200,
        "the failed logout ended nothing"
    );
    assert_ok(&post_token(&ward, &token).await);
    assert_eq!(user_status(&ward, &alice).await, 401);
    let replay = post_token(&ward, &token).await;
    assert_invalid(&replay, "a replay after the logout succeeded");
}

#[tokio::test]
async fn sessions_indexed_under_a_rotated_out_primary_key_are_still_found() {
    let data = tempfile::tempdir().unwrap();
    let embedded = |keys: Vec<String>| Options {
        store: "embedded",
        data_dir: Some(data.path().to_owned()),
        keys,
        ..Default::default()
    };
    let before = Ward::start_with(embedded(vec![TEST_KEY.to_owned()])).await;
    let (alice, _) = before.logged_in("alice").await;
    let (bob, _) = before.logged_in("bob").await;
    let bobs_sid = sid_of(&before, &bob).await;
    before.stop().await;

    // A new primary key; the sessions were indexed under the old one and are not used before
    // the logouts arrive (use would re-index them under the new key).
    let new_key = format!("test2:{}", STANDARD.encode([0x5a_u8; 32]));
    let after = Ward::start_with(embedded(vec![new_key, TEST_KEY.to_owned()])).await;
    let by_sub = sign(&after, &claims(&after, Some("alice"), None), json!({})).await;
    assert_ok(&post_token(&after, &by_sub).await);
    let by_sid = sign(&after, &claims(&after, None, Some(&bobs_sid)), json!({})).await;
    assert_ok(&post_token(&after, &by_sid).await);
    assert_eq!(user_status(&after, &alice).await, 401);
    assert_eq!(user_status(&after, &bob).await, 401);
}
