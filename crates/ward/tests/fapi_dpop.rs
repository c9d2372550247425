//! DPoP (RFC 9449) against the real IdP in its FAPI 2.0 configuration with DPoP-bound tokens
//! required and server nonces demanded (`DPOP=1 DPOP_NONCE=1 FAPI=2.0`, JWT access tokens so an
//! API can read `cnf.jkt`), and the echo upstream checking every request as a resource server
//! would (`ward_testkit::dpop`: signature by the proof's own key, `htm`, `htu`, `ath`, `cnf.jkt`
//! = the key's thumbprint, a fresh `jti`, and a nonce of its own it demands once).

mod common;
#[path = "support/log_capture.rs"]
mod log_capture;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Options, Ward};
use log_capture::Capture;
use ward_testkit::{Browser, ClientKey, Dpop, DpopPolicy, RecordedRequest, jwt_claims, jwt_header};

const ECHO_NONCE: &str = "echo-nonce-1";

async fn dpop_ward() -> Ward {
    let ward = Ward::start_with(Options {
        client_key: Some(Arc::new(ClientKey::generate().expect("client key"))),
        idp: |idp| {
            idp.dpop = Dpop::Nonce;
            idp.jwt_access_tokens = true;
        },
        env: [("WARD_OIDC__DPOP".to_owned(), "true".to_owned())].into(),
        ..Options::default()
    })
    .await;
    ward.upstream.require_dpop(DpopPolicy {
        nonce: Some(ECHO_NONCE.to_owned()),
    });
    ward
}

/// The token of an upstream request's `Authorization: DPoP <token>`.
fn dpop_token(request: &RecordedRequest) -> String {
    let value = request.header("authorization").expect("Authorization");
    let (scheme, token) = value.split_once(' ').expect("scheme and token");
    assert_eq!(scheme, "DPoP");
    token.to_owned()
}

fn proof_claims(request: &RecordedRequest) -> serde_json::Value {
    jwt_claims(request.header("dpop").expect("a DPoP proof")).expect("proof claims")
}

#[tokio::test]
async fn a_dpop_login_binds_every_token_and_proves_the_key_on_each_call() {
    let capture = Capture::install();
    let ward = dpop_ward().await;
    let (browser, me) = ward.logged_in("alice").await;
    let csrf = me["csrfToken"].as_str().unwrap().to_owned();

    // The first call meets the API's nonce demand: one challenge, one replay with the nonce.
    let first = browser.get(ward.url("/api/items?page=2")).await.unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(ward.upstream.dpop_nonce_challenges(), 1);
    let seen = ward.upstream.requests();
    assert_eq!(seen.len(), 2);
    let accepted = &seen[1];
    let claims = proof_claims(accepted);
    assert_eq!(claims["htm"], "GET");
    assert_eq!(claims["htu"], format!("{}/api/items", ward.upstream.url()));
    assert_eq!(claims["nonce"], ECHO_NONCE);
    let token = dpop_token(accepted);
    let jkt = jwt_claims(&token).unwrap()["cnf"]["jkt"].clone();
    assert!(jkt.is_string(), "the IdP bound the access token: {jkt}");

    // A POST with a small body: the nonce is known now, the body arrives whole.
    let post = browser
        .post(ward.url("/api/orders"))
        .header("x-csrf-token", &csrf)
        .header("content-type", "application/json")
        .body(r#"{"sku":"a-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status, 200, "{}", post.text());
    let echoed = post.json().unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["body_len"], 13);
    assert_eq!(ward.upstream.dpop_nonce_challenges(), 1);

    refresh_under_concurrency_is_one_dpop_refresh(&ward, &browser, &token).await;
    logout_revokes(&ward, &browser, &csrf).await;

    assert!(
        ward.upstream.dpop_rejections().is_empty(),
        "{:?}",
        ward.upstream.dpop_rejections()
    );
    let requests = ward.upstream.requests();
    let proofs: Vec<&str> = requests.iter().filter_map(|r| r.header("dpop")).collect();
    let jtis: HashSet<String> = proofs
        .iter()
        .map(|p| jwt_claims(p).unwrap()["jti"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(jtis.len(), proofs.len(), "Ward never sends a jti twice");
    for proof in &proofs {
        assert_eq!(jwt_header(proof).unwrap()["typ"], "dpop+jwt");
    }

    // The IdP refused nothing but the nonce-less first proofs it asked a nonce for.
    let logs = ward.idp.logs();
    for line in logs.lines().filter(|l| l.contains(".error")) {
        assert!(
            line.contains("UseDpopNonce"),
            "the IdP refused: {line}\n{logs}"
        );
    }
    assert!(
        logs.contains("UseDpopNonce"),
        "the IdP demanded a nonce once (and Ward answered it):\n{logs}"
    );

    // No token, proof or key in Ward's log.
    let log = capture.text();
    let mut secrets: Vec<String> = proofs.iter().map(|p| (*p).to_owned()).collect();
    secrets.extend(
        requests
            .iter()
            .filter_map(|r| r.header("authorization"))
            .map(|a| a.split_once(' ').map_or(a, |(_, t)| t).to_owned()),
    );
    for secret in &secrets {
        assert!(
            !log.contains(secret.as_str()),
            "a token or proof in the log"
        );
    }
    // A P-256 PKCS#8 document starts with these bytes, base64url-encoded.
    assert!(
        !log.contains("MIGHAgEAMBMGByqGSM49"),
        "a DPoP private key in the log"
    );
    assert!(!log.contains("eyJ"), "a JWT in the log");
    assert!(
        log.contains("\"login_succeeded\""),
        "the capture saw Ward's log"
    );
}

/// Past the access token's expiry, eight parallel calls: one refresh at the IdP (with a proof of
/// the session's key: the new token is bound to the same key), all eight forward the new token.
async fn refresh_under_concurrency_is_one_dpop_refresh(ward: &Ward, browser: &Browser, old: &str) {
    let tokens_before = ward.idp.stats().await.unwrap().token_requests;
    ward.upstream.clear();
    ward.clock.advance(301);
    let calls = (0..8).map(|i| browser.get(ward.url(&format!("/api/parallel/{i}"))));
    for reply in futures_util::future::join_all(calls).await {
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(
        ward.idp.stats().await.unwrap().token_requests,
        tokens_before + 1,
        "one refresh, carrying the IdP's nonce from the start"
    );
    let requests = ward.upstream.requests();
    assert_eq!(
        requests.len(),
        8,
        "no nonce retries: the API's nonce is known"
    );
    let tokens: HashSet<String> = requests.iter().map(dpop_token).collect();
    assert_eq!(tokens.len(), 1, "all eight carry the one refreshed token");
    let new = tokens.into_iter().next().unwrap();
    assert_ne!(new, old);
    assert_eq!(
        jwt_claims(&new).unwrap()["cnf"],
        jwt_claims(old).unwrap()["cnf"],
        "the refreshed token is bound to the session's key"
    );
    for request in &requests {
        assert_eq!(
            proof_claims(request)["htu"],
            format!("{}{}", ward.upstream.url(), request.path())
        );
    }
}

async fn logout_revokes(ward: &Ward, browser: &Browser, csrf: &str) {
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

/// What Ward sent, replayed by an attacker who read it: for another URL, with another method,
/// as it was (a second use of its `jti`), or the token without its proof. The API's check
/// refuses each: a proof is good for one request only.
#[tokio::test]
async fn a_proof_replayed_for_another_url_or_method_is_refused_by_the_api() {
    let ward = dpop_ward().await;
    let (browser, _) = ward.logged_in("bob").await;
    let reply = browser.get(ward.url("/api/account")).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = ward.upstream.last().expect("an upstream request");
    let authorization = sent.header("authorization").unwrap().to_owned();
    let proof = sent.header("dpop").unwrap().to_owned();

    let http = reqwest::Client::new();
    let attempt = |method: reqwest::Method, path: &str, with_proof: bool| {
        let mut request = http
            .request(method, format!("{}{path}", ward.upstream.url()))
            .header("authorization", &authorization);
        if with_proof {
            request = request.header("dpop", &proof);
        }
        request.send()
    };
    for (method, path, with_proof, reason) in [
        (reqwest::Method::GET, "/api/admin", true, "htu mismatch"),
        (
            reqwest::Method::DELETE,
            "/api/account",
            true,
            "htm mismatch",
        ),
        (reqwest::Method::GET, "/api/account", true, "jti replayed"),
        (
            reqwest::Method::GET,
            "/api/account",
            false,
            "not exactly one DPoP header",
        ),
    ] {
        let response = attempt(method.clone(), path, with_proof).await.unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["reason"], reason, "{method} {path}");
    }
}
