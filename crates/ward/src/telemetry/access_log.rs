//! The access log: one line per request, written when the response is ready, and the request's
//! count and latency in the route's metric series.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, Response};

use super::metrics::RouteSeries;
use crate::endpoints::SessionLogId;

/// One line per request: route (the bounded metric label), method, path (never the query: it
/// may hold a code), status, latency, session log id, trace id. Fields are copied only when the
/// `ward::access` target is enabled; the metrics are recorded either way.
pub struct AccessLog {
    started: Instant,
    route: &'static RouteSeries,
    method: Method,
    fields: Option<(String, String)>,
}

impl AccessLog {
    /// Gives the request a valid W3C trace context (with OTLP on, the server span's, set before;
    /// otherwise the browser's when it is well-formed, a new one if not; the proxy passes it
    /// upstream and the log names it) and notes what the log line will say; `route` is the
    /// series the request counts in.
    pub fn begin(req: &mut Request, route: &'static RouteSeries) -> Self {
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
            (req.uri().path().to_owned(), trace_id)
        });
        Self {
            started,
            route,
            // Standard methods are inline constants: cloning one does not allocate.
            method: req.method().clone(),
            fields,
        }
    }

    pub fn end(self, response: &Response<Body>) {
        let elapsed = self.started.elapsed();
        let status = response.status().as_u16();
        self.route.record(&self.method, status, elapsed);
        let Some((path, trace_id)) = self.fields else {
            return;
        };
        let session = response
            .extensions()
            .get::<SessionLogId>()
            .map(|s| s.0.as_str())
            .unwrap_or("");
        // Whole microseconds as milliseconds: three decimals, never a float's long tail.
        let latency_ms = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX) as f64 / 1000.0;
        tracing::info!(
            target: "ward::access",
            route = self.route.name(),
            method = %self.method,
            path = %path,
            status,
            latency_ms,
            session,
            trace_id,
            "request"
        );
    }
}
