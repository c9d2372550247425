//! `POST /bff/logout`: end the session here and at the IdP (SPEC §2).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::SessionLogId;
use crate::cookie_header;
use crate::error::ApiError;
use crate::random;
use crate::security::csrf;
use crate::session::LoadedSession;
use crate::state::SharedState;

/// Deletes the session (CSRF token required when one exists), revokes its refresh token and
/// answers `200 {"logoutUrl"}`. Idempotent without a session.
pub async fn logout(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cookies = cookie_header::joined(&headers);
    let Some(session) = state.sessions.load(cookies.as_deref()).await? else {
        if state.sessions.has_session_cookie(cookies.as_deref()) {
            let limits = &state.rate_limits;
            limits.cookie_named_no_session(peer.ip(), &headers).await?;
        }
        // Nothing to end here or at the IdP.
        return logged_out(&state, "/".to_owned());
    };
    let log_id = SessionLogId(session.log_id().to_owned());
    let mut response = match end(&state, &headers, session).await {
        Ok(logout_url) => logged_out(&state, logout_url)?,
        Err(err) => err.into_response(),
    };
    response.extensions_mut().insert(log_id);
    Ok(response)
}

/// Checks the CSRF token, deletes the session, revokes its refresh token; the logout URL.
async fn end(
    state: &SharedState,
    headers: &HeaderMap,
    session: LoadedSession,
) -> Result<String, ApiError> {
    if !csrf::token_matches(headers, &session.data.csrf_token) {
        tracing::warn!(
            event = "csrf_rejected",
            endpoint = "logout",
            reason = "token",
            session = session.log_id()
        );
        return Err(ApiError::CsrfFailed);
    }
    state.sessions.delete(&session).await?;
    tracing::info!(
        event = "session_ended",
        reason = "logout",
        session = session.log_id()
    );
    if let Some(refresh) = &session.data.refresh_token
        && let Err(err) = state.oidc.revoke_refresh_token(refresh).await
    {
        // The session is gone either way; an unrevoked refresh token expires at the IdP.
        tracing::warn!(event = "revocation_failed", reason = %err);
    }
    let post_logout = state
        .config
        .server
        .public_url
        .join(&state.config.logout.redirect_path)
        .map_err(|_| ApiError::Internal)?;
    let hint = state
        .config
        .logout
        .id_token_hint
        .then_some(&session.data.id_token);
    Ok(state
        .oidc
        .end_session_url(hint, &post_logout, &random::token())
        .map(String::from)
        .unwrap_or_else(|| "/".to_owned()))
}

/// `200 {"logoutUrl"}` with the session cookie expired.
fn logged_out(state: &SharedState, logout_url: String) -> Result<Response, ApiError> {
    let cookie = HeaderValue::try_from(state.sessions.clear_session_cookie())
        .map_err(|_| ApiError::Internal)?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "logoutUrl": logout_url })),
    )
        .into_response())
}
