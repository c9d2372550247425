//! `private_key_jwt` against the in-process IdP: what each token-side call sends, and the
//! start errors of a key that does not fit the IdP.

use ward_testkit::ClientKey;

use super::*;

/// A client for `idp` authenticating with a fresh EC key (written to `dir`).
async fn key_client(idp: &Idp, dir: &std::path::Path) -> Result<OidcClient, OidcError> {
    let path = dir.join("client.pem");
    ClientKey::generate().unwrap().write_pem(&path).unwrap();
    let mut config = idp.config(ClientAuth::PrivateKeyJwt);
    config.client_secret = SecretString::default();
    config.private_key_file = Some(path);
    let clock: Arc<dyn Clock> = idp.clock.clone();
    OidcClient::discover(
        &config,
        Url::parse("https://app.example/bff/callback").unwrap(),
        clock,
        &crate::outbound::Outbound::load(&Default::default()).unwrap(),
    )
    .await
}

fn assertion_of(form: &BTreeMap<String, String>) -> Value {
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    let payload = form["client_assertion"].split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn token_and_revocation_calls_carry_a_fresh_assertion_and_no_secret() {
    let idp = Idp::start(json!({})).await;
    let dir = tempfile::tempdir().unwrap();
    let client = key_client(&idp, dir.path()).await.expect("discovery");
    idp.answer(
        StatusCode::OK,
        json!({"access_token": "at", "token_type": "Bearer"}),
    );
    client.client_credentials_token(&[]).await.expect("token");
    client
        .revoke_refresh_token(&SecretString::new("rt"))
        .await
        .expect("revoked");

    let token_requests = idp.state.token_requests.lock().unwrap().clone();
    let revocations = idp.state.revocations.lock().unwrap().clone();
    let mut jtis = Vec::new();
    for (headers, body) in token_requests.iter().chain(revocations.iter()) {
        assert!(headers.get("authorization").is_none());
        assert!(!body.contains("client_secret"), "{body}");
        let sent = form(body);
        assert_eq!(sent["client_id"], CLIENT_ID);
        let claims = assertion_of(&sent);
        assert_eq!(claims["aud"], idp.state.issuer.as_str());
        assert_eq!(claims["iat"], NOW);
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_eq!(jtis.len(), 2);
    assert_ne!(jtis[0], jtis[1]);
}

#[tokio::test]
async fn a_key_the_idp_lists_no_algorithm_for_is_a_start_error_not_retried() {
    let idp = Idp::start(json!({
        "token_endpoint_auth_signing_alg_values_supported": ["PS256", "RS256"],
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = key_client(&idp, dir.path()).await.err().expect("refused");
    assert!(err.is_misconfiguration());
    assert_eq!(
        err.to_string(),
        "client authentication: oidc.private_key_file: the IdP accepts PS256, RS256 for client \
         assertions, none of which a EC P-256 key makes (ES256)"
    );
}

#[tokio::test]
async fn a_method_the_idp_does_not_offer_is_a_start_error() {
    let idp = Idp::start(json!({
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = key_client(&idp, dir.path()).await.err().expect("refused");
    assert!(err.is_misconfiguration());
    assert!(
        err.to_string().contains("does not accept private_key_jwt"),
        "{err}"
    );
}

#[tokio::test]
async fn par_never_against_an_idp_that_requires_it_is_a_start_error() {
    let idp = Idp::start(json!({
        "pushed_authorization_request_endpoint": "http://127.0.0.1:9/par",
        "require_pushed_authorization_requests": true,
    }))
    .await;
    let mut config = idp.config(ClientAuth::ClientSecretBasic);
    config.par = crate::config::ParMode::Never;
    let clock: Arc<dyn Clock> = idp.clock.clone();
    let redirect = Url::parse("https://app.example/bff/callback").unwrap();
    let err = OidcClient::discover(
        &config,
        redirect,
        clock,
        &crate::outbound::Outbound::load(&Default::default()).unwrap(),
    )
    .await
    .err()
    .unwrap();
    assert!(err.is_misconfiguration());
    assert!(
        err.to_string()
            .contains("requires pushed authorization requests"),
        "{err}"
    );
}
