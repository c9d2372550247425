//! `OidcClient::refresh` against the in-process IdP: what a refresh answer's ID token must and
//! need not satisfy (OpenID Connect Core §12.2).

use super::*;

/// Logs in at `NOW` with an ID token valid for an hour; returns the raw ID token.
async fn logged_in(idp: &Idp, client: &OidcClient) -> String {
    let mut claims = idp.claims();
    claims["exp"] = json!(NOW + 3600);
    let id_token = jwt(&rs256("idp-key"), &claims, &KEYS[0]);
    idp.issue(id_token.clone());
    exchange(client).await.expect("login");
    id_token
}

async fn refresh(client: &OidcClient, original: &str) -> Result<RefreshedTokens, OidcError> {
    client
        .refresh(
            &SecretString::new("opaque-refresh-token"),
            "alice",
            &SecretString::new(original),
            None,
        )
        .await
}

#[tokio::test]
async fn refresh_answer_carrying_the_original_id_token_keeps_the_session() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let original = logged_in(&idp, &client).await;

    // Twenty minutes later the IdP answers the refresh with the login's ID token (old `iat`,
    // `exp` still ahead): valid by §12.2, so the refresh succeeds.
    idp.clock.advance(20 * 60);
    idp.issue(original.clone());
    let tokens = refresh(&client, &original)
        .await
        .expect("the original ID token is fine");
    assert_eq!(
        tokens.id_token.as_ref().map(SecretString::expose),
        Some(original.as_str())
    );
}

#[tokio::test]
async fn refreshed_id_token_must_still_be_unexpired_for_this_subject() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let original = logged_in(&idp, &client).await;

    idp.clock.advance(3600 + CLOCK_SKEW_FOR_TESTS);
    idp.issue(original.clone());
    let err = refresh(&client, &original)
        .await
        .expect_err("expired ID token");
    assert!(err.ends_session(), "{err}");

    let mut claims = idp.claims();
    claims["sub"] = json!("mallory");
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    let err = refresh(&client, &original)
        .await
        .expect_err("another subject");
    assert!(err.ends_session(), "{err}");
}

#[tokio::test]
async fn refreshed_id_token_issued_in_the_future_is_refused() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let original = logged_in(&idp, &client).await;

    let mut claims = idp.claims();
    claims["iat"] = json!(NOW + 3600);
    claims["exp"] = json!(NOW + 7200);
    idp.issue(jwt(&rs256("idp-key"), &claims, &KEYS[0]));
    let err = refresh(&client, &original)
        .await
        .expect_err("iat in the future");
    assert!(err.ends_session(), "{err}");
}

#[tokio::test]
async fn refreshed_id_token_must_keep_the_logins_audiences_and_nonce() {
    let idp = Idp::start(json!({})).await;
    let client = idp.client().await;
    let original = logged_in(&idp, &client).await;
    let fresh = |change: &dyn Fn(&mut serde_json::Value)| {
        let mut claims = idp.claims();
        claims["exp"] = json!(NOW + 3600);
        change(&mut claims);
        jwt(&rs256("idp-key"), &claims, &KEYS[0])
    };

    // A new ID token of the same login (new iat, no nonce) is fine; so is the login's nonce.
    idp.issue(fresh(&|c| {
        c.as_object_mut().unwrap().remove("nonce");
    }));
    refresh(&client, &original)
        .await
        .expect("same login, no nonce");
    let login_nonce = idp.claims()["nonce"].clone();
    idp.issue(fresh(&|c| c["nonce"] = login_nonce.clone()));
    refresh(&client, &original)
        .await
        .expect("same login, its nonce");

    idp.issue(fresh(&|c| c["nonce"] = json!("another-nonce")));
    let err = refresh(&client, &original)
        .await
        .expect_err("nonce changed");
    assert!(err.ends_session(), "{err}");

    idp.issue(fresh(&|c| {
        c["aud"] = json!([c["aud"].clone(), "another-client"]);
        c["azp"] = c["aud"][0].clone();
    }));
    let err = refresh(&client, &original)
        .await
        .expect_err("audiences changed");
    assert!(err.ends_session(), "{err}");
}

/// More than the ID-token clock skew (60 s).
const CLOCK_SKEW_FOR_TESTS: u64 = 61;
