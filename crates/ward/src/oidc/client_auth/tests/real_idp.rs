//! Ward's client assertions at the real IdP (oidc-provider in its FAPI 2.0 configuration, which
//! requires `aud` = the issuer and remembers every `jti`), sent to its token endpoint with the
//! client-credentials grant.

use std::path::Path;

use ward_testkit::{Idp, IdpOptions};

use super::*;
use crate::oidc::OidcClient;

/// The real IdP for a client registered with `key`, and Ward's client for it.
async fn fapi_idp(key: &ClientKey, dir: &Path) -> (Idp, OidcClient) {
    let idp = Idp::start(IdpOptions::fapi2("https://app.example", key))
        .await
        .expect("the test IdP");
    let path = dir.join("ward-client.pem");
    key.write_pem(&path).unwrap();
    let config = OidcConfig {
        issuer: url::Url::parse(idp.issuer()).unwrap(),
        client_id: ward_testkit::CLIENT_ID.to_owned(),
        client_secret: SecretString::default(),
        client_auth: ClientAuth::PrivateKeyJwt,
        private_key_file: Some(path),
        private_key_id: None,
        client_cert: None,
        client_key: None,
        par: crate::config::ParMode::Auto,
        dpop: false,
        scopes: vec!["openid".to_owned()],
        extra_auth_params: Default::default(),
        refresh_skew: std::time::Duration::from_secs(60),
    };
    let clock: Arc<dyn Clock> = Arc::new(ward_store::SystemClock);
    let redirect = url::Url::parse("https://app.example/bff/callback").unwrap();
    let client = OidcClient::discover(
        &config,
        redirect,
        clock,
        &crate::outbound::Outbound::load(&Default::default()).unwrap(),
    )
    .await
    .expect("discovery with private_key_jwt");
    (idp, client)
}

/// `grant_type=client_credentials` with `assertion`: the status and the OAuth error, if any.
async fn token_with(idp: &Idp, assertion: &str) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .post(idp.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", ward_testkit::CLIENT_ID),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn the_idp_accepts_each_assertion_once_and_never_one_for_another_audience() {
    let dir = tempfile::tempdir().unwrap();
    let key = ClientKey::generate().unwrap();
    let (idp, client) = fapi_idp(&key, dir.path()).await;
    let signer = client.auth.signer().expect("private_key_jwt");
    let same_key = || SigningKey::parse(key.pkcs8_pem().unwrap().as_bytes(), "k").unwrap();
    assert_eq!(signer.alg(), "ES256");
    // The default kid is the RFC 7638 thumbprint, computed independently by the testkit.
    assert_eq!(signer.kid(), key.thumbprint());

    // Ward's own assertion is accepted …
    let assertion = signer.assertion().unwrap();
    let accepted = token_with(&idp, assertion.expose()).await;
    assert_eq!(accepted, (200, None), "{}", idp.logs());
    // … once: the same jti again is a replay the IdP refuses.
    let replay = token_with(&idp, assertion.expose()).await;
    assert_eq!(replay.1.as_deref(), Some("invalid_client"), "{replay:?}");
    // Ward makes a new one per request, so its next calls go through, its own token call too.
    let fresh = signer.assertion().unwrap();
    assert_eq!(token_with(&idp, fresh.expose()).await, (200, None));
    client
        .client_credentials_token(&[])
        .await
        .expect("client credentials with a fresh assertion");

    // An assertion for another audience (the token endpoint URL, the practice that
    // CVE-2025-27370/27371 showed unsafe) is refused under FAPI 2.0.
    let wrong_aud = AssertionSigner {
        kid: same_key().thumbprint(),
        key: same_key(),
        alg: "ES256",
        client_id: ward_testkit::CLIENT_ID.to_owned(),
        audience: String::new(),
        clock: Arc::new(ward_store::SystemClock),
    }
    .with_audience(&idp.url("/token"));
    let refused = token_with(&idp, wrong_aud.assertion().unwrap().expose()).await;
    assert_eq!(refused.1.as_deref(), Some("invalid_client"), "{refused:?}");
}
