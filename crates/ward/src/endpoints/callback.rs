//! `GET /bff/callback`: finish the login (SPEC §1 step 3). Every failure is the same
//! `400 login_failed` to the browser; the reason goes to the log.

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::cookie_header;
use crate::error::ApiError;
use crate::state::SharedState;

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

/// `302` to `returnUrl` with a new session cookie; `302` to `[login] error_path` when the IdP
/// reports an error; `400 login_failed` otherwise.
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
    let binding = state.sessions.login_binding(cookies.as_deref());
    if let Some(error) = &query.error {
        // The login is over either way: spend its transaction so it cannot be finished later.
        if let (Some(binding), Some(tx_state)) = (&binding, &query.state) {
            state.sessions.finish_login(binding, tx_state).await?;
        }
        return idp_error_redirect(&state, error);
    }
    let (Some(code), Some(tx_state)) = (&query.code, &query.state) else {
        tracing::info!(event = "login_rejected", reason = "missing_code_or_state");
        return Err(ApiError::LoginFailed);
    };
    let Some(binding) = binding else {
        tracing::info!(event = "login_rejected", reason = "no_login_binding");
        return Err(ApiError::LoginFailed);
    };
    let Some(tx) = state.sessions.finish_login(&binding, tx_state).await? else {
        return Err(ApiError::LoginFailed);
    };
    if let Err(err) = state.oidc.check_response_issuer(query.iss.as_deref()) {
        tracing::warn!(event = "login_rejected", reason = %err);
        return Err(ApiError::LoginFailed);
    }
    let tokens = match state
        .oidc
        .exchange_code(code, &tx.pkce_verifier, &tx.nonce)
        .await
    {
        Ok(tokens) => tokens,
        Err(err) => {
            tracing::warn!(event = "login_rejected", reason = %err, cause = ?std::error::Error::source(&err).map(ToString::to_string));
            return Err(ApiError::LoginFailed);
        }
    };

    // Never reuse a session the browser presented (fixation): end the one it held when the
    // login started (and any it presents now), make a new one.
    for old in [
        tx.replaces.clone(),
        state.sessions.session_key(cookies.as_deref()),
    ]
    .into_iter()
    .flatten()
    {
        state.sessions.delete_key(&old).await?;
    }
    let session = state.sessions.create(tokens).await?;
    tracing::info!(event = "login_succeeded", session = session.log_id());

    let location = HeaderValue::try_from(tx.return_url).map_err(|_| ApiError::Internal)?;
    let cookie = HeaderValue::try_from(state.sessions.set_session_cookie(&session))
        .map_err(|_| ApiError::Internal)?;
    let mut response = (StatusCode::FOUND, [(header::LOCATION, location)]).into_response();
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
        .extensions_mut()
        .insert(super::SessionLogId(session.log_id().to_owned()));
    Ok(response)
}

/// `302` to `error_path?bff_error=<code>`; the code is reduced to a safe token.
fn idp_error_redirect(state: &SharedState, error: &str) -> Result<Response, ApiError> {
    let code: String = error
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect();
    let code = if code.is_empty() {
        "unknown_error".to_owned()
    } else {
        code
    };
    tracing::info!(event = "login_idp_error", idp_error = %code);
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
