//! Header hygiene in both directions (SPEC §5; SECURITY-CASES P-01…P-04, P-10).
//!
//! Towards the upstream, every header a browser could use to impersonate Ward or a trusted hop
//! is removed first (hop-by-hop and `Connection`-nominated fields, credentials, the CSRF token,
//! forwarding headers in any case or `_` spelling, Ward's cookies), and only then are Ward's own
//! values added, so a stripped name can never remove what Ward sets. Towards the browser,
//! hop-by-hop fields, cookies that would overwrite Ward's, and CORS fields (Ward owns CORS) go.

use std::net::IpAddr;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::{cookies, trace};

/// Hop-by-hop fields (RFC 9110 §7.6.1, plus the de-facto `Keep-Alive`/`Proxy-Connection`).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Request fields the browser must not choose: credentials, the CSRF token, the authority,
/// client-address claims, path- and method-override headers some frameworks honour (a GET that
/// an upstream runs as DELETE would bypass the CSRF check), `Expect` (Ward's server already
/// answered it) and `baggage` (browser-chosen trace attributes).
const CLIENT_CONTROLLED: &[&str] = &[
    "authorization",
    // A DPoP proof pairs with the `Authorization` Ward sets (proxy/dpop.rs), never the browser's.
    "dpop",
    "x-csrf-token",
    "host",
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "expect",
    "baggage",
];

/// Any field with this prefix is a forwarding claim (`X-Forwarded-For`, `-Uri`, `-User`…).
const FORWARDED_PREFIX: &str = "x-forwarded-";

/// Response fields Ward answers for itself.
const CORS_PREFIX: &str = "access-control-";

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// What Ward adds to an upstream request, decided before the headers are rewritten.
pub(crate) struct RequestAdditions<'a> {
    /// The `Authorization` value (see [`bearer_value`](crate::secret::bearer_value)); `None` leaves the request without
    /// credentials.
    pub bearer: Option<&'a HeaderValue>,
    pub client_ip: IpAddr,
    pub ward_cookies: &'a [String],
    pub forwarded_proto: &'a HeaderValue,
    pub forwarded_host: &'a HeaderValue,
    pub upstream_host: &'a HeaderValue,
}

/// Rewrites browser request headers in place into what the upstream receives.
pub(crate) fn rewrite_request(headers: &mut HeaderMap, add: &RequestAdditions<'_>) {
    strip_hop_by_hop(headers);
    remove_where(headers, |name| {
        CLIENT_CONTROLLED.iter().any(|c| same_name(name, c)) || has_prefix(name, FORWARDED_PREFIX)
    });
    cookies::filter_request(headers, add.ward_cookies);
    trace::keep_or_start(headers);

    if let Some(value) = add.bearer {
        headers.insert(header::AUTHORIZATION, value.clone());
    }
    if let Some(ip) = address_value(add.client_ip) {
        headers.insert(X_FORWARDED_FOR, ip);
    }
    headers.insert(X_FORWARDED_PROTO, add.forwarded_proto.clone());
    headers.insert(X_FORWARDED_HOST, add.forwarded_host.clone());
    headers.insert(header::HOST, add.upstream_host.clone());
}

thread_local! {
    /// The last client address formatted on this thread, with its header value: a browser's
    /// requests come one after another from the same address.
    static LAST_ADDRESS: std::cell::RefCell<Option<(IpAddr, HeaderValue)>> =
        const { std::cell::RefCell::new(None) };
}

/// `ip` as a header value (`X-Forwarded-For`), formatted once per change of address.
fn address_value(ip: IpAddr) -> Option<HeaderValue> {
    LAST_ADDRESS.with_borrow_mut(|last| {
        if let Some((known, value)) = last
            && *known == ip
        {
            return Some(value.clone());
        }
        let value = HeaderValue::try_from(ip.to_string()).ok()?;
        *last = Some((ip, value.clone()));
        Some(value)
    })
}

/// Rewrites upstream response headers in place into what the browser receives.
pub(crate) fn rewrite_response(headers: &mut HeaderMap, ward_cookies: &[String]) {
    strip_hop_by_hop(headers);
    remove_where(headers, |name| has_prefix(name, CORS_PREFIX));
    cookies::filter_set_cookies(headers, ward_cookies);
}

/// Removes the fixed hop-by-hop fields and every field named in `Connection`.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // A nominated fixed field (the usual `keep-alive`) goes with the fixed ones below: no copy
    // of its name.
    let nominated: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| !HOP_BY_HOP.iter().any(|h| same_token(token, h)))
        .filter_map(|token| HeaderName::from_bytes(token).ok())
        .collect();
    for name in nominated {
        headers.remove(name);
    }
    remove_where(headers, |name| {
        HOP_BY_HOP.iter().any(|h| same_name(name, h))
    });
}

fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&str) -> bool) {
    let mut names = headers.keys().filter(|name| doomed(name.as_str())).cloned();
    let Some(first) = names.next() else {
        return;
    };
    // Usually `first` (the browser's `Host`) is the only one: then nothing is collected.
    let rest: Vec<HeaderName> = names.collect();
    headers.remove(first);
    for name in rest {
        headers.remove(name);
    }
}

/// `name` (lower-case, as `HeaderName` stores it) equals `target` with `_` read as `-`: some
/// servers (CGI, WSGI, Rack) merge `X_Forwarded_For` into `X-Forwarded-For`.
fn same_name(name: &str, target: &str) -> bool {
    name.len() == target.len() && has_prefix(name, target)
}

/// A `Connection` token naming the field `target` as [`same_name`] reads names (any case).
fn same_token(token: &[u8], target: &str) -> bool {
    token.len() == target.len()
        && token
            .iter()
            .zip(target.bytes())
            .all(|(t, p)| t.to_ascii_lowercase() == p || (*t == b'_' && p == b'-'))
}

fn has_prefix(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name
            .bytes()
            .zip(prefix.bytes())
            .all(|(n, p)| n == p || (n == b'_' && p == b'-'))
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::secret::{SecretString, bearer_value};

    fn ward() -> Vec<String> {
        vec!["__Host-ward".to_owned()]
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        headers
    }

    fn rewrite(headers: &mut HeaderMap, bearer: Option<&SecretString>) {
        let ward = ward();
        let bearer = bearer.map(|token| bearer_value(token).expect("sendable bearer"));
        let additions = RequestAdditions {
            bearer: bearer.as_ref(),
            client_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7)),
            ward_cookies: &ward,
            forwarded_proto: &HeaderValue::from_static("https"),
            forwarded_host: &HeaderValue::from_static("app.example:8443"),
            upstream_host: &HeaderValue::from_static("api.internal:7001"),
        };
        rewrite_request(headers, &additions);
    }

    fn all<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    #[test]
    fn each_client_address_gets_its_own_value_whatever_came_before() {
        let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
        let v6: IpAddr = "2001:db8::1".parse().expect("address");
        let other = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
        for (ip, text) in [
            (v4, "203.0.113.7"),
            (v4, "203.0.113.7"),
            (v6, "2001:db8::1"),
            (other, "198.51.100.1"),
            (v4, "203.0.113.7"),
        ] {
            assert_eq!(address_value(ip).expect("a header value"), text);
        }
    }

    #[test]
    fn nominated_fixed_fields_go_in_any_spelling_and_other_tokens_still_name_fields() {
        let mut headers = map(&[
            ("connection", "Keep-Alive, UPGRADE, close"),
            ("keep_alive", "timeout=5"),
            ("upgrade", "websocket"),
            ("close", "1"),
            ("accept", "application/json"),
        ]);
        rewrite(&mut headers, None);
        for gone in ["connection", "keep_alive", "upgrade", "close"] {
            assert!(!headers.contains_key(gone), "{gone} survived");
        }
        assert!(headers.contains_key("accept"));
    }

    #[test]
    fn hop_by_hop_and_connection_nominated_fields_are_removed() {
        let mut headers = map(&[
            ("connection", "close, X-Custom, x-csrf-token"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eDp5"),
            ("proxy-authenticate", "Basic"),
            ("x-custom", "1"),
            ("x-other", "2"),
            ("accept", "application/json"),
        ]);
        rewrite(&mut headers, None);
        for gone in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "proxy-authorization",
            "proxy-authenticate",
            "x-custom",
            "x-other",
        ] {
            assert!(!headers.contains_key(gone), "{gone} survived");
        }
        assert_eq!(all(&headers, "accept"), ["application/json"]);
    }

    #[test]
    fn fields_ward_sets_survive_being_nominated_in_connection() {
        let mut headers = map(&[("connection", "Authorization, X-Forwarded-For, Host")]);
        let token = SecretString::new("at-123");
        rewrite(&mut headers, Some(&token));
        assert_eq!(all(&headers, "authorization"), ["Bearer at-123"]);
        assert_eq!(all(&headers, "x-forwarded-for"), ["203.0.113.7"]);
        assert_eq!(all(&headers, "host"), ["api.internal:7001"]);
    }

    #[test]
    fn browser_credentials_and_csrf_token_are_replaced_by_exactly_one_bearer() {
        let mut headers = map(&[
            ("authorization", "Bearer attacker"),
            ("authorization", "Basic eDp5"),
            ("x-csrf-token", "csrf-value"),
            ("x_csrf_token", "csrf-value"),
        ]);
        let token = SecretString::new("at-123");
        rewrite(&mut headers, Some(&token));
        assert_eq!(all(&headers, "authorization"), ["Bearer at-123"]);
        assert!(
            headers
                .get("authorization")
                .is_some_and(HeaderValue::is_sensitive)
        );
        assert!(!headers.contains_key("x-csrf-token"));
        assert!(!headers.contains_key("x_csrf_token"));
    }

    #[test]
    fn without_a_bearer_no_authorization_reaches_the_upstream() {
        let mut headers = map(&[("authorization", "Bearer attacker")]);
        rewrite(&mut headers, None);
        assert!(!headers.contains_key("authorization"));
    }

    #[test]
    fn forwarding_claims_in_any_spelling_are_replaced_by_wards_values() {
        let mut headers = map(&[
            ("x-forwarded-for", "127.0.0.1"),
            ("X_Forwarded_For", "127.0.0.1"),
            ("x-forwarded-FOR", "10.0.0.1"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-uri", "/healthz"),
            ("x-forwarded-user", "admin"),
            ("x-forwarded-email", "admin@example.test"),
            ("forwarded", "for=127.0.0.1;host=evil.example"),
            ("x-real-ip", "127.0.0.1"),
            ("x-original-url", "/admin"),
            ("host", "evil.example"),
        ]);
        rewrite(&mut headers, None);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert!(!names.iter().any(|n| n.contains('_')), "{names:?}");
        assert_eq!(all(&headers, "x-forwarded-for"), ["203.0.113.7"]);
        assert_eq!(all(&headers, "x-forwarded-proto"), ["https"]);
        assert_eq!(all(&headers, "x-forwarded-host"), ["app.example:8443"]);
        assert_eq!(all(&headers, "host"), ["api.internal:7001"]);
        for gone in [
            "x-forwarded-uri",
            "x-forwarded-user",
            "x-forwarded-email",
            "forwarded",
            "x-real-ip",
            "x-original-url",
        ] {
            assert!(!headers.contains_key(gone), "{gone} survived");
        }
    }

    #[test]
    fn response_loses_hop_by_hop_and_cors_fields() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("access-control-allow-origin", "*"),
            ("access-control-allow-credentials", "true"),
            ("content-length", "12"),
            ("www-authenticate", "Bearer"),
            ("set-cookie", "__Host-ward=attacker"),
            ("set-cookie", "other=1"),
        ]);
        rewrite_response(&mut headers, &ward());
        let mut names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "set-cookie", "www-authenticate"]);
        assert_eq!(all(&headers, "set-cookie"), ["other=1"]);
    }

    #[test]
    fn request_loses_wards_cookies_and_gains_a_valid_traceparent() {
        let mut headers = map(&[("cookie", "__Host-ward=secret; a=1"), ("traceparent", "x")]);
        rewrite(&mut headers, None);
        assert_eq!(all(&headers, "cookie"), ["a=1"]);
        let sent = all(&headers, "traceparent");
        assert!(trace::is_valid_traceparent(sent[0].as_bytes()));
    }

    #[test]
    fn expect_and_baggage_are_not_forwarded() {
        let mut headers = map(&[("expect", "100-continue"), ("baggage", "user=alice")]);
        rewrite(&mut headers, None);
        assert!(!headers.contains_key("expect"));
        assert!(!headers.contains_key("baggage"));
    }
}
