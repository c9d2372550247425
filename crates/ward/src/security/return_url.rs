//! `returnUrl` must be a local path (SPEC §2): no open redirect, in any encoding.

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// What a `Location` must not carry raw: controls, space, the characters RFC 3986 excludes
/// from URIs, and (by `utf8_percent_encode`) every non-ASCII byte. `%` stays: the path was
/// checked in its decoded forms already, and its escapes are the browser's own.
const NOT_IN_LOCATION: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A checked local path as the `Location` of a redirect: percent-encoded ASCII (SPEC §2), so
/// no raw UTF-8 or space reaches a header.
pub fn location(local_path: &str) -> String {
    utf8_percent_encode(local_path, NOT_IN_LOCATION).to_string()
}

/// Longest `returnUrl` accepted.
const MAX_LEN: usize = 2048;

/// Whether `candidate` is a local path: begins with exactly one `/`, not `//` or `/\`, has no
/// scheme, no control characters and no backslash — checked on the raw value and again after
/// each round of percent-decoding (so `%2F%2Fevil` or `%5Cevil` fail too).
pub fn is_local_path(candidate: &str) -> bool {
    if candidate.len() > MAX_LEN {
        return false;
    }
    let mut current = candidate.to_owned();
    // Decode until stable (bounded): double-encoded tricks unwrap to their final form.
    for _ in 0..4 {
        if !is_local_once(&current) {
            return false;
        }
        let decoded = match percent_decode(&current) {
            Some(decoded) => decoded,
            None => return false,
        };
        if decoded == current {
            return true;
        }
        current = decoded;
    }
    false
}

fn is_local_once(path: &str) -> bool {
    let mut chars = path.chars();
    if chars.next() != Some('/') {
        return false;
    }
    if matches!(chars.next(), Some('/') | Some('\\')) {
        return false;
    }
    !path.chars().any(|c| c.is_control() || c == '\\')
}

/// Percent-decodes `input`; `None` when an escape is malformed or the result is not UTF-8.
fn percent_decode(input: &str) -> Option<String> {
    // percent-encoding passes malformed escapes through; a `%` not followed by two hex digits
    // is refused here instead, so no ambiguous form survives.
    let bytes = input.as_bytes();
    let malformed = bytes.iter().enumerate().any(|(i, &b)| {
        b == b'%'
            && !bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(input)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_percent_encoded_ascii() {
        assert_eq!(
            location("/orders/7?tab=a&b=%2F#x"),
            "/orders/7?tab=a&b=%2F#x"
        );
        assert_eq!(location("/café/ü x"), "/caf%C3%A9/%C3%BC%20x");
        assert_eq!(location("/a\"b<c>{d}|^`"), "/a%22b%3Cc%3E%7Bd%7D%7C%5E%60");
        assert!(location("/日本").is_ascii());
    }

    #[test]
    fn local_paths_are_accepted() {
        for ok in [
            "/",
            "/app",
            "/app/page?x=1#frag",
            "/a%20b",
            "/caf%C3%A9",
            "/a:b",
        ] {
            assert!(is_local_path(ok), "{ok}");
        }
    }

    #[test]
    fn open_redirect_variants_are_refused() {
        let cases = [
            "",
            "app",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "%2F%2Fevil.example",
            "/%2Fevil.example",
            "/%5Cevil.example",
            "%2f%2fevil.example",
            "/%252Fevil.example",
            "/%25252F%25252Fevil",
            "/app\r\nSet-Cookie: x=1",
            "/app%0d%0aLocation:%20//evil",
            "/a\u{0}b",
            "/%",
            "/%zz",
            "/%ff",
            " /app",
            "/\tevil",
        ];
        for bad in cases {
            assert!(!is_local_path(bad), "{bad:?} must be refused");
        }
    }

    #[test]
    fn oversized_return_urls_are_refused() {
        assert!(!is_local_path(&format!("/{}", "a".repeat(MAX_LEN))));
    }
}
