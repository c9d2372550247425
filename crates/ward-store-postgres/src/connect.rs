//! From a URL to a pool of connections: timeouts, TLS policy, and a printable target.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use percent_encoding::percent_decode_str;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio_postgres::NoTls;
use tokio_postgres::config::{Config, Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;
use ward_store::{BoxError, Clock, StoreError};

use crate::error::ConnectError;
use crate::schema::{self, Sql, TablePrefix};

/// Connections kept open at most. Each store call holds one for a single statement or a short
/// transaction, so a few serve many requests.
pub(crate) const POOL_SIZE: usize = 8;

/// The limit on one TCP connection attempt, unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The limit on waiting for a free connection, on opening one (TCP, TLS, authentication),
/// and on checking a returned one.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);

/// How the connection is secured, from the URL's `sslmode` and `sslrootcert`.
#[derive(Debug, PartialEq, Eq)]
enum Transport {
    /// `sslmode=disable`.
    Plaintext,
    /// Verified TLS, against the system's roots (`None`, or `sslrootcert=system`) or the
    /// certificates in the PEM file named by `sslrootcert`.
    Tls { roots: Option<PathBuf> },
}

/// Takes `sslmode` and `sslrootcert` out of a `postgres://` URL's query (the driver knows
/// neither `verify-ca`, `verify-full` nor `sslrootcert`) and returns the rest of the URL.
///
/// Every mode but `disable` means verified TLS, host name included: `prefer` and `allow`
/// would fall back to plaintext when the server (or anyone on the path) declines TLS, and
/// `verify-ca` would accept any host with a certificate from the CA. A connection string
/// in `key=value` form is passed on unchanged and gets verified TLS unless it disables it.
fn split_transport(url: &str) -> Result<(String, Transport), ConnectError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Transport::Tls { roots: None }));
    };
    let (mut disable, mut roots) = (false, None);
    let mut rest = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode_str(value).decode_utf8_lossy();
        match key {
            "sslmode" => match &*value {
                "disable" => disable = true,
                "allow" | "prefer" | "require" | "verify-ca" | "verify-full" => disable = false,
                _ => return Err(ConnectError::InvalidSslMode),
            },
            "sslrootcert" if value == "system" => roots = None,
            "sslrootcert" => roots = Some(PathBuf::from(&*value)),
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let transport = if disable {
        Transport::Plaintext
    } else {
        Transport::Tls { roots }
    };
    Ok((url, transport))
}

/// A pool for `url` and where it points (`host:port/dbname`, no credentials). TLS policy:
/// [`split_transport`]; verified against `sslrootcert` when the URL names one, else against
/// `shared` (the gateway's one outbound trust) when given, else the system's roots.
pub(crate) fn pool(
    url: &str,
    shared: Option<&rustls::ClientConfig>,
) -> Result<(Pool, String), ConnectError> {
    let (url, transport) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_transport(url)?
    } else {
        (url.to_owned(), Transport::Tls { roots: None })
    };
    let mut config: Config = url.parse().map_err(ConnectError::InvalidUrl)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("ward");
    }
    let target = describe(&config);
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match transport {
        Transport::Tls { .. } if config.get_ssl_mode() == SslMode::Disable => {
            Manager::from_config(config, NoTls, manager_config)
        }
        Transport::Plaintext => {
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config, NoTls, manager_config)
        }
        Transport::Tls { roots } => {
            config.ssl_mode(SslMode::Require);
            let tls = match (roots, shared) {
                (None, Some(shared)) => MakeRustlsConnect::new(shared.clone()),
                (roots, _) => tls(roots.as_deref())?,
            };
            Manager::from_config(config, tls, manager_config)
        }
    };
    let pool = Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(POOL_TIMEOUT))
        .create_timeout(Some(POOL_TIMEOUT))
        .recycle_timeout(Some(POOL_TIMEOUT))
        .build()
        .map_err(|e| ConnectError::Pool(Box::new(e)))?;
    Ok((pool, target))
}

/// A client config with the aws-lc-rs provider (the one rustls provider in Ward's tree)
/// trusting the PEM file `roots`, or else the system's roots (`SSL_CERT_FILE` /
/// `SSL_CERT_DIR` override them).
fn tls(roots: Option<&Path>) -> Result<MakeRustlsConnect, ConnectError> {
    let store = match roots {
        Some(path) => file_roots(path)?,
        None => system_roots()?,
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ConnectError::Tls)?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn system_roots() -> Result<RootCertStore, ConnectError> {
    let mut loaded = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _unparsable) = store.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let first = loaded.errors.drain(..).next();
        return Err(ConnectError::NoTrustRoots(
            first.map(|e| Box::new(e) as BoxError),
        ));
    }
    Ok(store)
}

fn file_roots(path: &Path) -> Result<RootCertStore, ConnectError> {
    let unreadable = |source: BoxError| ConnectError::RootCertFile {
        path: path.to_owned(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(Box::new(e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(Box::new(e)))?;
    let mut store = RootCertStore::empty();
    let (added, _unparsable) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(unreadable("no usable certificate in the file".into()));
    }
    Ok(store)
}

impl crate::PostgresStore {
    /// Connects (TLS per [`pool`]) and brings the tables to this build's schema.
    pub(crate) async fn open(
        url: &str,
        key_prefix: &str,
        clock: Arc<dyn Clock>,
        tls: Option<&rustls::ClientConfig>,
    ) -> Result<Self, StoreError> {
        let prefix = TablePrefix::from_key_prefix(key_prefix);
        let (pool, target) = pool(url, tls)?;
        let store = Self {
            pool,
            sql: Arc::new(Sql::new(&prefix)),
            clock,
            target: target.into(),
        };
        store
            .bounded(async {
                let mut client = store.client().await?;
                schema::migrate(&mut client, &prefix, &store.sql).await
            })
            .await?;
        Ok(store)
    }
}

/// `host:port[,host:port]/dbname` for error messages. A host holding anything a host name
/// cannot (such as the `@` of a password the URL failed to escape) is not shown.
fn describe(config: &Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) if is_printable_host(name) => format!("{name}:{port}"),
                Host::Tcp(_) => format!("<unprintable host>:{port}"),
                #[cfg(unix)]
                Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "<no host>".to_owned()
    } else {
        hosts.join(",")
    };
    format!("{hosts}/{}", config.get_dbname().unwrap_or(""))
}

fn is_printable_host(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%'))
}

/// A pool failure as the cause of an unreachable database, keeping the driver's error as
/// the direct source when there is one.
pub(crate) fn unreachable(target: &str, error: PoolError) -> ConnectError {
    let source: BoxError = match error {
        PoolError::Backend(e) => Box::new(e),
        other => Box::new(other),
    };
    ConnectError::Unreachable {
        target: target.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> String {
        describe(&url.parse().expect("parses"))
    }

    #[test]
    fn target_names_host_port_and_database_but_no_credentials() {
        let shown = target("postgres://ward:hunter2@db.internal:6543/sessions");
        assert_eq!(shown, "db.internal:6543/sessions");
    }

    #[test]
    fn target_defaults_the_port() {
        assert_eq!(target("postgresql://127.0.0.1/test"), "127.0.0.1:5432/test");
    }

    #[test]
    fn host_swallowing_part_of_an_unescaped_password_is_not_shown() {
        let shown = target("postgres://ward:pa@ss@db:5432/x");
        assert!(!shown.contains("ss@"), "{shown}");
        assert_eq!(shown, "<unprintable host>:5432/x");
    }

    #[test]
    fn bracketed_ipv6_host_is_shown() {
        assert_eq!(target("postgres://[::1]:5433/t"), "::1:5433/t");
    }

    #[test]
    fn every_sslmode_but_disable_means_verified_tls() {
        for mode in ["allow", "prefer", "require", "verify-ca", "verify-full"] {
            let url = format!("postgres://h/db?sslmode={mode}&application_name=x");
            let (rest, transport) = split_transport(&url).expect("valid");
            assert_eq!(transport, Transport::Tls { roots: None }, "{mode}");
            assert_eq!(rest, "postgres://h/db?application_name=x");
        }
        let (rest, transport) = split_transport("postgres://h/db?sslmode=disable").expect("valid");
        assert_eq!(
            (rest.as_str(), transport),
            ("postgres://h/db", Transport::Plaintext)
        );
        let (_, transport) = split_transport("postgres://h/db").expect("valid");
        assert_eq!(transport, Transport::Tls { roots: None });
    }

    #[test]
    fn sslrootcert_names_the_trusted_certificates() {
        let (rest, transport) =
            split_transport("postgres://h/db?sslrootcert=%2Fetc%2Fward%2Fca.pem").expect("valid");
        let roots = Some(PathBuf::from("/etc/ward/ca.pem"));
        assert_eq!(
            (rest.as_str(), transport),
            ("postgres://h/db", Transport::Tls { roots })
        );
        let (_, transport) = split_transport("postgres://h/db?sslrootcert=system").expect("valid");
        assert_eq!(transport, Transport::Tls { roots: None });
    }

    #[test]
    fn missing_root_certificate_file_is_named_in_the_error() {
        let Err(error) = pool("postgres://h/db?sslrootcert=/nonexistent/ward-ca.pem", None) else {
            panic!("missing file accepted");
        };
        assert!(
            matches!(error, ConnectError::RootCertFile { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("/nonexistent/ward-ca.pem"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn invalid_url_error_does_not_echo_the_url() {
        let Err(error) = pool("postgres://ward:hunter2@db/x?sslmode=sometimes", None) else {
            panic!("invalid sslmode accepted");
        };
        assert!(matches!(error, ConnectError::InvalidSslMode), "{error}");
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        assert!(
            !text.contains("hunter2") && !text.contains("sometimes"),
            "{text}"
        );
    }
}
