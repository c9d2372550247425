//! The API proxy (SPEC §5): route table matched on path segments, forwarding with header
//! hygiene, bearer attachment, `X-Forwarded-*`, streamed bodies. (Stub: to be implemented.)

use std::net::IpAddr;

use axum::body::Body;
use axum::http::{Request, Response};

use crate::config::{RouteConfig, TokenMode};
use crate::secret::SecretString;

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
}

/// One compiled route.
#[derive(Debug)]
pub struct Route {
    /// Which token the upstream receives.
    pub token: TokenMode,
}

/// What the proxy needs to know of the request beyond the request itself.
pub struct ForwardContext<'a> {
    /// Access token to attach as `Authorization: Bearer`, when the route wants one.
    pub bearer: Option<&'a SecretString>,
    /// The browser's address as Ward determined it (after trusted proxy hops).
    pub client_ip: IpAddr,
    /// Names of Ward's own cookies: stripped from `Cookie` and from upstream `Set-Cookie`.
    pub ward_cookies: &'a [String],
}

/// The route table and the upstream connection pool.
pub struct Proxy {}

impl Proxy {
    /// Compiles `[[routes]]`; `public_url` gives `X-Forwarded-Host`/`-Proto`.
    pub fn new(_routes: &[RouteConfig], _public_url: &url::Url) -> Result<Self, ProxyError> {
        todo!()
    }

    /// The route whose prefix matches `path` on whole segments (longest prefix wins).
    pub fn route_for(&self, _path: &str) -> Option<&Route> {
        todo!()
    }

    /// Forwards `req` on `route` and streams the answer back. Refusals (dot segments → 400,
    /// upstream down → 502, timeout → 504, …) come back as Ward's JSON error responses.
    pub async fn forward(
        &self,
        _route: &Route,
        _req: Request<Body>,
        _ctx: ForwardContext<'_>,
    ) -> Response<Body> {
        todo!()
    }
}
