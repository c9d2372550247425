//! Certificate-bound access tokens at the upstreams (RFC 8705 §3). With
//! `client_auth = "tls_client_auth"` the IdP may bind the tokens it issues to Ward's client
//! certificate (`cnf.x5t#S256`); a resource server then accepts such a token only over a TLS
//! connection on which Ward proved possession of that certificate's key.
//!
//! The rule, with no per-route setting: an **https** route whose `token` mode forwards a token
//! (`user`, `user-optional`, `client`) goes through pools that present Ward's certificate; the
//! upstream's TLS server sees it only when it asks for a client certificate, so upstreams that
//! do not care are unaffected. Routes with `token = "none"` and plain-http routes never present
//! it: a public route may lead to a third party, which has no business learning Ward's identity,
//! and a token sent in clear text cannot be bound to a TLS connection anyway.

use super::forward::UpstreamClient;
use super::routes::Route;
use super::websocket;
use crate::config::TokenMode;
use crate::outbound::Outbound;

/// The pools that present the certificate; empty without one or without a route needing it.
pub(crate) struct CertifiedClients {
    pools: Option<(UpstreamClient, UpstreamClient)>,
}

impl CertifiedClients {
    /// The proxied and the upgrade pool presenting `outbound`'s client certificate, when it
    /// has one and some route of `routes` [`presents_certificate`].
    pub(crate) fn new(routes: &[Route], workers: usize, outbound: &Outbound) -> Self {
        let needed =
            outbound.client_identity().is_some() && routes.iter().any(presents_certificate);
        let pools = needed.then(|| {
            let tls = outbound.tls_config_presenting(&[]);
            (
                UpstreamClient::new(Some(tls.clone()), workers),
                websocket::upgrade_client(Some(tls)),
            )
        });
        Self { pools }
    }

    /// The pool for `route` when it presents the certificate.
    pub(crate) fn client_for(&self, route: &Route) -> Option<&UpstreamClient> {
        self.pools
            .as_ref()
            .filter(|_| presents_certificate(route))
            .map(|(client, _)| client)
    }

    /// The upgrade pool for `route` when it presents the certificate.
    pub(crate) fn upgrades_for(&self, route: &Route) -> Option<&UpstreamClient> {
        self.pools
            .as_ref()
            .filter(|_| presents_certificate(route))
            .map(|(_, upgrades)| upgrades)
    }
}

/// Whether `route` presents Ward's client certificate (when there is one): https, and a token
/// mode that forwards a token.
pub(crate) fn presents_certificate(route: &Route) -> bool {
    route.is_https() && route.token != TokenMode::None
}
