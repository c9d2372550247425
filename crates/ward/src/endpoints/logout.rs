//! `POST /bff/logout`: end the session here and at the IdP (SPEC §2).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::security::csrf;
use crate::session::random;
use crate::state::{SharedState, cookie_header};

/// Deletes the session (CSRF token required when one exists), revokes its refresh token and
/// answers `200 {"logoutUrl"}`. Idempotent without a session.
pub async fn logout(
    State(state): State<SharedState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let cookies = cookie_header(&headers);
    let session = state.sessions.load(cookies.as_deref()).await?;
    let redirect_path = &state.config.logout.redirect_path;
    let logout_url = match session {
        None => redirect_path.clone(),
        Some(session) => {
            if !csrf::token_matches(&headers, &session.data.csrf_token) {
                tracing::warn!(
                    event = "csrf_rejected",
                    endpoint = "logout",
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
                tracing::warn!(event = "revocation_failed", reason = %err);
            }
            let post_logout = state
                .config
                .server
                .public_url
                .join(redirect_path)
                .map_err(|_| ApiError::Internal)?;
            let hint = state
                .config
                .logout
                .id_token_hint
                .then_some(&session.data.id_token);
            state
                .oidc
                .end_session_url(hint, &post_logout, &random::token())
                .map(String::from)
                .unwrap_or_else(|| "/".to_owned())
        }
    };
    let cookie = HeaderValue::try_from(state.sessions.clear_session_cookie())
        .map_err(|_| ApiError::Internal)?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "logoutUrl": logout_url })),
    )
        .into_response())
}
