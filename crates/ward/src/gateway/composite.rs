//! Composites (SPEC §5, `docs/aggregation.md`): one browser request, several routes at once.
//!
//! Admission runs once, as for a route whose token mode is the strictest of the parts'
//! routes: cross-site refusal, the session, one count against the `api` (or `anonymous`)
//! limit, the CSRF token when the composite is a `POST`, the refresh and the idle timer. Then
//! every part is sent concurrently through the proxy's forwarding (`Proxy::try_forward`: its
//! route's header hygiene, bearer, timeout and trimming), each in a child span and under its
//! deadline, and the answer is `200` with one member per part: its JSON, or
//! `{"error": "<code>", "status": N}`.

use std::net::IpAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header, request};
use axum::response::IntoResponse;
use futures_util::future::join_all;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use tracing::field::Empty;
use tracing::{Instrument as _, Span};

use crate::endpoints::SessionLogId;
use crate::error::ApiError;
use crate::proxy::trim::{self, BufferRefusal};
use crate::proxy::{Composite, ForwardContext, Part, Route};
use crate::security::client_ip;
use crate::session::LoadedSession;
use crate::state::{AppState, SharedState};
use crate::telemetry::{otlp, spans};

/// Request fields a part does not inherit from the browser's request: it has no body, and
/// Ward must be able to read its answer whole (JSON, uncompressed, not a range, not a `304`
/// to a validator that was the composite's, never the part's).
const NOT_INHERITED: &[HeaderName] = &[
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::TRANSFER_ENCODING,
    header::ACCEPT,
    header::ACCEPT_ENCODING,
    header::EXPECT,
    header::RANGE,
    header::IF_RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
];

/// Answers `req` with `composite` (the gateway's fallback found it by path).
pub(super) async fn serve(
    state: &SharedState,
    composite: &Composite,
    peer: SocketAddr,
    req: Request,
) -> Response<Body> {
    run(state, composite, peer, req)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn run(
    state: &SharedState,
    composite: &Composite,
    peer: SocketAddr,
    req: Request,
) -> Result<Response<Body>, ApiError> {
    if req.method() != composite.method() {
        return Err(ApiError::MethodNotAllowed);
    }
    let token = composite.token();
    let session = super::admit(state, token, peer, (req.method(), req.headers())).await?;
    let head = (req.method(), req.headers());
    let session = match super::prepare(state, token, session, head, true).await? {
        Ok(session) => session,
        Err(refused) => return Ok(refused),
    };
    // The browser's body is never read: parts receive none.
    let (head, _body) = req.into_parts();
    let fan_out = FanOut {
        state,
        composite,
        session: session.as_ref(),
        client_ip: client_ip::client_ip(
            peer.ip(),
            &head.headers,
            state.config.server.trusted_proxy_hops,
        ),
        head: &head,
    };
    let values = join_all(composite.parts().iter().map(|part| fan_out.part(part))).await;
    let names = composite.parts().iter().map(|part| part.name.clone());
    let members: Map<String, Value> = names.zip(values).collect();
    let mut response = Json(Value::Object(members)).into_response();
    crate::security::headers::apply(response.headers_mut());
    if let Some(session) = &session {
        let log_id = SessionLogId(session.log_id().to_owned());
        response.extensions_mut().insert(log_id);
    }
    Ok(response)
}

/// What every part of one composite request shares.
struct FanOut<'a> {
    state: &'a AppState,
    composite: &'a Composite,
    session: Option<&'a LoadedSession>,
    client_ip: IpAddr,
    head: &'a request::Parts,
}

/// Why a part has no JSON to show.
#[derive(Debug)]
enum PartFailure {
    /// Ward refused or failed it (bearer, upstream down or slow, trimming): that error's code.
    Refused(ApiError),
    /// The part's deadline passed.
    Timeout,
    /// The upstream answered with this non-2xx status.
    Status(StatusCode),
    /// A 2xx whose body is not JSON.
    NotJson,
    /// A body Ward could not buffer.
    Buffer(BufferRefusal),
}

impl PartFailure {
    /// The member that stands in for the part's JSON.
    fn member(&self) -> Value {
        let (code, status) = match self {
            Self::Refused(err) => (err.code(), err.status()),
            Self::Timeout => (
                ApiError::UpstreamTimeout.code(),
                ApiError::UpstreamTimeout.status(),
            ),
            Self::Status(status) => ("upstream_error", *status),
            Self::NotJson | Self::Buffer(_) => (
                ApiError::UpstreamUnavailable.code(),
                ApiError::UpstreamUnavailable.status(),
            ),
        };
        json!({ "error": code, "status": status.as_u16() })
    }

    /// A bounded reason for the log and the span.
    fn reason(&self) -> &'static str {
        match self {
            Self::Refused(err) => err.code(),
            Self::Timeout => "timeout",
            Self::Status(_) => "status",
            Self::NotJson => "not_json",
            Self::Buffer(refusal) => refusal.reason(),
        }
    }
}

impl FanOut<'_> {
    /// One part's member of the answer.
    async fn part(&self, part: &Part) -> Value {
        let route = self.state.proxy.route_of(part);
        let span = part_span(self.composite, part, route);
        let fetched = tokio::time::timeout(part.timeout, self.fetch(part, route))
            .instrument(span.clone())
            .await;
        let failure = match fetched {
            Ok(Ok(value)) => return value,
            Ok(Err(failure)) => failure,
            Err(_elapsed) => PartFailure::Timeout,
        };
        let member = failure.member();
        spans::record_error(&span, failure.reason());
        tracing::warn!(
            event = "composite_part_failed",
            composite = self.composite.path(),
            part = part.name.as_str(),
            route = route.prefix(),
            reason = failure.reason(),
            status = member["status"].as_u64(),
            "a composite part has no JSON to show"
        );
        member
    }

    async fn fetch(&self, part: &Part, route: &Route) -> Result<Value, PartFailure> {
        let bearer = super::bearer(self.state, route, self.session)
            .await
            .map_err(PartFailure::Refused)?;
        let dpop = super::dpop_proof(self.state, route, self.session);
        let ctx = ForwardContext {
            bearer: bearer.as_ref(),
            client_ip: self.client_ip,
            ward_cookies: &self.state.cookie_names,
            dpop: dpop.as_ref(),
        };
        let response = self
            .state
            .proxy
            .try_forward(route, self.request(part), &ctx)
            .await
            .map_err(PartFailure::Refused)?;
        let (parts, body) = response.into_parts();
        if !parts.status.is_success() {
            return Err(PartFailure::Status(parts.status));
        }
        if parts.status == StatusCode::NO_CONTENT {
            return Ok(Value::Null);
        }
        if !trim::is_json(&parts.headers) {
            return Err(PartFailure::NotJson);
        }
        let bytes = trim::buffer(&parts.headers, body, route.max_buffered_response())
            .await
            .map_err(PartFailure::Buffer)?;
        let value = serde_json::from_slice(&bytes).map_err(|_| PartFailure::NotJson)?;
        Ok(match &part.fields {
            Some(fields) => fields.apply(value),
            None => value,
        })
    }

    /// The part's request: its method and target, the browser's headers (the proxy then
    /// cleans them as for any request on the route), no body.
    fn request(&self, part: &Part) -> Request {
        let mut req = Request::new(Body::empty());
        *req.method_mut() = part.method.clone();
        // A rendered target is a valid path and query (templates only fill encoded values);
        // should it not parse, the root path under no route makes the proxy answer 404.
        *req.uri_mut() = part
            .target
            .render(self.head.uri.query())
            .parse()
            .unwrap_or_default();
        let headers = req.headers_mut();
        for (name, value) in &self.head.headers {
            if !NOT_INHERITED.contains(name) {
                headers.append(name, value.clone());
            }
        }
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if part.method != axum::http::Method::GET {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        }
        req
    }
}

/// The part's child span of the request's server span; the upstream span nests inside it.
fn part_span(composite: &Composite, part: &Part, route: &Route) -> Span {
    if !otlp::enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: spans::TARGET,
        "composite part",
        otel.name = format!("part {}", part.name),
        otel.kind = "internal",
        otel.status_code = Empty,
        error.type = Empty,
        http.route = route.prefix(),
        ward.composite = composite.path(),
        ward.part = part.name.as_str(),
    )
}
