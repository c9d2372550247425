//! The access log: one line per request, written when the response is ready.

use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, Response};

use crate::endpoints::SessionLogId;

/// One line per request: method, path (never the query: it may hold a code), status, latency,
/// session log id, trace id. Fields are copied only when the `ward::access` target is enabled.
pub struct AccessLog {
    started: Instant,
    fields: Option<(Method, String, String)>,
}

impl AccessLog {
    /// Gives the request a valid W3C trace context (with OTLP on, the server span's, set before;
    /// otherwise the browser's when it is well-formed, a new one if not; the proxy passes it
    /// upstream and the log names it) and notes what the log line will say.
    pub fn begin(req: &mut Request) -> Self {
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

    pub fn end(self, response: &Response<Body>) {
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
