//! The client-credentials token cache with a manual clock and a counting fake IdP.

use std::pin::pin;
use std::sync::atomic::AtomicUsize;

use futures_util::future::join_all;
use futures_util::poll;
use ward_store::ManualClock;

use super::*;

const NOW: u64 = 1_700_000_000;

fn cache(skew: u64) -> (ClientTokens, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NOW));
    let tokens = ClientTokens::new(clock.clone(), Duration::from_secs(skew));
    (tokens, clock)
}

fn issued(token: &str, expires_in: Option<u64>) -> Result<IssuedToken, OidcError> {
    Ok(IssuedToken {
        access_token: SecretString::new(token),
        expires_in,
    })
}

fn refused() -> Result<IssuedToken, OidcError> {
    Err(OidcError::TokenRequest(Box::new(EndpointError::Refused(
        "invalid_client".to_owned(),
    ))))
}

#[tokio::test]
async fn a_token_is_reused_until_its_expiry_minus_the_skew() {
    let (tokens, clock) = cache(60);
    let calls = AtomicUsize::new(0);
    let fetch = |name: &'static str| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { issued(name, Some(300)) }
    };
    let first = tokens.get_or_fetch("a", || fetch("t1")).await.unwrap();
    clock.advance(239);
    let again = tokens.get_or_fetch("a", || fetch("t2")).await.unwrap();
    assert_eq!((first.expose(), again.expose()), ("t1", "t1"));
    clock.advance(1);
    let renewed = tokens.get_or_fetch("a", || fetch("t2")).await.unwrap();
    assert_eq!(renewed.expose(), "t2");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn short_lived_tokens_give_up_at_most_half_their_lifetime() {
    let (tokens, clock) = cache(60);
    tokens
        .get_or_fetch("a", || async { issued("t1", Some(30)) })
        .await
        .unwrap();
    clock.advance(14);
    let kept = tokens
        .get_or_fetch("a", || async { issued("t2", Some(30)) })
        .await
        .unwrap();
    assert_eq!(kept.expose(), "t1");
    clock.advance(1);
    let renewed = tokens
        .get_or_fetch("a", || async { issued("t2", Some(30)) })
        .await
        .unwrap();
    assert_eq!(renewed.expose(), "t2");
}

#[tokio::test]
async fn a_token_without_expires_in_is_reused_for_a_bounded_time() {
    let (tokens, clock) = cache(60);
    tokens
        .get_or_fetch("a", || async { issued("t1", None) })
        .await
        .unwrap();
    clock.advance(LIFETIME_WITHOUT_EXPIRES_IN - 60);
    let renewed = tokens
        .get_or_fetch("a", || async { issued("t2", None) })
        .await
        .unwrap();
    assert_eq!(renewed.expose(), "t2");
}

#[tokio::test]
async fn each_scope_set_has_its_own_token() {
    let (tokens, _) = cache(60);
    let a = tokens
        .get_or_fetch("api:read", || async { issued("read", Some(300)) })
        .await
        .unwrap();
    let b = tokens
        .get_or_fetch("api:write", || async { issued("write", Some(300)) })
        .await
        .unwrap();
    assert_eq!((a.expose(), b.expose()), ("read", "write"));
}

#[test]
fn scope_sets_are_normalised_so_order_and_repeats_do_not_matter() {
    let scopes = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        normalise(&scopes(&["b", "a", " ", "b"])),
        normalise(&scopes(&["a", "b"]))
    );
    assert_eq!(normalise(&scopes(&["b", "a"])).join(" "), "a b");
    assert!(normalise(&[]).is_empty());
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let (tokens, _) = cache(60);
    let calls = AtomicUsize::new(0);
    let (release, released) = tokio::sync::watch::channel(false);
    let fetch = || {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut released = released.clone();
        async move {
            released.wait_for(|go| *go).await.unwrap();
            issued("shared", Some(300))
        }
    };
    let mut waiters = pin!(join_all((0..20).map(|_| tokens.get_or_fetch("a", fetch))));
    // One poll brings every caller to the slot: one fetching, the others waiting.
    assert!(poll!(waiters.as_mut()).is_pending());
    release.send(true).unwrap();
    let results = waiters.await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(
        results
            .iter()
            .all(|r| r.as_ref().unwrap().expose() == "shared")
    );
}

#[tokio::test]
async fn callers_waiting_on_a_failed_fetch_fail_without_fetching_again() {
    let (tokens, _) = cache(60);
    let calls = AtomicUsize::new(0);
    let (release, released) = tokio::sync::watch::channel(false);
    let fetch = || {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut released = released.clone();
        async move {
            released.wait_for(|go| *go).await.unwrap();
            refused()
        }
    };
    let mut waiters = pin!(join_all((0..5).map(|_| tokens.get_or_fetch("a", fetch))));
    assert!(poll!(waiters.as_mut()).is_pending());
    release.send(true).unwrap();
    let results = waiters.await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(matches!(results[0], Err(ClientTokenError::Fetch(_))));
    assert!(
        results[1..]
            .iter()
            .all(|r| matches!(r, Err(ClientTokenError::Shared)))
    );
    // A later caller tries again, and a recovered IdP serves it.
    let recovered = tokens
        .get_or_fetch("a", || async { issued("back", Some(300)) })
        .await
        .unwrap();
    assert_eq!(recovered.expose(), "back");
}

#[tokio::test]
async fn an_abandoned_fetch_leaves_the_next_caller_to_fetch() {
    let (tokens, _) = cache(60);
    assert!(
        tokens
            .get_or_fetch("a", || async { refused() })
            .await
            .is_err()
    );
    {
        let mut abandoned = pin!(tokens.get_or_fetch("a", std::future::pending));
        assert!(poll!(abandoned.as_mut()).is_pending());
    }
    let next = tokens
        .get_or_fetch("a", || async { issued("t", Some(300)) })
        .await
        .unwrap();
    assert_eq!(next.expose(), "t");
}

/// A token endpoint (behind a minimal discovery document) that records each request and
/// answers with a fixed status and body.
struct TokenEndpoint {
    issuer: String,
    seen: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>,
}

impl TokenEndpoint {
    async fn start(status: u16, body: serde_json::Value) -> Self {
        use axum::routing::{get, post};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let discovery = serde_json::json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        let seen: Arc<Mutex<Vec<_>>> = Arc::default();
        let record = Arc::clone(&seen);
        let status = axum::http::StatusCode::from_u16(status).unwrap();
        let router = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/jwks",
                get(|| async { axum::Json(serde_json::json!({"keys": []})) }),
            )
            .route(
                "/token",
                post(
                    move |headers: axum::http::HeaderMap, form: String| async move {
                        record.lock().unwrap().push((headers, form));
                        (status, axum::Json(body))
                    },
                ),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { issuer, seen }
    }

    async fn client(&self, client_auth: crate::config::ClientAuth) -> OidcClient {
        let config = crate::config::OidcConfig {
            issuer: url::Url::parse(&self.issuer).unwrap(),
            client_id: "bff".to_owned(),
            client_secret: SecretString::new("bff-secret"),
            client_auth,
            scopes: vec!["openid".to_owned()],
            extra_auth_params: Default::default(),
            refresh_skew: Duration::from_secs(60),
            private_key_file: None,
            private_key_id: None,
            client_cert: None,
            client_key: None,
            par: Default::default(),
            dpop: false,
        };
        OidcClient::discover(
            &config,
            url::Url::parse("https://app.example/bff/callback").unwrap(),
            Arc::new(ManualClock::new(NOW)),
            &crate::outbound::Outbound::load(&Default::default()).unwrap(),
        )
        .await
        .expect("discovery")
    }

    fn only_request(&self) -> (axum::http::HeaderMap, Vec<(String, String)>) {
        let seen = self.seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (headers, form) = &seen[0];
        let fields = url::form_urlencoded::parse(form.as_bytes())
            .into_owned()
            .collect();
        (headers.clone(), fields)
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn the_grant_is_sent_with_basic_auth_and_the_scopes() {
    let idp = TokenEndpoint::start(
        200,
        serde_json::json!({"access_token": "cc-token", "token_type": "bearer", "expires_in": 120}),
    )
    .await;
    let client = idp
        .client(crate::config::ClientAuth::ClientSecretBasic)
        .await;
    let issued = client
        .client_credentials_token(&["api:read".to_owned(), "api:write".to_owned()])
        .await
        .unwrap();
    assert_eq!(issued.access_token.expose(), "cc-token");
    assert_eq!(issued.expires_in, Some(120));
    let (headers, fields) = idp.only_request();
    assert_eq!(field(&fields, "grant_type"), Some("client_credentials"));
    assert_eq!(field(&fields, "scope"), Some("api:read api:write"));
    assert_eq!(field(&fields, "client_secret"), None);
    let basic = headers.get("authorization").unwrap().to_str().unwrap();
    assert!(basic.starts_with("Basic "), "client_secret_basic");
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_body_and_no_scope_when_none() {
    let idp = TokenEndpoint::start(
        200,
        serde_json::json!({"access_token": "cc-token", "token_type": "Bearer"}),
    )
    .await;
    let client = idp
        .client(crate::config::ClientAuth::ClientSecretPost)
        .await;
    let issued = client.client_credentials_token(&[]).await.unwrap();
    assert_eq!(issued.expires_in, None);
    let (headers, fields) = idp.only_request();
    assert!(headers.get("authorization").is_none());
    assert_eq!(field(&fields, "client_id"), Some("bff"));
    assert_eq!(field(&fields, "client_secret"), Some("bff-secret"));
    assert_eq!(field(&fields, "scope"), None);
}

#[tokio::test]
async fn only_bearer_tokens_are_accepted() {
    let idp = TokenEndpoint::start(
        200,
        serde_json::json!({"access_token": "cc-token", "token_type": "DPoP", "expires_in": 60}),
    )
    .await;
    let client = idp
        .client(crate::config::ClientAuth::ClientSecretBasic)
        .await;
    let err = client.client_credentials_token(&[]).await.err().unwrap();
    assert!(
        matches!(err, OidcError::IncompleteResponse("a bearer token_type")),
        "{err:?}"
    );
}

#[tokio::test]
async fn idp_errors_keep_no_description() {
    let idp = TokenEndpoint::start(
        400,
        serde_json::json!({"error": "invalid_scope", "error_description": "secret detail"}),
    )
    .await;
    let client = idp
        .client(crate::config::ClientAuth::ClientSecretBasic)
        .await;
    let err = client.client_credentials_token(&[]).await.err().unwrap();
    let text = chain(&err);
    assert!(
        text.ends_with("IdP refused the request: invalid_scope"),
        "{text}"
    );
    assert!(!format!("{text} {err:?}").contains("secret detail"));
}

#[test]
fn errors_name_the_oauth_code_at_most() {
    let err = ClientTokenError::Fetch(refused().err().unwrap());
    assert_eq!(err.to_string(), "client-credentials token request failed");
    assert_eq!(
        chain(&err),
        "client-credentials token request failed: token request failed: \
         IdP refused the request: invalid_client"
    );
}
