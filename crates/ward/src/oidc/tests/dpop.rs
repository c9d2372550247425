//! `[oidc] dpop` against the in-process IdP: the login's key named in the authorization request,
//! proven on the code exchange and refresh, the `use_dpop_nonce` retry, and the refusals.

use super::*;
use crate::oidc::dpop::{DpopKey, jwk_thumbprint_of_proof};

async fn dpop_client(idp: &Idp) -> OidcClient {
    let mut config = idp.config(ClientAuth::ClientSecretBasic);
    config.dpop = true;
    let clock: Arc<dyn Clock> = idp.clock.clone();
    OidcClient::discover(
        &config,
        Url::parse("https://app.example/bff/callback").unwrap(),
        clock,
        &crate::outbound::Outbound::load(&Default::default()).unwrap(),
    )
    .await
    .expect("discovery")
}

fn issue_dpop(idp: &Idp, token_type: &str) {
    let id_token = jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]);
    idp.answer(
        StatusCode::OK,
        json!({
            "access_token": "bound-access-token", "token_type": token_type,
            "expires_in": 300, "refresh_token": "opaque-refresh-token", "id_token": id_token,
        }),
    );
}

async fn exchange_with(client: &OidcClient, key: &DpopKey) -> Result<TokenSet, OidcError> {
    client
        .exchange_code(
            "the-code",
            &SecretString::new(VERIFIER),
            &SecretString::new(NONCE),
            Some(key),
        )
        .await
}

/// The `DPoP` header of the `n`th token request, verified against its own key.
fn proof_claims(idp: &Idp, n: usize) -> (String, Value) {
    let requests = idp.state.token_requests.lock().unwrap();
    let proof = requests[n]
        .0
        .get("dpop")
        .expect("a DPoP proof")
        .to_str()
        .unwrap()
        .to_owned();
    let (header, claims) = crate::oidc::dpop::tests::verified(&proof);
    (jwk_thumbprint_of_proof(&header), claims)
}

#[tokio::test]
async fn the_authorization_request_names_the_logins_key_by_dpop_jkt() {
    let idp = Idp::start(json!({"dpop_signing_alg_values_supported": ["ES256"]})).await;
    let client = dpop_client(&idp).await;
    let request = client.authorization_request(None).await.unwrap();
    let key = request.dpop_key.expect("a key per login");
    assert_eq!(query(&request.url)["dpop_jkt"], [key.thumbprint()]);
    let other = client.authorization_request(None).await.unwrap();
    assert_ne!(other.dpop_key.unwrap().thumbprint(), key.thumbprint());
    // Without dpop: no key, no dpop_jkt.
    let plain = idp
        .client()
        .await
        .authorization_request(None)
        .await
        .unwrap();
    assert!(plain.dpop_key.is_none() && !query(&plain.url).contains_key("dpop_jkt"));
}

#[tokio::test]
async fn the_code_exchange_proves_the_key_and_wants_a_dpop_token_back() {
    let idp = Idp::start(json!({})).await;
    let client = dpop_client(&idp).await;
    let key = DpopKey::generate().unwrap();
    issue_dpop(&idp, "dpop");
    let tokens = exchange_with(&client, &key).await.expect("a bound token");
    assert_eq!(tokens.dpop_key.unwrap().thumbprint(), key.thumbprint());
    let (jkt, claims) = proof_claims(&idp, 0);
    assert_eq!(jkt, key.thumbprint());
    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["htu"], format!("{}/token", idp.state.issuer));
    assert_eq!(claims["iat"], NOW);
    assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());

    // A Bearer answer to a DPoP request: the IdP did not bind the token.
    issue_dpop(&idp, "Bearer");
    let err = exchange_with(&client, &key).await.unwrap_err();
    assert!(err.to_string().contains("DPoP token_type"), "{err}");

    // No key in the login transaction: nothing is sent.
    let sent = idp.state.token_requests.lock().unwrap().len();
    let result = client
        .exchange_code(
            "c",
            &SecretString::new(VERIFIER),
            &SecretString::new(NONCE),
            None,
        )
        .await;
    assert!(matches!(
        result,
        Err(OidcError::IncompleteLogin("a DPoP key"))
    ));
    assert_eq!(idp.state.token_requests.lock().unwrap().len(), sent);
}

#[tokio::test]
async fn use_dpop_nonce_is_answered_once_with_the_nonce_and_remembered() {
    let idp = Idp::start(json!({})).await;
    let client = dpop_client(&idp).await;
    let key = DpopKey::generate().unwrap();
    issue_dpop(&idp, "DPoP");
    *idp.state.dpop_nonce.lock().unwrap() = Some("nonce-1".to_owned());
    exchange_with(&client, &key)
        .await
        .expect("the retry succeeds");
    assert_eq!(idp.state.token_requests.lock().unwrap().len(), 2);
    let (_, first) = proof_claims(&idp, 0);
    let (_, second) = proof_claims(&idp, 1);
    assert!(first.get("nonce").is_none());
    assert_eq!(second["nonce"], "nonce-1");
    assert_ne!(first["jti"], second["jti"]);

    // The refresh carries the remembered nonce from the start.
    let refreshed = client
        .refresh(
            &SecretString::new("opaque-refresh-token"),
            "alice",
            &SecretString::new(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0])),
            Some(&key),
        )
        .await;
    refreshed.expect("refresh with the nonce");
    assert_eq!(idp.state.token_requests.lock().unwrap().len(), 3);
    assert_eq!(proof_claims(&idp, 2).1["nonce"], "nonce-1");

    // A server that keeps refusing gets one retry, not a loop.
    *idp.state.dpop_nonce.lock().unwrap() = Some("nonce-2".to_owned());
    let before = idp.state.token_requests.lock().unwrap().len();
    exchange_with(&client, &key)
        .await
        .expect("retried with nonce-2");
    assert_eq!(idp.state.token_requests.lock().unwrap().len(), before + 2);
}

#[tokio::test]
async fn a_refresh_of_a_bound_session_proves_the_same_key() {
    let idp = Idp::start(json!({})).await;
    let client = dpop_client(&idp).await;
    let key = DpopKey::generate().unwrap();
    issue_dpop(&idp, "DPoP");
    let original = jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]);
    client
        .refresh(
            &SecretString::new("rt"),
            "alice",
            &SecretString::new(original.clone()),
            Some(&key),
        )
        .await
        .expect("refreshed");
    assert_eq!(proof_claims(&idp, 0).0, key.thumbprint());
    issue_dpop(&idp, "bearer");
    let err = client
        .refresh(
            &SecretString::new("rt"),
            "alice",
            &SecretString::new(original),
            Some(&key),
        )
        .await
        .unwrap_err();
    assert!(
        !err.ends_session(),
        "an unbound answer is the IdP's fault: {err}"
    );
}

#[tokio::test]
async fn an_idp_without_es256_proofs_refuses_to_start() {
    let idp = Idp::start(json!({"dpop_signing_alg_values_supported": ["PS256"]})).await;
    let mut config = idp.config(ClientAuth::ClientSecretBasic);
    config.dpop = true;
    let clock: Arc<dyn Clock> = idp.clock.clone();
    let Err(err) = OidcClient::discover(
        &config,
        Url::parse("https://app.example/bff/callback").unwrap(),
        clock,
        &crate::outbound::Outbound::load(&Default::default()).unwrap(),
    )
    .await
    else {
        panic!("ES256 is required");
    };
    assert!(err.is_misconfiguration());
    assert!(err.to_string().contains("ES256"), "{err}");
}
