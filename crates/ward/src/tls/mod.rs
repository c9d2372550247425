//! TLS termination (`[server] tls_cert` / `tls_key` / `hsts`): rustls with the aws-lc-rs
//! provider, TLS 1.2 and 1.3 only, ALPN `h2` and `http/1.1`, rustls' default cipher suites (all
//! AEAD with forward secrecy), the server's order preferred.
//!
//! The served pair sits behind an atomic pointer read on each handshake ([`CurrentCert`]), so a
//! reload swaps it without touching open connections: they keep the session they negotiated,
//! new ones get the new certificate. A reload reads both files, checks the chain parses and the
//! key is the leaf's, and only then swaps; a bad pair keeps the old one (`tls_reload_failed`).
//! Reloads come from SIGHUP ([`Termination::reload_on_sighup`]) and from the files changing
//! (`watch.rs`).
//!
//! - `pem.rs`: the PEM files to a rustls `CertifiedKey`, and what the log says about it.
//! - `watch.rs`: the file watcher and the SIGHUP listener.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use axum::http::HeaderValue;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::ServerConfig;

mod pem;
mod watch;

pub use pem::CertificateInfo;
use pem::{PairFiles, PairPaths};
pub use watch::FileWatch;

/// Why a certificate pair cannot be served (at start: Ward does not start; on reload: the old
/// pair stays). Messages name files and what is wrong, never the files' contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not well-formed PEM.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `tls_cert` holds no certificate.
    #[error("{}: no PEM certificate (BEGIN CERTIFICATE) in it", .0.display())]
    NoCertificate(PathBuf),
    /// The leaf certificate cannot be decoded.
    #[error("{}: {reason}", path.display())]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `tls_key` holds no private key.
    #[error(
        "{}: no private key in it (PEM: BEGIN PRIVATE KEY, BEGIN RSA PRIVATE KEY or BEGIN EC \
         PRIVATE KEY)",
        .0.display()
    )]
    NoKey(PathBuf),
    /// The key is of a kind rustls cannot sign with.
    #[error("{}: the private key cannot be used: {source}", path.display())]
    UnusableKey {
        /// The file.
        path: PathBuf,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// The key is not the certificate's.
    #[error(
        "the private key in {} does not belong to the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// `tls_cert`.
        cert: PathBuf,
        /// `tls_key`.
        key: PathBuf,
    },
    /// rustls refused the server settings.
    #[error("TLS settings: {0}")]
    Settings(#[source] rustls::Error),
    /// `[server] hsts` is not a header value (validation prevents it).
    #[error("server.hsts is not a header value")]
    Hsts,
}

/// Reads and checks a certificate chain and its private key (the key is the leaf's), as a
/// served pair is: for Ward's own client certificate (`outbound::identity`). The key file's
/// bytes are wiped once parsed.
pub(crate) fn load_pair(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<(Arc<CertifiedKey>, CertificateInfo), TlsError> {
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let files = PairFiles::read(cert, key)?;
    let pair = pem::parse(&files, cert, key, &provider)?;
    Ok((pair.key, pair.info))
}

/// What asked for a (re)load, as the log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Ward starting.
    Start,
    /// SIGHUP.
    Signal,
    /// The watcher saw the files change.
    FileChange,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Signal => "signal",
            Self::FileChange => "file_change",
        }
    }
}

/// TLS termination for the listener: the rustls settings, the served pair and the HSTS value.
/// Cheap to clone (shared).
#[derive(Clone)]
pub struct Termination {
    inner: Arc<Inner>,
}

struct Inner {
    paths: PairPaths,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCert>,
    settings: Arc<rustls::ServerConfig>,
    hsts: HeaderValue,
    /// Digests of the pair served and of the last pair refused: a watcher event for files that
    /// did not change (or changed back to a refused pair) reloads nothing and logs nothing.
    seen: Mutex<Seen>,
}

struct Seen {
    served: [u8; 32],
    info: CertificateInfo,
    refused: Option<[u8; 32]>,
}

impl Termination {
    /// TLS as `[server]` configures it: `None` without `tls_cert`; an error when the pair
    /// cannot be served. Logs `tls_certificate_loaded`.
    pub fn from_config(server: &ServerConfig) -> Result<Option<Self>, TlsError> {
        let (Some(cert), Some(key)) = (&server.tls_cert, &server.tls_key) else {
            return Ok(None);
        };
        let paths = PairPaths {
            cert: cert.clone(),
            key: key.clone(),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let files = PairFiles::read(&paths.cert, &paths.key)?;
        let pair = pem::parse(&files, &paths.cert, &paths.key, &provider)?;
        let current = Arc::new(CurrentCert(ArcSwap::new(pair.key)));
        let settings = server_settings(provider.clone(), current.clone())?;
        let hsts = HeaderValue::from_str(&server.hsts).map_err(|_| TlsError::Hsts)?;
        log_loaded(&pair.info, Trigger::Start);
        Ok(Some(Self {
            inner: Arc::new(Inner {
                paths,
                provider,
                current,
                settings,
                hsts,
                seen: Mutex::new(Seen {
                    served: files.digest(),
                    info: pair.info,
                    refused: None,
                }),
            }),
        }))
    }

    /// Reads the pair again and serves it if it is good; a bad one keeps the served pair and
    /// logs `tls_reload_failed`. A file change whose files equal the served pair (or the last
    /// refused one) does nothing; SIGHUP always reloads. `Ok(None)`: nothing to do.
    pub fn reload(&self, trigger: Trigger) -> Result<Option<CertificateInfo>, TlsError> {
        let result = self.try_reload(trigger);
        if let Err(err) = &result {
            tracing::warn!(
                event = "tls_reload_failed",
                trigger = trigger.as_str(),
                error = %err,
                "the new TLS certificate or key cannot be served; still serving the previous one"
            );
        }
        result
    }

    fn try_reload(&self, trigger: Trigger) -> Result<Option<CertificateInfo>, TlsError> {
        let paths = &self.inner.paths;
        let files = PairFiles::read(&paths.cert, &paths.key)?;
        let digest = files.digest();
        let mut seen = self.inner.seen.lock().unwrap_or_else(|p| p.into_inner());
        let known = digest == seen.served || seen.refused == Some(digest);
        if trigger == Trigger::FileChange && known {
            return Ok(None);
        }
        match pem::parse(&files, &paths.cert, &paths.key, &self.inner.provider) {
            Ok(pair) => {
                self.inner.current.0.store(pair.key);
                log_loaded(&pair.info, trigger);
                *seen = Seen {
                    served: digest,
                    info: pair.info.clone(),
                    refused: None,
                };
                Ok(Some(pair.info))
            }
            Err(err) => {
                seen.refused = Some(digest);
                Err(err)
            }
        }
    }

    /// The certificate new connections get.
    pub fn certificate(&self) -> CertificateInfo {
        let seen = self.inner.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.info.clone()
    }

    /// The acceptor for accepted sockets.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.inner.settings.clone())
    }

    /// `Strict-Transport-Security` for every response on a TLS connection.
    pub(crate) fn hsts(&self) -> &HeaderValue {
        &self.inner.hsts
    }
}

/// rustls settings: TLS 1.3 and 1.2 only, no client certificates, the served pair from
/// `current`, ALPN `h2` then `http/1.1`, and the server's cipher-suite order (strongest first)
/// rather than the client's.
fn server_settings(
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCert>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut settings = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Settings)?
        .with_no_client_auth()
        .with_cert_resolver(current);
    settings.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    settings.ignore_client_order = true;
    Ok(Arc::new(settings))
}

fn log_loaded(info: &CertificateInfo, trigger: Trigger) {
    tracing::info!(
        event = "tls_certificate_loaded",
        trigger = trigger.as_str(),
        subject = %info.subject,
        not_after = %info.not_after,
        fingerprint_sha256 = %info.fingerprint_sha256,
        "serving this TLS certificate to new connections"
    );
    if info.out_of_validity {
        tracing::warn!(
            event = "tls_certificate_invalid_now",
            not_before = %info.not_before,
            not_after = %info.not_after,
            "the TLS certificate is expired or not yet valid: browsers will refuse it"
        );
    }
}

/// The pair served to new connections, swapped whole on reload.
#[derive(Debug)]
struct CurrentCert(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}
