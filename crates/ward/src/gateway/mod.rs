//! Admission of proxy routes: everything between the router and pure forwarding.
//!
//! For a request that matches a `[[routes]]` prefix, in order:
//! 1. cross-site refusal for requests riding a session cookie, WebSocket origin check;
//! 2. the session: loaded when the route needs it (`user`), or when a presented one matters
//!    (`user-optional`, unsafe methods) — a store that cannot answer is `503`; then the rate
//!    limits (`security::rate_limit`): `invalid_session` when a cookie named no live
//!    session, then `api` per session or `anonymous` per client address for the rest;
//! 3. the CSRF token on unsafe methods (before any byte goes upstream);
//! 4. refresh of a near-expiry access token (`session::refresh`), then the idle timer;
//! 5. the bearer the route's token mode names (session, Ward's client token, or none), or
//!    for a route with an RFC 8707 `resource` the token for that resource ([`resource`];
//!    such a route skips step 4's refresh of the session's own token, which it never sends);
//! 6. [`proxy::Proxy`](crate::proxy::Proxy) forwards, with a liveness handle ([`watch`]) for
//!    WebSocket upgrades so the socket closes when its session ends.
//!
//! A `[[composites]]` path takes the same steps once, with the strictest token mode of its
//! parts, then fans out ([`composite`]). Requests that match no route fall through to the
//! static site, then `404`.

mod composite;
mod resource;
mod watch;

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, Response};
use axum::response::IntoResponse;

use crate::config::TokenMode;
use crate::cookie_header;
use crate::endpoints::SessionLogId;
use crate::error::{self, ApiError};
use crate::proxy::{DpopProof, ForwardContext, Route, websocket};
use crate::secret::bearer_value;
use crate::security::rate_limit::{LimitName, Subject};
use crate::security::{client_ip, csrf};
use crate::session::LoadedSession;
use crate::session::refresh::RefreshError;
use crate::state::{AppState, SharedState};

pub(crate) use watch::SessionWatch;

/// The router's fallback: proxy routes, then static files, then 404.
pub async fn fallback(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response<Body> {
    let path = req.uri().path();
    if path == "/bff" || path.starts_with("/bff/") {
        // Ward's namespace: an unknown endpoint is a 404, never a route or the SPA.
        return ApiError::NotFound.into_response();
    }
    // Boxed where a path needs a large future of its own: the router moves this handler's
    // future into a box on every request, so its size is copied per request (callgrind's
    // largest single item before; small in time, see docs/performance.md).
    if let Some(composite) = state.proxy.composite_for(path) {
        return Box::pin(composite::serve(&state, composite, peer, req)).await;
    }
    if let Some(route) = state.proxy.route_for(path) {
        return admit_route(&state, route, peer, req)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    match &state.site {
        Some(site) if matches!(*req.method(), Method::GET | Method::HEAD) => {
            Box::pin(site.serve(req)).await
        }
        _ => ApiError::NotFound.into_response(),
    }
}

/// Steps 1 to 6 for a route.
async fn admit_route(
    state: &SharedState,
    route: &Route,
    peer: SocketAddr,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let session = admit(state, route.token, peer, (req.method(), req.headers())).await?;
    let log_id = session
        .as_ref()
        .map(|s| SessionLogId(s.log_id().to_owned()));
    let mut response = match forward(state, route, session, peer, req).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    if let Some(log_id) = log_id {
        response.extensions_mut().insert(log_id);
    }
    Ok(response)
}

/// Steps 1 and 2: refusals that need no session, then the session `token` needs, counted.
async fn admit(
    state: &SharedState,
    token: TokenMode,
    peer: SocketAddr,
    (method, headers): (&Method, &HeaderMap),
) -> Result<Option<LoadedSession>, ApiError> {
    let cookies = cookie_header::joined(headers);
    let has_cookie = state.sessions.has_session_cookie(cookies.as_deref());
    if has_cookie && csrf::is_cross_site(headers) {
        // Even a GET from another site must not ride the session to the API (a `Lax` cookie
        // comes along on top-level navigations).
        tracing::warn!(event = "csrf_rejected", reason = "cross_site_api");
        return Err(ApiError::CsrfFailed);
    }
    if websocket::is_upgrade(method, headers)
        && websocket::upgrade_refused(
            headers,
            &state.public_origin,
            &state.config.server.cors_origins,
        )
    {
        // A WebSocket handshake is a GET any page can start with the browser's cookies:
        // only Ward's own origin (or a listed one) may open one (cross-site WS hijacking).
        tracing::warn!(event = "csrf_rejected", reason = "websocket_origin");
        return Err(ApiError::CsrfFailed);
    }
    // `user-optional` loads a presented session too; a store it cannot read fails closed (503),
    // while a cookie that names no usable session just means an anonymous request.
    let wants_session = csrf::is_unsafe(method) || token == TokenMode::UserOptional;
    let loads = token == TokenMode::User || (wants_session && has_cookie);
    let session = if loads {
        state.sessions.load(cookies.as_deref()).await?
    } else {
        None
    };
    let named_nothing = session.is_none() && has_cookie && loads;
    drop(cookies);
    count(state, session.as_ref(), named_nothing, peer, headers).await?;
    if token == TokenMode::User && session.is_none() {
        return Err(ApiError::Unauthenticated);
    }
    Ok(session)
}

/// The rate limits of step 2: a request is counted once against `api` (its session) or
/// `anonymous` (its client address, whatever cookie it carries that was not loaded), and
/// once more against `invalid_session` when its cookie named no live session.
async fn count(
    state: &AppState,
    session: Option<&LoadedSession>,
    named_nothing: bool,
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
) -> Result<(), ApiError> {
    let limits = &state.rate_limits;
    if named_nothing {
        limits.cookie_named_no_session(peer.ip(), headers).await?;
    }
    match session {
        Some(session) => {
            let key = Subject::Session(&session.key);
            limits.check(LimitName::Api, key).await
        }
        None if limits.is_on(LimitName::Anonymous) => {
            let client = Subject::Client(limits.client(peer.ip(), headers));
            limits.check(LimitName::Anonymous, client).await
        }
        None => Ok(()),
    }
}

/// Steps 3 to 6, with the session loaded (or not needed).
async fn forward(
    state: &SharedState,
    route: &Route,
    session: Option<LoadedSession>,
    peer: SocketAddr,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    // A resource token by refresh grant replaces the session's own token on the route; one by
    // token exchange is made from it, so that must be fresh.
    let refresh = route.resource.is_none() || route.token_exchange;
    let head = (req.method(), req.headers());
    let session = match prepare(state, route.token, session, head, refresh).await? {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    let bearer = match bearer(state, route, session.as_ref()).await {
        // Only a resource token's refused grant gets here: the session has ended.
        Err(ApiError::Unauthenticated) if session.is_some() => {
            let clear = state.sessions.clear_session_cookie();
            return Ok(error::refresh_failed(RefreshError::Ended, &clear));
        }
        bearer => bearer?,
    };
    let dpop = dpop_proof(state, route, session.as_ref());
    let ctx = ForwardContext {
        dpop: dpop.as_ref(),
        bearer: bearer.as_ref(),
        client_ip: client_ip::client_ip(
            peer.ip(),
            req.headers(),
            state.config.server.trusted_proxy_hops,
        ),
        ward_cookies: &state.cookie_names,
    };
    if websocket::is_upgrade(req.method(), req.headers()) {
        // The socket stays open only while this session lives.
        let watch = SessionWatch::new(state, session.as_ref(), req.headers());
        return Ok(Box::pin(state.proxy.forward_upgrade(route, req, ctx, watch)).await);
    }
    Ok(state.proxy.forward(route, req, ctx).await)
}

/// Steps 3 and 4 for a loaded session: the session to go on with (`None` when a `user-optional`
/// one ended meanwhile: it goes on anonymously, never 401), or the answer that stops here.
/// `refresh`: whether the session's own access token is made fresh (not for a route that
/// sends a resource token instead).
async fn prepare(
    state: &AppState,
    token: TokenMode,
    mut session: Option<LoadedSession>,
    (method, headers): (&Method, &axum::http::HeaderMap),
    refresh: bool,
) -> Result<Result<Option<LoadedSession>, Response<Body>>, ApiError> {
    if let Some(loaded) = &mut session {
        match keep_session(state, (token, refresh), loaded, method, headers).await? {
            Kept::Yes => {}
            Kept::Ended => session = None,
            Kept::Refused(response) => return Ok(Err(response)),
        }
    }
    Ok(Ok(session))
}

/// What became of a loaded session on its way to the upstream.
enum Kept {
    /// It stays; forward with its (possibly refreshed) token.
    Yes,
    /// It ended meanwhile, and the route (`user-optional`) goes on without it.
    Ended,
    /// The request stops here with this answer (a refused or failed refresh).
    Refused(Response<Body>),
}

/// Steps 3 and 4: the CSRF token, the refresh, the idle timer.
async fn keep_session(
    state: &AppState,
    (token, refresh): (TokenMode, bool),
    session: &mut LoadedSession,
    method: &Method,
    headers: &axum::http::HeaderMap,
) -> Result<Kept, ApiError> {
    if csrf::is_unsafe(method) && !csrf::token_matches(headers, &session.data.csrf_token) {
        tracing::warn!(
            event = "csrf_rejected",
            reason = "token",
            session = session.log_id()
        );
        return Err(ApiError::CsrfFailed);
    }
    let optional = token == TokenMode::UserOptional;
    // Refresh before the idle-timer write, so that write carries the refreshed tokens rather
    // than the ones this request loaded (SPEC §5; `session::refresh`).
    if refresh && matches!(token, TokenMode::User | TokenMode::UserOptional) {
        let skew = state.config.oidc.refresh_skew;
        match state
            .sessions
            .ensure_fresh(session, &state.oidc, skew)
            .await
        {
            Ok(()) => {}
            // Refused: the session is gone; `user-optional` goes on anonymously.
            Err(RefreshError::Ended) if optional => return Ok(Kept::Ended),
            Err(err) => {
                let clear = state.sessions.clear_session_cookie();
                return Ok(Kept::Refused(error::refresh_failed(err, &clear)));
            }
        }
    }
    if state.sessions.slide(session).await? {
        Ok(Kept::Yes)
    } else if optional {
        Ok(Kept::Ended)
    } else {
        Err(ApiError::Unauthenticated)
    }
}

/// Step 5: the `Authorization` value the route's token mode names, if any.
async fn bearer(
    state: &AppState,
    route: &Route,
    session: Option<&LoadedSession>,
) -> Result<Option<HeaderValue>, ApiError> {
    let bearer = match route.token {
        TokenMode::User | TokenMode::UserOptional => match (session, &route.resource) {
            (Some(session), Some(resource)) => {
                let optional = route.token == TokenMode::UserOptional;
                return Box::pin(resource::bearer(state, route, session, resource, optional)).await;
            }
            (session, _) => session.map(authorization).transpose(),
        },
        TokenMode::Client => {
            // Failures are logged by the cache; the browser learns nothing of the IdP's answer.
            let token = Box::pin(state.client_tokens.token_for(
                &state.oidc,
                route.scopes.as_deref(),
                route.resource.as_deref(),
            ))
            .await
            .map_err(|_| ApiError::UpstreamUnavailable)?;
            bearer_value(&token).map(Some)
        }
        TokenMode::None => Ok(None),
    };
    bearer.map_err(|_| {
        tracing::warn!(
            event = "proxy_bearer_unsendable",
            route = route.prefix(),
            "access token is not a valid header value"
        );
        ApiError::UpstreamUnavailable
    })
}

/// The session's `Authorization` value: `DPoP <token>` for a DPoP-bound token (RFC 9449 §7.1),
/// else `Bearer <token>`.
fn authorization(session: &LoadedSession) -> Result<HeaderValue, crate::secret::UnsendableBearer> {
    if session.data.dpop_key.is_some() {
        crate::proxy::dpop::dpop_value(&session.data.access_token)
    } else {
        session.bearer()
    }
}

/// Step 5 with a DPoP-bound session token: what proves its key upstream (a fresh proof per
/// upstream request, made by the proxy for the URL it calls).
fn dpop_proof(
    state: &AppState,
    route: &Route,
    session: Option<&LoadedSession>,
) -> Option<DpopProof> {
    if !matches!(route.token, TokenMode::User | TokenMode::UserOptional) {
        return None;
    }
    let session = session?;
    let key = session.data.dpop_key.as_ref()?;
    Some(DpopProof::new(
        key,
        &session.data.access_token,
        state.clock.now(),
    ))
}
