//! The admin listener (SPEC §7): health, readiness and session administration, on a socket of
//! its own (`[admin] listen`, loopback by default) and never on the public one.
//!
//! - `GET /healthz`: the process is up and serving.
//! - `GET /metrics`: every metric family (SPEC §8) in the Prometheus text format
//!   ([`telemetry::metrics`]); no token, so Prometheus scrapes it like the probes. Its labels
//!   are bounded names, never a token, cookie or path.
//! - `GET /readyz`: the IdP answers (its metadata is loaded, which it must be for the state to
//!   exist, and its JWKS answered a fetch within the last few seconds) and the store answers a
//!   ping in time; otherwise `503` naming only which check failed.
//! - `GET|DELETE /admin/sessions?sub=…`: list or revoke a subject's sessions, with
//!   `Authorization: Bearer <[admin] token>` compared in constant time. Authentication comes
//!   before anything else is read, so an unauthenticated caller learns nothing, not even
//!   whether its query was well-formed.
//!
//! Every response carries Ward's security headers (`Cache-Control: no-store` …); errors use
//! [`ApiError`]'s JSON shape.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::config::AdminConfig;
use crate::error::ApiError;
use crate::secret::SecretString;
use crate::security::headers;
use crate::session::admin::SessionAdmin;
use crate::state::SharedState;
use crate::telemetry::{self, Chain};

/// How long `/readyz` waits for the store: a hung store is not ready, and the probe must
/// answer before the orchestrator's own timeout.
const STORE_PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest `sub` accepted: subjects are short identifiers (OIDC caps them at 255 ASCII chars).
const MAX_SUB_LEN: usize = 255;

/// What the admin handlers share.
struct AdminState {
    app: SharedState,
    /// The bearer token of `/admin/*`. Empty never matches.
    token: SecretString,
}

type Shared = Arc<AdminState>;

/// The admin listener's routes over Ward's running `state`. Serve it with
/// `axum::serve(listener, router)`; it needs no connection info.
pub fn router(state: SharedState, admin: &AdminConfig) -> Router {
    let shared = Arc::new(AdminState {
        app: state,
        token: admin.token.clone(),
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/admin/sessions",
            get(list_sessions).delete(revoke_sessions),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::map_response(
            |mut response: Response<Body>| async {
                headers::apply(response.headers_mut());
                response
            },
        ))
        .with_state(shared)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The exposition, with the store's count of live sessions (counted at most every
/// [`COUNT_INTERVAL`](crate::session::live::COUNT_INTERVAL) s, never on a request).
async fn metrics(State(state): State<Shared>) -> Response<Body> {
    let sessions_active = state.app.sessions.live_count().await;
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(telemetry::metrics::CONTENT_TYPE),
        )],
        telemetry::metrics::render(sessions_active),
    )
        .into_response()
}

async fn readyz(State(state): State<Shared>) -> Response<Body> {
    // Both checks at once: the answer comes within the slower one's timeout, not their sum.
    let (store_up, idp_up) = tokio::join!(store_ready(&state), state.app.oidc.idp_ready());
    if !idp_up {
        tracing::warn!(event = "not_ready", check = "idp", "IdP JWKS unreachable");
    }
    let checks = json!({ "store": up_or_down(store_up), "idp": up_or_down(idp_up) });
    if store_up && idp_up {
        Json(json!({ "status": "ok", "checks": checks })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "checks": checks })),
        )
            .into_response()
    }
}

/// Whether the store answers a ping within [`STORE_PING_TIMEOUT`].
async fn store_ready(state: &Shared) -> bool {
    let store = state.app.sessions.store();
    match tokio::time::timeout(STORE_PING_TIMEOUT, store.ping()).await {
        Ok(Ok(())) => true,
        Ok(Err(err)) => {
            tracing::warn!(
                event = "not_ready",
                check = "store",
                error = %Chain(&err),
                "store ping failed"
            );
            false
        }
        Err(_) => {
            tracing::warn!(event = "not_ready", check = "store", "store ping timed out");
            false
        }
    }
}

fn up_or_down(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

async fn list_sessions(
    State(state): State<Shared>,
    request_headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response<Body>, AdminError> {
    authorize(&state.token, &request_headers)?;
    stateful(&state)?;
    let sub = subject(query.as_deref())?;
    let sessions = SessionAdmin::of(&state.app.sessions).list(&sub).await?;
    Ok(Json(sessions).into_response())
}

async fn revoke_sessions(
    State(state): State<Shared>,
    request_headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response<Body>, AdminError> {
    authorize(&state.token, &request_headers)?;
    stateful(&state)?;
    let sub = subject(query.as_deref())?;
    let revoked = SessionAdmin::of(&state.app.sessions).revoke(&sub).await?;
    Ok(Json(json!({ "revoked": revoked })).into_response())
}

/// The stateless cookie store has no sessions to list or revoke: 404 rather than an empty
/// answer an operator could read as "done".
fn stateful(state: &Shared) -> Result<(), AdminError> {
    if state.app.config.store.kind == crate::config::StoreKind::Cookie {
        return Err(AdminError::Api(ApiError::NotFound));
    }
    Ok(())
}

/// Succeeds only for `Authorization: Bearer <token>` with the configured, non-empty token.
fn authorize(expected: &SecretString, request_headers: &HeaderMap) -> Result<(), AdminError> {
    let presented = request_headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match presented {
        Some(token) if !expected.is_empty() && expected.ct_eq(token) => Ok(()),
        Some(_) => {
            tracing::warn!(event = "admin_auth_failed", reason = "wrong_token");
            Err(AdminError::Unauthorized)
        }
        None => {
            tracing::info!(event = "admin_auth_failed", reason = "no_token");
            Err(AdminError::Unauthorized)
        }
    }
}

/// The credentials of a `Bearer` authorization (scheme case-insensitive, RFC 9110 §11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_matches(' ');
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The one `sub` of the query: present once, non-empty, at most [`MAX_SUB_LEN`] bytes.
fn subject(query: Option<&str>) -> Result<String, AdminError> {
    let mut subs = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(name, _)| name == "sub")
        .map(|(_, value)| value);
    match (subs.next(), subs.next()) {
        (Some(sub), None) if !sub.is_empty() && sub.len() <= MAX_SUB_LEN => Ok(sub.into_owned()),
        _ => Err(AdminError::Api(ApiError::BadRequest)),
    }
}

/// A refused admin request.
#[derive(Debug)]
enum AdminError {
    /// 401 with `WWW-Authenticate: Bearer`: no or wrong admin token.
    Unauthorized,
    /// Any other error, as Ward maps it.
    Api(ApiError),
}

impl From<ward_store::StoreError> for AdminError {
    fn from(err: ward_store::StoreError) -> Self {
        Self::Api(err.into())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response<Body> {
        match self {
            Self::Unauthorized => {
                let mut response = ApiError::Unauthenticated.into_response();
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
            Self::Api(err) => err.into_response(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bearer_token_is_read_with_any_scheme_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
    }

    #[test]
    fn other_schemes_and_empty_credentials_are_no_bearer_token() {
        assert_eq!(bearer_token("Basic YWRtaW46YWRtaW4="), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
        assert_eq!(bearer_token(""), None);
    }

    #[test]
    fn the_subject_is_taken_percent_decoded_from_the_query() {
        assert_eq!(subject(Some("sub=alice")).unwrap(), "alice");
        assert_eq!(
            subject(Some("x=1&sub=a%7Cb%40c+d")).unwrap(),
            "a|b@c d",
            "form decoding, as clients encode it"
        );
    }

    #[test]
    fn a_missing_empty_repeated_or_overlong_subject_is_a_bad_request() {
        let long = format!("sub={}", "a".repeat(MAX_SUB_LEN + 1));
        for query in [
            None,
            Some(""),
            Some("sub="),
            Some("subject=alice"),
            Some("sub=alice&sub=bob"),
            Some(long.as_str()),
        ] {
            assert!(
                matches!(subject(query), Err(AdminError::Api(ApiError::BadRequest))),
                "{query:?}"
            );
        }
    }

    #[test]
    fn an_unauthorized_answer_asks_for_a_bearer_token_and_is_not_cached() {
        let response = AdminError::Unauthorized.into_response();

        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }

    fn authorization(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_the_configured_token_is_authorized() {
        let token = SecretString::new("admin-token-0123456789abcdef");

        assert!(
            authorize(
                &token,
                &authorization("Bearer admin-token-0123456789abcdef")
            )
            .is_ok()
        );
        for wrong in [
            "Bearer admin-token-0123456789abcdeF",
            "Bearer admin-token-0123456789abcde",
            "Bearer admin-token-0123456789abcdef0",
            "Basic admin-token-0123456789abcdef",
            "admin-token-0123456789abcdef",
        ] {
            assert!(
                matches!(
                    authorize(&token, &authorization(wrong)),
                    Err(AdminError::Unauthorized)
                ),
                "{wrong}"
            );
        }
        assert!(matches!(
            authorize(&token, &HeaderMap::new()),
            Err(AdminError::Unauthorized)
        ));
    }

    #[test]
    fn an_empty_configured_token_authorizes_nobody() {
        let empty = SecretString::default();

        for value in ["Bearer ", "Bearer x", "Bearer  "] {
            assert!(
                authorize(&empty, &authorization(value)).is_err(),
                "{value:?}"
            );
        }
    }
}
