//! The spans of one request's trace, all under the [`TARGET`] target so that only the OTLP
//! layer enables them: without `otlp_endpoint` no subscriber layer is interested in that target
//! and every span below is `tracing`'s disabled no-op.
//!
//! What a span may carry is fixed here, in one place: methods, paths (never a query), route
//! prefixes, endpoint names, status codes, store operation names. Never a header value, a
//! cookie, a token, a code, a store key or an IdP response.
//!
//! A browser's `traceparent` is never a parent: the server span always starts a new trace (the
//! sampler decides for it alone), and a well-formed browser trace context is kept only as a
//! span link, so a front-end trace can still be followed to Ward's.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The target of every span Ward exports.
pub const TARGET: &str = "ward::trace";

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The server span of one request (HTTP semantic conventions). `route` is bounded: an endpoint
/// path, a route prefix or `/*`.
pub fn server<B>(req: &Request<B>, route: &str) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = format!("{} {route}", req.method()),
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %req.method(),
        http.route = route,
        url.path = req.uri().path(),
        url.scheme = req.uri().scheme_str().unwrap_or("http"),
        server.address = Empty,
        network.protocol.version = ?req.version(),
        http.response.status_code = Empty,
    );
    if !span.is_disabled()
        && let Some(host) = req.headers().get(axum::http::header::HOST)
        && let Ok(host) = host.to_str()
    {
        span.record("server.address", host.split(':').next().unwrap_or(host));
    }
    span
}

/// Replaces the browser's trace context in `headers` by `span`'s: the browser's well-formed
/// `traceparent` becomes a link of `span`, its `tracestate` is dropped. Does nothing when
/// `span` is disabled (no OTLP), leaving the pass-through of `proxy::trace`.
pub fn adopt_request(span: &Span, headers: &mut HeaderMap) {
    let Some(own) = traceparent(span) else {
        return;
    };
    if let Some(browser) = headers.get(TRACEPARENT).and_then(browser_context) {
        span.add_link(browser);
    }
    headers.remove(TRACESTATE);
    headers.insert(TRACEPARENT, own);
}

/// Records the response status on the server (or upstream) span.
pub fn record_status(span: &Span, status: u16) {
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// The client span of the upstream exchange of `route`.
pub fn upstream(method: &Method, uri: &Uri, route: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "upstream",
        otel.name = format!("{method} {route}"),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route,
        server.address = uri.host().unwrap_or(""),
        server.port = uri.port_u16(),
        url.path = uri.path(),
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// The client span of one IdP call; `name` is `idp token`, `idp refresh`, `idp userinfo`,
/// `idp jwks`, `idp revocation` or `idp client_credentials`. (Discovery runs once at start,
/// before any request, and has no span.)
pub fn idp(name: &'static str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "idp",
        otel.name = name,
        otel.kind = "client",
        otel.status_code = Empty,
        http.response.status_code = Empty,
        error.type = Empty,
    )
}

/// An internal span around sealing (`session seal`) or opening (`session open`) a record.
pub fn crypto(name: &'static str) -> Span {
    tracing::info_span!(target: TARGET, "session", otel.name = name, otel.kind = "internal")
}

/// A client span around one store operation (`store get`, `store put`…).
pub fn store(name: &'static str, system: &'static str) -> Span {
    tracing::info_span!(
        target: TARGET,
        "store",
        otel.name = name,
        otel.kind = "client",
        otel.status_code = Empty,
        db.system.name = system,
        db.operation.name = name.trim_start_matches("store "),
    )
}

/// Marks `span` failed with a bounded error type (`timeout`, `connect`, `unavailable`…).
pub fn record_error(span: &Span, kind: &'static str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", kind);
}

/// `span`'s own W3C `traceparent`, `None` when the span is disabled.
pub fn traceparent(span: &Span) -> Option<HeaderValue> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let own = context.span();
    let own = own.span_context();
    if !own.is_valid() {
        return None;
    }
    HeaderValue::try_from(format!(
        "00-{}-{}-{:02x}",
        own.trace_id(),
        own.span_id(),
        own.trace_flags().to_u8()
    ))
    .ok()
}

/// The browser's trace context as a remote, unsampled context (its flags are not trusted).
fn browser_context(value: &HeaderValue) -> Option<SpanContext> {
    let value = value.as_bytes();
    if !crate::proxy::trace::is_valid_traceparent(value) {
        return None;
    }
    let text = std::str::from_utf8(value).ok()?;
    let trace_id = TraceId::from_hex(text.get(3..35)?).ok()?;
    let span_id = SpanId::from_hex(text.get(36..52)?).ok()?;
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::default(),
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_browser_context_is_remote_and_never_sampled() {
        let value =
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let context = browser_context(&value).expect("well-formed");
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.span_id().to_string(), "00f067aa0ba902b7");
        assert!(context.is_remote());
        assert!(
            !context.is_sampled(),
            "the browser's sampled flag is not trusted"
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "garbage",
        ] {
            assert!(
                browser_context(&HeaderValue::from_static(bad)).is_none(),
                "{bad}"
            );
        }
    }

    #[test]
    fn without_a_trace_layer_spans_are_disabled_and_headers_untouched() {
        let span = server(&Request::get("/api/x?code=1").body(()).unwrap(), "/api");
        assert!(span.is_disabled());
        assert!(traceparent(&span).is_none());
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        headers.insert(TRACESTATE, HeaderValue::from_static("v=1"));
        adopt_request(&span, &mut headers);
        assert!(
            headers.contains_key(TRACESTATE),
            "pass-through kept when traces are off"
        );
    }
}
