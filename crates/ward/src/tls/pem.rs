//! Reading a certificate chain and its private key from PEM files into what rustls serves, with
//! the facts the log reports about the certificate (validity, subject, fingerprint), never the
//! key.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use x509_cert::der::Decode as _;
use zeroize::Zeroizing;

use super::TlsError;

/// The two files as read, before parsing: their digest tells a changed pair from the same one.
pub(super) struct PairFiles {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

impl PairFiles {
    pub(super) fn read(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Ok(Self {
            cert: read(cert)?,
            key: Zeroizing::new(read(key)?),
        })
    }

    /// SHA-256 over both files (length-prefixed): equal digests, the same pair.
    pub(super) fn digest(&self) -> [u8; 32] {
        let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [&self.cert[..], &self.key[..]] {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(context.finish().as_ref());
        out
    }
}

/// What the log says about a served certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The leaf's subject (RFC 4514).
    pub subject: String,
    /// The leaf's notBefore, RFC 3339 (UTC).
    pub not_before: String,
    /// The leaf's notAfter, RFC 3339 (UTC): when it must have been replaced.
    pub not_after: String,
    /// Whether now is outside notBefore..notAfter (browsers refuse it).
    pub out_of_validity: bool,
    /// SHA-256 of the leaf certificate (DER), lowercase hex: what `openssl x509 -fingerprint
    /// -sha256` prints, without colons.
    pub fingerprint_sha256: String,
}

/// A parsed, consistent pair.
pub(super) struct Pair {
    pub(super) key: Arc<CertifiedKey>,
    pub(super) info: CertificateInfo,
}

/// Parses `files` (read from `cert_path` and `key_path`, named in errors): the chain, the key
/// in any of PKCS#8, PKCS#1 (RSA) or SEC1 (EC), and that the key is the leaf's.
pub(super) fn parse(
    files: &PairFiles,
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<Pair, TlsError> {
    let chain = CertificateDer::pem_slice_iter(&files.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error(cert_path, &err))?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    };
    let info = describe(leaf).map_err(|reason| TlsError::Certificate {
        path: cert_path.to_owned(),
        reason,
    })?;
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::NoKey(key_path.to_owned()),
        err => pem_error(key_path, &err),
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::UnusableKey {
            path: key_path.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    // Strict: a key whose public half cannot be compared is refused too.
    certified.keys_match().map_err(|_| TlsError::KeyMismatch {
        cert: cert_path.to_owned(),
        key: key_path.to_owned(),
    })?;
    Ok(Pair {
        key: Arc::new(certified),
        info,
    })
}

/// A PEM syntax error, described without quoting the file: a key file's lines are secret.
fn pem_error(path: &Path, err: &pem::Error) -> TlsError {
    let reason = match err {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
        pem::Error::NoItemsFound => "no PEM section of the expected kind",
        _ => "not readable as PEM",
    };
    TlsError::Pem {
        path: path.to_owned(),
        reason,
    }
}

/// Subject, validity and fingerprint of the leaf certificate.
fn describe(leaf: &CertificateDer<'_>) -> Result<CertificateInfo, String> {
    let cert = x509_cert::Certificate::from_der(leaf.as_ref())
        .map_err(|err| format!("not an X.509 certificate ({err})"))?;
    let validity = &cert.tbs_certificate.validity;
    let now = std::time::SystemTime::now();
    let out_of_validity =
        now < validity.not_before.to_system_time() || now > validity.not_after.to_system_time();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, leaf.as_ref());
    Ok(CertificateInfo {
        subject: cert.tbs_certificate.subject.to_string(),
        not_before: validity.not_before.to_date_time().to_string(),
        not_after: validity.not_after.to_date_time().to_string(),
        out_of_validity,
        fingerprint_sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
    })
}

/// The paths of a pair, for errors and the watcher.
#[derive(Debug, Clone)]
pub(super) struct PairPaths {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
}
