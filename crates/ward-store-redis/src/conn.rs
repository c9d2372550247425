//! The one long-lived connection: a reconnecting multiplexed connection to one server, or a
//! cluster connection that follows slot moves and reconnects to nodes by itself.
//!
//! Both are cheap to clone (clones share the connection) and pipeline concurrent requests,
//! so the store clones one per call instead of connecting.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{
    Client, Cmd, IntoConnectionInfo as _, Pipeline, ProtocolVersion, RedisFuture, RedisResult,
    TlsCertificates, Value,
};
use rustls::pki_types::CertificateDer;

use crate::Lanes;
use crate::address::Target;

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may wait for its answer before the store reports `Unavailable`.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnection attempts (with jittered exponential backoff from 100 ms) before a call fails.
const RECONNECT_ATTEMPTS: usize = 3;

/// A connection to one server or to a cluster.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Connects to `target`, failing when it cannot be reached now. Over TLS (`rediss://`),
    /// the server's certificate must chain to one of `roots` when given, else to the system's
    /// roots.
    pub(crate) async fn open(
        target: &Target,
        roots: Option<&[CertificateDer<'static>]>,
    ) -> RedisResult<Self> {
        let certificates = certificates(target, roots);
        match target {
            Target::Single(url) => {
                let client = single_client(url, certificates, None)?;
                let manager = ConnectionManager::new_with_config(client, manager_config()).await?;
                Ok(Self::Single(manager))
            }
            Target::Cluster(nodes) => {
                let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(RECONNECT_ATTEMPTS as u32);
                if let Some(certificates) = certificates {
                    builder = builder.certs(certificates);
                }
                let client = builder.build()?;
                Ok(Self::Cluster(client.get_async_connection().await?))
            }
        }
    }
}

/// The connections of lanes 1.. (lane 0 is the store's own), one server only (a cluster
/// connection has no lazy form: a cluster store keeps its one connection).
pub(crate) struct LaneSet {
    url: String,
    certificates: Option<TlsCertificates>,
    current: fn() -> usize,
    made: Box<[std::sync::OnceLock<Connection>]>,
}

impl LaneSet {
    /// Lanes for `target`; `None` for a cluster.
    pub(crate) fn new(
        target: &Target,
        roots: Option<&[CertificateDer<'static>]>,
        lanes: Lanes,
    ) -> Option<Self> {
        let Target::Single(url) = target else {
            return None;
        };
        Some(Self {
            url: url.clone(),
            certificates: certificates(target, roots),
            current: lanes.current,
            made: (1..lanes.count)
                .map(|_| std::sync::OnceLock::new())
                .collect(),
        })
    }

    /// The calling thread's connection, made on its first use; `None` for lane 0.
    ///
    /// Made lazily: no I/O here, the first command connects, and calls made meanwhile share that
    /// one attempt (and later reconnections), as on lane 0. The manager's tasks are spawned
    /// on the calling thread's runtime, where the lane is then always used.
    pub(crate) fn current(&self) -> Option<RedisResult<Connection>> {
        let cell = (self.current)()
            .checked_sub(1)
            .and_then(|lane| self.made.get(lane))?;
        if let Some(conn) = cell.get() {
            return Some(Ok(conn.clone()));
        }
        let made = single_client(&self.url, self.certificates.clone(), None)
            .and_then(|client| ConnectionManager::new_lazy_with_config(client, manager_config()));
        // One thread per lane: nothing else can have filled the cell since `get`.
        Some(made.map(|manager| cell.get_or_init(|| Connection::Single(manager)).clone()))
    }
}

/// The one server's reconnecting connection's settings (lane 0 and the lanes alike).
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_number_of_retries(RECONNECT_ATTEMPTS)
        .set_max_delay(Duration::from_secs(2))
}

/// The trust for `rediss://`: `roots` when given, else the driver's (the system's) roots.
fn certificates(
    target: &Target,
    roots: Option<&[CertificateDer<'static>]>,
) -> Option<TlsCertificates> {
    if !target.uses_tls() {
        return None;
    }
    install_crypto_provider();
    roots.map(|roots| TlsCertificates {
        client_tls: None,
        root_cert: Some(pem_bundle(roots)),
    })
}

/// A client of one server at `url`, speaking `protocol` when given (else as the URL says).
fn single_client(
    url: &str,
    certificates: Option<TlsCertificates>,
    protocol: Option<ProtocolVersion>,
) -> RedisResult<Client> {
    let mut info = url.into_connection_info()?;
    if let Some(protocol) = protocol {
        let settings = info.redis_settings().clone().set_protocol(protocol);
        info = info.set_redis_settings(settings);
    }
    match certificates {
        Some(certificates) => Client::build_with_tls(info, certificates),
        None => Client::open(info),
    }
}

/// A RESP3 client of the one server of `target`, for the client cache's tracking connection
/// (push messages need RESP3); `None` for a cluster, which the client cache does not support.
pub(crate) fn tracking_client(
    target: &Target,
    roots: Option<&[CertificateDer<'static>]>,
) -> Option<RedisResult<Client>> {
    match target {
        Target::Single(url) => Some(single_client(
            url,
            certificates(target, roots),
            Some(ProtocolVersion::RESP3),
        )),
        Target::Cluster(_) => None,
    }
}

impl Target {
    fn uses_tls(&self) -> bool {
        let tls = |url: &String| {
            url.get(..9)
                .is_some_and(|s| s.eq_ignore_ascii_case("rediss://"))
        };
        match self {
            Self::Single(url) => tls(url),
            Self::Cluster(nodes) => nodes.iter().any(tls),
        }
    }
}

/// `roots` as one PEM bundle: the driver takes its trust anchors in that form only (and then
/// trusts nothing else, so the caller passes the system roots too when it wants them).
fn pem_bundle(roots: &[CertificateDer<'static>]) -> Vec<u8> {
    let mut pem = String::new();
    for cert in roots {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = STANDARD.encode(cert.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

/// The driver builds its rustls configuration from the process-wide default provider. This
/// workspace compiles rustls with aws-lc-rs only, so install that one unless the process
/// already chose (then this does nothing).
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err only when another thread installed one first, which is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::pem::PemObject as _;

    use super::*;

    #[test]
    fn the_pem_bundle_reads_back_as_the_same_certificates() {
        let certs = [
            CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]),
            CertificateDer::from((0..200u8).collect::<Vec<_>>()),
        ];
        let bundle = pem_bundle(&certs);
        let back = CertificateDer::pem_slice_iter(&bundle)
            .collect::<Result<Vec<_>, _>>()
            .expect("valid PEM");
        assert_eq!(back, certs);
    }
}
