//! The test IdP's FAPI 2.0 configuration: pushed authorization requests and a client that
//! authenticates with `private_key_jwt`, whose key pair the test makes here.

use std::path::Path;

use anyhow::Context;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::idp::{ClientAuth, IdpOptions};

/// `PAR` of the test IdP (RFC 9126 at `/request`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Par {
    /// No PAR endpoint is advertised (the default: parameters travel in the front channel).
    #[default]
    Off,
    /// Offered, not required.
    On,
    /// Required (`require_pushed_authorization_requests: true`).
    Required,
}

impl Par {
    pub(crate) fn as_env(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::On => "on",
            Self::Required => "required",
        }
    }
}

/// A client key pair (EC P-256, for ES256): the private half as PKCS#8 PEM for Ward's
/// `private_key_file`, the public half as the JWKS the IdP registers.
pub struct ClientKey {
    pair: EcdsaKeyPair,
}

impl ClientKey {
    /// A fresh P-256 key pair.
    pub fn generate() -> anyhow::Result<Self> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| anyhow::anyhow!("EC key generation failed"))?;
        Ok(Self { pair })
    }

    /// The private key as a PKCS#8 PEM document.
    pub fn pkcs8_pem(&self) -> anyhow::Result<String> {
        let der = self
            .pair
            .to_pkcs8v1()
            .map_err(|_| anyhow::anyhow!("PKCS#8 encoding failed"))?;
        Ok(pem("PRIVATE KEY", der.as_ref()))
    }

    /// The private key as a SEC1 (`EC PRIVATE KEY`) PEM document.
    pub fn sec1_pem(&self) -> anyhow::Result<String> {
        let der = self
            .pair
            .private_key()
            .as_der()
            .map_err(|_| anyhow::anyhow!("SEC1 encoding failed"))?;
        Ok(pem("EC PRIVATE KEY", der.as_ref()))
    }

    /// Writes [`Self::pkcs8_pem`] to `path`.
    pub fn write_pem(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, self.pkcs8_pem()?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The public JWK (`kty`, `crv`, `x`, `y`, `use`, `alg`, and `kid` = [`Self::thumbprint`],
    /// Ward's default `private_key_id`: the IdP picks the key by it).
    pub fn public_jwk(&self) -> Value {
        let (x, y) = self.coordinates();
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256",
            "x": x, "y": y, "kid": self.thumbprint(),
        })
    }

    /// The RFC 7638 thumbprint: SHA-256 of the required members in lexicographic order.
    pub fn thumbprint(&self) -> String {
        let (x, y) = self.coordinates();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    /// `x` and `y`, base64url.
    fn coordinates(&self) -> (String, String) {
        let point = self.pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))
    }

    /// `{"keys": [public_jwk]}`.
    pub fn public_jwks(&self) -> Value {
        json!({ "keys": [self.public_jwk()] })
    }
}

impl IdpOptions {
    /// The FAPI 2.0 configuration: oidc-provider's `fapi` profile `2.0`, PAR required, the
    /// client registered for `private_key_jwt` with `key`'s public half.
    pub fn fapi2(bff_origin: impl Into<String>, key: &ClientKey) -> Self {
        let mut options = Self::new(bff_origin);
        options.fapi2 = true;
        options.par = Par::Required;
        options.client_auth = ClientAuth::PrivateKeyJwt;
        options.client_jwks = Some(key.public_jwks());
        options
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(std::str::from_utf8(line).unwrap_or_default());
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}
