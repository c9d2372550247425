//! The client against an in-process IdP on 127.0.0.1:0 that serves discovery, a JWKS, token,
//! userinfo and revocation endpoints, and signs ID tokens with test RSA keys.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use url::Url;
use ward_store::{Clock, ManualClock};

use super::*;

mod client_auth;
mod dpop;
mod exchange;
mod front_channel;
mod jwks_schedule;
mod logout_token;
mod logout_token_rules;
mod mtls;
mod refresh;
mod resource;
mod revocation;

const NOW: u64 = 1_700_000_000;
const CLIENT_ID: &str = "bff";
const CLIENT_SECRET: &str = "bff-secret";
const NONCE: &str = "nonce-of-this-login";
const VERIFIER: &str = "verifier-of-this-login-0123456789abcdefghij";

/// Two signing keys: the IdP's, and another (an attacker's, or the next rotation's).
static KEYS: LazyLock<[RsaKeyPair; 2]> = LazyLock::new(|| {
    [
        RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
        RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
    ]
});

fn jwk(key: &RsaKeyPair, kid: &str) -> Value {
    let public = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n), "e": URL_SAFE_NO_PAD.encode(public.e),
    })
}

fn jwt(header: &Value, claims: &Value, key: &RsaKeyPair) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .expect("RSA signing");
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn rs256(kid: &str) -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": kid})
}

/// What the IdP serves and what it received.
struct IdpState {
    issuer: String,
    discovery: Mutex<Value>,
    jwks: Mutex<Vec<Value>>,
    /// `Cache-Control` of the JWKS responses, when set.
    jwks_cache_control: Mutex<Option<String>>,
    /// When set, the JWKS endpoint answers 503.
    jwks_down: std::sync::atomic::AtomicBool,
    jwks_fetches: AtomicUsize,
    token_response: Mutex<(StatusCode, Value)>,
    token_requests: Mutex<Vec<(HeaderMap, String)>>,
    userinfo: Mutex<(StatusCode, Value)>,
    revocations: Mutex<Vec<(HeaderMap, String)>>,
    /// When set, a token request whose DPoP proof lacks this nonce is answered
    /// `400 use_dpop_nonce` with it in `DPoP-Nonce` (RFC 9449 §8).
    dpop_nonce: Mutex<Option<String>>,
}

struct Idp {
    state: Arc<IdpState>,
    clock: Arc<ManualClock>,
}

impl Idp {
    /// Starts the IdP; `overrides` are merged into its discovery document (`null` removes).
    async fn start(overrides: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let mut discovery = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "userinfo_endpoint": format!("{issuer}/me"),
            "jwks_uri": format!("{issuer}/jwks"),
            "revocation_endpoint": format!("{issuer}/token/revocation"),
            "end_session_endpoint": format!("{issuer}/session/end"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        });
        let Value::Object(overrides) = overrides else {
            panic!("overrides must be an object")
        };
        for (name, value) in overrides {
            match value {
                Value::Null => discovery.as_object_mut().unwrap().remove(&name),
                value => discovery.as_object_mut().unwrap().insert(name, value),
            };
        }
        let state = Arc::new(IdpState {
            issuer,
            discovery: Mutex::new(discovery),
            jwks: Mutex::new(vec![jwk(&KEYS[0], "idp-key")]),
            jwks_cache_control: Mutex::new(None),
            jwks_down: std::sync::atomic::AtomicBool::new(false),
            jwks_fetches: AtomicUsize::new(0),
            token_response: Mutex::new((StatusCode::OK, json!({}))),
            token_requests: Mutex::new(Vec::new()),
            userinfo: Mutex::new((
                StatusCode::OK,
                json!({"sub": "alice", "email": "alice@example.test", "locale": "en"}),
            )),
            revocations: Mutex::new(Vec::new()),
            dpop_nonce: Mutex::new(None),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery_doc))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/me", get(userinfo))
            .route("/token/revocation", post(revocation))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            state,
            clock: Arc::new(ManualClock::new(NOW)),
        }
    }

    fn config(&self, client_auth: ClientAuth) -> OidcConfig {
        OidcConfig {
            issuer: Url::parse(&self.state.issuer).unwrap(),
            client_id: CLIENT_ID.to_owned(),
            client_secret: SecretString::new(CLIENT_SECRET),
            client_auth,
            scopes: vec!["openid".into(), "email".into(), "offline_access".into()],
            extra_auth_params: BTreeMap::from([
                ("audience".to_owned(), "api".to_owned()),
                ("state".to_owned(), "attacker-chosen".to_owned()),
            ]),
            refresh_skew: std::time::Duration::from_secs(60),
            private_key_file: None,
            private_key_id: None,
            client_cert: None,
            client_key: None,
            par: Default::default(),
            dpop: false,
        }
    }

    async fn client(&self) -> OidcClient {
        self.client_with(ClientAuth::ClientSecretBasic).await
    }

    async fn client_with(&self, client_auth: ClientAuth) -> OidcClient {
        let clock: Arc<dyn Clock> = self.clock.clone();
        OidcClient::discover(
            &self.config(client_auth),
            Url::parse("https://app.example/bff/callback").unwrap(),
            clock,
            &crate::outbound::Outbound::load(&Default::default()).unwrap(),
        )
        .await
        .expect("discovery")
    }

    /// Valid ID-token claims for this IdP at the clock's time.
    fn claims(&self) -> Value {
        let now = self.clock.now();
        json!({
            "iss": self.state.issuer, "aud": CLIENT_ID, "sub": "alice", "sid": "idp-session-1",
            "iat": now, "exp": now + 300, "nonce": NONCE,
            "email": "alice@old.example.test", "name": "Alice", "auth_time": now,
        })
    }

    /// The token endpoint answers with `id_token` and fresh opaque tokens.
    fn issue(&self, id_token: String) {
        self.answer(
            StatusCode::OK,
            json!({
                "access_token": "opaque-access-token", "token_type": "Bearer",
                "expires_in": 300, "refresh_token": "opaque-refresh-token",
                "id_token": id_token, "scope": "openid email offline_access",
            }),
        );
    }

    fn answer(&self, status: StatusCode, body: Value) {
        *self.state.token_response.lock().unwrap() = (status, body);
    }
}

async fn discovery_doc(State(state): State<Arc<IdpState>>) -> Json<Value> {
    Json(state.discovery.lock().unwrap().clone())
}

async fn jwks(State(state): State<Arc<IdpState>>) -> impl IntoResponse {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if state.jwks_down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let mut headers = HeaderMap::new();
    if let Some(value) = state.jwks_cache_control.lock().unwrap().clone() {
        headers.insert("cache-control", value.parse().unwrap());
    }
    (
        headers,
        Json(json!({"keys": state.jwks.lock().unwrap().clone()})),
    )
        .into_response()
}

async fn token(
    State(state): State<Arc<IdpState>>,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    let nonce = state.dpop_nonce.lock().unwrap().clone();
    let proof_nonce = headers
        .get("dpop")
        .and_then(|proof| proof.to_str().ok())
        .and_then(|proof| proof.split('.').nth(1))
        .and_then(|claims| URL_SAFE_NO_PAD.decode(claims).ok())
        .and_then(|claims| serde_json::from_slice::<Value>(&claims).ok())
        .and_then(|claims| claims["nonce"].as_str().map(str::to_owned));
    state.token_requests.lock().unwrap().push((headers, body));
    if let Some(nonce) = nonce
        && proof_nonce.as_deref() != Some(nonce.as_str())
    {
        let mut challenge = HeaderMap::new();
        challenge.insert("dpop-nonce", nonce.parse().unwrap());
        let body = json!({"error": "use_dpop_nonce"});
        return (StatusCode::BAD_REQUEST, challenge, Json(body));
    }
    let (status, body) = state.token_response.lock().unwrap().clone();
    (status, HeaderMap::new(), Json(body))
}

async fn userinfo(State(state): State<Arc<IdpState>>) -> impl IntoResponse {
    let (status, body) = state.userinfo.lock().unwrap().clone();
    (status, Json(body))
}

async fn revocation(
    State(state): State<Arc<IdpState>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    state.revocations.lock().unwrap().push((headers, body));
    StatusCode::OK
}

fn query(url: &Url) -> BTreeMap<String, Vec<String>> {
    let mut pairs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url.query_pairs() {
        pairs
            .entry(name.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    pairs
}

fn form(body: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

async fn exchange(client: &OidcClient) -> Result<TokenSet, OidcError> {
    client
        .exchange_code(
            "the-code",
            &SecretString::new(VERIFIER),
            &SecretString::new(NONCE),
            None,
        )
        .await
}

/// The error's whole `Display` chain and `Debug`, for "never leaks" assertions.
fn described(err: &OidcError) -> String {
    let mut text = format!("{err:?}");
    let mut cause: Option<&dyn StdError> = Some(err);
    while let Some(err) = cause {
        text.push_str(&format!(" / {err}"));
        cause = err.source();
    }
    text
}

/// Asserts an `InvalidIdToken` whose description contains `reason`.
fn assert_rejected_for(result: Result<TokenSet, OidcError>, reason: &str) {
    let text = assert_invalid_id_token(result);
    assert!(text.contains(reason), "expected `{reason}` in: {text}");
}

fn assert_invalid_id_token(result: Result<TokenSet, OidcError>) -> String {
    match result {
        Err(err @ OidcError::InvalidIdToken(_)) => described(&err),
        other => panic!("expected an invalid ID token, got {other:?}"),
    }
}
