//! The PKI of the mutual-TLS tests (RFC 8705): one CA for the IdP's and the upstream's server
//! certificates and Ward's client certificate, and Ward's configuration for it.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::path::Path;

use ward_testkit::{ClientFiles, IdpMtls, IdpTls, ServerFiles, TestCa};

/// The DNS SAN the IdP registers for the client.
pub const SAN: &str = "ward-client.test";

/// One CA for everything: the IdP's (for `127.0.0.1` and `localhost`) and the upstream's (for
/// `localhost`) server certificates, and Ward's client certificate (DNS SAN [`SAN`]).
pub struct Pki {
    pub ca: TestCa,
    pub ca_file: String,
    pub idp: IdpTls,
    pub upstream: ServerFiles,
    pub client: ClientFiles,
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        let ca = TestCa::new("Ward mTLS test CA").expect("make the CA");
        let ca_file = ca.write_cert(dir, "mtls").expect("write the CA");
        let files = ca
            .write_server(dir, "idp", &["127.0.0.1", "localhost"])
            .expect("the IdP's certificate");
        let idp = IdpTls {
            cert_file: files.cert_file,
            key_file: files.key_file,
            ca_pem: ca.cert_pem().into_bytes(),
        };
        let upstream = ca
            .write_server(dir, "api", &["localhost"])
            .expect("the upstream's certificate");
        let client = ca
            .write_client(dir, "ward-client", SAN)
            .expect("Ward's client certificate");
        Self {
            ca,
            ca_file: ca_file.display().to_string(),
            idp,
            upstream,
            client,
        }
    }

    pub fn mtls(&self) -> IdpMtls {
        IdpMtls {
            client_ca_file: self.ca_file.clone().into(),
            san_dns: SAN.to_owned(),
            alias_host: None,
        }
    }

    /// Ward on `tls_client_auth` with `client` as its certificate.
    pub fn env(client: &ClientFiles) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "WARD_OIDC__CLIENT_AUTH".to_owned(),
                "tls_client_auth".to_owned(),
            ),
            (
                "WARD_OIDC__CLIENT_CERT".to_owned(),
                client.cert_file.display().to_string(),
            ),
            (
                "WARD_OIDC__CLIENT_KEY".to_owned(),
                client.key_file.display().to_string(),
            ),
        ])
    }

    /// `[outbound] ca_file` and two routes to the TLS upstream: `/bound` with the user's
    /// token, `/open` with none.
    pub fn toml(&self, api: &str) -> String {
        format!(
            r#"
[[routes]]
prefix = "/bound"
upstream = "{api}"
token = "user"

[[routes]]
prefix = "/open"
upstream = "{api}"
token = "none"

[outbound]
ca_file = {ca:?}
"#,
            ca = self.ca_file
        )
    }
}
