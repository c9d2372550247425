//! The API proxy (SPEC §5).
//!
//! [`Proxy::route_for`] picks the route whose prefix matches the path on whole segments,
//! longest first (`routes.rs`). The caller then enforces the session and CSRF rules and calls
//! [`Proxy::forward`], which refuses paths that could escape the route (`path.rs`), rewrites
//! the headers (`headers.rs`, `cookies.rs`, `trace.rs`: hop-by-hop fields, credentials,
//! forwarding claims and Ward's cookies out; bearer, `X-Forwarded-*`, `Host`, `traceparent`
//! in), sends the request with its body streamed through one shared connection pool
//! (`forward.rs`; with `tls_client_auth`, https routes that forward a token use a second pool
//! presenting Ward's client certificate, `client_cert.rs`) and streams the answer back,
//! cleaned of hop-by-hop fields, CORS fields and `Set-Cookie`s naming Ward's cookies. WebSocket upgrades take the same rewrite, then
//! `Proxy::forward_upgrade` splices the two connections (`websocket.rs`).
//!
//! The caller (`app.rs`) decides the bearer: the session's access token (refreshed first when
//! near expiry) for `user` and `user-optional`, Ward's client-credentials token for `client`;
//! [`Proxy::forward`] attaches it as the route's [`TokenMode`] allows.

mod client_cert;
mod composite;
mod cookies;
pub mod dpop;
pub mod fields;
mod forward;
mod headers;
mod part_target;
mod path;
mod routes;
#[cfg(test)]
mod tests;
pub(crate) mod trace;
pub mod trim;
pub(crate) mod websocket;

use std::net::IpAddr;

use axum::body::Body;
use axum::http::{Extensions, HeaderValue, Method, Request, Response, StatusCode, Version, header};
use axum::response::IntoResponse;
use url::{Position, Url};

use crate::config::{CompositeConfig, RouteConfig, TokenMode};
use crate::error::ApiError;
use crate::outbound::Outbound;
use crate::security::limits;

pub use crate::secret::{UnsendableBearer, bearer_value};
pub use composite::{Composite, MAX_PARTS, Part};
pub use dpop::DpopProof;
pub use fields::FieldSet;
pub use part_target::PartTarget;
pub use routes::Route;

/// Why the route table cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A route is invalid.
    #[error("routes[{index}]: {reason}")]
    InvalidRoute {
        /// Position in `[[routes]]`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// A composite is invalid.
    #[error("composites[{index}]: {reason}")]
    InvalidComposite {
        /// Position in `[[composites]]`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// `public_url` has no host or is not `http`/`https`: `X-Forwarded-*` cannot be derived.
    #[error("public_url must be an http or https URL with a host")]
    InvalidPublicUrl,
}

/// What the proxy needs to know of the request beyond the request itself.
pub struct ForwardContext<'a> {
    /// `Authorization: Bearer <access token>` (from [`bearer_value`]), when the route wants
    /// one. Required for `user` routes (forwarding fails closed with 401 without it); never
    /// attached on `none` routes, even when given.
    pub bearer: Option<&'a HeaderValue>,
    /// The browser's address as Ward determined it (after trusted proxy hops).
    pub client_ip: IpAddr,
    /// Names of Ward's own cookies: stripped from `Cookie` and from upstream `Set-Cookie`,
    /// together with any name that continues one of them with `.` or `-` (chunks).
    pub ward_cookies: &'a [String],
    /// With a DPoP-bound token (`bearer` then is `DPoP <token>`): the key that proves it, for a
    /// fresh `DPoP` proof per upstream request (`dpop.rs`).
    pub dpop: Option<&'a DpopProof>,
}

/// The route table and the upstream connection pool.
pub struct Proxy {
    /// Longest prefix first.
    routes: Vec<Route>,
    client: forward::UpstreamClient,
    /// HTTP/1.1-only client for WebSocket upgrades (`websocket.rs`).
    upgrades: forward::UpstreamClient,
    /// The pools presenting Ward's client certificate, for the routes that need it (RFC 8705
    /// §3, `client_cert.rs`).
    certified: client_cert::CertifiedClients,
    forwarded_proto: HeaderValue,
    forwarded_host: HeaderValue,
    /// Request body limit of routes without their own (`[server] max_request_body`).
    max_request_body: u64,
    /// `[[composites]]`, each answering one exact path.
    composites: Vec<Composite>,
    /// The latest `DPoP-Nonce` of each upstream origin (RFC 9449 §9).
    dpop_nonces: crate::oidc::dpop::DpopNonces,
}

/// The body limit until [`Proxy::with_max_request_body`] sets the configured one: the
/// default of `[server] max_request_body`.
const DEFAULT_MAX_REQUEST_BODY: u64 = 10 * 1024 * 1024;

impl Proxy {
    /// Compiles `[[routes]]`; `public_url` gives `X-Forwarded-Host`/`-Proto`. Fails on the
    /// first invalid route (bad prefix or upstream, duplicate prefix, zero timeout).
    pub fn new(
        routes: &[RouteConfig],
        public_url: &Url,
        outbound: &Outbound,
    ) -> Result<Self, ProxyError> {
        Self::for_workers(routes, public_url, 1, outbound)
    }

    /// [`Proxy::new`] with one upstream connection pool per serving worker (`server::run`).
    pub fn for_workers(
        routes: &[RouteConfig],
        public_url: &Url,
        workers: usize,
        outbound: &Outbound,
    ) -> Result<Self, ProxyError> {
        let routes = routes::compile_all(routes)?;
        let forwarded_proto = match public_url.scheme() {
            "http" => HeaderValue::from_static("http"),
            "https" => HeaderValue::from_static("https"),
            _ => return Err(ProxyError::InvalidPublicUrl),
        };
        let host = &public_url[Position::BeforeHost..Position::AfterPort];
        if host.is_empty() {
            return Err(ProxyError::InvalidPublicUrl);
        }
        let forwarded_host =
            HeaderValue::from_str(host).map_err(|_| ProxyError::InvalidPublicUrl)?;
        let tls = routes
            .iter()
            .any(Route::is_https)
            .then(|| outbound.tls_config(&[]));
        let client = forward::UpstreamClient::new(tls.clone(), workers);
        let upgrades = websocket::upgrade_client(tls);
        let certified = client_cert::CertifiedClients::new(&routes, workers, outbound);
        Ok(Self {
            routes,
            client,
            upgrades,
            certified,
            forwarded_proto,
            forwarded_host,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            composites: Vec::new(),
            dpop_nonces: Default::default(),
        })
    }

    /// Compiles `[[composites]]` against the route table: every part must lie under a route.
    pub fn with_composites(mut self, configs: &[CompositeConfig]) -> Result<Self, ProxyError> {
        self.composites = composite::compile_all(configs, &self.routes)?;
        Ok(self)
    }

    /// The composite answering exactly `path`, if any.
    pub fn composite_for(&self, path: &str) -> Option<&Composite> {
        self.composites.iter().find(|c| c.path() == path)
    }

    /// The route a composite part goes through.
    pub fn route_of(&self, part: &Part) -> &Route {
        &self.routes[part.route]
    }

    /// Sets the request body limit of routes that have none of their own.
    #[must_use]
    pub fn with_max_request_body(mut self, bytes: u64) -> Self {
        self.max_request_body = bytes;
        self
    }

    /// The route whose prefix matches `path` on whole segments (longest prefix wins).
    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|route| route.matches(path))
    }

    /// Forwards `req` on `route` and streams the answer back. Refusals (dot segments → 400,
    /// upstream down → 502, timeout → 504, …) come back as Ward's JSON error responses.
    ///
    /// `req.uri()` must carry the full request path, the one `route` was chosen with.
    pub async fn forward(
        &self,
        route: &Route,
        req: Request<Body>,
        ctx: ForwardContext<'_>,
    ) -> Response<Body> {
        match self.try_forward(route, req, &ctx).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    }

    /// [`Proxy::forward`] with refusals as errors (composite parts report them by code).
    pub(crate) async fn try_forward(
        &self,
        route: &Route,
        mut req: Request<Body>,
        ctx: &ForwardContext<'_>,
    ) -> Result<Response<Body>, ApiError> {
        // A declared length over the limit is refused before anything is read or sent; a
        // streamed body is counted on its way out (`forward::send_limited`).
        let limit = route.max_request_body().unwrap_or(self.max_request_body);
        limits::refuse_declared_length(req.headers(), limit)?;
        let trims = route.trims_for(req.headers());
        if !trims.is_empty() {
            // A body Ward trims must reach it whole and readable: identity, never compressed,
            // never a byte range of a document (a range of the trimmed one means nothing).
            for name in [header::ACCEPT_ENCODING, header::RANGE, header::IF_RANGE] {
                req.headers_mut().remove(name);
            }
        }
        let method = req.method().clone();
        let response = self.send_proved(route, req, ctx, limit).await?;
        let (mut parts, body) = response.into_parts();
        headers::rewrite_response(&mut parts.headers, ctx.ward_cookies);
        parts.version = Version::default();
        parts.extensions = Extensions::new();
        if route.has_profiles() {
            // Caches must not serve one client's shape to another.
            parts
                .headers
                .append(header::VARY, HeaderValue::from_static("x-client-profile"));
        }
        if !trims.is_empty() && trim::applies(&method, parts.status, &parts.headers) {
            return trim::trim(route, &trims, parts, Body::new(body)).await;
        }
        Ok(Response::from_parts(parts, Body::new(body)))
    }

    /// Sends `req` upstream; with a DPoP proof, remembers the upstream's nonce and, when it
    /// refused for want of one, sends a replayable request once more (`dpop.rs`).
    async fn send_proved(
        &self,
        route: &Route,
        req: Request<Body>,
        ctx: &ForwardContext<'_>,
        limit: u64,
    ) -> Result<Response<hyper::body::Incoming>, ApiError> {
        // Ward's client certificate for the https upstreams of token-carrying routes
        // (`tls_client_auth`: certificate-bound tokens).
        let client = self.certified.client_for(route).unwrap_or(&self.client);
        if ctx.dpop.is_none() || route.token == TokenMode::None {
            let upstream_req = self.upstream_request(route, req, ctx)?;
            return forward::send_limited(client, route, upstream_req, limit).await;
        }
        // Boxed: the DPoP exchange (two sends and a replayable body) would otherwise make every
        // request's future larger, and the router copies that future into a box per request.
        Box::pin(self.send_with_nonce_retry(client, route, req, ctx, limit)).await
    }

    /// [`send_proved`](Self::send_proved) with a DPoP proof: once more, with the nonce, when
    /// the upstream asks for one.
    async fn send_with_nonce_retry(
        &self,
        client: &forward::UpstreamClient,
        route: &Route,
        req: Request<Body>,
        ctx: &ForwardContext<'_>,
        limit: u64,
    ) -> Result<Response<hyper::body::Incoming>, ApiError> {
        let (req, replay) = dpop::replayable(req).await?;
        let upstream_req = self.upstream_request(route, req, ctx)?;
        let origin = crate::oidc::dpop::origin_of(&upstream_req.uri().to_string()).to_owned();
        let response = forward::send_limited(client, route, upstream_req, limit).await?;
        let fresh = self.dpop_nonces.remember(&origin, response.headers());
        let refused = response.status() == StatusCode::UNAUTHORIZED
            && fresh
            && crate::oidc::dpop::www_authenticate_asks_for_nonce(response.headers());
        if !refused {
            return Ok(response);
        }
        let Some(replay) = replay else {
            tracing::info!(
                event = "dpop_nonce_retry",
                server = "upstream",
                route = route.prefix(),
                retried = false,
                "the upstream asks for a DPoP nonce; a streamed body is not replayed"
            );
            return Ok(response);
        };
        tracing::debug!(
            event = "dpop_nonce_retry",
            server = "upstream",
            route = route.prefix(),
            retried = true
        );
        drop(response);
        let upstream_req = self.upstream_request(route, replay, ctx)?;
        let response = forward::send_limited(client, route, upstream_req, limit).await?;
        self.dpop_nonces.remember(&origin, response.headers());
        Ok(response)
    }

    /// The request as the upstream receives it, or why it must not be sent at all.
    fn upstream_request(
        &self,
        route: &Route,
        req: Request<Body>,
        ctx: &ForwardContext<'_>,
    ) -> Result<Request<Body>, ApiError> {
        let (mut parts, body) = req.into_parts();
        // TRACE would echo credentials back; CONNECT would turn Ward into a tunnel.
        if parts.method == Method::TRACE || parts.method == Method::CONNECT {
            return Err(ApiError::MethodNotAllowed);
        }
        let path = parts.uri.path();
        if let Err(refusal) = path::check(path) {
            let reason = format!("{refusal:?}");
            tracing::info!(
                event = "proxy_path_refused",
                route = route.prefix(),
                reason,
                "request path refused"
            );
            return Err(ApiError::BadRequest);
        }
        let Some(target) = route.upstream_uri_of(&parts.uri) else {
            tracing::warn!(
                event = "proxy_route_mismatch",
                route = route.prefix(),
                "path not under its route"
            );
            return Err(ApiError::NotFound);
        };
        let bearer = match route.token {
            TokenMode::User => Some(ctx.bearer.ok_or(ApiError::Unauthenticated)?),
            TokenMode::UserOptional | TokenMode::Client => ctx.bearer,
            TokenMode::None => None,
        };
        let additions = headers::RequestAdditions {
            bearer,
            client_ip: ctx.client_ip,
            ward_cookies: ctx.ward_cookies,
            forwarded_proto: &self.forwarded_proto,
            forwarded_host: &self.forwarded_host,
            upstream_host: route.host_header(),
        };
        headers::rewrite_request(&mut parts.headers, &additions);
        if let (Some(proof), Some(_)) = (ctx.dpop, bearer) {
            let target = target.to_string();
            let Some(value) = proof.header(parts.method.as_str(), &target, &self.dpop_nonces)
            else {
                tracing::warn!(
                    event = "proxy_bearer_unsendable",
                    route = route.prefix(),
                    "DPoP proof could not be made"
                );
                return Err(ApiError::UpstreamUnavailable);
            };
            parts.headers.insert("dpop", value);
        }
        parts.uri = target;
        // Ward re-frames every request: HTTP/1.1 unless the pool negotiated HTTP/2, and none
        // of the inbound connection's extensions (upgrades, protocol hints) travel along.
        parts.version = Version::HTTP_11;
        parts.extensions = Extensions::new();
        Ok(Request::from_parts(parts, body))
    }
}
