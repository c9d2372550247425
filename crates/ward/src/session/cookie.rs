//! The session cookie value (SPEC §3) and `Set-Cookie` rendering.
//!
//! Value: `v1.` + base64url(32-byte session id ‖ 32-byte per-session secret). The id names the
//! record (through a one-way hash); the secret is half of the key that opens it. Anything that
//! does not parse exactly is "no session".

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::random;

const VERSION_TAG: &str = "v1.";
/// `v1.` + 86 base64url characters.
const ENCODED_LEN: usize = 3 + 86;

/// A session's cookie credentials: id and per-session secret. `Debug` redacts both; `==`
/// compares in constant time; both are zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionCookie {
    id: [u8; 32],
    secret: [u8; 32],
}

impl PartialEq for SessionCookie {
    fn eq(&self, other: &Self) -> bool {
        (self.id.ct_eq(&other.id) & self.secret.ct_eq(&other.secret)).into()
    }
}

impl Eq for SessionCookie {}

impl std::fmt::Debug for SessionCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionCookie([redacted])")
    }
}

impl SessionCookie {
    /// Fresh id and secret from the OS CSPRNG.
    pub fn generate() -> Self {
        Self {
            id: random::bytes(),
            secret: random::bytes(),
        }
    }

    /// Parses a cookie value; `None` for anything malformed, oversized or of another version.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != ENCODED_LEN {
            return None;
        }
        let encoded = value.strip_prefix(VERSION_TAG)?;
        let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(encoded).ok()?);
        let (id, secret) = bytes.split_at_checked(32)?;
        Some(Self {
            id: id.try_into().ok()?,
            secret: secret.try_into().ok()?,
        })
    }

    /// The cookie value. Only ever written into a `Set-Cookie` header.
    pub fn encode(&self) -> String {
        let mut raw = Zeroizing::new([0u8; 64]);
        raw[..32].copy_from_slice(&self.id);
        raw[32..].copy_from_slice(&self.secret);
        format!("{VERSION_TAG}{}", URL_SAFE_NO_PAD.encode(raw.as_slice()))
    }

    /// The session id (hashed before it names a store record).
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// The per-session secret mixed into the record key.
    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

/// The browser-binding secret of pending logins (`<session cookie>-tx`): base64url of 32 bytes.
/// Compared in constant time, zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct LoginBinding([u8; 32]);

impl PartialEq for LoginBinding {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for LoginBinding {}

impl std::fmt::Debug for LoginBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginBinding([redacted])")
    }
}

impl LoginBinding {
    /// A fresh binding secret.
    pub fn generate() -> Self {
        Self(random::bytes())
    }

    /// Parses the cookie value; `None` unless exactly 32 base64url bytes.
    pub fn parse(value: &str) -> Option<Self> {
        if value.len() != 43 {
            return None;
        }
        let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(value).ok()?);
        Some(Self(bytes.as_slice().try_into().ok()?))
    }

    /// The cookie value.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The secret bytes.
    pub fn secret(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Attributes shared by Ward's cookies.
#[derive(Debug, Clone)]
pub struct CookieAttributes {
    /// Whether `Secure` is set (always, except `insecure_dev` on plain http).
    pub secure: bool,
    /// `Strict` or `Lax`.
    pub same_site: &'static str,
}

/// Renders a `Set-Cookie` value. `max_age = 0` expires the cookie.
pub fn set_cookie(name: &str, value: &str, max_age: u64, attrs: &CookieAttributes) -> String {
    let secure = if attrs.secure { "; Secure" } else { "" };
    format!(
        "{name}={value}; Path=/{secure}; HttpOnly; SameSite={}; Max-Age={max_age}",
        attrs.same_site
    )
}

pub use crate::cookie_header::find;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_cookie_parses_back() {
        let cookie = SessionCookie::generate();
        let encoded = cookie.encode();
        assert_eq!(encoded.len(), ENCODED_LEN);
        assert_eq!(SessionCookie::parse(&encoded), Some(cookie));
    }

    #[test]
    fn malformed_cookies_are_no_session() {
        let good = SessionCookie::generate().encode();
        let cases = [
            String::new(),
            "v1.".to_owned(),
            good.replacen("v1.", "v2.", 1),
            format!("{good}A"),
            good[..good.len() - 1].to_owned(),
            good.replace(|c: char| c.is_ascii_alphanumeric(), "*"),
            "x".repeat(10_000),
        ];
        for case in cases {
            assert!(
                SessionCookie::parse(&case).is_none(),
                "{} chars",
                case.len()
            );
        }
    }

    #[test]
    fn debug_redacts_cookie_values() {
        let cookie = SessionCookie::generate();
        assert_eq!(format!("{cookie:?}"), "SessionCookie([redacted])");
        let binding = LoginBinding::generate();
        assert!(!format!("{binding:?}").contains(&binding.encode()));
    }

    #[test]
    fn duplicate_cookie_names_count_as_absent() {
        assert_eq!(find("a=1; __Host-ward=x; b=2", "__Host-ward"), Some("x"));
        assert_eq!(find("__Host-ward=x; __Host-ward=y", "__Host-ward"), None);
        assert_eq!(find("__Host-wardx=1", "__Host-ward"), None);
    }

    #[test]
    fn set_cookie_carries_every_attribute() {
        let attrs = CookieAttributes {
            secure: true,
            same_site: "Strict",
        };
        assert_eq!(
            set_cookie("__Host-ward", "v", 60, &attrs),
            "__Host-ward=v; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=60"
        );
    }
}
