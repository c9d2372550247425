//! `tls_client_auth` against the in-process IdP: the token-side calls carry `client_id` and no
//! secret, assertion or `Authorization` header (the certificate travels in the TLS layer, which
//! the real-IdP tests of `tests/fapi_mtls.rs` cover), and the start errors.

use crate::outbound::{ClientIdentity, Outbound};

use super::*;

/// A self-signed client certificate and its key, written to `dir`.
fn identity(dir: &std::path::Path) -> ClientIdentity {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["ward-client.test".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.join("client.pem"), dir.join("client-key.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    ClientIdentity::load(&cert_file, &key_file).unwrap()
}

async fn mtls_client(idp: &Idp, outbound: &Outbound) -> Result<OidcClient, OidcError> {
    let mut config = idp.config(ClientAuth::TlsClientAuth);
    config.client_secret = SecretString::default();
    let clock: Arc<dyn Clock> = idp.clock.clone();
    OidcClient::discover(
        &config,
        Url::parse("https://app.example/bff/callback").unwrap(),
        clock,
        outbound,
    )
    .await
}

fn outbound_with(identity: Option<ClientIdentity>) -> Outbound {
    Outbound::load(&Default::default())
        .unwrap()
        .with_client_identity(identity)
}

#[tokio::test]
async fn token_and_revocation_calls_carry_the_client_id_and_nothing_else() {
    let idp = Idp::start(json!({
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "tls_client_auth"],
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let outbound = outbound_with(Some(identity(dir.path())));
    let client = mtls_client(&idp, &outbound).await.expect("discovery");
    idp.answer(
        StatusCode::OK,
        json!({"access_token": "at", "token_type": "Bearer"}),
    );
    client.client_credentials_token(&[]).await.expect("token");
    client
        .revoke_refresh_token(&SecretString::new("rt"))
        .await
        .expect("revoked");
    assert!(matches!(
        client.probe_client_credentials().await,
        Ok(CredentialsVerdict::Unverified(_))
    ));

    let token_requests = idp.state.token_requests.lock().unwrap().clone();
    let revocations = idp.state.revocations.lock().unwrap().clone();
    assert_eq!((token_requests.len(), revocations.len()), (2, 1));
    for (headers, body) in token_requests.iter().chain(revocations.iter()) {
        assert!(headers.get("authorization").is_none(), "{headers:?}");
        let sent = form(body);
        assert_eq!(sent["client_id"], CLIENT_ID);
        for credential in ["client_secret", "client_assertion", "client_assertion_type"] {
            assert!(!sent.contains_key(credential), "{credential} in {body}");
        }
    }
}

#[tokio::test]
async fn an_idp_that_does_not_list_tls_client_auth_is_a_start_error() {
    let idp = Idp::start(json!({
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "private_key_jwt"],
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = mtls_client(&idp, &outbound_with(Some(identity(dir.path()))))
        .await
        .err()
        .expect("refused");
    assert!(err.is_misconfiguration());
    assert!(
        err.to_string().contains("does not accept tls_client_auth"),
        "{err}"
    );
}

#[tokio::test]
async fn tls_client_auth_without_a_certificate_is_a_start_error() {
    let idp = Idp::start(json!({})).await;
    let err = mtls_client(&idp, &outbound_with(None))
        .await
        .err()
        .expect("refused");
    assert!(err.is_misconfiguration());
    assert!(err.to_string().contains("oidc.client_cert"), "{err}");
}

#[tokio::test]
async fn an_http_endpoint_alias_is_a_start_error() {
    // The alias must be https; an http one is refused before anything is sent.
    let idp = Idp::start(json!({
        "mtls_endpoint_aliases": { "token_endpoint": "http://127.0.0.1:9/token" },
    }))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let err = mtls_client(&idp, &outbound_with(Some(identity(dir.path()))))
        .await
        .err()
        .expect("refused");
    assert!(err.is_misconfiguration(), "{err}");
    assert!(
        format!("{err:?}").contains("mtls_endpoint_aliases.token_endpoint"),
        "{err:?}"
    );
}
