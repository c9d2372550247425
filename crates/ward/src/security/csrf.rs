//! CSRF defences of SPEC §4: the synchronizer token, compared in constant time, plus
//! fetch-metadata refusal of cross-site (and unlisted same-site) unsafe requests.

use axum::http::{HeaderMap, Method};

use crate::secret::SecretString;

/// Name of the request header carrying the synchronizer token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Whether `method` can change state (anything but GET, HEAD, OPTIONS).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether an unsafe request comes from another site: `Sec-Fetch-Site: cross-site`, or
/// `same-site` (a sibling subdomain: the threat the token exists for), or — for browsers that
/// send no fetch metadata — an `Origin` other than Ward's own; an origin listed in
/// `cors_origins` is let through to the token check.
pub fn cross_site_refused(
    headers: &HeaderMap,
    public_origin: &str,
    cors_origins: &[String],
) -> bool {
    let origin = headers
        .get("origin")
        .map(|v| v.to_str().unwrap_or("invalid"));
    let listed = origin.is_some_and(|o| cors_origins.iter().any(|allowed| allowed == o));
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("cross-site") => true,
        Some("same-site") => !listed,
        _ => origin.is_some_and(|o| o != public_origin && !listed),
    }
}

/// Whether the browser says the request comes from another site.
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
}

/// Whether the request's `X-CSRF-Token` equals the session's token (constant time).
/// Exactly one header value is accepted.
pub fn token_matches(headers: &HeaderMap, expected: &SecretString) -> bool {
    let mut values = headers.get_all(CSRF_HEADER).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return false;
    };
    value
        .to_str()
        .is_ok_and(|v| !v.is_empty() && expected.ct_eq(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_get_head_options_are_safe() {
        for m in [Method::GET, Method::HEAD, Method::OPTIONS] {
            assert!(!is_unsafe(&m));
        }
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert!(is_unsafe(&m));
        }
        assert!(is_unsafe(&Method::from_bytes(b"PROPFIND").unwrap()));
    }

    #[test]
    fn token_must_match_exactly_once() {
        let expected = SecretString::new("abc");
        let mut headers = HeaderMap::new();
        assert!(!token_matches(&headers, &expected));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("abd"));
        assert!(!token_matches(&headers, &expected));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("abc"));
        assert!(token_matches(&headers, &expected));
        headers.append(CSRF_HEADER, HeaderValue::from_static("abc"));
        assert!(!token_matches(&headers, &expected));
        assert!(!token_matches(&HeaderMap::new(), &SecretString::new("")));
    }

    #[test]
    fn cross_site_and_unlisted_same_site_are_refused() {
        let me = "https://app.example";
        let allowed = vec!["https://admin.app.example".to_owned()];
        let mut headers = HeaderMap::new();
        assert!(!cross_site_refused(&headers, me, &allowed));
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(!cross_site_refused(&headers, me, &allowed));
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site_refused(&headers, me, &allowed));
        headers.insert("sec-fetch-site", HeaderValue::from_static("same-site"));
        assert!(cross_site_refused(&headers, me, &allowed));
        headers.insert(
            "origin",
            HeaderValue::from_static("https://admin.app.example"),
        );
        assert!(!cross_site_refused(&headers, me, &allowed));
    }

    #[test]
    fn without_fetch_metadata_a_foreign_origin_is_refused() {
        let me = "https://app.example";
        let mut headers = HeaderMap::new();
        headers.insert("origin", HeaderValue::from_static("https://app.example"));
        assert!(!cross_site_refused(&headers, me, &[]));
        headers.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(cross_site_refused(&headers, me, &[]));
        headers.insert("origin", HeaderValue::from_static("null"));
        assert!(cross_site_refused(&headers, me, &[]));
    }
}
