//! The JWKS is refetched on schedule (its `max-age`, bounded; an hour without one), so a key the
//! IdP withdraws stops validating ID and logout tokens; time is the manual clock's.

use super::*;

/// The IdP replaces its published keys with `next-key` alone: `idp-key` is withdrawn.
fn withdraw_the_first_key(idp: &Idp) {
    *idp.state.jwks.lock().unwrap() = vec![jwk(&KEYS[1], "next-key")];
}

fn logout_token(idp: &Idp, kid: &str, key: &RsaKeyPair) -> String {
    let now = idp.clock.now();
    let claims = json!({
        "iss": idp.state.issuer, "aud": CLIENT_ID, "sub": "alice", "iat": now,
        "exp": now + 120, "jti": format!("jti-{now}"),
        "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    jwt(
        &json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid}),
        &claims,
        key,
    )
}

#[tokio::test]
async fn a_withdrawn_key_is_refused_once_the_default_max_age_has_passed() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    withdraw_the_first_key(&idp);

    // Within the hour the cached set still holds the key (no fetch per token).
    idp.clock.advance(jwks::DEFAULT_MAX_AGE - 1);
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
    exchange(&client).await.expect("keys still fresh");
    assert!(
        client
            .validate_logout_token(&logout_token(&idp, "idp-key", &KEYS[0]))
            .await
            .is_ok()
    );
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 1);

    idp.clock.advance(1);
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
    assert_invalid_id_token(exchange(&client).await);
    assert!(matches!(
        client
            .validate_logout_token(&logout_token(&idp, "idp-key", &KEYS[0]))
            .await,
        Err(LogoutTokenError::UnknownKey)
    ));
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);

    // The key that replaced it works, from the set just fetched.
    idp.issue(jwt(&rs256("next-key"), &idp.claims(), &KEYS[1]));
    exchange(&client).await.expect("the current key");
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_jwks_max_age_sets_the_refresh_interval() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    *idp.state.jwks_cache_control.lock().unwrap() = Some("public, max-age=600".to_owned());
    // The set loaded at discovery lives for the default hour; its refetch learns the max-age.
    idp.clock.advance(jwks::DEFAULT_MAX_AGE);
    let token = logout_token(&idp, "idp-key", &KEYS[0]);
    client.validate_logout_token(&token).await.expect("valid");
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);

    withdraw_the_first_key(&idp);
    idp.clock.advance(599);
    let token = logout_token(&idp, "idp-key", &KEYS[0]);
    client
        .validate_logout_token(&token)
        .await
        .expect("fresh for 600 s");
    idp.clock.advance(1);
    let token = logout_token(&idp, "idp-key", &KEYS[0]);
    assert!(matches!(
        client.validate_logout_token(&token).await,
        Err(LogoutTokenError::UnknownKey)
    ));
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_tiny_max_age_is_raised_to_the_minimum() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    *idp.state.jwks_cache_control.lock().unwrap() = Some("max-age=0".to_owned());
    idp.clock.advance(jwks::DEFAULT_MAX_AGE);
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
    exchange(&client).await.expect("valid");
    for _ in 0..3 {
        idp.clock.advance(60);
        idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
        exchange(&client).await.expect("valid");
    }
    assert_eq!(
        idp.state.jwks_fetches.load(Ordering::SeqCst),
        2,
        "no refetch within the {}s minimum",
        jwks::MIN_MAX_AGE
    );
}

#[tokio::test]
async fn a_failed_scheduled_refetch_keeps_the_keys_and_is_retried_after_the_interval() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.state.jwks_down.store(true, Ordering::SeqCst);
    idp.clock.advance(jwks::DEFAULT_MAX_AGE);
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
    exchange(&client).await.expect("previous keys kept");
    exchange(&client).await.expect("previous keys kept");
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);

    idp.state.jwks_down.store(false, Ordering::SeqCst);
    idp.clock.advance(jwks::MIN_REFETCH_INTERVAL);
    exchange(&client).await.expect("refetched");
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn readiness_follows_the_jwks_endpoint() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.state.jwks_down.store(true, Ordering::SeqCst);
    assert!(!client.idp_ready().await);
    idp.state.jwks_down.store(false, Ordering::SeqCst);
    assert!(!client.idp_ready().await, "the answer is cached");
    idp.clock.advance(jwks::PROBE_INTERVAL);
    assert!(client.idp_ready().await);
}

#[tokio::test]
async fn readiness_probes_the_jwks_at_most_once_per_interval() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    assert!(client.idp_ready().await);
    assert!(client.idp_ready().await);
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);
    idp.clock.advance(jwks::PROBE_INTERVAL);
    assert!(client.idp_ready().await);
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 3);
}
