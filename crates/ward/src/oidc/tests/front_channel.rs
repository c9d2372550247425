//! The authorization request, discovery, the RFC 9207 `iss` check and the end-session URL.

use super::*;

#[tokio::test]
async fn authorization_url_carries_s256_challenge_state_nonce_scopes_and_prompt() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let request = client.authorization_request(Some("consent")).await.unwrap();

    assert!(
        request
            .url
            .as_str()
            .starts_with(&format!("{}/auth?", idp.state.issuer))
    );
    let params = query(&request.url);
    let one = |name: &str| -> &str {
        let values = &params[name];
        assert_eq!(values.len(), 1, "{name} appears once");
        &values[0]
    };
    let verifier = request.pkce_verifier.expose();
    assert_eq!(verifier.len(), 43);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    assert_eq!(
        one("code_challenge"),
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    );
    assert_eq!(one("code_challenge_method"), "S256");
    assert_eq!(one("response_type"), "code");
    assert_eq!(one("client_id"), CLIENT_ID);
    assert_eq!(one("redirect_uri"), "https://app.example/bff/callback");
    assert_eq!(one("scope"), "openid email offline_access");
    assert_eq!(one("state"), request.state.expose());
    assert_eq!(one("nonce"), request.nonce.expose());
    assert_eq!(one("prompt"), "consent");
    assert_eq!(one("audience"), "api");
    assert_eq!(request.state.expose().len(), 43);
    assert_eq!(request.nonce.expose().len(), 43);
    assert!(!request.url.as_str().contains(verifier));
    assert!(!request.url.as_str().contains(CLIENT_SECRET));
}

#[tokio::test]
async fn authorization_requests_never_repeat_a_secret() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let request = client.authorization_request(None).await.unwrap();
        assert!(!query(&request.url).contains_key("prompt"));
        for value in [request.state, request.nonce, request.pkce_verifier] {
            assert!(seen.insert(value.expose().to_owned()));
        }
    }
}

#[tokio::test]
async fn unsupported_prompt_is_dropped() {
    let idp = Idp::start(json!({})).await;
    let request = idp
        .client()
        .await
        .authorization_request(Some("login consent&x=y"))
        .await
        .unwrap();
    assert!(!query(&request.url).contains_key("prompt"));
    assert!(!query(&request.url).contains_key("x"));
}

#[tokio::test]
async fn s256_is_sent_even_when_the_idp_does_not_advertise_it() {
    let idp = Idp::start(json!({"code_challenge_methods_supported": ["plain"]})).await;
    let request = idp
        .client()
        .await
        .authorization_request(None)
        .await
        .unwrap();
    assert_eq!(query(&request.url)["code_challenge_method"], ["S256"]);
}

#[tokio::test]
async fn discovery_refuses_a_document_for_another_issuer() {
    let idp = Idp::start(json!({"issuer": "https://evil.example"})).await;
    let clock: Arc<dyn Clock> = idp.clock.clone();
    let result = OidcClient::discover(
        &idp.config(ClientAuth::ClientSecretBasic),
        Url::parse("https://app.example/bff/callback").unwrap(),
        clock,
        &crate::outbound::Outbound::load(&Default::default()).unwrap(),
    )
    .await;
    assert!(matches!(result, Err(OidcError::Discovery(_))));
}

#[tokio::test]
async fn discovery_refuses_a_document_whose_issuer_differs_by_case() {
    let idp = Idp::start(json!({})).await;
    let shouted = idp.state.issuer.replace("http://", "HTTP://");
    idp.state.discovery.lock().unwrap()["issuer"] = json!(shouted);
    let clock: Arc<dyn Clock> = idp.clock.clone();
    let result = OidcClient::discover(
        &idp.config(ClientAuth::ClientSecretBasic),
        Url::parse("https://app.example/bff/callback").unwrap(),
        clock,
        &crate::outbound::Outbound::load(&Default::default()).unwrap(),
    )
    .await;
    assert!(matches!(result, Err(OidcError::Discovery(_))));
}

#[tokio::test]
async fn response_issuer_is_checked_as_rfc_9207_says() {
    let advertising = Idp::start(json!({})).await;
    let silent = Idp::start(json!({"authorization_response_iss_parameter_supported": null})).await;
    for (idp, required) in [(&advertising, true), (&silent, false)] {
        let client = idp.client().await;
        let issuer = idp.state.issuer.as_str();
        let cases: [(Option<String>, bool); 6] = [
            (Some(issuer.to_owned()), true),
            (None, !required),
            (Some(format!("{issuer}/")), false),
            (Some(issuer.to_uppercase()), false),
            (Some("https://evil.example".to_owned()), false),
            (Some(String::new()), false),
        ];
        for (iss, accepted) in cases {
            assert_eq!(
                client.check_response_issuer(iss.as_deref()).is_ok(),
                accepted,
                "iss {iss:?} with advertisement {required}"
            );
        }
    }
}

#[tokio::test]
async fn end_session_url_names_client_redirect_state_and_hint_only_when_given() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let back = Url::parse("https://app.example/").unwrap();
    let hint = SecretString::new("the.id.token");

    let url = client.end_session_url(Some(&hint), &back, "st4te").unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/session/end?", idp.state.issuer))
    );
    let params = query(&url);
    assert_eq!(params["id_token_hint"], ["the.id.token"]);
    assert_eq!(params["client_id"], [CLIENT_ID]);
    assert_eq!(params["post_logout_redirect_uri"], ["https://app.example/"]);
    assert_eq!(params["state"], ["st4te"]);

    let url = client.end_session_url(None, &back, "st4te").unwrap();
    assert!(!query(&url).contains_key("id_token_hint"));
}

#[tokio::test]
async fn end_session_url_is_none_without_an_endpoint() {
    let idp = Idp::start(json!({"end_session_endpoint": null})).await;
    let back = Url::parse("https://app.example/").unwrap();
    assert!(
        idp.client()
            .await
            .end_session_url(None, &back, "s")
            .is_none()
    );
}
