//! Ward's cookies never cross the proxy: they are cut out of the browser's `Cookie` on the way
//! up (SECURITY-CASES P-01), and an upstream `Set-Cookie` naming one of them is dropped on the
//! way down (P-10), so an API can neither read nor overwrite the session.

use axum::http::header::{self, HeaderMap, HeaderValue};

use crate::cookie_header;

/// Whether a cookie name is one of Ward's: a configured name, or one followed by `.` or `-`
/// and more (the chunks Ward may split a large cookie into). Case-sensitive, as browsers are.
pub(crate) fn is_ward_cookie(name: &[u8], ward_cookies: &[String]) -> bool {
    ward_cookies
        .iter()
        .filter(|w| !w.is_empty())
        .any(|w| match name.strip_prefix(w.as_bytes()) {
            Some([]) => true,
            Some([sep, ..]) => *sep == b'.' || *sep == b'-',
            None => false,
        })
}

/// The name of a `Set-Cookie` value: what precedes the first `=` of its first `;` part; a
/// value without `=` is taken whole (the safe side, as for `Cookie` pairs).
fn set_cookie_name(value: &[u8]) -> &[u8] {
    let pair = value.split(|b| *b == b';').next().unwrap_or_default();
    let name = pair.split(|b| *b == b'=').next().unwrap_or_default();
    name.trim_ascii()
}

/// Rebuilds `Cookie` without Ward's cookies, merging split HTTP/2 `cookie` fields into one;
/// removes it when nothing is left.
pub(crate) fn filter_request(headers: &mut HeaderMap, ward_cookies: &[String]) {
    let mut kept: Vec<u8> = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        for pair in cookie_header::pairs(value.as_bytes()) {
            if is_ward_cookie(pair.name, ward_cookies) {
                continue;
            }
            if !kept.is_empty() {
                kept.extend_from_slice(b"; ");
            }
            kept.extend_from_slice(pair.whole);
        }
    }
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_bytes(&kept)
    {
        headers.insert(header::COOKIE, value);
    }
}

/// Drops every `Set-Cookie` that would create or overwrite one of Ward's cookies.
pub(crate) fn filter_set_cookies(headers: &mut HeaderMap, ward_cookies: &[String]) {
    if !headers.contains_key(header::SET_COOKIE) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|value| !is_ward_cookie(set_cookie_name(value.as_bytes()), ward_cookies))
        .cloned()
        .collect();
    headers.remove(header::SET_COOKIE);
    for value in kept {
        headers.append(header::SET_COOKIE, value);
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderName;

    use super::*;

    fn ward() -> Vec<String> {
        vec!["__Host-ward".to_owned(), "__Host-ward-tx".to_owned()]
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

    fn all<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("ascii"))
            .collect()
    }

    #[test]
    fn wards_cookies_and_their_chunks_are_removed_from_cookie() {
        let mut headers = map(&[
            ("cookie", "__Host-ward=secret; other=1; __Host-ward.1=chunk"),
            ("cookie", "__Host-ward-tx=t;theme=dark ;__Host-ward-0=c"),
            ("cookie", "__Host-wardx=keep; __host-ward=keep2"),
        ]);
        filter_request(&mut headers, &ward());
        assert_eq!(
            all(&headers, "cookie"),
            ["other=1; theme=dark; __Host-wardx=keep; __host-ward=keep2"]
        );
    }

    #[test]
    fn a_ward_cookie_folded_in_with_a_comma_is_removed_too() {
        let mut headers = map(&[("cookie", "app=1,__Host-ward=secret , theme=dark")]);
        filter_request(&mut headers, &ward());
        assert_eq!(all(&headers, "cookie"), ["app=1; theme=dark"]);
    }

    #[test]
    fn cookie_header_is_dropped_when_only_wards_cookies_were_in_it() {
        let mut headers = map(&[
            ("cookie", "__Host-ward=secret"),
            ("cookie", "__Host-ward-tx=x; ;"),
        ]);
        filter_request(&mut headers, &ward());
        assert!(!headers.contains_key("cookie"));
    }

    #[test]
    fn a_nameless_cookie_spelling_a_ward_name_is_removed() {
        let mut headers = map(&[("cookie", "__Host-ward; a=1")]);
        filter_request(&mut headers, &ward());
        assert_eq!(all(&headers, "cookie"), ["a=1"]);
    }

    #[test]
    fn ward_cookie_names_match_exactly_or_with_a_chunk_suffix() {
        let ward = ward();
        assert!(is_ward_cookie(b"__Host-ward", &ward));
        assert!(is_ward_cookie(b"__Host-ward.0", &ward));
        assert!(is_ward_cookie(b"__Host-ward-1", &ward));
        assert!(!is_ward_cookie(b"__Host-wardx", &ward));
        assert!(!is_ward_cookie(b"__Host-war", &ward));
        assert!(!is_ward_cookie(b"__HOST-WARD", &ward));
        assert!(!is_ward_cookie(b"-x", &[String::new()]));
    }

    #[test]
    fn set_cookie_naming_a_ward_cookie_is_dropped_and_others_kept() {
        let mut headers = map(&[
            ("set-cookie", "__Host-ward=attacker; Path=/; Secure"),
            ("set-cookie", "other=1; Path=/"),
            ("set-cookie", " __Host-ward.2 =x"),
            ("set-cookie", "__Host-ward"),
            ("set-cookie", "__Host-wardx=ok"),
            ("content-type", "application/json"),
        ]);
        filter_set_cookies(&mut headers, &ward());
        assert_eq!(
            all(&headers, "set-cookie"),
            ["other=1; Path=/", "__Host-wardx=ok"]
        );
        assert_eq!(all(&headers, "content-type"), ["application/json"]);
    }
}
