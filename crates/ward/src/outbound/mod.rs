//! Ward's own connections out — to the IdP, the upstreams, Redis, PostgreSQL and the OTLP
//! collector — trust one set of roots and leave through one egress policy, built here once at
//! start from `[outbound]` ([`Outbound::load`]).
//!
//! - Trust: the system's roots (`rustls-native-certs`: the OS bundle, or `SSL_CERT_FILE` /
//!   `SSL_CERT_DIR`) plus the CA certificates of `[outbound] ca_file`. No roots are compiled
//!   in: what Ward trusts is the operator's choice, visible in the image or the host.
//! - One `rustls::ClientConfig` (aws-lc-rs, TLS 1.2 and 1.3); each client takes a copy with
//!   the ALPN protocols it speaks ([`Outbound::tls_config`]).
//! - Egress proxy: `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY`, read once at load
//!   ([`EgressProxy`]), apply to the IdP and the OTLP/HTTP exporter
//!   ([`Outbound::http_client`]). Upstreams and the store are reached directly: they are
//!   in-cluster services, and a proxy in that path would add a hop, see every API call, and
//!   break WebSockets and connection pooling for nothing.
//! - Client certificate (`identity`): with `[oidc] client_auth = "tls_client_auth"`, Ward's
//!   certificate is presented to the IdP ([`Outbound::idp_http_client`]) and to the https
//!   upstreams of token-carrying routes ([`Outbound::tls_config_presenting`]) — only there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

use crate::config::{EgressProxy, OutboundConfig};

mod identity;
mod pem;

pub use identity::{ClientIdentity, IdentityError};
pub use pem::{PemError, load_certificates};

/// Why the outbound trust cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// `[outbound] ca_file` cannot be read or holds no certificate.
    #[error("outbound.ca_file: {0}")]
    CaFile(#[source] PemError),
    /// A certificate of `ca_file` is not one rustls can use as a trust anchor.
    #[error(
        "outbound.ca_file: certificate {number} of {} is not a usable CA certificate",
        path.display()
    )]
    BadCertificate {
        /// The file.
        path: PathBuf,
        /// 1-based position in the file.
        number: usize,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// The TLS configuration could not be assembled.
    #[error("cannot build the outbound TLS configuration")]
    Tls(#[source] rustls::Error),
    /// The HTTP client (IdP, OTLP) could not be built with the proxy settings.
    #[error("cannot build the outbound HTTP client (check HTTPS_PROXY / HTTP_PROXY)")]
    HttpClient(#[source] reqwest::Error),
}

/// Trust and egress for every outbound connection; cheap to clone.
#[derive(Clone, Debug)]
pub struct Outbound {
    /// The one client configuration, without ALPN.
    base: Arc<rustls::ClientConfig>,
    /// The trusted certificates, for drivers that take certificates rather than a config.
    certificates: Arc<[CertificateDer<'static>]>,
    system_roots: usize,
    ca_roots: usize,
    ca_file: Option<PathBuf>,
    proxy: EgressProxy,
    /// Ward's client certificate (RFC 8705), when `tls_client_auth` configures one.
    identity: Option<ClientIdentity>,
}

impl Outbound {
    /// Reads the system roots and `ca_file`, and takes the proxy settings of `config`.
    pub fn load(config: &OutboundConfig) -> Result<Self, OutboundError> {
        let mut roots = RootCertStore::empty();
        let mut certificates = Vec::new();
        let system = rustls_native_certs::load_native_certs();
        for cert in system.certs {
            // One unparsable entry of the OS bundle should not cost the others.
            if roots.add(cert.clone()).is_ok() {
                certificates.push(cert);
            }
        }
        let system_roots = certificates.len();
        if let Some(path) = &config.ca_file {
            for cert in ca_certificates(path)? {
                roots.add(cert.clone()).map_err(OutboundError::Tls)?;
                certificates.push(cert);
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let base = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(OutboundError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            base: Arc::new(base),
            ca_roots: certificates.len() - system_roots,
            certificates: certificates.into(),
            system_roots,
            ca_file: config.ca_file.clone(),
            proxy: config.proxy.clone(),
            identity: None,
        })
    }

    /// The same trust and egress with `identity` as Ward's client certificate (RFC 8705).
    #[must_use]
    pub fn with_client_identity(mut self, identity: Option<ClientIdentity>) -> Self {
        self.identity = identity;
        self
    }

    /// Ward's client certificate, when one is configured.
    pub fn client_identity(&self) -> Option<&ClientIdentity> {
        self.identity.as_ref()
    }

    /// [`Self::tls_config`] presenting Ward's client certificate whenever a server asks for
    /// one (the same as `tls_config` without a certificate).
    pub fn tls_config_presenting(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut config = self.tls_config(alpn);
        if let Some(identity) = &self.identity {
            config.client_auth_cert_resolver = identity.resolver();
            // A session store of its own: a copied config shares the original's, keyed by
            // server name alone, and a TLS 1.3 resumption keeps the first handshake's client
            // authentication. Shared, a connection that must not present the certificate (a
            // `token = "none"` route to the IdP's host) could resume one that did.
            config.resumption = rustls::client::Resumption::in_memory_sessions(256);
        }
        config
    }

    /// The shared client configuration with `alpn` (empty: none, e.g. for hyper-rustls, which
    /// sets its own).
    pub fn tls_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut config = (*self.base).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// Every trusted root certificate (system and `ca_file`), for the Redis driver.
    pub fn trusted_certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }

    /// The egress proxy settings.
    pub fn proxy(&self) -> &EgressProxy {
        &self.proxy
    }

    /// A reqwest builder for calls that leave the cluster (IdP, OTLP): the shared trust, HTTP/2
    /// or HTTP/1.1 by ALPN, and exactly the proxies of [`EgressProxy`] (reqwest's own reading
    /// of the environment is switched off, so the settings printed at start are the ones used).
    pub fn http_client(&self) -> Result<reqwest::ClientBuilder, OutboundError> {
        self.http_client_with(self.tls_config(&[b"h2", b"http/1.1"]))
    }

    /// [`Self::http_client`] for the IdP: it also presents Ward's client certificate, when one
    /// is configured (RFC 8705 mutual-TLS client authentication and bound tokens).
    pub fn idp_http_client(&self) -> Result<reqwest::ClientBuilder, OutboundError> {
        self.http_client_with(self.tls_config_presenting(&[b"h2", b"http/1.1"]))
    }

    fn http_client_with(
        &self,
        tls: rustls::ClientConfig,
    ) -> Result<reqwest::ClientBuilder, OutboundError> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy();
        let no_proxy = || {
            self.proxy
                .no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string)
        };
        if let Some(url) = &self.proxy.https {
            let proxy = reqwest::Proxy::https(url.expose()).map_err(OutboundError::HttpClient)?;
            builder = builder.proxy(proxy.no_proxy(no_proxy()));
        }
        if let Some(url) = &self.proxy.http {
            let proxy = reqwest::Proxy::http(url.expose()).map_err(OutboundError::HttpClient)?;
            builder = builder.proxy(proxy.no_proxy(no_proxy()));
        }
        Ok(builder)
    }

    /// One line for `ward check` and the start log: roots, `ca_file`, proxies (credentials
    /// masked).
    pub fn describe(&self) -> String {
        let ca = match &self.ca_file {
            Some(path) => format!("{} from {}", self.ca_roots, path.display()),
            None => "no ca_file".to_owned(),
        };
        format!(
            "trusts {} system roots + {ca}; proxy for the IdP and OTLP: {}; upstreams and the \
             store direct",
            self.system_roots, self.proxy
        )
    }

    /// Logs the setup (`outbound_configured`); a warning when nothing is trusted, since then
    /// every TLS connection out will fail.
    pub fn log(&self) {
        let ca_file = self.ca_file.as_deref().map(Path::display);
        let proxy = self.proxy.to_string();
        if self.certificates.is_empty() {
            tracing::warn!(
                event = "outbound_configured",
                system_roots = 0,
                ca_file = ca_file.map(tracing::field::display),
                proxy,
                "no trusted root certificate (no system store, no [outbound] ca_file): every \
                 outbound TLS connection will fail"
            );
        } else {
            tracing::info!(
                event = "outbound_configured",
                system_roots = self.system_roots,
                ca_roots = self.ca_roots,
                ca_file = ca_file.map(tracing::field::display),
                proxy,
                "outbound trust and egress"
            );
        }
    }
}

/// Checks that `path` holds CA certificates Ward can trust; the problem otherwise, without the
/// key name. For the configuration check (`ward check` reports a bad file with every other
/// problem, before anything starts).
pub(crate) fn check_ca_file(path: &Path) -> Result<(), String> {
    match ca_certificates(path) {
        Ok(_) => Ok(()),
        Err(OutboundError::CaFile(error)) => Err(error.to_string()),
        Err(OutboundError::BadCertificate {
            path,
            number,
            source,
        }) => Err(format!(
            "certificate {number} of {} is not a usable CA certificate: {source}",
            path.display()
        )),
        Err(other) => Err(other.to_string()),
    }
}

fn ca_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, OutboundError> {
    let certs = load_certificates(path).map_err(OutboundError::CaFile)?;
    let mut probe = RootCertStore::empty();
    for (index, cert) in certs.iter().enumerate() {
        probe
            .add(cert.clone())
            .map_err(|source| OutboundError::BadCertificate {
                path: path.to_owned(),
                number: index + 1,
                source,
            })?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;
