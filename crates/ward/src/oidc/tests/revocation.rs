//! RFC 7009 revocation, and the futures being `Send` for axum handlers.

use super::*;

#[tokio::test]
async fn refresh_token_is_revoked_with_hint_and_client_auth() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    client
        .revoke_refresh_token(&SecretString::new("the-refresh-token"))
        .await
        .expect("revoked");
    let revocations = idp.state.revocations.lock().unwrap();
    let (headers, body) = &revocations[0];
    let sent = form(body);
    assert_eq!(sent["token"], "the-refresh-token");
    assert_eq!(sent["token_type_hint"], "refresh_token");
    assert!(
        headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
}

#[tokio::test]
async fn revocation_without_an_endpoint_is_a_no_op() {
    let idp = Idp::start(json!({"revocation_endpoint": null})).await;
    let client = idp.client().await;
    client
        .revoke_refresh_token(&SecretString::new("rt"))
        .await
        .expect("nothing to do");
    assert!(idp.state.revocations.lock().unwrap().is_empty());
}

#[test]
fn client_futures_can_cross_threads() {
    fn send<T: Send>(_: &T) {}
    #[allow(dead_code)]
    fn check(client: &OidcClient, secret: &SecretString, key: &crate::oidc::dpop::DpopKey) {
        send(&client.exchange_code("", secret, secret, Some(key)));
        send(&client.refresh(secret, "", secret, Some(key)));
        send(&client.revoke_refresh_token(secret));
        send(&client.authorization_request(None));
    }
}
