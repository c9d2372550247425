//! The router and the outer ring of checks: the one place that sees every request.
//!
//! Every request first passes [`front`], one layer doing in order:
//! 1. head size limits — a URI over 8 KiB (414) or header fields over 32 KiB (431) stop
//!    before anything else, the access log included, copies them (`security::limits`);
//! 2. the access log's start — it sees the final status of everything, including refusals
//!    below;
//! 3. CORS — preflights answered (or refused) by Ward, never by an upstream;
//! 4. cross-site refusal — unsafe requests from another site stop here, before any endpoint
//!    or route (the session's CSRF token is checked later, where the session is loaded).
//!
//! Then the router: `/bff/*` endpoints, each answering with Ward's security headers, and the
//! gateway fallback — proxy routes (session, then CSRF token, all before any byte goes
//! upstream), then static files, then `404 not_found`. One layer rather than one per check:
//! every layer costs each request a boxed future and a clone of the service below it.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, Response};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::config::{StoreKind, TokenMode};
use crate::endpoints::{self, SessionLogId};
use crate::error::ApiError;
use crate::proxy::{ForwardContext, Route, bearer_value};
use crate::security::{client_ip, cors, csrf, headers, limits};
use crate::session::LoadedSession;
use crate::session::cookie_store;
use crate::session::refresh::RefreshError;
use crate::state::{SharedState, cookie_header};

/// The whole HTTP surface of Ward. Serve it with `ConnectInfo<SocketAddr>`.
pub fn router(state: SharedState) -> Router {
    let stateless = state.config.store.kind == StoreKind::Cookie;
    let mut bff = Router::new()
        .route("/bff/user", get(endpoints::user))
        .route("/bff/login", get(endpoints::login))
        .route("/bff/callback", get(endpoints::callback))
        .route("/bff/logout", post(endpoints::logout))
        .route("/bff/client.js", get(endpoints::client_js));
    if !stateless {
        // Back-channel logout needs sessions it can find without their cookie: not in the
        // stateless cookie store, where the route does not exist (404 tells the IdP so).
        bff = bff.route(
            "/bff/backchannel-logout",
            post(endpoints::backchannel_logout),
        );
    }
    let bff = bff
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::map_response(
            |mut response: Response<Body>| async {
                headers::apply(response.headers_mut());
                response
            },
        ))
        // Endpoints read small forms and JSON only: 413 past 16 KiB, declared or streamed.
        .layer(middleware::from_fn(limits::limit_bff_body));
    let mut app = Router::new().merge(bff).fallback(gateway);
    if stateless {
        // The stateless store reads and writes the request's own cookies.
        app = app.layer(middleware::from_fn(cookie_store::cookie_context));
    }
    app.layer(middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

/// The outer ring of every request (see the module doc).
async fn front(State(state): State<SharedState>, mut req: Request, next: Next) -> Response<Body> {
    if let Err(err) = limits::check_head(req.uri(), req.headers()) {
        return err.into_response();
    }
    let log = AccessLog::begin(&mut req);
    let allowed = cors::allowed_origin(&state, req.headers());
    if cors::is_preflight(req.method(), req.headers()) {
        let response = cors::preflight(allowed);
        log.end(&response);
        return response;
    }
    let refused = csrf::is_unsafe(req.method())
        && csrf::cross_site_refused(
            req.headers(),
            &state.public_origin,
            &state.config.server.cors_origins,
        );
    let mut response = if refused {
        // SPEC §4's defence in depth: no endpoint or route sees an unsafe cross-site request.
        tracing::warn!(event = "csrf_rejected", reason = "cross_site");
        ApiError::CsrfFailed.into_response()
    } else {
        next.run(req).await
    };
    cors::finish(response.headers_mut(), allowed);
    log.end(&response);
    response
}

/// Proxy routes, then static files, then 404.
async fn gateway(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response<Body> {
    let path = req.uri().path();
    if path == "/bff" || path.starts_with("/bff/") {
        // Ward's namespace: an unknown endpoint is a 404, never a route or the SPA.
        return ApiError::NotFound.into_response();
    }
    if let Some(route) = state.proxy.route_for(path) {
        return proxy(&state, route, peer, req)
            .await
            .unwrap_or_else(IntoResponse::into_response);
    }
    match &state.site {
        Some(site) if matches!(*req.method(), Method::GET | Method::HEAD) => site.serve(req).await,
        _ => ApiError::NotFound.into_response(),
    }
}

/// Admission checks of a proxy route, then forwarding.
async fn proxy(
    state: &SharedState,
    route: &Route,
    peer: SocketAddr,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let unsafe_method = csrf::is_unsafe(req.method());
    let cookies = cookie_header(req.headers());
    let has_cookie = state.sessions.has_session_cookie(cookies.as_deref());
    if has_cookie && csrf::is_cross_site(req.headers()) {
        // Even a GET from another site must not ride the session to the API (a `Lax` cookie
        // comes along on top-level navigations).
        tracing::warn!(event = "csrf_rejected", reason = "cross_site_api");
        return Err(ApiError::CsrfFailed);
    }
    if crate::proxy::websocket::is_upgrade(req.method(), req.headers())
        && crate::proxy::websocket::upgrade_refused(
            req.headers(),
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
    let wants_session = unsafe_method || route.token == TokenMode::UserOptional;
    let session = if route.token == TokenMode::User || (wants_session && has_cookie) {
        state.sessions.load(cookies.as_deref()).await?
    } else {
        None
    };
    if route.token == TokenMode::User && session.is_none() {
        return Err(ApiError::Unauthenticated);
    }
    let log_id = session
        .as_ref()
        .map(|s| SessionLogId(s.log_id().to_owned()));
    let mut response = match admit(state, route, session, peer, req).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    };
    if let Some(log_id) = log_id {
        response.extensions_mut().insert(log_id);
    }
    Ok(response)
}

/// With the session loaded (or not needed): CSRF, the idle timer, then forwarding.
async fn admit(
    state: &SharedState,
    route: &Route,
    mut session: Option<LoadedSession>,
    peer: SocketAddr,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    let mut ended = false;
    if let Some(session) = &mut session {
        if csrf::is_unsafe(req.method())
            && !csrf::token_matches(req.headers(), &session.data.csrf_token)
        {
            tracing::warn!(
                event = "csrf_rejected",
                reason = "token",
                session = session.log_id()
            );
            return Err(ApiError::CsrfFailed);
        }
        // Refresh before the idle-timer write, so that write carries the refreshed tokens
        // rather than the ones this request loaded (SPEC §5; `session::refresh`).
        if matches!(route.token, TokenMode::User | TokenMode::UserOptional) {
            let skew = state.config.oidc.refresh_skew;
            match state
                .sessions
                .ensure_fresh(session, &state.oidc, skew)
                .await
            {
                Ok(()) => {}
                // Refused: the session is gone; `user-optional` goes on anonymously.
                Err(RefreshError::Ended) if route.token == TokenMode::UserOptional => ended = true,
                Err(err) => return Ok(err.into_response(&state.sessions)),
            }
        }
        if !ended && !state.sessions.slide(session).await? {
            if route.token != TokenMode::UserOptional {
                return Err(ApiError::Unauthenticated);
            }
            ended = true;
        }
    }
    if ended {
        // Ended since it was loaded: a `user-optional` route goes on anonymously (never 401).
        session = None;
    }
    let bearer = match route.token {
        TokenMode::User | TokenMode::UserOptional => {
            session.as_ref().map(LoadedSession::bearer).transpose()
        }
        TokenMode::Client => {
            // Failures are logged by the cache; the browser learns nothing of the IdP's answer.
            let token = state
                .client_tokens
                .token(&state.oidc, route.scopes.as_deref())
                .await
                .map_err(|_| ApiError::UpstreamUnavailable)?;
            bearer_value(&token).map(Some)
        }
        TokenMode::None => Ok(None),
    };
    let Ok(bearer) = bearer else {
        tracing::warn!(
            event = "proxy_bearer_unsendable",
            route = route.prefix(),
            "access token is not a valid header value"
        );
        return Err(ApiError::UpstreamUnavailable);
    };
    let ctx = ForwardContext {
        bearer: bearer.as_ref(),
        client_ip: client_ip::client_ip(
            peer.ip(),
            req.headers(),
            state.config.server.trusted_proxy_hops,
        ),
        ward_cookies: &state.cookie_names,
    };
    if crate::proxy::websocket::is_upgrade(req.method(), req.headers()) {
        // The socket stays open only while this session lives.
        let watch =
            crate::proxy::websocket::SessionWatch::new(state, session.as_ref(), req.headers());
        return Ok(state.proxy.forward_upgrade(route, req, ctx, watch).await);
    }
    Ok(state.proxy.forward(route, req, ctx).await)
}

/// One line per request: method, path (never the query: it may hold a code), status, latency,
/// session log id, trace id. Fields are copied only when the `ward::access` target is enabled.
struct AccessLog {
    started: Instant,
    fields: Option<(Method, String, String)>,
}

impl AccessLog {
    /// Gives the request a valid W3C trace context (the browser's when it is well-formed, a
    /// new one otherwise; the proxy passes it upstream and the log names it) and notes what the
    /// log line will say.
    fn begin(req: &mut Request) -> Self {
        let started = Instant::now();
        crate::proxy::trace::keep_or_start(req.headers_mut());
        let fields = tracing::enabled!(target: "ward::access", tracing::Level::INFO).then(|| {
            let trace_id = req
                .headers()
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.get(3..35))
                .unwrap_or("")
                .to_owned();
            (req.method().clone(), req.uri().path().to_owned(), trace_id)
        });
        Self { started, fields }
    }

    fn end(self, response: &Response<Body>) {
        let Some((method, path, trace_id)) = self.fields else {
            return;
        };
        let session = response
            .extensions()
            .get::<SessionLogId>()
            .map(|s| s.0.as_str())
            .unwrap_or("");
        tracing::info!(
            target: "ward::access",
            method = %method,
            path = %path,
            status = response.status().as_u16(),
            latency_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            session,
            trace_id,
            "request"
        );
    }
}
