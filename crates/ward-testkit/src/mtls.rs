//! The test IdP's RFC 8705 configuration (`MTLS=1`): the https server asks for a client
//! certificate, the client is registered for `tls_client_auth` (PKI: chained to a CA the test
//! makes, DNS SAN as registered) with certificate-bound access tokens.

use std::path::PathBuf;

use serde::Deserialize;

use crate::idp::{ClientAuth, IdpOptions};
use crate::pki::IdpTls;

/// `MTLS=1` and what it needs: the CA client certificates must chain to (`MTLS_CA`) and the
/// DNS SAN the client is registered with (`MTLS_SAN_DNS`).
#[derive(Clone, Debug)]
pub struct IdpMtls {
    /// PEM file of the CA that issues accepted client certificates.
    pub client_ca_file: PathBuf,
    /// `tls_client_auth_san_dns` of the registered client.
    pub san_dns: String,
    /// `MTLS_ALIAS_HOST`: publish `mtls_endpoint_aliases` (RFC 8705 §5) on this host name
    /// (the IdP's certificate must name it too).
    pub alias_host: Option<String>,
}

/// One client-authenticated call (token, revocation, introspection, PAR) as the IdP saw it:
/// which credentials were present, never their values.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MtlsCall {
    /// `/token`, `/token/revocation`, `/request`, …
    pub path: String,
    /// The host name the call was addressed to (an alias host or the issuer's).
    pub host: String,
    /// The IdP's answer status.
    pub status: u16,
    /// `x5t#S256` of the client certificate on the connection, if any.
    pub x5t: Option<String>,
    /// Whether that certificate chains to the configured client CA.
    pub authorized: bool,
    /// The `client_id` parameter.
    pub client_id: Option<String>,
    /// Whether a `client_secret` parameter was sent.
    pub secret: bool,
    /// Whether a `client_assertion` was sent.
    pub assertion: bool,
    /// Whether an `Authorization: Basic` header was sent.
    pub basic: bool,
}

impl IdpOptions {
    /// Mutual TLS at the IdP: served over https with `tls`, asking for client certificates
    /// chained to `mtls.client_ca_file`; the client registered for `tls_client_auth` with
    /// `tls_client_certificate_bound_access_tokens`.
    pub fn with_mtls(mut self, tls: IdpTls, mtls: IdpMtls) -> Self {
        self.tls = Some(tls);
        self.mtls = Some(mtls);
        self.client_auth = ClientAuth::TlsClientAuth;
        self
    }
}
