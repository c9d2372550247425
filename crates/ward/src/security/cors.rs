//! CORS: Ward owns it. A preflight gets permission only for an origin listed in
//! `[server] cors_origins`; upstream `Access-Control-*` headers never reach the browser, so an
//! API that answers `Access-Control-Allow-Origin: *` cannot open Ward's session to other sites.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use axum::response::IntoResponse;

use crate::error::ApiError;

const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
const ALLOWED_HEADERS: &str = "content-type, x-csrf-token";

/// The request's `Origin`, when it is one of `[server] cors_origins`: the value a response
/// may name in `Access-Control-Allow-Origin`.
pub fn allowed_origin(cors_origins: &[String], headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(header::ORIGIN)?;
    let listed = origin
        .to_str()
        .is_ok_and(|o| cors_origins.iter().any(|a| a == o));
    listed.then(|| origin.clone())
}

/// Whether the request is a CORS preflight (Ward answers those itself, see [`preflight`]).
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(header::ORIGIN)
        && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}
/// The answer to a preflight: permission for a listed origin, `403 csrf_failed` otherwise.
pub fn preflight(allowed: Option<HeaderValue>) -> Response<Body> {
    let Some(allowed) = allowed else {
        tracing::info!(event = "cors_refused");
        return ApiError::CsrfFailed.into_response();
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    allow(headers, allowed);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    crate::security::headers::apply(headers);
    response
}

/// The CORS headers of every other response: the upstream's removed, Ward's own added for a
/// listed origin.
pub fn finish(headers: &mut HeaderMap, allowed: Option<HeaderValue>) {
    strip_upstream_cors(headers);
    if let Some(allowed) = allowed {
        allow(headers, allowed);
    }
}

fn allow(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

fn strip_upstream_cors(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflight_needs_origin_and_requested_method() {
        let mut headers = HeaderMap::new();
        assert!(!is_preflight(&Method::OPTIONS, &headers));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://a.example"),
        );
        assert!(!is_preflight(&Method::OPTIONS, &headers));
        headers.insert(
            header::ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("POST"),
        );
        assert!(is_preflight(&Method::OPTIONS, &headers));
        assert!(!is_preflight(&Method::POST, &headers));
    }

    #[test]
    fn upstream_cors_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        strip_upstream_cors(&mut headers);
        assert_eq!(headers.len(), 1);
    }
}
