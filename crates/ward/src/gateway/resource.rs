//! Step 5 for a route with an RFC 8707 `resource`: the session's token for that resource
//! (`session::resource_tokens`; by refresh grant, or by RFC 8693 token exchange with
//! `token_exchange`), never the session's own access token, whatever happens.

use axum::http::HeaderValue;

use crate::error::ApiError;
use crate::proxy::Route;
use crate::secret::bearer_value;
use crate::session::LoadedSession;
use crate::session::resource_tokens::ResourceTokenError;
use crate::state::AppState;

/// The `Authorization` value for `resource`. A session the IdP ended is `Unauthenticated`
/// (the caller clears the cookie), or on a `user-optional` route an anonymous request; a
/// resource the IdP does not grant is `403 resource_not_granted`; an IdP failure without a
/// still-valid cached token is `502`.
pub(super) async fn bearer(
    state: &AppState,
    route: &Route,
    session: &LoadedSession,
    resource: &str,
    optional: bool,
) -> Result<Option<HeaderValue>, ApiError> {
    let skew = state.config.oidc.refresh_skew;
    let sessions = &state.sessions;
    let obtained = if route.token_exchange {
        sessions
            .exchanged_token(session, &state.oidc, resource, skew)
            .await
    } else {
        sessions
            .resource_token(session, &state.oidc, resource, skew)
            .await
    };
    let token = match obtained {
        Ok(token) => token,
        Err(ResourceTokenError::Ended) if optional => return Ok(None),
        Err(ResourceTokenError::Ended) => return Err(ApiError::Unauthenticated),
        Err(ResourceTokenError::NotGranted) => return Err(ApiError::ResourceNotGranted),
        Err(ResourceTokenError::Unavailable) => return Err(ApiError::UpstreamUnavailable),
        Err(ResourceTokenError::Store(err)) => return Err(err.into()),
    };
    bearer_value(&token).map(Some).map_err(|_| {
        tracing::warn!(
            event = "proxy_bearer_unsendable",
            route = route.prefix(),
            "access token is not a valid header value"
        );
        ApiError::UpstreamUnavailable
    })
}
