//! The code exchange and ID-token validation (SECURITY-CASES C-05/C-06/C-11, T-01…T-11).

use super::*;

#[tokio::test]
async fn valid_id_token_yields_tokens_identity_and_merged_user_claims() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));

    let tokens = exchange(&client).await.expect("valid login");
    assert_eq!(tokens.sub, "alice");
    assert_eq!(tokens.sid.as_deref(), Some("idp-session-1"));
    assert_eq!(tokens.access_token.expose(), "opaque-access-token");
    assert_eq!(
        tokens.refresh_token.as_ref().map(SecretString::expose),
        Some("opaque-refresh-token")
    );
    assert_eq!(tokens.access_expires_at, Some(NOW + 300));
    assert_eq!(tokens.id_token.expose().split('.').count(), 3);
    let names: Vec<_> = tokens.claims.keys().cloned().collect();
    assert_eq!(names, ["auth_time", "email", "locale", "name", "sub"]);
    assert_eq!(
        tokens.claims["email"], "alice@example.test",
        "userinfo wins"
    );

    let requests = idp.state.token_requests.lock().unwrap();
    let (headers, body) = &requests[0];
    let sent = form(body);
    assert_eq!(sent["grant_type"], "authorization_code");
    assert_eq!(sent["code"], "the-code");
    assert_eq!(sent["code_verifier"], VERIFIER);
    assert_eq!(sent["redirect_uri"], "https://app.example/bff/callback");
    assert!(!sent.contains_key("client_secret"));
    let basic = headers["authorization"].to_str().unwrap();
    let decoded = STANDARD.decode(basic.trim_start_matches("Basic ")).unwrap();
    assert_eq!(decoded, format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes());
}

#[tokio::test]
async fn client_secret_post_puts_the_credentials_in_the_body() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client_with(ClientAuth::ClientSecretPost).await;
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
    exchange(&client).await.expect("valid login");

    let requests = idp.state.token_requests.lock().unwrap();
    let (headers, body) = &requests[0];
    assert!(!headers.contains_key("authorization"));
    let sent = form(body);
    assert_eq!(sent["client_id"], CLIENT_ID);
    assert_eq!(sent["client_secret"], CLIENT_SECRET);
}

#[tokio::test]
async fn tampered_signature_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let token = jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]);
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[10] ^= 1;
    idp.issue(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes)));
    assert_rejected_for(exchange(&client).await, "Signature verification failed");
}

#[tokio::test]
async fn foreign_key_carrying_the_idp_kid_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[1]));
    assert_rejected_for(exchange(&client).await, "Signature verification failed");
}

#[tokio::test]
async fn changed_payload_under_a_valid_signature_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let token = jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = idp.claims();
    claims["sub"] = json!("mallory");
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    idp.issue(parts.join("."));
    assert_rejected_for(exchange(&client).await, "Signature verification failed");
}

#[tokio::test]
async fn rotated_in_key_is_fetched_once_its_kid_appears() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 1);
    idp.state
        .jwks
        .lock()
        .unwrap()
        .push(jwk(&KEYS[1], "next-key"));
    idp.clock.advance(jwks::MIN_REFETCH_INTERVAL);
    idp.issue(jwt(&rs256("next-key"), &idp.claims(), &KEYS[1]));

    let tokens = exchange(&client).await.expect("key rotation is followed");
    assert_eq!(tokens.sub, "alice");
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);
    // The new key is now cached: no further fetch.
    exchange(&client).await.expect("cached key");
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn unknown_kid_refetches_at_most_once_per_interval() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.issue(jwt(&rs256("made-up"), &idp.claims(), &KEYS[1]));

    // The first unknown kid refetches at once (a rotation right after start is legitimate);
    // every further one within the interval is refused without another fetch.
    for _ in 0..5 {
        assert_invalid_id_token(exchange(&client).await);
    }
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 2);

    idp.clock.advance(jwks::MIN_REFETCH_INTERVAL);
    for _ in 0..5 {
        assert_invalid_id_token(exchange(&client).await);
    }
    assert_eq!(idp.state.jwks_fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn token_without_kid_verifies_against_a_single_key() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.issue(jwt(&json!({"alg": "RS256"}), &idp.claims(), &KEYS[0]));
    exchange(&client).await.expect("one key, no kid");
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    for aud in [
        json!("other-client"),
        json!([CLIENT_ID, "untrusted"]),
        json!([]),
    ] {
        let mut claims = idp.claims();
        claims["aud"] = aud;
        idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
        assert_rejected_for(exchange(&client).await, "audience");
    }
    let mut claims = idp.claims();
    claims.as_object_mut().unwrap().remove("aud");
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    assert!(exchange(&client).await.is_err());

    let mut claims = idp.claims();
    claims["aud"] = json!([CLIENT_ID]);
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    exchange(&client).await.expect("aud as a one-element array");
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let issuer = idp.state.issuer.clone();
    for iss in [
        json!("https://evil.example"),
        json!(format!("{issuer}/")),
        json!(issuer.to_uppercase()),
    ] {
        let mut claims = idp.claims();
        claims["iss"] = iss;
        idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
        assert_rejected_for(exchange(&client).await, "Invalid issuer");
    }
}

#[tokio::test]
async fn expiry_is_enforced_with_sixty_seconds_of_skew() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let mut claims = idp.claims();
    claims["iat"] = json!(NOW - 400);
    claims["exp"] = json!(NOW - 61);
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    let text = assert_invalid_id_token(exchange(&client).await);
    assert!(text.contains("Expired"), "{text}");

    claims["exp"] = json!(NOW - 30);
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    exchange(&client).await.expect("expiry within the skew");
}

#[tokio::test]
async fn issued_at_in_the_future_or_long_ago_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    for (iat, reason) in [(NOW + 61, "in the future"), (NOW - 7 * 24 * 3600, "older")] {
        let mut claims = idp.claims();
        claims["iat"] = json!(iat);
        claims["exp"] = json!(NOW + 3600);
        idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
        assert_rejected_for(exchange(&client).await, reason);
    }
}

#[tokio::test]
async fn wrong_or_missing_nonce_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let mut claims = idp.claims();
    claims["nonce"] = json!("nonce-of-another-login");
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    let text = assert_invalid_id_token(exchange(&client).await);
    assert!(text.contains("Invalid nonce"), "{text}");
    assert!(
        !text.contains(NONCE) && !text.contains("nonce-of-another-login"),
        "{text}"
    );

    claims.as_object_mut().unwrap().remove("nonce");
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    assert_invalid_id_token(exchange(&client).await);
}

#[tokio::test]
async fn login_without_a_stored_nonce_or_verifier_sends_nothing() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
    let empty = SecretString::default();
    let result = client
        .exchange_code("the-code", &SecretString::new(VERIFIER), &empty, None)
        .await;
    assert!(matches!(result, Err(OidcError::IncompleteLogin(_))));
    let result = client
        .exchange_code("the-code", &empty, &SecretString::new(NONCE), None)
        .await;
    assert!(matches!(result, Err(OidcError::IncompleteLogin(_))));
    assert!(idp.state.token_requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn foreign_authorized_party_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let mut claims = idp.claims();
    claims["azp"] = json!("other-client");
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    assert_rejected_for(exchange(&client).await, "azp");

    claims["azp"] = json!(CLIENT_ID);
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    exchange(&client).await.expect("azp naming this client");
}

#[tokio::test]
async fn unsigned_tokens_are_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let payload = URL_SAFE_NO_PAD.encode(idp.claims().to_string());
    for header in [
        json!({"alg": "none"}),
        json!({"alg": "NONE"}),
        json!({"typ": "JWT"}),
    ] {
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}"),
        ] {
            idp.issue(token);
            assert!(
                matches!(exchange(&client).await, Err(OidcError::InvalidIdToken(_))),
                "unsigned token accepted"
            );
        }
    }
}

#[tokio::test]
async fn hs256_keyed_with_the_client_secret_is_rejected() {
    let idp =
        Idp::start(json!({"id_token_signing_alg_values_supported": ["RS256", "HS256"]})).await;
    let client = idp.client().await;
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(idp.claims().to_string());
    let input = format!("{header}.{payload}");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, CLIENT_SECRET.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    idp.issue(format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref())));
    assert_rejected_for(exchange(&client).await, "alg is not allowed");
}

#[tokio::test]
async fn id_token_with_critical_or_key_bearing_headers_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    for name in ["crit", "jwk", "jku", "x5u", "x5c"] {
        let mut header = rs256("idp-key");
        header[name] = json!(["exp"]);
        idp.issue(jwt(&header, &idp.claims(), &KEYS[0]));
        assert_rejected_for(exchange(&client).await, &format!("refused `{name}` header"));
    }
}

#[tokio::test]
async fn logout_token_returned_as_id_token_is_rejected() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let header = json!({"alg": "RS256", "kid": "idp-key", "typ": "logout+jwt"});
    idp.issue(jwt(&header, &idp.claims(), &KEYS[0]));
    assert_rejected_for(exchange(&client).await, "unsupported JWT type");
}

#[tokio::test]
async fn userinfo_for_another_subject_fails_the_login() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    *idp.state.userinfo.lock().unwrap() = (
        StatusCode::OK,
        json!({"sub": "mallory", "email": "m@example.test"}),
    );
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
    let text = assert_invalid_id_token(exchange(&client).await);
    assert!(text.contains("userinfo sub"), "{text}");
}

#[tokio::test]
async fn failing_userinfo_keeps_the_id_token_claims() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    *idp.state.userinfo.lock().unwrap() =
        (StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"}));
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
    let tokens = exchange(&client).await.expect("login despite userinfo");
    assert_eq!(tokens.claims["email"], "alice@old.example.test");
}

#[tokio::test]
async fn without_userinfo_endpoint_the_id_token_claims_are_used() {
    let idp = Idp::start(json!({"userinfo_endpoint": null})).await;
    let client = idp.client().await;
    idp.issue(jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]));
    let tokens = exchange(&client).await.expect("valid login");
    assert!(!tokens.claims.contains_key("locale"));
}

#[tokio::test]
async fn token_type_is_case_insensitive_bearer_only() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let id_token = jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]);
    for (token_type, accepted) in [("bEaReR", true), ("mac", false), ("DPoP", false)] {
        idp.answer(
            StatusCode::OK,
            json!({"access_token": "at", "token_type": token_type, "id_token": id_token}),
        );
        let result = exchange(&client).await;
        assert_eq!(result.is_ok(), accepted, "token_type {token_type}");
    }
}

#[tokio::test]
async fn token_response_without_id_token_or_expiry_is_handled() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.answer(
        StatusCode::OK,
        json!({"access_token": "at", "token_type": "Bearer"}),
    );
    assert!(matches!(
        exchange(&client).await,
        Err(OidcError::IncompleteResponse("id_token"))
    ));

    let id_token = jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]);
    idp.answer(
        StatusCode::OK,
        json!({"access_token": "at", "token_type": "Bearer", "id_token": id_token}),
    );
    let tokens = exchange(&client).await.expect("no expires_in");
    assert_eq!(tokens.access_expires_at, None);
    assert!(tokens.refresh_token.is_none());
}

#[tokio::test]
async fn refused_code_is_a_token_request_error_without_the_code() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.answer(
        StatusCode::BAD_REQUEST,
        json!({"error": "invalid_grant", "error_description": "code the-code is spent"}),
    );
    let err = exchange(&client).await.unwrap_err();
    assert!(matches!(err, OidcError::TokenRequest(_)));
    assert!(err.idp_unavailable().is_none());
    let text = described(&err);
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(
        !text.contains("the-code") && !text.contains(VERIFIER),
        "{text}"
    );
}

#[tokio::test]
async fn idp_server_error_is_reported_as_unavailable() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.answer(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error": "server_error"}),
    );
    let err = exchange(&client).await.unwrap_err();
    assert!(matches!(err, OidcError::TokenRequest(_)));
    assert!(err.idp_unavailable().is_some());
    assert!(!err.is_timeout());
}

#[tokio::test]
async fn malformed_token_response_never_shows_its_tokens() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let id_token = jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]);
    idp.answer(
        StatusCode::OK,
        json!({
            "access_token": "secret-access-token", "token_type": "Bearer",
            "expires_in": "secret-in-a-wrong-place", "id_token": id_token,
        }),
    );
    let err = exchange(&client).await.unwrap_err();
    assert!(matches!(err, OidcError::TokenRequest(_)));
    let text = described(&err);
    for secret in [
        "secret-access-token",
        "secret-in-a-wrong-place",
        id_token.as_str(),
    ] {
        assert!(!text.contains(secret), "{text}");
    }
    assert!(text.contains("expires_in"), "{text}");
}

#[tokio::test]
async fn unparseable_id_token_is_an_invalid_id_token() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.issue("a.b.c.d".to_owned());
    assert_invalid_id_token(exchange(&client).await);
}
