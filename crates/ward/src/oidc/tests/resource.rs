//! RFC 8707 on the IdP side: the resources in the authorization request, and the refresh
//! grant with `resource`.

use super::*;

const ORDERS: &str = "https://orders.example";
const BILLING: &str = "urn:example:billing";

#[tokio::test]
async fn the_authorization_request_names_each_resource_once_as_written() {
    let idp = Idp::start(json!({})).await;
    let client = idp
        .client()
        .await
        .with_resources([ORDERS, BILLING, ORDERS].map(str::to_owned));
    assert_eq!(client.resources(), [ORDERS, BILLING]);
    let request = client.authorization_request(None).await.unwrap();
    assert_eq!(query(&request.url)["resource"], [ORDERS, BILLING]);

    let without = idp
        .client()
        .await
        .authorization_request(None)
        .await
        .unwrap();
    assert!(!query(&without.url).contains_key("resource"));
}

#[tokio::test]
async fn a_resource_token_is_a_refresh_grant_naming_the_resource() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    idp.answer(
        StatusCode::OK,
        json!({
            "access_token": "orders-token", "token_type": "Bearer", "expires_in": 120,
            "refresh_token": "rotated-refresh-token",
            "id_token": jwt(&rs256("idp-key"), &idp.claims(), &KEYS[0]),
        }),
    );
    let tokens = client
        .resource_token(&SecretString::new("the-refresh-token"), ORDERS)
        .await
        .unwrap();
    assert_eq!(tokens.access_token.expose(), "orders-token");
    assert_eq!(
        tokens.refresh_token.unwrap().expose(),
        "rotated-refresh-token"
    );
    assert_eq!(tokens.expires_in, Some(120));

    let requests = idp.state.token_requests.lock().unwrap();
    let sent = form(&requests[0].1);
    assert_eq!(sent["grant_type"], "refresh_token");
    assert_eq!(sent["refresh_token"], "the-refresh-token");
    assert_eq!(sent["resource"], ORDERS);
    assert!(
        !sent.contains_key("scope"),
        "the grant's scopes, narrowed by the IdP"
    );
    assert!(
        requests[0].0.contains_key("authorization"),
        "client authentication"
    );
}

#[tokio::test]
async fn refusals_are_told_apart_and_carry_no_token() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let cases = [
        ("invalid_target", true, false),
        ("invalid_scope", true, false),
        ("invalid_grant", false, true),
        ("server_error", false, false),
    ];
    for (code, target, grant) in cases {
        idp.answer(StatusCode::BAD_REQUEST, json!({ "error": code }));
        let err = client
            .resource_token(&SecretString::new("the-refresh-token"), ORDERS)
            .await
            .unwrap_err();
        assert_eq!(err.is_invalid_target(), target, "{code}");
        assert_eq!(err.is_invalid_grant(), grant, "{code}");
        assert!(!described(&err).contains("the-refresh-token"));
    }
    idp.answer(
        StatusCode::OK,
        json!({ "access_token": "t", "token_type": "DPoP", "expires_in": 60 }),
    );
    let err = client
        .resource_token(&SecretString::new("the-refresh-token"), ORDERS)
        .await
        .unwrap_err();
    assert!(matches!(err, OidcError::IncompleteResponse(_)), "{err}");
}

#[tokio::test]
async fn token_exchange_sends_the_subject_token_for_one_resource_and_checks_the_answer() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let access = "urn:ietf:params:oauth:token-type:access_token";
    idp.answer(
        StatusCode::OK,
        json!({
            "access_token": "orders-token", "issued_token_type": access,
            "token_type": "Bearer", "expires_in": 60, "refresh_token": "not-kept",
        }),
    );
    let subject = SecretString::new("the-access-token");
    let tokens = client.exchange_token(&subject, ORDERS).await.unwrap();
    assert_eq!(tokens.access_token.expose(), "orders-token");
    assert!(tokens.refresh_token.is_none());
    assert_eq!(tokens.expires_in, Some(60));
    {
        let requests = idp.state.token_requests.lock().unwrap();
        let (headers, body) = &requests[0];
        let sent = form(body);
        assert_eq!(
            sent["grant_type"],
            "urn:ietf:params:oauth:grant-type:token-exchange"
        );
        assert_eq!(sent["subject_token"], "the-access-token");
        assert_eq!(sent["subject_token_type"], access);
        assert_eq!(sent["requested_token_type"], access);
        assert_eq!(sent["resource"], ORDERS);
        assert!(
            headers.contains_key("authorization"),
            "client authentication"
        );
    }

    for (answer, what) in [
        (
            json!({"access_token": "t", "issued_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_type": "Bearer"}),
            "issued_token_type",
        ),
        (
            json!({"access_token": "t", "issued_token_type": access, "token_type": "N_A"}),
            "token_type",
        ),
        (
            json!({"access_token": "", "issued_token_type": access, "token_type": "Bearer"}),
            "access_token",
        ),
    ] {
        idp.answer(StatusCode::OK, answer);
        let err = client.exchange_token(&subject, ORDERS).await.unwrap_err();
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
    idp.answer(StatusCode::BAD_REQUEST, json!({"error": "invalid_target"}));
    let err = client.exchange_token(&subject, ORDERS).await.unwrap_err();
    assert!(err.is_invalid_target());
    assert!(!described(&err).contains("the-access-token"));
}
