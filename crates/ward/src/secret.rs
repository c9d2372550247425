//! Secrets in types: values whose `Debug` redacts, that have no `Display`, compare in constant
//! time and are wiped from memory when dropped.

use std::fmt;

use serde::{Deserialize, Deserializer};
use subtle::ConstantTimeEq;
use zeroize::{ZeroizeOnDrop, Zeroizing};

/// A secret string (client secret, token, admin token). `Debug` prints `[redacted]`;
/// read it with [`SecretString::expose`] only where it leaves the process on purpose.
///
/// `==` compares in constant time (a token compared with `==` must not tell an attacker how
/// many leading bytes matched), and the bytes are zeroed when the value is dropped.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret itself. Every call site is a place a secret leaves its box: keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Constant-time comparison with `other`.
    pub fn ct_eq(&self, other: &str) -> bool {
        self.0.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other.expose())
    }
}

impl Eq for SecretString {}

impl ConstantTimeEq for SecretString {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

/// Dropping a `SecretString` zeroes its bytes (through [`Zeroizing`]).
impl ZeroizeOnDrop for SecretString {}

/// The access token cannot be written as a header value (it holds bytes HTTP forbids).
#[derive(Debug, thiserror::Error)]
#[error("access token is not a valid header value")]
pub struct UnsendableBearer;

/// `Bearer <token>` as a header value marked sensitive (never logged by hyper or HPACK-indexed).
pub fn bearer_value(token: &SecretString) -> Result<http::HeaderValue, UnsendableBearer> {
    let text = Zeroizing::new(format!("Bearer {}", token.expose()));
    let mut value = http::HeaderValue::try_from(text.as_str()).map_err(|_| UnsendableBearer)?;
    value.set_sensitive(true);
    Ok(value)
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

impl From<String> for SecretString {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wiped_on_drop_and_compared_in_constant_time<T: ZeroizeOnDrop + ConstantTimeEq + Eq>() {}

    #[test]
    fn secrets_compare_in_constant_time_and_are_wiped_on_drop() {
        wiped_on_drop_and_compared_in_constant_time::<SecretString>();
        let a = SecretString::new("token-a");
        assert_eq!(a, SecretString::new("token-a"));
        assert_ne!(a, SecretString::new("token-b"));
        assert_ne!(a, SecretString::new("token-a-longer"));
        assert_ne!(a, SecretString::new(""));
        assert!(bool::from(ConstantTimeEq::ct_eq(&a, &a.clone())));
        assert!(a.ct_eq("token-a") && !a.ct_eq("token-"));
    }

    #[test]
    fn debug_redacts() {
        assert_eq!(format!("{:?}", SecretString::new("s3cr3t")), "[redacted]");
    }
}
