//! What `[static]` responses carry besides their bytes: the document policy (a CSP with a
//! per-response nonce, `'strict-dynamic'` and Trusted Types; cross-origin isolation; a
//! Permissions-Policy that switches off powerful features) and the caching rule.

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

/// Ward's CSP for the SPA's documents. `{nonce}` becomes each response's nonce.
///
/// Only scripts carrying the nonce run, and the scripts they load (`'strict-dynamic'`: a
/// bundle's chunks, module imports); no inline handler, `eval`, plugin, `<base>` or framing;
/// DOM XSS sinks take only Trusted Types values (`require-trusted-types-for 'script'`).
pub const DEFAULT_CSP: &str = "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic'; \
     style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; worker-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'; \
     require-trusted-types-for 'script'";

/// Features an SPA behind a BFF does not need; a page that needs one sets its own header
/// through an upstream instead.
pub const PERMISSIONS_POLICY: &str = "accelerometer=(), autoplay=(), camera=(), \
     display-capture=(), encrypted-media=(), geolocation=(), gyroscope=(), hid=(), \
     magnetometer=(), microphone=(), midi=(), payment=(), publickey-credentials-get=(), \
     screen-wake-lock=(), serial=(), usb=(), xr-spatial-tracking=()";

/// `Cache-Control` of an asset whose name carries its content hash.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of any other asset: cached, but revalidated before each use.
pub const REVALIDATE: &str = "no-cache";
/// `Cache-Control` of the documents: each carries its own nonce, so none is ever reused.
pub const NO_STORE: &str = "no-store";

/// The CSP template the site renders per response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CspTemplate(String);

impl CspTemplate {
    /// `[static] csp` when set, else Ward's policy with `trusted_types` as its `trusted-types`
    /// directive (`[]`: `'none'`; absent: no directive, any policy name).
    pub fn new(csp: Option<&str>, trusted_types: Option<&[String]>) -> Self {
        if let Some(csp) = csp {
            return Self(csp.to_owned());
        }
        let mut template = DEFAULT_CSP.to_owned();
        match trusted_types {
            None => {}
            Some([]) => template.push_str("; trusted-types 'none'"),
            Some(names) => {
                template.push_str("; trusted-types ");
                template.push_str(&names.join(" "));
            }
        }
        Self(template)
    }

    /// The policy with `nonce` in place of every `{nonce}`.
    pub fn render(&self, nonce: &str) -> String {
        self.0.replace("{nonce}", nonce)
    }
}

/// Headers of every `[static]` response: no MIME sniffing, no referrer, and cross-origin
/// isolation (no other site's window keeps a handle on ours, no other site embeds our files).
pub fn apply_isolation(headers: &mut HeaderMap) {
    let set = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    for (name, value) in set {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

/// Headers of an HTML document: its CSP, the Permissions-Policy, no framing, never cached.
pub fn apply_document(headers: &mut HeaderMap, csp: &str) {
    if let Ok(csp) = HeaderValue::try_from(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        HeaderName::from_static("permissions-policy"),
        HeaderValue::from_static(PERMISSIONS_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_STORE));
}

/// The `Cache-Control` of an asset (not a document) named `file_name`.
pub fn asset_cache_control(file_name: &str) -> &'static str {
    if is_hashed_asset(file_name) {
        IMMUTABLE
    } else {
        REVALIDATE
    }
}

/// Whether `file_name` carries a content hash: `<name>.<hash>.<ext>` or `<name>-<hash>.<ext>`,
/// where the hash has a letter and a digit and is either 6+ lowercase hex digits
/// (`app.3f9a1c.js`) or 8+ letters, digits, `_` and `-` (`index-B_x9aQ1z.js`).
pub fn is_hashed_asset(file_name: &str) -> bool {
    let Some((stem, extension)) = file_name.rsplit_once('.') else {
        return false;
    };
    if extension.is_empty() {
        return false;
    }
    stem.char_indices()
        .filter(|&(i, c)| i > 0 && (c == '.' || c == '-'))
        .any(|(i, _)| is_hash(&stem[i + 1..]))
}

fn is_hash(text: &str) -> bool {
    let has_digit = text.bytes().any(|b| b.is_ascii_digit());
    let has_letter = text.bytes().any(|b| b.is_ascii_alphabetic());
    let hex = text.len() >= 6 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let base64url = text.len() >= 8
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    has_digit && has_letter && (hex || base64url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_hashed_names_are_recognised() {
        for name in [
            "app.3f9a1c.js",
            "main.8a2b3c4d5e6f7a8b9c0d.css",
            "index-B_x9aQ1z.js",
            "index-B_x9-aQ1.js",
            "logo.a1b2c3.svg",
            "chunk-vendors.0f1e2d3c.js",
        ] {
            assert!(is_hashed_asset(name), "{name}");
        }
        for name in [
            "app.js",
            "index.html",
            "favicon.svg",
            "jquery-3.7.1.min.js",
            "bootstrap-bundle.js",
            "report-20240101.js",
            "my-app-v2.js",
            "decade.css",
            ".3f9a1c.js",
            "app.3f9a1c",
            "app.3f9a1c.",
        ] {
            assert!(!is_hashed_asset(name), "{name}");
        }
    }

    #[test]
    fn the_template_adds_trusted_types_only_when_configured() {
        let any = CspTemplate::new(None, None).render("N");
        assert!(
            any.contains("script-src 'nonce-N' 'strict-dynamic'"),
            "{any}"
        );
        assert!(any.ends_with("require-trusted-types-for 'script'"), "{any}");
        assert!(!any.contains("; trusted-types"), "{any}");
        let names = ["app".to_owned(), "dompurify".to_owned()];
        let listed = CspTemplate::new(None, Some(&names)).render("N");
        assert!(
            listed.ends_with("; trusted-types app dompurify"),
            "{listed}"
        );
        let none = CspTemplate::new(None, Some(&[])).render("N");
        assert!(none.ends_with("; trusted-types 'none'"), "{none}");
        let custom = CspTemplate::new(
            Some("script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'"),
            None,
        );
        assert_eq!(
            custom.render("N"),
            "script-src 'nonce-N'; style-src 'nonce-N'"
        );
    }
}
