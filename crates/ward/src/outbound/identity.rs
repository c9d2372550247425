//! Ward's TLS client certificate (`[oidc] client_cert` / `client_key`, RFC 8705): read once at
//! start, presented to the IdP (mutual-TLS client authentication, `tls_client_auth`) and to the
//! https upstreams of routes that forward a token (certificate-bound access tokens, RFC 8705
//! §3), and to nothing else: Redis, PostgreSQL and the OTLP collector never see it.
//!
//! The pair is checked as a served one is (`crate::tls`): the chain parses, the key is PKCS#8,
//! SEC1 or PKCS#1 and is the leaf's. The key file's bytes are wiped after parsing; the key
//! itself lives in aws-lc-rs. Errors name the files, never their contents; `Debug` shows the
//! subject and the thumbprint only.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::client::ResolvesClientCert;
use rustls::sign::{CertifiedKey, SingleCertAndKey};

use crate::config::{ClientAuth, OidcConfig};
use crate::tls::{CertificateInfo, TlsError};

/// Why the client certificate cannot be used (a start error; `ward check` reports it).
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// A file cannot be read, is not PEM, or the key is not the certificate's.
    #[error("oidc.client_cert / oidc.client_key: {0}")]
    Files(#[source] TlsError),
    /// `tls_client_auth` without both files (configuration validation normally catches it).
    #[error("oidc.client_cert and oidc.client_key are required with tls_client_auth")]
    Unset,
}

/// Ward's client certificate and its key; cheap to clone.
#[derive(Clone)]
pub struct ClientIdentity {
    key: Arc<CertifiedKey>,
    info: CertificateInfo,
    /// RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the leaf's DER.
    thumbprint: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("subject", &self.info.subject)
            .field("x5t#S256", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

impl ClientIdentity {
    /// Reads `cert` (PEM chain, leaf first) and `key` (PEM private key of the leaf).
    pub fn load(cert: &Path, key: &Path) -> Result<Self, IdentityError> {
        let (key, info) = crate::tls::load_pair(cert, key).map_err(IdentityError::Files)?;
        let leaf = key
            .end_entity_cert()
            .map_err(|_| IdentityError::Files(TlsError::NoCertificate(cert.to_owned())))?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref());
        Ok(Self {
            thumbprint: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            key,
            info,
        })
    }

    /// The identity `[oidc]` configures: `Some` with `client_auth = "tls_client_auth"`.
    pub fn from_config(oidc: &OidcConfig) -> Result<Option<Self>, IdentityError> {
        if oidc.client_auth != ClientAuth::TlsClientAuth {
            return Ok(None);
        }
        match (&oidc.client_cert, &oidc.client_key) {
            (Some(cert), Some(key)) => Self::load(cert, key).map(Some),
            // Configuration validation requires both; refuse rather than go without.
            _ => Err(IdentityError::Unset),
        }
    }

    /// The RFC 8705 `x5t#S256` of the certificate: what a bound token's `cnf` names.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// Subject, validity and fingerprint of the leaf, for the log and `ward check`.
    pub fn info(&self) -> &CertificateInfo {
        &self.info
    }

    /// rustls' client-certificate resolver presenting this pair whenever a server asks.
    pub(crate) fn resolver(&self) -> Arc<dyn ResolvesClientCert> {
        Arc::new(SingleCertAndKey::from(Arc::clone(&self.key)))
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject as _;

    use super::*;

    /// A self-signed certificate for `name` and its key, as `dir/<name>.pem` and
    /// `dir/<name>-key.pem`; the key's PEM text.
    fn pair(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![format!("{name}.test")])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (cert_file, key_file) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        (cert_file, key_file, key.serialize_pem())
    }

    fn key_body(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn the_thumbprint_is_the_base64url_sha256_of_the_leaf_and_debug_shows_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, key_pem) = pair(dir.path(), "ward");
        let identity = ClientIdentity::load(&cert, &key).unwrap();
        let pem = std::fs::read(&cert).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_slice(&pem).unwrap();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref());
        assert_eq!(
            identity.thumbprint(),
            URL_SAFE_NO_PAD.encode(digest.as_ref())
        );
        let debug = format!("{identity:?}");
        assert!(debug.contains(identity.thumbprint()), "{debug}");
        assert!(!debug.contains(&key_body(&key_pem)[..32]), "{debug}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_naming_both_files_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _, _) = pair(dir.path(), "ward");
        let (_, other_key, other_pem) = pair(dir.path(), "other");
        let err = ClientIdentity::load(&cert, &other_key).unwrap_err();
        let text = crate::check::describe(&err);
        assert!(
            text.starts_with("oidc.client_cert / oidc.client_key: "),
            "{text}"
        );
        assert!(
            text.contains("does not belong to the certificate"),
            "{text}"
        );
        assert!(
            text.contains("other-key.pem") && text.contains("ward.pem"),
            "{text}"
        );
        let body = key_body(&other_pem);
        for shown in [text, format!("{err:?}")] {
            assert!(!shown.contains(&body[..32]), "{shown}");
        }
    }

    #[test]
    fn unreadable_or_swapped_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = pair(dir.path(), "ward");
        let missing = dir.path().join("missing.pem");
        let err = ClientIdentity::load(&missing, &key)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot read") && err.contains("missing.pem"),
            "{err}"
        );
        // The key where the certificate belongs and the other way round.
        let err = ClientIdentity::load(&key, &cert).unwrap_err().to_string();
        assert!(err.contains("ward-key.pem"), "{err}");
        assert!(!err.contains("BEGIN PRIVATE KEY-----\n"), "{err}");
    }

    #[test]
    fn only_tls_client_auth_loads_an_identity() {
        let config: OidcConfig = toml::from_str(
            "issuer = \"https://idp.example\"\nclient_id = \"bff\"\nclient_auth = \"tls_client_auth\"",
        )
        .unwrap();
        assert!(matches!(
            ClientIdentity::from_config(&config),
            Err(IdentityError::Unset)
        ));
        let config = OidcConfig {
            client_auth: ClientAuth::ClientSecretBasic,
            ..config
        };
        assert!(ClientIdentity::from_config(&config).unwrap().is_none());
    }
}
