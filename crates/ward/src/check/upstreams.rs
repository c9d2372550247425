//! Whether each `[[routes]]` upstream accepts a TCP connection within [`UPSTREAM_TIMEOUT`]:
//! a connection is all "reachable" means, so an upstream that would answer any HTTP status
//! counts, and nothing is sent to it (no request an API could act on, no TLS handshake).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use url::{Host, Url};

use crate::config::RouteConfig;

/// How long a route's upstream may take to resolve and to accept a connection.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an upstream could not be reached. Messages name the host and address, never a path.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    /// The host name did not resolve (the resolver's words in `reason`).
    #[error("the name {host} does not resolve ({reason})")]
    Resolve {
        /// The upstream's host.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The host name resolved to no address.
    #[error("the name {0} resolves to no address")]
    NoAddress(String),
    /// Nothing listens there: the host said so.
    #[error("connection refused by {0}")]
    Refused(SocketAddr),
    /// Another connect failure (no route to host, network unreachable, …).
    #[error("cannot connect to {address} ({reason})")]
    Connect {
        /// The address tried last.
        address: SocketAddr,
        /// What the system said.
        reason: String,
    },
    /// No answer within the time limit (often a firewall that drops packets).
    #[error("no answer from {0} within {t}s", t = UPSTREAM_TIMEOUT.as_secs())]
    Timeout(String),
}

/// One route's upstream and whether it answered.
#[derive(Debug)]
pub struct UpstreamProbe {
    /// Position in `[[routes]]`.
    pub index: usize,
    /// The route's `prefix`.
    pub prefix: String,
    /// The upstream's `host:port`.
    pub authority: String,
    /// The address that accepted the connection, or why none did.
    pub outcome: Result<SocketAddr, Unreachable>,
}

/// Tries every route's upstream at once.
pub async fn probe(routes: &[RouteConfig]) -> Vec<UpstreamProbe> {
    let probes = routes.iter().enumerate().map(|(index, route)| async move {
        UpstreamProbe {
            index,
            prefix: route.prefix.clone(),
            authority: authority(&route.upstream),
            outcome: reach(&route.upstream).await,
        }
    });
    futures_util::future::join_all(probes).await
}

/// `host:port` of `url`, the port made explicit.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The first of `url`'s addresses that accepts a connection.
async fn reach(url: &Url) -> Result<SocketAddr, Unreachable> {
    let port = url.port_or_known_default().unwrap_or(80);
    let addresses = match url.host() {
        Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, port))],
        Some(Host::Domain(name)) => resolve(name, port).await?,
        None => return Err(Unreachable::NoAddress(String::new())),
    };
    let mut last = Unreachable::NoAddress(url.host_str().unwrap_or_default().to_owned());
    for address in addresses {
        match tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(_connected)) => return Ok(address),
            Ok(Err(err)) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                last = Unreachable::Refused(address);
            }
            Ok(Err(err)) => {
                last = Unreachable::Connect {
                    address,
                    reason: err.to_string(),
                };
            }
            Err(_) => last = Unreachable::Timeout(address.to_string()),
        }
    }
    Err(last)
}

async fn resolve(name: &str, port: u16) -> Result<Vec<SocketAddr>, Unreachable> {
    match tokio::time::timeout(UPSTREAM_TIMEOUT, tokio::net::lookup_host((name, port))).await {
        Ok(Ok(addresses)) => Ok(addresses.collect()),
        Ok(Err(err)) => Err(Unreachable::Resolve {
            host: name.to_owned(),
            reason: err.to_string(),
        }),
        Err(_) => Err(Unreachable::Timeout(name.to_owned())),
    }
}
