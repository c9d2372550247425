//! `GET /bff/callback`: finish the login (SPEC §1 step 3). Every failure is the same
//! `400 login_failed` to the browser; the reason goes to the log.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::cookie_header;
use crate::error::ApiError;
use crate::security::return_url;
use crate::session::record::LoginTransaction;
use crate::state::SharedState;
use crate::telemetry::Chain;

/// Query of `/bff/callback`. Values are never logged.
#[derive(Default)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

impl CallbackQuery {
    /// Parses the query; `None` when a parameter Ward reads appears more than once (an
    /// attacker appending a second `state` or `iss` must not get to choose which one counts).
    fn parse(raw: Option<&str>) -> Option<Self> {
        let mut query = Self::default();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            let slot = match name.as_ref() {
                "code" => &mut query.code,
                "state" => &mut query.state,
                "iss" => &mut query.iss,
                "error" => &mut query.error,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return None;
            }
        }
        Some(query)
    }
}

/// `302` to `returnUrl` with a new session cookie. The state comes first (RFC 6749 §10.12): a
/// callback whose state names no pending login of this browser is `400 login_failed`, whatever
/// else it holds. Then an IdP error is a `302` to `[login] error_path`, and a failed exchange
/// `400 login_failed` (a `302` to the error path for a browser navigation).
pub async fn callback(
    State(state): State<SharedState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(query) = CallbackQuery::parse(raw.as_deref()) else {
        tracing::info!(event = "login_rejected", reason = "malformed_query");
        return Err(ApiError::LoginFailed);
    };
    let cookies = cookie_header::joined(&headers);
    let Some(tx) = pending_login(&state, cookies.as_deref(), query.state.as_deref()).await? else {
        return Err(ApiError::LoginFailed);
    };
    // The transaction is spent from here on: neither an IdP error nor a failure below leaves a
    // login that could be finished later.
    if let Some(error) = &query.error {
        let code = idp_error_code(error);
        tracing::info!(event = "login_idp_error", idp_error = %code);
        return error_redirect(&state, &code);
    }
    match finish(&state, &query, &tx, cookies.as_deref()).await {
        Ok(response) => Ok(response),
        Err(ApiError::LoginFailed) => login_failed(&state, &headers),
        Err(err) => Err(err),
    }
}

/// A failed login: a `302` to the error path for a browser navigation, else `400 login_failed`.
pub(super) fn login_failed(state: &SharedState, headers: &HeaderMap) -> Result<Response, ApiError> {
    if is_navigation(headers) {
        error_redirect(state, "login_failed")
    } else {
        Err(ApiError::LoginFailed)
    }
}

/// The pending login the callback's `state` names, consumed: `None` (logged) when the state is
/// missing or the browser holds no login binding or no pending login of that state.
async fn pending_login(
    state: &SharedState,
    cookies: Option<&str>,
    tx_state: Option<&str>,
) -> Result<Option<LoginTransaction>, ApiError> {
    let Some(tx_state) = tx_state else {
        tracing::info!(event = "login_rejected", reason = "missing_state");
        return Ok(None);
    };
    let Some(binding) = state.sessions.login_binding(cookies) else {
        tracing::info!(event = "login_rejected", reason = "no_login_binding");
        return Ok(None);
    };
    Ok(state.sessions.finish_login(&binding, tx_state).await?)
}

/// With a valid state: the issuer, the code exchange, a new session and the redirect home.
async fn finish(
    state: &SharedState,
    query: &CallbackQuery,
    tx: &LoginTransaction,
    cookies: Option<&str>,
) -> Result<Response, ApiError> {
    let Some(code) = &query.code else {
        tracing::info!(event = "login_rejected", reason = "missing_code");
        return Err(ApiError::LoginFailed);
    };
    if let Err(err) = state.oidc.check_response_issuer(query.iss.as_deref()) {
        tracing::warn!(event = "login_rejected", reason = %err);
        return Err(ApiError::LoginFailed);
    }
    let tokens = state
        .oidc
        .exchange_code(code, &tx.pkce_verifier, &tx.nonce, tx.dpop_key.as_ref())
        .await
        .map_err(|err| {
            tracing::warn!(event = "login_rejected", reason = "code_exchange", error = %Chain(&err));
            ApiError::LoginFailed
        })?;
    // Never reuse a session the browser presented (fixation): end the one it held when the
    // login started (and any it presents now), make a new one.
    for old in [tx.replaces.clone(), state.sessions.session_key(cookies)]
        .into_iter()
        .flatten()
    {
        state.sessions.delete_key(&old).await?;
    }
    let session = state.sessions.create(tokens).await?;
    tracing::info!(event = "login_succeeded", session = session.log_id());

    let location = HeaderValue::try_from(return_url::location(&tx.return_url))
        .map_err(|_| ApiError::Internal)?;
    let cookie = HeaderValue::try_from(state.sessions.set_session_cookie(&session))
        .map_err(|_| ApiError::Internal)?;
    let mut response = (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
        .extensions_mut()
        .insert(super::SessionLogId(session.log_id().to_owned()));
    Ok(response)
}

/// Whether the browser is navigating (the callback is a top-level page load), so a failure is
/// better shown by the SPA's error page than as JSON.
fn is_navigation(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-mode")
        .is_some_and(|mode| mode.as_bytes().eq_ignore_ascii_case(b"navigate"))
}

/// The IdP's `error` reduced to a safe token for the error page's query.
fn idp_error_code(error: &str) -> String {
    let code: String = error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    if code.is_empty() {
        "unknown_error".to_owned()
    } else {
        code
    }
}

/// `302` to `error_path?bff_error=<code>` (`code` is already a safe token).
fn error_redirect(state: &SharedState, code: &str) -> Result<Response, ApiError> {
    let path = &state.config.login.error_path;
    let separator = if path.contains('?') { '&' } else { '?' };
    let location = HeaderValue::try_from(format!("{path}{separator}bff_error={code}"))
        .map_err(|_| ApiError::Internal)?;
    Ok((StatusCode::FOUND, [(header::LOCATION, location)]).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(CallbackQuery::parse(Some("code=a&state=b&iss=c")).is_some());
        for raw in [
            "code=a&code=b",
            "state=a&state=b",
            "iss=a&iss=b",
            "error=a&error=b",
        ] {
            assert!(CallbackQuery::parse(Some(raw)).is_none(), "{raw}");
        }
        let parsed = CallbackQuery::parse(Some("code=a%2Bb&state=s&other=1&other=2")).unwrap();
        assert_eq!(parsed.code.as_deref(), Some("a+b"));
    }
}
