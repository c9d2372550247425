//! `POST /bff/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0 (SPEC §2).
//!
//! The IdP posts `logout_token=<JWT>` server to server; no cookie and no CSRF token are
//! involved, and cookies are never read here (a browser form carrying a victim's cookie gains
//! nothing). Order: bounded body → one `logout_token` field → token validation (signature,
//! claims; see `oidc::logout_token`) → `jti` replay check in the shared store → sessions
//! deleted by `sid` (or by `sub`). A token is remembered before any session is touched, so a
//! captured token replayed later cannot end a session created since. Every refusal is
//! `400 invalid_logout_token` with the reason in the log only; a store that cannot answer is
//! `503` (the logout failed, so the IdP must not see success).

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::oidc::{LogoutToken, MAX_LOGOUT_TOKEN_LEN};
use crate::state::SharedState;

/// Largest request body read, in bytes: a form with one logout token, with room to spare.
pub const MAX_BACKCHANNEL_BODY: usize = 16 * 1024;

/// Ends the sessions a valid logout token names; `200` with an empty body, also when none
/// matched (the IdP learns nothing about Ward's sessions).
pub async fn backchannel_logout(
    State(state): State<SharedState>,
    req: Request,
) -> Result<Response, ApiError> {
    let token = read_logout_token(req).await?;
    let token = match state.oidc.validate_logout_token(&token).await {
        Ok(token) => token,
        Err(err) => {
            tracing::warn!(event = "backchannel_logout_rejected", reason = %err);
            return Err(ApiError::InvalidLogoutToken);
        }
    };
    // The jti is recorded only once the logout is carried out: a delivery the store failed
    // (503) is accepted again when the IdP retries, and a replay after success is refused.
    if state.sessions.logout_token_seen(&token.jti).await? {
        tracing::warn!(
            event = "backchannel_logout_rejected",
            reason = "logout token jti replayed"
        );
        return Err(ApiError::InvalidLogoutToken);
    }
    let ended = state
        .sessions
        .end_sessions_by(token.sub.as_deref(), token.sid.as_deref())
        .await?;
    // `false` means a concurrent delivery of the same token got here first: both ended the
    // same sessions, so both may answer 200.
    state
        .sessions
        .remember_logout_token(&token.jti, token.replay_until())
        .await?;
    tracing::info!(
        event = "backchannel_logout",
        by = selector(&token),
        sessions_ended = ended
    );
    Ok(StatusCode::OK.into_response())
}

/// Which claims selected the sessions (never their values).
fn selector(token: &LogoutToken) -> &'static str {
    match (&token.sub, &token.sid) {
        (Some(_), Some(_)) => "sid+sub",
        (None, Some(_)) => "sid",
        _ => "sub",
    }
}

/// The single `logout_token` field of an `application/x-www-form-urlencoded` body of at most
/// [`MAX_BACKCHANNEL_BODY`] bytes (`413` beyond).
async fn read_logout_token(req: Request) -> Result<String, ApiError> {
    let rejected = |reason: &'static str| {
        tracing::warn!(event = "backchannel_logout_rejected", reason);
        ApiError::InvalidLogoutToken
    };
    if !is_form(req.headers()) {
        return Err(rejected("body is not a form"));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BACKCHANNEL_BODY as u64) {
        return Err(too_large());
    }
    let body = read_body(req.into_body()).await?;
    let mut token = None;
    for (name, value) in url::form_urlencoded::parse(&body) {
        if name == "logout_token" && token.replace(value).is_some() {
            return Err(rejected("several logout_token fields"));
        }
    }
    match token {
        Some(token) if !token.is_empty() && token.len() <= MAX_LOGOUT_TOKEN_LEN => {
            Ok(token.into_owned())
        }
        Some(_) => Err(rejected("logout_token empty or too long")),
        None => Err(rejected("no logout_token field")),
    }
}

async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    to_bytes(body, MAX_BACKCHANNEL_BODY).await.map_err(|err| {
        let over_limit =
            std::iter::successors(Some(&err as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if over_limit {
            too_large()
        } else {
            tracing::warn!(
                event = "backchannel_logout_rejected",
                reason = "body unreadable"
            );
            ApiError::BadRequest
        }
    })
}

fn too_large() -> ApiError {
    tracing::warn!(
        event = "backchannel_logout_rejected",
        reason = "body too large"
    );
    ApiError::PayloadTooLarge
}

/// `Content-Type: application/x-www-form-urlencoded`, parameters (`charset`) allowed.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn request(content_type: Option<&str>, body: &str) -> Request {
        let mut req = Request::new(Body::from(body.to_owned()));
        if let Some(ct) = content_type {
            req.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        }
        req
    }

    const FORM: Option<&str> = Some("application/x-www-form-urlencoded");

    #[tokio::test]
    async fn the_single_logout_token_field_is_read_and_decoded() {
        let req = request(FORM, "x=1&logout_token=a.b%2Ec&y=2");
        assert_eq!(read_logout_token(req).await.unwrap(), "a.b.c");
        let req = request(
            Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8"),
            "logout_token=t",
        );
        assert_eq!(read_logout_token(req).await.unwrap(), "t");
    }

    #[tokio::test]
    async fn missing_duplicate_or_empty_fields_are_invalid_tokens() {
        for body in [
            "",
            "other=1",
            "logout_token=a&logout_token=a",
            "logout_token=",
        ] {
            let err = read_logout_token(request(FORM, body)).await.unwrap_err();
            assert_eq!(err, ApiError::InvalidLogoutToken, "{body}");
        }
    }

    #[tokio::test]
    async fn a_body_that_is_not_a_form_is_an_invalid_token() {
        for ct in [None, Some("application/json"), Some("text/plain")] {
            let err = read_logout_token(request(ct, "logout_token=t"))
                .await
                .unwrap_err();
            assert_eq!(err, ApiError::InvalidLogoutToken);
        }
    }

    #[tokio::test]
    async fn an_oversized_body_is_payload_too_large() {
        let body = format!("logout_token={}", "a".repeat(MAX_BACKCHANNEL_BODY));
        let err = read_logout_token(request(FORM, &body)).await.unwrap_err();
        assert_eq!(err, ApiError::PayloadTooLarge);
    }

    #[tokio::test]
    async fn a_token_longer_than_any_logout_token_is_refused_before_parsing() {
        let body = format!("logout_token={}", "a".repeat(MAX_LOGOUT_TOKEN_LEN + 1));
        let err = read_logout_token(request(FORM, &body)).await.unwrap_err();
        assert_eq!(err, ApiError::InvalidLogoutToken);
    }
}
