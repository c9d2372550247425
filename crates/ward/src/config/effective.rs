//! Values the runtime derives from the configuration: the cookie's name and `Secure` flag.
//!
//! Browsers treat `https://` and plain-http loopback/`localhost` origins as secure contexts, so
//! the `__Host-` prefix and `Secure` work there. Any other plain-http `public_url` is only
//! accepted with `server.insecure_dev = true`; the cookie then cannot be `Secure`, and a browser
//! rejects a prefixed name without `Secure`, so the prefix of the *default* name is dropped
//! (`__Host-ward` becomes `ward`). An explicitly configured prefixed name is a start-up error in
//! that setup instead (see `validate`), so nobody gets a different name than they wrote.

use url::{Host, Url};

use super::Config;

/// Cookie name prefixes with browser-enforced rules, longest first; matched case-insensitively
/// as browsers do.
const PREFIXES: &[&str] = &["__Host-Http-", "__Host-", "__Secure-", "__Http-"];

/// Whether `url`'s host is a loopback address or `localhost` (or a `*.localhost` name).
pub(crate) fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(domain)) => {
            let domain = domain.to_ascii_lowercase();
            domain == "localhost" || domain.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether browsers treat `url` as a secure context (cookies may be `Secure` and prefixed).
pub(crate) fn is_secure_origin(url: &Url) -> bool {
    url.scheme() == "https" || (url.scheme() == "http" && is_loopback_host(url))
}

/// The browser-enforced prefix `name` starts with, if any.
pub(crate) fn cookie_prefix(name: &str) -> Option<&'static str> {
    PREFIXES.iter().copied().find(|prefix| {
        name.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    })
}

impl Config {
    /// Whether the session cookie carries `Secure`: true unless `public_url` is a plain-http,
    /// non-loopback origin (only accepted with `server.insecure_dev`).
    pub fn cookie_secure(&self) -> bool {
        is_secure_origin(&self.server.public_url)
    }

    /// The session cookie's name as sent: `session.cookie_name`, less its `__Host-`/`__Secure-`
    /// prefix when the cookie cannot be `Secure` (see the module doc).
    pub fn effective_cookie_name(&self) -> String {
        let name = &self.session.cookie_name;
        match cookie_prefix(name) {
            Some(prefix) if !self.cookie_secure() => name[prefix.len()..].to_owned(),
            _ => name.clone(),
        }
    }

    /// How many threads serve requests: `server.workers`, or one per CPU core this process may
    /// use (affinity and cgroup quota included), at least 1.
    pub fn effective_workers(&self) -> usize {
        self.server.workers.map_or_else(
            || std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            usize::from,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URL parses")
    }

    #[test]
    fn loopback_and_localhost_http_origins_are_secure() {
        for text in [
            "https://app.example.com",
            "http://localhost:8080",
            "http://app.localhost",
            "http://127.0.0.1:8080",
            "http://127.8.9.1",
            "http://[::1]:8080",
        ] {
            assert!(is_secure_origin(&url(text)), "{text}");
        }
        for text in [
            "http://app.example.com",
            "http://10.0.0.1",
            "http://localhost.evil.com",
        ] {
            assert!(!is_secure_origin(&url(text)), "{text}");
        }
    }

    #[test]
    fn prefixes_are_matched_case_insensitively_longest_first() {
        assert_eq!(cookie_prefix("__Host-Http-ward"), Some("__Host-Http-"));
        assert_eq!(cookie_prefix("__host-ward"), Some("__Host-"));
        assert_eq!(cookie_prefix("__Secure-ward"), Some("__Secure-"));
        assert_eq!(cookie_prefix("ward"), None);
        assert_eq!(cookie_prefix("__Hos"), None);
    }
}
