//! The upstream connection pool and one exchange with it: send, wait for the response head
//! within the route's timeout, map failures to 502/504.

use std::error::Error as _;
use std::fmt;

use axum::body::Body;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::routes::Route;
use crate::error::ApiError;
use crate::security::limits::LimitedBody;
use crate::telemetry::spans;
use tracing::Instrument as _;

/// The pooled clients of every route, one per serving worker (`server::run`), so that a request
/// and the upstream connection it uses are driven by the same thread. TLS (the shared trust of
/// `Outbound`: system roots plus `[outbound] ca_file`) is set up only when some upstream is
/// `https`. Requests go out as HTTP/1.1; HTTP/2 is used where an `https` upstream offers it by
/// ALPN. Never through the egress proxy: upstreams are in-cluster services.
pub(crate) enum UpstreamClient {
    Plain(Vec<Client<HttpConnector, Body>>),
    Tls(Vec<Client<HttpsConnector<HttpConnector>, Body>>),
}

impl UpstreamClient {
    /// Clients with a pool for each of `workers` serving workers (1..=workers) and one (0) for
    /// callers outside them, TLS-capable with `tls` (some route is https).
    pub(crate) fn new(tls: Option<rustls::ClientConfig>, workers: usize) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        // The timer lets the pool expire idle connections.
        builder.pool_timer(TokioTimer::new());
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        let workers = workers + 1;
        let Some(tls) = tls else {
            let clients = (0..workers).map(|_| builder.build(http.clone())).collect();
            return Self::Plain(clients);
        };
        http.enforce_http(false);
        let https = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let clients = (0..workers).map(|_| builder.build(https.clone())).collect();
        Self::Tls(clients)
    }

    fn request(&self, req: Request<Body>) -> ResponseFuture {
        let worker = crate::server::worker_index();
        match self {
            Self::Plain(clients) => clients[worker % clients.len()].request(req),
            Self::Tls(clients) => clients[worker % clients.len()].request(req),
        }
    }
}

/// [`send`] with the request body counted as it streams upstream: once it passes `limit`
/// bytes, the upstream exchange is aborted (the body fails, so hyper drops the connection
/// without ending the request: the upstream never sees a complete request) and, when the
/// upstream has not answered yet, the browser gets `413 payload_too_large`. When the upstream
/// answered before the body ended (an early response), that answer goes to the browser; the
/// overflow then closes the upstream connection, cutting short whatever of the answer had not
/// arrived yet (the browser sees its HTTP/1.1 connection closed or its HTTP/2 stream reset).
pub(crate) async fn send_limited(
    client: &UpstreamClient,
    route: &Route,
    req: Request<Body>,
    limit: u64,
) -> Result<Response<Incoming>, ApiError> {
    if hyper::body::Body::is_end_stream(req.body()) {
        // No body (most GETs): nothing to count, no overflow to watch for.
        return send(client, route, req).await;
    }
    // Boxed: the counted exchange is a larger future than `send`, and the router copies each
    // request's whole future into a box; bodiless requests need not carry it.
    Box::pin(send_counted(client, route, req, limit)).await
}

/// [`send_limited`] for a request that has a body.
async fn send_counted(
    client: &UpstreamClient,
    route: &Route,
    req: Request<Body>,
    limit: u64,
) -> Result<Response<Incoming>, ApiError> {
    let (parts, body) = req.into_parts();
    let (body, mut overflow) = LimitedBody::new(body, limit);
    let req = Request::from_parts(parts, Body::new(body));
    let result = tokio::select! {
        biased;
        () = overflow.occurred() => return Err(too_large(route, limit)),
        result = exchange(client, route, req) => result,
    };
    match result {
        Ok(response) => Ok(response),
        Err(_) if overflow.has_occurred() => Err(too_large(route, limit)),
        Err(_) if overflow.broke() => {
            // Malformed chunked framing (or a connection cut mid-body) from the browser: its
            // request, not the upstream, failed (SPEC §2: 400, never an upstream failure).
            tracing::info!(
                event = "request_malformed",
                part = "body",
                route = route.prefix(),
                "request body framing is malformed"
            );
            Err(ApiError::BadRequest)
        }
        Err(failure) => Err(failure.report(route)),
    }
}

fn too_large(route: &Route, limit: u64) -> ApiError {
    tracing::info!(
        event = "request_too_large",
        part = "body",
        route = route.prefix(),
        limit,
        "request body grew past the limit while streaming"
    );
    ApiError::PayloadTooLarge
}

/// Sends `req` and waits for the response head at most `route.timeout()`. The response body
/// is not bounded here: it streams for as long as the upstream sends it.
pub(crate) async fn send(
    client: &UpstreamClient,
    route: &Route,
    req: Request<Body>,
) -> Result<Response<Incoming>, ApiError> {
    exchange(client, route, req)
        .await
        .map_err(|failure| failure.report(route))
}

/// Why an exchange with the upstream produced no response head.
enum Failure {
    /// The client failed: connecting, or sending/receiving on the connection.
    Client(hyper_util::client::legacy::Error),
    /// No response head within the route's timeout.
    Timeout,
}

impl Failure {
    /// Logs the failure as the upstream's and names the browser's answer (502 or 504).
    fn report(self, route: &Route) -> ApiError {
        match self {
            Self::Client(err) => {
                let kind = if err.is_connect() {
                    "connect"
                } else {
                    "exchange"
                };
                // The chain names the failure (refused, reset, DNS, TLS): never a header, a
                // query string or a body, none of which hyper puts in its errors.
                tracing::warn!(
                    event = "upstream_failed",
                    route = route.prefix(),
                    kind,
                    error = %Chain(&err),
                    "upstream request failed"
                );
                ApiError::UpstreamUnavailable
            }
            Self::Timeout => {
                tracing::warn!(
                    event = "upstream_failed",
                    route = route.prefix(),
                    kind = "timeout",
                    timeout_ms = u64::try_from(route.timeout().as_millis()).unwrap_or(u64::MAX),
                    "upstream did not answer in time"
                );
                ApiError::UpstreamTimeout
            }
        }
    }
}

/// One exchange in its client span, whose id is the parent id of the `traceparent` the
/// upstream receives (when traces are exported; otherwise the span is disabled and the
/// header is the one `trace::keep_or_start` left).
async fn exchange(
    client: &UpstreamClient,
    route: &Route,
    mut req: Request<Body>,
) -> Result<Response<Incoming>, Failure> {
    let _timer = route.metrics().upstream_timer();
    let span = if crate::telemetry::otlp::enabled() {
        spans::upstream(req.method(), req.uri(), route.prefix())
    } else {
        tracing::Span::none()
    };
    if let Some(traceparent) = spans::traceparent(&span) {
        super::trace::set(req.headers_mut(), traceparent);
    }
    let sent = tokio::time::timeout(route.timeout(), client.request(req));
    let result = match sent.instrument(span.clone()).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(err)) => Err(Failure::Client(err)),
        Err(_elapsed) => Err(Failure::Timeout),
    };
    match &result {
        Ok(response) => spans::record_status(&span, response.status().as_u16()),
        Err(Failure::Client(err)) if err.is_connect() => spans::record_error(&span, "connect"),
        Err(Failure::Client(_)) => spans::record_error(&span, "exchange"),
        Err(Failure::Timeout) => spans::record_error(&span, "timeout"),
    }
    result
}

/// An error and its sources, `: `-separated, for one log field.
struct Chain<'a>(&'a hyper_util::client::legacy::Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}
