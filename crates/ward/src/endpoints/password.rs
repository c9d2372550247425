//! `POST /bff/login/password` (SPEC §2): the resource-owner password grant for legacy IdPs
//! without a browser flow. Exists only with `[login] password_grant = true`; otherwise the
//! path is `404 not_found` like any unknown one.
//!
//! CSRF: the `X-CSRF-Token` header is required. Before a session exists any non-empty value
//! does: a custom header cannot be sent cross-origin without a CORS preflight, which Ward never
//! grants for it. When the request presents a live session, the header must be that session's
//! token, as for every other unsafe request (a page of the app logging in as someone else is
//! then a deliberate act of the SPA, not of another site). Cross-site requests are refused
//! before this endpoint (`app.rs`), and the body must be `application/json`.
//!
//! The password lives in a zeroizing [`SecretString`] from the JSON parser on, is sent once to
//! the token endpoint and never reaches a log, span, metric or error body.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::SessionLogId;
use crate::config::LoginConfig;
use crate::cookie_header;
use crate::error::ApiError;
use crate::oidc::TokenSet;
use crate::secret::SecretString;
use crate::security::csrf;
use crate::state::SharedState;
use crate::telemetry::Chain;

/// Longest accepted username, in characters.
pub const MAX_USERNAME: usize = 256;
/// Longest accepted password, in characters.
pub const MAX_PASSWORD: usize = 1024;

/// The body: `{"username", "password"}`, nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: SecretString,
}

/// Logs, on every start with the grant on, that it is (SPEC §7).
pub fn warn_password_grant(login: &LoginConfig) {
    if login.password_grant {
        tracing::warn!(
            event = "password_grant_enabled",
            "login.password_grant = true: POST /bff/login/password takes users' passwords \
             (the resource-owner password grant, deprecated by OAuth 2.1); use it only for an \
             IdP without a browser flow"
        );
    }
}

/// `200` as `/bff/user` with a new session cookie; `401 invalid_credentials` when the IdP
/// refuses the credentials, `502` when it fails.
pub async fn login_password(
    State(state): State<SharedState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    if !state.config.login.password_grant {
        return Err(ApiError::NotFound);
    }
    let cookies = cookie_header::joined(&headers);
    check_csrf(&state, &headers, cookies.as_deref()).await?;
    let Some(credentials) = credentials(&headers, &body) else {
        tracing::info!(
            event = "login_rejected",
            method = "password",
            reason = "malformed_credentials"
        );
        return Err(ApiError::BadRequest);
    };
    let tokens = exchange(&state, &credentials).await?;
    drop(credentials);
    // Never reuse a session the browser presented (fixation): end it, make a new one.
    if let Some(old) = state.sessions.session_key(cookies.as_deref()) {
        state.sessions.delete_key(&old).await?;
    }
    let session = state.sessions.create(tokens).await?;
    tracing::info!(
        event = "login_succeeded",
        method = "password",
        session = session.log_id()
    );
    let cookie = HeaderValue::try_from(state.sessions.set_session_cookie(&session))
        .map_err(|_| ApiError::Internal)?;
    let mut response = Json(super::user::profile(&state, &session.data)).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
        .extensions_mut()
        .insert(SessionLogId(session.log_id().to_owned()));
    Ok(response)
}

/// The header must be present; with a live session, it must be that session's token.
async fn check_csrf(
    state: &SharedState,
    headers: &HeaderMap,
    cookies: Option<&str>,
) -> Result<(), ApiError> {
    let present = headers
        .get(csrf::CSRF_HEADER)
        .is_some_and(|value| !value.is_empty());
    let refused = !present
        || match state.sessions.load(cookies).await? {
            Some(session) => !csrf::token_matches(headers, &session.data.csrf_token),
            None => false,
        };
    if refused {
        tracing::warn!(
            event = "csrf_rejected",
            endpoint = "login_password",
            reason = "token"
        );
        return Err(ApiError::CsrfFailed);
    }
    Ok(())
}

/// The body as [`Credentials`], when it is JSON of the right shape and both values are sane.
fn credentials(headers: &HeaderMap, body: &[u8]) -> Option<Credentials> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    // An object only: serde would also take a struct from an array, `["name","password"]`.
    if !json || !body.trim_ascii_start().starts_with(b"{") {
        return None;
    }
    let credentials: Credentials = serde_json::from_slice(body).ok()?;
    (acceptable(&credentials.username, MAX_USERNAME)
        && acceptable(credentials.password.expose(), MAX_PASSWORD))
    .then_some(credentials)
}

/// Non-empty, at most `max` characters, no control characters.
fn acceptable(value: &str, max: usize) -> bool {
    !value.is_empty() && value.chars().count() <= max && !value.chars().any(char::is_control)
}

/// The grant at the IdP; its failures as the browser sees them, logged without the values.
async fn exchange(state: &SharedState, credentials: &Credentials) -> Result<TokenSet, ApiError> {
    let result = state
        .oidc
        .password_grant(&credentials.username, &credentials.password)
        .await;
    result.map_err(|err| {
        if err.is_invalid_grant() {
            tracing::info!(
                event = "login_rejected",
                method = "password",
                reason = "invalid_credentials"
            );
            ApiError::InvalidCredentials
        } else {
            tracing::warn!(
                event = "login_rejected",
                method = "password",
                reason = "password_grant",
                error = %Chain(&err)
            );
            ApiError::UpstreamUnavailable
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers
    }

    #[test]
    fn well_formed_credentials_are_taken() {
        let body = br#"{"username":"alice","password":"pa ss\u00e9"}"#;
        let taken = credentials(&json_headers(), body).expect("valid");
        assert_eq!(taken.username, "alice");
        assert_eq!(taken.password.expose(), "pa ssé");
    }

    #[test]
    fn malformed_credentials_are_refused() {
        let long_user = format!(r#"{{"username":"{}","password":"p"}}"#, "u".repeat(257));
        let long_password = format!(r#"{{"username":"u","password":"{}"}}"#, "p".repeat(1025));
        for body in [
            "",
            "[]",
            r#"{"username":"alice"}"#,
            r#"{"username":"","password":"p"}"#,
            r#"{"username":"u","password":""}"#,
            r#"{"username":"a\nb","password":"p"}"#,
            r#"{"username":"u","password":"p\u0000"}"#,
            r#"{"username":"u","password":"p","extra":1}"#,
            r#"{"username":1,"password":"p"}"#,
            r#"["u","p"]"#,
            &long_user,
            &long_password,
        ] {
            assert!(
                credentials(&json_headers(), body.as_bytes()).is_none(),
                "{body}"
            );
        }
    }

    #[test]
    fn a_body_that_is_not_declared_json_is_refused() {
        let body = br#"{"username":"alice","password":"secret"}"#;
        assert!(credentials(&HeaderMap::new(), body).is_none());
        let mut form = HeaderMap::new();
        form.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        assert!(credentials(&form, body).is_none());
        let mut charset = HeaderMap::new();
        charset.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        assert!(credentials(&charset, body).is_some());
    }
}
