//! `GET /bff/user`: the SPA pulls its login state (SPEC §1 step 1 and 4).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::SessionLogId;
use crate::cookie_header;
use crate::error::ApiError;
use crate::session::record::SessionData;
use crate::state::SharedState;

/// Query of `/bff/user`.
#[derive(Debug, Deserialize)]
pub struct UserQuery {
    /// `false` reads the session without extending its idle expiry (e.g. background polling).
    slide: Option<bool>,
}

/// `401 unauthenticated` without a valid session; `200` with profile, claims and CSRF token.
pub async fn user(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    query: Result<Query<UserQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|_| ApiError::BadRequest)?;
    let cookies = cookie_header::joined(&headers);
    let Some(mut session) = state.sessions.load(cookies.as_deref()).await? else {
        if state.sessions.has_session_cookie(cookies.as_deref()) {
            let limits = &state.rate_limits;
            limits.cookie_named_no_session(peer.ip(), &headers).await?;
        }
        return Err(ApiError::Unauthenticated);
    };
    if query.slide != Some(false) && !state.sessions.slide(&mut session).await? {
        return Err(ApiError::Unauthenticated);
    }
    let mut response = Json(profile(&state, &session.data)).into_response();
    response
        .extensions_mut()
        .insert(SessionLogId(session.log_id().to_owned()));
    Ok(response)
}

/// The body of `200 /bff/user` (also `POST /bff/login/password`'s): never a token but the CSRF
/// token.
pub(super) fn profile(state: &SharedState, data: &SessionData) -> Value {
    json!({
        "sub": data.sub,
        "claims": filter_claims(&data.claims, state.config.session.claims.as_deref()),
        "csrfToken": data.csrf_token.expose(),
        "expiresAt": state.sessions.expires_at(data),
        "absoluteExpiresAt": data.absolute_expires_at,
    })
}

/// The claims the SPA may see: all, or only those in `[session] claims`.
fn filter_claims(claims: &Map<String, Value>, allow: Option<&[String]>) -> Map<String, Value> {
    match allow {
        None => claims.clone(),
        Some(allow) => claims
            .iter()
            .filter(|(name, _)| allow.iter().any(|a| a == *name))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_allow_list_keeps_only_listed_claims() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"name":"A","email":"a@x","groups":["g"]}"#).unwrap();
        assert_eq!(filter_claims(&claims, None), claims);
        let allow = ["name".to_owned()];
        let filtered = filter_claims(&claims, Some(&allow));
        assert_eq!(filtered.len(), 1);
        assert_eq!(filtered["name"], "A");
    }
}
