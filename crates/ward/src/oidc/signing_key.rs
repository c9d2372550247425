//! Ward's own signing key for `private_key_jwt`: read from a PEM (PKCS#8, SEC1 or PKCS#1) or a
//! private JWK, kept as an aws-lc-rs key pair, and used only to sign.
//!
//! The key never leaves this type: `Debug` names its type alone, the file's bytes are wiped
//! after parsing (aws-lc-rs frees the key material into AWS-LC, which clears it), and errors
//! name the file and what is wrong with it, never a byte of the key.

use std::fmt;
use std::path::Path;

use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Why the key file cannot be used. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither a PEM private key nor a private JWK.
    #[error("{0} holds no PEM private key (PKCS#8, SEC1, PKCS#1) and no private JWK")]
    Unreadable(String),
    /// A key of a type Ward does not sign with.
    #[error("{path}: unsupported key ({what}); use EC P-256/P-384, RSA (2048+ bits) or Ed25519")]
    Unsupported {
        /// The file.
        path: String,
        /// What was found.
        what: String,
    },
}

/// A private signing key. Which JWS algorithms it can make is [`SigningKey::algs`].
pub(crate) enum SigningKey {
    Ec(EcdsaKeyPair, &'static str),
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, [redacted])", self.kind())
    }
}

impl SigningKey {
    /// Reads and parses `path` (a PEM private key or a private JWK).
    pub(crate) fn load(path: &Path) -> Result<Self, KeyError> {
        let label = path.display().to_string();
        let bytes = Zeroizing::new(std::fs::read(path).map_err(|source| KeyError::Read {
            path: label.clone(),
            source,
        })?);
        Self::parse(&bytes, &label)
    }

    /// Parses key material; `label` names it in errors.
    pub(crate) fn parse(bytes: &[u8], label: &str) -> Result<Self, KeyError> {
        let unsupported = |what: &str| KeyError::Unsupported {
            path: label.to_owned(),
            what: what.to_owned(),
        };
        if bytes.trim_ascii_start().starts_with(b"{") {
            let jwk: Zeroizing<Vec<u8>> = Zeroizing::new(bytes.to_vec());
            let jwk: Value =
                serde_json::from_slice(&jwk).map_err(|_| KeyError::Unreadable(label.to_owned()))?;
            return from_jwk(&jwk).ok_or_else(|| unsupported("a JWK without a usable private key"));
        }
        let der = PrivateKeyDer::from_pem_slice(bytes)
            .map_err(|_| KeyError::Unreadable(label.to_owned()))?;
        from_der(&der).ok_or_else(|| unsupported("not an EC P-256/P-384, RSA or Ed25519 key"))
    }

    /// The JWS algorithms this key signs with, preferred first.
    pub(crate) fn algs(&self) -> &'static [&'static str] {
        match self {
            Self::Ec(_, "P-256") => &["ES256"],
            Self::Ec(..) => &["ES384"],
            Self::Rsa(_) => &["PS256", "RS256"],
            Self::Ed25519(_) => &["EdDSA", "Ed25519"],
        }
    }

    /// The key type for messages: `EC P-256`, `RSA`, `Ed25519`.
    pub(crate) fn kind(&self) -> String {
        match self {
            Self::Ec(_, crv) => format!("EC {crv}"),
            Self::Rsa(_) => "RSA".to_owned(),
            Self::Ed25519(_) => "Ed25519".to_owned(),
        }
    }

    /// The public JWK's required members (RFC 7638 §3.2), in lexicographic order.
    pub(crate) fn public_jwk(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match self {
            Self::Ec(key, crv) => {
                // Uncompressed point: 0x04 || x || y.
                let point = key.public_key().as_ref();
                let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                json!({"crv": crv, "kty": "EC", "x": b64(x), "y": b64(y)})
            }
            Self::Rsa(key) => {
                let public = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
                json!({"e": b64(&public.e), "kty": "RSA", "n": b64(&public.n)})
            }
            Self::Ed25519(key) => {
                json!({"crv": "Ed25519", "kty": "OKP", "x": b64(key.public_key().as_ref())})
            }
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.
    pub(crate) fn thumbprint(&self) -> String {
        jwk_thumbprint(&self.public_jwk())
    }

    /// The JWS signature of `input` with `alg` (one of [`Self::algs`]).
    pub(crate) fn sign(&self, alg: &str, input: &[u8]) -> Result<Vec<u8>, SignError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Self::Ec(key, _) => Ok(key.sign(&rng, input)?.as_ref().to_vec()),
            Self::Rsa(key) => {
                let padding = match alg {
                    "PS256" => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(padding, &rng, input, &mut signature)?;
                Ok(signature)
            }
            Self::Ed25519(key) => Ok(key.sign(input).as_ref().to_vec()),
        }
    }
}

/// The RFC 7638 thumbprint of `jwk`, which holds exactly the required members of its type.
pub(crate) fn jwk_thumbprint(jwk: &Value) -> String {
    // §3: members sorted, no whitespace (a BTreeMap sorts whatever serde_json's map does).
    let sorted: std::collections::BTreeMap<&String, &Value> = jwk
        .as_object()
        .map(|members| members.iter().collect())
        .unwrap_or_default();
    let canonical = serde_json::to_string(&sorted).unwrap_or_default();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Signing failed inside aws-lc-rs (no detail is available, none is needed).
#[derive(Debug, thiserror::Error)]
#[error("signing the client assertion failed")]
pub struct SignError;

impl From<aws_lc_rs::error::Unspecified> for SignError {
    fn from(_: aws_lc_rs::error::Unspecified) -> Self {
        Self
    }
}

const CURVES: [(&str, &EcdsaSigningAlgorithm); 2] = [
    ("P-256", &ECDSA_P256_SHA256_FIXED_SIGNING),
    ("P-384", &ECDSA_P384_SHA384_FIXED_SIGNING),
];

fn from_der(der: &PrivateKeyDer<'_>) -> Option<SigningKey> {
    match der {
        PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der())
            .ok()
            .map(SigningKey::Rsa),
        PrivateKeyDer::Sec1(der) => ec_from_der(der.secret_sec1_der()),
        PrivateKeyDer::Pkcs8(der) => {
            let der = der.secret_pkcs8_der();
            RsaKeyPair::from_pkcs8(der)
                .ok()
                .map(SigningKey::Rsa)
                .or_else(|| ec_from_der(der))
                .or_else(|| {
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                        .ok()
                        .map(SigningKey::Ed25519)
                })
        }
        _ => None,
    }
}

/// An EC key (SEC1 or PKCS#8) on one of [`CURVES`].
fn ec_from_der(der: &[u8]) -> Option<SigningKey> {
    CURVES.iter().find_map(|(crv, alg)| {
        EcdsaKeyPair::from_private_key_der(alg, der)
            .ok()
            .map(|key| SigningKey::Ec(key, crv))
    })
}

/// A private JWK (RFC 7518 §6): EC with `d`, RSA with `d`, `p`, `q`, `dp`, `dq`, `qi`, OKP
/// Ed25519 with `d`.
fn from_jwk(jwk: &Value) -> Option<SigningKey> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    let bytes = |name: &str| {
        text(name)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .map(Zeroizing::new)
    };
    match (text("kty")?, text("crv")) {
        ("EC", Some(crv)) => {
            let (crv, alg) = CURVES.iter().find(|(name, _)| *name == crv)?;
            let mut point = vec![4u8];
            point.extend_from_slice(&bytes("x")?);
            point.extend_from_slice(&bytes("y")?);
            EcdsaKeyPair::from_private_key_and_public_key(alg, &bytes("d")?, &point)
                .ok()
                .map(|key| SigningKey::Ec(key, crv))
        }
        ("OKP", Some("Ed25519")) => {
            Ed25519KeyPair::from_seed_and_public_key(&bytes("d")?, &bytes("x")?)
                .ok()
                .map(SigningKey::Ed25519)
        }
        ("RSA", _) => {
            let components = KeyPairComponents {
                public_key: PublicKeyComponents {
                    n: bytes("n")?,
                    e: bytes("e")?,
                },
                d: bytes("d")?,
                p: bytes("p")?,
                q: bytes("q")?,
                dP: bytes("dp")?,
                dQ: bytes("dq")?,
                qInv: bytes("qi")?,
            };
            RsaKeyPair::from_components(&components)
                .ok()
                .map(SigningKey::Rsa)
        }
        _ => None,
    }
}
