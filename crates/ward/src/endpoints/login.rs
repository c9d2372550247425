//! `GET /bff/login`: start a login transaction and send the browser to the IdP (SPEC §1 step 2).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::config::TokenMode;
use crate::cookie_header;
use crate::error::ApiError;
use crate::oidc::{AuthorizationRequest, OidcError};
use crate::security::{client_ip, return_url};
use crate::session::cookie::LoginBinding;
use crate::session::manager::TooManyPendingLogins;
use crate::session::record::LoginTransaction;
use crate::state::SharedState;
use crate::telemetry::Chain;

/// `prompt` values passed on to the IdP.
const PROMPTS: [&str; 4] = ["login", "none", "consent", "select_account"];

/// Query of `/bff/login`.
#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(rename = "returnUrl")]
    return_url: Option<String>,
    prompt: Option<String>,
}

/// `302` to the IdP's authorization endpoint, or `400 invalid_return_url`.
pub async fn login(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::BadRequest)?;
    let return_url = query.return_url.unwrap_or_else(|| "/".to_owned());
    if !return_url::is_local_path(&return_url) || targets_ward(&state, &return_url) {
        tracing::info!(event = "login_rejected", reason = "invalid_return_url");
        return Err(ApiError::InvalidReturnUrl);
    }
    if let Some(prompt) = &query.prompt
        && !PROMPTS.contains(&prompt.as_str())
    {
        return Err(ApiError::BadRequest);
    }
    let Ok(request) = authorization_request(&state, query.prompt.as_deref()).await else {
        return super::callback::login_failed(&state, &headers);
    };
    // Parallel logins of one browser share its binding, so two tabs can both finish.
    let cookies = cookie_header::joined(&headers);
    let binding = state
        .sessions
        .login_binding(cookies.as_deref())
        .unwrap_or_else(LoginBinding::generate);
    let tx = LoginTransaction {
        v: 1,
        state: request.state,
        nonce: request.nonce,
        pkce_verifier: request.pkce_verifier,
        return_url,
        created_at: state.clock.now(),
        replaces: state.sessions.session_key(cookies.as_deref()),
        dpop_key: request.dpop_key,
    };
    let client = client_ip::client_ip(peer.ip(), &headers, state.config.server.trusted_proxy_hops);
    match state.sessions.begin_login(&binding, client, &tx).await {
        Ok(()) => {}
        Err(TooManyPendingLogins::Refused) => {
            // Room comes back as the oldest of them expire or finish: at most LOGIN_TTL.
            return Err(ApiError::RateLimited { retry_after: 60 });
        }
        Err(TooManyPendingLogins::Store(err)) => return Err(err.into()),
    }
    tracing::info!(event = "login_started");

    let location = HeaderValue::try_from(request.url.as_str()).map_err(|_| ApiError::Internal)?;
    let cookie = HeaderValue::try_from(state.sessions.set_login_cookie(&binding))
        .map_err(|_| ApiError::Internal)?;
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, location), (header::SET_COOKIE, cookie)],
    )
        .into_response())
}

/// The authorization request (pushed to the IdP first with PAR); a failed push is logged.
async fn authorization_request(
    state: &SharedState,
    prompt: Option<&str>,
) -> Result<AuthorizationRequest, OidcError> {
    let request = state.oidc.authorization_request(prompt).await;
    if let Err(err) = &request {
        tracing::warn!(event = "login_par_failed", error = %Chain(err), "pushed authorization request failed");
    }
    request
}

/// Whether `return_url` lands on Ward's own endpoints or an API route (`token = "user"` or
/// `"client"`): after login the browser must land on a page, never be steered into `/bff/*` or
/// a proxied API (SECURITY-CASES R-07). A page an upstream serves through a `none` or
/// `user-optional` route (an SPA behind Ward) is a page: SPEC §2 allows it.
fn targets_ward(state: &SharedState, return_url: &str) -> bool {
    let path = return_url.split(['?', '#']).next().unwrap_or(return_url);
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    [path, decoded.as_ref()].iter().any(|p| {
        *p == "/bff"
            || p.starts_with("/bff/")
            || state
                .proxy
                .route_for(p)
                .is_some_and(|route| matches!(route.token, TokenMode::User | TokenMode::Client))
    })
}
