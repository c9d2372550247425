//! Trimming a route's JSON responses to its `fields` allow-list (data minimisation).
//!
//! Responses with a body are trimmed unless they declare, with exactly one `Content-Type`,
//! something other than JSON (`application/json` or `…/…+json`): HTML, images, `text/plain`
//! stream through untouched, as does every response of a route without `fields`; a body with
//! no type or with two is trimmed, and so fails closed unless it is JSON. A trimmed body is buffered first, up to the route's
//! `max_buffered_response`. Whatever cannot be trimmed fails closed with `502
//! upstream_unavailable` and the `response_trim_refused` event: a body over the cap, a body
//! that says it is JSON but is not, a compressed body (Ward asks for identity), a body cut
//! short. Passing such a body on untrimmed would hand the browser exactly the data the
//! allow-list exists to keep from it.

use axum::body::Body;
use axum::http::{HeaderMap, Method, StatusCode, header, response};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};

use super::fields::FieldSet;
use super::routes::Route;
use crate::error::ApiError;

/// Whether `headers` declare a JSON body: `application/json` or a `+json` structured syntax
/// suffix (RFC 6839), parameters aside.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || essence
            .split_once('/')
            .is_some_and(|(kind, sub)| !kind.is_empty() && sub.ends_with("+json"))
}

/// Whether a response to `method` with `status` and `headers` is one to trim: it can have a
/// body, and it is not unambiguously declared as something other than JSON. A body without a
/// `Content-Type`, or with more than one, is trimmed too (so it fails closed unless it is
/// JSON): a page's `response.json()` ignores the type, and a mislabelled record must not slip
/// past the allow-list.
pub(crate) fn applies(method: &Method, status: StatusCode, headers: &HeaderMap) -> bool {
    *method != Method::HEAD
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
        && !declares_other_than_json(headers)
}

/// Exactly one `Content-Type`, and it is not JSON.
fn declares_other_than_json(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    match (values.next(), values.next()) {
        (Some(_), None) => !is_json(headers),
        _ => false,
    }
}

/// Why a body could not be read for trimming or embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferRefusal {
    /// Longer than the route's `max_buffered_response`.
    TooLarge,
    /// The body failed while it was read (the upstream cut it short).
    Broken,
    /// `Content-Encoding` other than identity: Ward cannot read it.
    Encoded,
}

impl BufferRefusal {
    /// The `reason` of the log event.
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Broken => "body_failed",
            Self::Encoded => "encoded",
        }
    }
}

/// The whole body, at most `limit` bytes.
pub(crate) async fn buffer(
    headers: &HeaderMap,
    body: Body,
    limit: u64,
) -> Result<Bytes, BufferRefusal> {
    let encoded = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Err(BufferRefusal::Encoded);
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(BufferRefusal::TooLarge),
        Err(_) => Err(BufferRefusal::Broken),
    }
}

/// The response with its JSON body trimmed to each of `fields` in turn, or `502` when it
/// cannot be.
pub(crate) async fn trim(
    route: &Route,
    fields: &[&FieldSet],
    mut parts: response::Parts,
    body: Body,
) -> Result<axum::http::Response<Body>, ApiError> {
    let bytes = buffer(&parts.headers, body, route.max_buffered_response())
        .await
        .map_err(|refusal| refused(route, refusal.reason()))?;
    let value = serde_json::from_slice(&bytes).map_err(|_| refused(route, "not_json"))?;
    let value = fields
        .iter()
        .fold(value, |value, fields| fields.apply(value));
    let trimmed = serde_json::to_vec(&value).map_err(|_| refused(route, "not_json"))?;
    // The body is Ward's now: validators and lengths of the upstream's body no longer hold.
    for name in [
        header::CONTENT_LENGTH,
        header::ETAG,
        header::LAST_MODIFIED,
        header::CONTENT_RANGE,
        header::ACCEPT_RANGES,
    ] {
        parts.headers.remove(name);
    }
    parts.headers.remove("content-md5");
    parts.headers.remove("digest");
    parts.headers.remove("content-digest");
    parts
        .headers
        .insert(header::CONTENT_LENGTH, trimmed.len().into());
    Ok(axum::http::Response::from_parts(parts, Body::from(trimmed)))
}

fn refused(route: &Route, reason: &'static str) -> ApiError {
    tracing::warn!(
        event = "response_trim_refused",
        route = route.prefix(),
        reason,
        limit = route.max_buffered_response(),
        "response could not be trimmed to the route's fields; not passed on"
    );
    ApiError::UpstreamUnavailable
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_type(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn json_media_types_are_recognised() {
        for json in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/problem+json",
            "application/vnd.api+json;v=2",
        ] {
            assert!(is_json(&with_type(json)), "{json}");
        }
        for other in [
            "text/html",
            "text/plain",
            "application/jsonx",
            "+json",
            "application/json-seq",
        ] {
            assert!(!is_json(&with_type(other)), "{other}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn bodiless_answers_are_not_trimmed() {
        let json = with_type("application/json");
        assert!(applies(&Method::GET, StatusCode::OK, &json));
        assert!(applies(&Method::GET, StatusCode::NOT_FOUND, &json));
        assert!(!applies(&Method::HEAD, StatusCode::OK, &json));
        assert!(!applies(&Method::GET, StatusCode::NO_CONTENT, &json));
        assert!(!applies(&Method::GET, StatusCode::NOT_MODIFIED, &json));
    }

    #[tokio::test]
    async fn buffering_stops_at_the_limit_and_at_encodings() {
        let plain = HeaderMap::new();
        let ok = buffer(&plain, Body::from("12345"), 5).await;
        assert_eq!(ok.as_deref(), Ok(&b"12345"[..]));
        let over = buffer(&plain, Body::from("123456"), 5).await;
        assert_eq!(over, Err(BufferRefusal::TooLarge));
        let mut gzip = HeaderMap::new();
        gzip.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        assert_eq!(
            buffer(&gzip, Body::from("x"), 5).await,
            Err(BufferRefusal::Encoded)
        );
    }
}
