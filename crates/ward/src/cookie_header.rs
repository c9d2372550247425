//! The one reader of `Cookie` request headers: every part of Ward that looks at the browser's
//! cookies (sessions, pending logins, the cookie store, the proxy's filter) splits them here,
//! under one policy:
//!
//! - pairs are separated by `;` and also by `,` (RFC 6265 forbids `,` in a cookie value, and
//!   some clients and intermediaries fold cookies with it: `app=1,__Host-ward=…` holds two
//!   pairs, and Ward must see, and never forward, the second);
//! - HTTP/2 may split the header into several fields: they are read as one;
//! - a name that appears twice (one may have been planted by a sibling domain) counts as
//!   absent: Ward never guesses which of two session cookies is the browser's own.

use std::borrow::Cow;

use http::HeaderMap;
use http::header::COOKIE;

/// All `Cookie` fields of a request joined as one. Borrowed when there is one field (the usual
/// case), so the hot path does not copy it.
pub fn joined(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let mut values = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(Cow::Borrowed(first));
    };
    let mut joined = format!("{first}; {second}");
    for v in values {
        joined.push_str("; ");
        joined.push_str(v);
    }
    Some(Cow::Owned(joined))
}

/// The `name=value` pairs of a `Cookie` header, trimmed, empty ones skipped. A pair without
/// `=` is all name (so a nameless value that looks like one of Ward's names is treated as
/// Ward's: the safe side for the proxy's filter).
pub fn pairs(header: &[u8]) -> impl Iterator<Item = Pair<'_>> {
    header
        .split(|b| *b == b';' || *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|b| *b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &pair[pair.len()..]),
            };
            Pair {
                whole: pair,
                name: name.trim_ascii(),
                value: value.trim_ascii(),
            }
        })
}

/// One cookie of a `Cookie` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair<'a> {
    /// `name=value` as sent (trimmed).
    pub whole: &'a [u8],
    /// The name (case-sensitive, as browsers treat it).
    pub name: &'a [u8],
    /// The value (a secret for Ward's own cookies: never logged).
    pub value: &'a [u8],
}

/// The value of cookie `name` in a `Cookie` header, when it is there exactly once.
pub fn find<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    let mut found = None;
    for pair in pairs(header.as_bytes()) {
        if pair.name == name.as_bytes() {
            if found.is_some() {
                return None;
            }
            found = Some(pair.value);
        }
    }
    // The header was a `str` and the split points are ASCII: the slice is valid UTF-8.
    found.and_then(|value| std::str::from_utf8(value).ok())
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn one_cookie_field_is_borrowed_and_split_ones_are_joined() {
        let mut headers = HeaderMap::new();
        assert!(joined(&headers).is_none());
        headers.append(COOKIE, HeaderValue::from_static("a=1"));
        assert!(matches!(joined(&headers), Some(Cow::Borrowed("a=1"))));
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        headers.append(COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(joined(&headers).as_deref(), Some("a=1; b=2; c=3"));
    }

    #[test]
    fn pairs_split_on_semicolons_and_commas() {
        let names: Vec<&[u8]> = pairs(b" a=1;b=2 ,c=3,, d ; =e").map(|p| p.name).collect();
        assert_eq!(names, [&b"a"[..], b"b", b"c", b"d", b""]);
        let d = pairs(b"d").next().unwrap();
        assert_eq!((d.name, d.value, d.whole), (&b"d"[..], &b""[..], &b"d"[..]));
    }

    #[test]
    fn a_cookie_is_found_only_when_named_exactly_once() {
        assert_eq!(find("a=1; __Host-ward=x", "__Host-ward"), Some("x"));
        assert_eq!(find("app=1,__Host-ward=x", "__Host-ward"), Some("x"));
        assert_eq!(find("__Host-ward=x; __Host-ward=y", "__Host-ward"), None);
        assert_eq!(find("__host-ward=x", "__Host-ward"), None);
        assert_eq!(find("", "__Host-ward"), None);
    }
}
