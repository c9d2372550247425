//! WebSocket upgrades through proxy routes (SPEC §5; SECURITY-CASES P-02).
//!
//! An upgrade is admitted like any request to its route (session for `user` routes, the
//! bearer attached, Ward's cookies and `X-CSRF-Token` stripped) and, because it is a GET that
//! a page on any site can start with the browser's cookies (cross-site WebSocket hijacking),
//! only when its `Origin` is Ward's own or listed in `[server] cors_origins`
//! ([`upgrade_refused`]). The upstream's `101` is handed to the browser; any other answer
//! passes through as an ordinary response.
//!
//! Ward speaks no WebSocket itself: once both sides have switched protocols it copies bytes
//! between the two upgraded connections, tracking only where frames begin so that it can
//! close cleanly. While the socket is open, the session it was opened with is re-checked
//! every [`SESSION_CHECK_EVERY`] (a [`Liveness`] handle the gateway gives); when it has ended (logout, back-channel
//! logout, revocation, idle or absolute expiry by Ward's clock) or the store cannot say
//! (fail closed), Ward sends a close frame (1008, "session ended") each way at the next frame
//! boundary and drops both connections. A socket thus never outlives its session's absolute
//! expiry; it does not extend the idle timer either (only HTTP requests slide it).
//!
//! Upstream upgrades always go out as HTTP/1.1 (an `https` upstream is offered only
//! `http/1.1` by ALPN here), since an HTTP/1.1 `Upgrade` cannot travel over HTTP/2.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{Extensions, Method, Request, Response, StatusCode, Version};
use axum::response::IntoResponse;
use hyper::upgrade::OnUpgrade;
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

use self::splice::{Timing, splice};
use super::forward::{self, UpstreamClient};
use super::routes::Route;
use super::{ForwardContext, Proxy, headers};
use crate::error::ApiError;

/// How often an open socket's session is re-checked (real time). Also the longest a socket
/// stays open after its session ended, plus [`CLOSE_GRACE`].
pub(crate) const SESSION_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How long Ward waits for a frame in flight to finish before it drops a connection without
/// a close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Whether the request asks to switch to WebSocket: a GET whose `Connection` names `upgrade`
/// and whose `Upgrade` names `websocket` (RFC 6455 §4.1). Other `Upgrade`s are not honoured:
/// the proxy strips them as hop-by-hop fields.
pub(crate) fn is_upgrade(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        && has_token(headers, &header::CONNECTION, "upgrade")
        && has_token(headers, &header::UPGRADE, "websocket")
}

/// Whether an upgrade must be refused as cross-site: `Sec-Fetch-Site: cross-site`, or an
/// `Origin` that is absent, repeated, `null`, or neither Ward's public origin nor listed in
/// `cors_origins` (exact comparison, no Host-derived value). Browsers always send `Origin` on
/// WebSocket handshakes, so a missing one is not a browser Ward serves.
pub(crate) fn upgrade_refused(
    headers: &HeaderMap,
    public_origin: &str,
    cors_origins: &[String],
) -> bool {
    if headers
        .get_all("sec-fetch-site")
        .iter()
        .any(|v| v.as_bytes() == b"cross-site")
    {
        return true;
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let (Some(origin), None) = (origins.next(), origins.next()) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return true;
    };
    origin == "null" || (origin != public_origin && !cors_origins.iter().any(|o| o == origin))
}

fn has_token(headers: &HeaderMap, name: &header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// The fields an upgrade needs on both hops, which the header rewrite strips as hop-by-hop.
fn restore_upgrade_fields(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// The client for upgrades: HTTP/1.1 only, unpooled in effect (an upgraded connection never
/// returns to the pool).
pub(crate) fn upgrade_client(tls: Option<rustls::ClientConfig>) -> UpstreamClient {
    let builder = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .clone();
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let Some(tls) = tls else {
        return UpstreamClient::Plain(vec![builder.build(http)]);
    };
    http.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    UpstreamClient::Tls(vec![builder.build(https)])
}

/// The outcome of one re-check of an open socket's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Keep the socket open.
    Alive,
    /// Close it; the reason is a fixed word for the log.
    Ended(&'static str),
}

/// What keeps an open socket open.
pub(crate) trait Liveness: Send + 'static {
    /// Re-checks; called every [`SESSION_CHECK_EVERY`].
    fn check(&mut self) -> impl Future<Output = Check> + Send;

    /// The session's log id, for correlation in the socket's log lines.
    fn log_id(&self) -> &str;
}

impl Proxy {
    /// Forwards a WebSocket upgrade (see [`is_upgrade`]; the caller has checked the origin and
    /// the session) and, on the upstream's `101`, splices the two connections for as long as
    /// both stay open and `liveness` holds.
    pub(crate) async fn forward_upgrade<L: Liveness>(
        &self,
        route: &Route,
        req: Request<Body>,
        ctx: ForwardContext<'_>,
        liveness: Option<L>,
    ) -> Response<Body> {
        match self.try_forward_upgrade(route, req, &ctx, liveness).await {
            Ok(response) => response,
            Err(err) => err.into_response(),
        }
    }

    async fn try_forward_upgrade<L: Liveness>(
        &self,
        route: &Route,
        mut req: Request<Body>,
        ctx: &ForwardContext<'_>,
        liveness: Option<L>,
    ) -> Result<Response<Body>, ApiError> {
        // Absent when the connection cannot switch protocols (HTTP/2).
        let Some(inbound) = req.extensions_mut().remove::<OnUpgrade>() else {
            return Err(ApiError::BadRequest);
        };
        let mut upstream_req = self.upstream_request(route, req, ctx)?;
        restore_upgrade_fields(upstream_req.headers_mut());
        let upgrades = self.certified.upgrades_for(route).unwrap_or(&self.upgrades);
        let mut response = forward::send(upgrades, route, upstream_req).await?;
        let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switched && !has_token(response.headers(), &header::UPGRADE, "websocket") {
            // Ward tunnels WebSocket, nothing else the upstream might switch to.
            tracing::warn!(
                event = "websocket_upstream_refused",
                route = route.prefix(),
                "upstream switched to another protocol"
            );
            return Err(ApiError::UpstreamUnavailable);
        }
        let outbound = switched.then(|| hyper::upgrade::on(&mut response));
        let (mut parts, body) = response.into_parts();
        headers::rewrite_response(&mut parts.headers, ctx.ward_cookies);
        parts.version = Version::default();
        parts.extensions = Extensions::new();
        let Some(outbound) = outbound else {
            return Ok(Response::from_parts(parts, Body::new(body)));
        };
        restore_upgrade_fields(&mut parts.headers);
        let route_prefix = route.prefix().to_owned();
        tokio::spawn(tunnel(inbound, outbound, liveness, route_prefix));
        Ok(Response::from_parts(parts, Body::empty()))
    }
}

/// Waits for both sides to switch, then copies until either closes or the session ends.
async fn tunnel<L: Liveness>(
    inbound: OnUpgrade,
    outbound: OnUpgrade,
    liveness: Option<L>,
    route: String,
) {
    let (browser, upstream) = match tokio::join!(inbound, outbound) {
        (Ok(browser), Ok(upstream)) => (TokioIo::new(browser), TokioIo::new(upstream)),
        (browser, upstream) => {
            tracing::info!(
                event = "websocket_failed",
                route,
                browser_ok = browser.is_ok(),
                upstream_ok = upstream.is_ok(),
                "a side did not switch protocols"
            );
            return;
        }
    };
    let session = liveness
        .as_ref()
        .map(|l| l.log_id().to_owned())
        .unwrap_or_default();
    tracing::info!(event = "websocket_opened", route, session, "websocket open");
    let timing = Timing {
        every: SESSION_CHECK_EVERY,
        grace: CLOSE_GRACE,
    };
    let reason = splice(browser, upstream, liveness, timing).await;
    tracing::info!(
        event = "websocket_closed",
        route,
        session,
        reason,
        "websocket closed"
    );
}

mod splice;
#[cfg(test)]
mod tests;
