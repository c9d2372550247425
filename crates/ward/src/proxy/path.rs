//! The request path as the upstream will see it: refused when it could climb out of its route,
//! otherwise forwarded byte for byte (never decoded, never re-parsed as a URL).
//!
//! Policy (SECURITY-CASES P-07), applied to the raw path before anything is sent:
//! - a raw `\` anywhere is refused: some servers treat it as `/`;
//! - each `/`-separated segment is percent-decoded **once**; the decoded bytes are split again
//!   on `/` and `\` (so `%2f`/`%5c` cannot hide a segment) and any piece that is `.` or `..`,
//!   also before a `;` parameter (`..;x`, the Tomcat form), is refused;
//! - a segment that does not decode (`%zz`), decodes to a control byte (`%00`, `%0a`) or to
//!   invalid UTF-8 (the overlong `%c0%ae` "dot") is refused;
//! - anything else is forwarded verbatim: `%2F` inside a segment (`group%2Fproject`) stays
//!   encoded and `%252e` stays `%252e` (no double decoding).

use std::str;

/// Why a path is refused. Never carries the path: it may hold secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathRefusal {
    /// Not an origin-form path (`/...`).
    NotAbsolute,
    /// A raw backslash.
    Backslash,
    /// A `.` or `..` segment, possibly percent-encoded or hidden behind `%2f`.
    DotSegment,
    /// Broken percent-encoding, a control byte or invalid UTF-8 once decoded.
    Malformed,
}

/// Checks `path` (the raw path of the request URI, without query) against the policy above.
pub(crate) fn check(path: &str) -> Result<(), PathRefusal> {
    if !path.starts_with('/') {
        return Err(PathRefusal::NotAbsolute);
    }
    if path.contains('\\') {
        return Err(PathRefusal::Backslash);
    }
    path.split('/').try_for_each(check_segment)
}

fn check_segment(raw: &str) -> Result<(), PathRefusal> {
    // Without an escape the segment is its own decoding (valid UTF-8 already, with no `/`, and
    // no backslash since `check` refused those): checked in place, with no copy.
    if !raw.contains('%') {
        return check_decoded(raw.as_bytes());
    }
    let decoded = percent_decode(raw).ok_or(PathRefusal::Malformed)?;
    if str::from_utf8(&decoded).is_err() {
        return Err(PathRefusal::Malformed);
    }
    check_decoded(&decoded)
}

/// A decoded segment (valid UTF-8): no control byte, no `.` or `..` piece.
fn check_decoded(decoded: &[u8]) -> Result<(), PathRefusal> {
    if decoded.iter().any(|b| b.is_ascii_control()) {
        return Err(PathRefusal::Malformed);
    }
    let is_dot = |piece: &[u8]| {
        let name = piece.split(|b| *b == b';').next().unwrap_or_default();
        name == b"." || name == b".."
    };
    if decoded.split(|b| *b == b'/' || *b == b'\\').any(is_dot) {
        return Err(PathRefusal::DotSegment);
    }
    Ok(())
}

/// Decodes `%XX` escapes once; `None` when an escape is truncated or not hexadecimal.
fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The upstream path: `base` (the upstream URL's path, no trailing `/`, possibly empty) followed
/// by `rest` (the request path, with the route prefix removed when the route strips it; then
/// empty or starting with `/`). A request for exactly the stripped prefix maps to `base`
/// itself, or `/` when there is no base path: no slash is invented or dropped.
pub(crate) fn join(base: &str, rest: &str) -> String {
    let mut out = String::with_capacity(base.len() + rest.len() + 1);
    out.push_str(base);
    out.push_str(rest);
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_in_every_spelling_are_refused() {
        let refused = [
            "/api/../x",
            "/api/%2e%2e/x",
            "/api/./x",
            "/api/%2E/x",
            "/api/a/..",
            "/api/%2e%2E",
            "/api/.%2e/x",
            "/api/..%2fbff",
            "/api/..%2Fbff",
            "/api/orders/..%2f..%2fadmin",
            "/api/%2e%2e%2f%2e%2e%2fadmin",
            "/api/%2e%2e%5cadmin",
            "/api/..;/bff",
            "/api/;/../bff",
            "/api/.",
            "/healthz/../api/x",
        ];
        for path in refused {
            assert_eq!(check(path), Err(PathRefusal::DotSegment), "{path}");
        }
    }

    #[test]
    fn backslashes_are_refused() {
        assert_eq!(check("/api\\..\\bff"), Err(PathRefusal::Backslash));
        assert_eq!(check("/api/a\\b"), Err(PathRefusal::Backslash));
    }

    #[test]
    fn malformed_escapes_control_bytes_and_overlong_dots_are_refused() {
        for path in [
            "/api/%zz",
            "/api/%2",
            "/api/x%00.json",
            "/api/a%0d%0ab",
            "/api/%c0%ae%c0%ae/",
            "/api/%ff",
        ] {
            assert_eq!(check(path), Err(PathRefusal::Malformed), "{path}");
        }
    }

    #[test]
    fn a_path_must_be_absolute() {
        assert_eq!(check(""), Err(PathRefusal::NotAbsolute));
        assert_eq!(check("api/x"), Err(PathRefusal::NotAbsolute));
        assert_eq!(check("*"), Err(PathRefusal::NotAbsolute));
    }

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/",
            "/api",
            "/api/",
            "/api/x",
            "/api/v1.2/file.json",
            "/api/...",
            "/api/.well-known/x",
            "/api/..x",
            "/api/group%2Fproject",
            "/api/%252e%252e/",
            "/api//double",
            "/api/caf%C3%A9",
            "/api/a;b=c",
        ] {
            assert_eq!(check(path), Ok(()), "{path}");
        }
    }

    #[test]
    fn join_prepends_the_base_path() {
        assert_eq!(join("/base", "/api/x"), "/base/api/x");
        assert_eq!(join("/base", "/x"), "/base/x");
        assert_eq!(join("", "/api/x"), "/api/x");
    }

    #[test]
    fn join_of_a_stripped_prefix_alone_is_the_base_or_root() {
        assert_eq!(join("/base", ""), "/base");
        assert_eq!(join("/base", "/"), "/base/");
        assert_eq!(join("", ""), "/");
        assert_eq!(join("", "/"), "/");
    }

    #[test]
    fn join_keeps_a_network_path_lookalike_as_a_path() {
        // `//evil.example` stays a path: the authority is set separately, never parsed from it.
        assert_eq!(join("", "//evil.example/steal"), "//evil.example/steal");
    }
}
