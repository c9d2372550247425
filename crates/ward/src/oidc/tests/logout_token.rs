//! `OidcClient::validate_logout_token` against the in-process IdP: the issuer and client id
//! come from discovery, and an unknown `kid` refetches the JWKS as for ID tokens
//! (SECURITY-CASES O-06, O-07, RL-03).

use super::*;

fn logout_claims(idp: &Idp) -> Value {
    let now = idp.clock.now();
    json!({
        "iss": idp.state.issuer, "aud": CLIENT_ID, "sub": "alice", "sid": "idp-session-1",
        "iat": now, "exp": now + 120, "jti": "jti-1",
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    })
}

fn logout_header(kid: &str) -> Value {
    json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid})
}

#[tokio::test]
async fn logout_token_of_the_discovered_issuer_for_this_client_is_accepted() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let token = jwt(&logout_header("idp-key"), &logout_claims(&idp), &KEYS[0]);
    let logout = client.validate_logout_token(&token).await.expect("valid");
    assert_eq!(logout.sub.as_deref(), Some("alice"));
    assert_eq!(logout.sid.as_deref(), Some("idp-session-1"));

    let mut other_issuer = logout_claims(&idp);
    other_issuer["iss"] = json!(format!("{}/", idp.state.issuer));
    let token = jwt(&logout_header("idp-key"), &other_issuer, &KEYS[0]);
    assert!(matches!(
        client.validate_logout_token(&token).await,
        Err(LogoutTokenError::Issuer)
    ));
}

#[tokio::test]
async fn logout_token_signed_by_a_rotated_in_key_is_accepted_after_one_refetch() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.state
        .jwks
        .lock()
        .unwrap()
        .push(jwk(&KEYS[1], "next-key"));
    let token = jwt(&logout_header("next-key"), &logout_claims(&idp), &KEYS[1]);
    client
        .validate_logout_token(&token)
        .await
        .expect("key rotation is followed");
    client.validate_logout_token(&token).await.expect("cached");
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn logout_tokens_with_made_up_kids_refetch_at_most_once_per_interval() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    for n in 0..5 {
        let token = jwt(
            &logout_header(&format!("made-up-{n}")),
            &logout_claims(&idp),
            &KEYS[1],
        );
        assert!(matches!(
            client.validate_logout_token(&token).await,
            Err(LogoutTokenError::UnknownKey)
        ));
    }
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);
}
