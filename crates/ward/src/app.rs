//! The router and the outer ring of checks: the one place that sees every request.
//!
//! Every request first passes [`front`], one layer doing in order:
//! 1. head checks — a URI over 8 KiB (414), header fields over 32 KiB (431), or a missing or
//!    repeated `Host` (400) stop before anything else, the access log included, copies them
//!    (`security::limits`); they are counted in the metrics under the route `refused`;
//! 2. the `login` rate limit — `/bff/login`, `/bff/callback` and `/bff/login/password` per
//!    client address, before the endpoint creates a login transaction or reads the store
//!    (`429` with `Retry-After`, logged as the `rate_limited` event, not by the access log:
//!    a flood costs one line per request, not two); the other limits depend on the session
//!    and count where it is loaded (`gateway`, `security::rate_limit`);
//! 3. the access log's start — it sees the final status of everything below;
//! 4. CORS — preflights answered (or refused) by Ward, never by an upstream;
//! 5. cross-site refusal — unsafe requests from another site stop here, before any endpoint
//!    or route (the session's CSRF token is checked later, where the session is loaded).
//!
//! Then the router: `/bff/*` endpoints, each answering with Ward's security headers, and the
//! [`gateway`] fallback — proxy routes (session, then CSRF token, all before any byte goes
//! upstream), then static files, then `404 not_found`. One layer rather than one per check:
//! every layer costs each request a boxed future and a clone of the service below it.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, Response, header};
use axum::middleware::{self, Next};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::config::StoreKind;
use crate::endpoints;
use crate::error::ApiError;
use crate::gateway;
use crate::security::rate_limit::{LimitName, Subject};
use crate::security::{cors, csrf, headers, limits};
use crate::session::cookie_store;
use crate::state::{AppState, SharedState};
use crate::telemetry::metrics::{self, RouteSeries};
use crate::telemetry::{AccessLog, otlp, spans};
use tracing::{Instrument as _, Span};

/// The whole HTTP surface of Ward. Serve it with `ConnectInfo<SocketAddr>`.
pub fn router(state: SharedState) -> Router {
    let stateless = state.config.store.kind == StoreKind::Cookie;
    let mut bff = Router::new()
        .route("/bff/user", get(endpoints::user))
        .route("/bff/login", get(endpoints::login))
        .route("/bff/callback", get(endpoints::callback))
        .route("/bff/logout", post(endpoints::logout))
        .route("/bff/login/password", post(endpoints::login_password))
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
    let mut app = Router::new().merge(bff).fallback(gateway::fallback);
    if stateless {
        // The stateless store reads and writes the request's own cookies.
        app = app.layer(middleware::from_fn(cookie_store_context));
    }
    app.layer(middleware::from_fn_with_state(state.clone(), front))
        .with_state(state)
}

/// The outer ring of every request (see the module doc).
async fn front(
    State(state): State<SharedState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut req: Request,
    next: Next,
) -> Response<Body> {
    let started = std::time::Instant::now();
    if let Err(err) = limits::check_head(req.uri(), req.headers())
        .and_then(|()| limits::check_host(req.version(), req.headers()))
    {
        let response = err.into_response();
        let status = response.status().as_u16();
        metrics::refused_route().record(req.method(), status, started.elapsed());
        return response;
    }
    if is_login_path(req.uri().path()) && state.rate_limits.is_on(LimitName::Login) {
        let client = state.rate_limits.client(peer.ip(), req.headers());
        let counted = state
            .rate_limits
            .check(LimitName::Login, Subject::Client(client));
        if let Err(err) = counted.await {
            return err.into_response();
        }
    }
    // One bounded name for the part of Ward that answers: the metrics' `route` label, the
    // access log's `route` and the server span's `http.route`.
    let route = metric_route(&state, &req);
    // The server span, before the access log so that both name Ward's own trace id; without
    // OTLP no span is created at all.
    let span = if otlp::enabled() {
        let span = spans::server(&req, route.name());
        spans::adopt_request(&span, req.headers_mut());
        span
    } else {
        Span::none()
    };
    let response = checked(state, route, req, next)
        .instrument(span.clone())
        .await;
    spans::record_status(&span, response.status().as_u16());
    response
}

/// Steps 3 to 5 of [`front`].
async fn checked(
    state: SharedState,
    route: &'static RouteSeries,
    mut req: Request,
    next: Next,
) -> Response<Body> {
    let log = AccessLog::begin(&mut req, route);
    let allowed = cors::allowed_origin(&state.config.server.cors_origins, req.headers());
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

/// The `route` label of a request (SPEC §8): the part of Ward that answers it, as
/// `gateway::fallback` decides — a `/bff` endpoint, a proxy route's prefix, the static site —
/// or `not_found`; never the raw path, so the label set stays bounded.
fn metric_route(state: &AppState, req: &Request) -> &'static RouteSeries {
    let path = req.uri().path();
    if path == "/bff" || path.starts_with("/bff/") {
        return metrics::endpoint_route(path).unwrap_or_else(metrics::not_found_route);
    }
    if let Some(composite) = state.proxy.composite_for(path) {
        return composite.metrics();
    }
    if let Some(route) = state.proxy.route_for(path) {
        return route.metrics();
    }
    match &state.site {
        Some(_) if matches!(*req.method(), Method::GET | Method::HEAD) => metrics::static_route(),
        _ => metrics::not_found_route(),
    }
}

/// The endpoints that share the `login` budget (SPEC §7): each starts or completes a login.
fn is_login_path(path: &str) -> bool {
    matches!(path, "/bff/login" | "/bff/callback" | "/bff/login/password")
}

/// With the stateless store: the request runs inside its cookie context (the store reads its
/// cookies), and the records the store wrote leave as the response's `Set-Cookie`s.
async fn cookie_store_context(req: Request, next: Next) -> Response<Body> {
    let context = cookie_store::CookieContext::of(req.headers());
    let (mut response, set_cookies) = cookie_store::scoped(context, next.run(req)).await;
    for value in set_cookies {
        if let Ok(value) = HeaderValue::try_from(value) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}
