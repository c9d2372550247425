use std::io::{Read as _, Write as _};
use std::net::TcpListener;

use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use ward_testkit::TestCa;

use super::*;
use crate::config::ProxyUrl;
use crate::oidc::http::{HttpError, IdpHttpClient};

/// A one-request HTTPS server on loopback (std sockets and rustls in a thread) whose
/// certificate `ca` signed for 127.0.0.1; it answers `200 ok` once a handshake completes.
fn serve_once(ca: &TestCa, dir: &Path) -> String {
    let files = ca.write_server(dir, "server", &["127.0.0.1"]).unwrap();
    let certs = CertificateDer::pem_file_iter(&files.cert_file)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&files.key_file).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((tcp, _)) = listener.accept() else {
            return;
        };
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut request = [0u8; 4096];
        // A client that refuses the certificate ends the exchange here.
        if tls.read(&mut request).is_ok() {
            let _ = tls
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    format!("https://{addr}/")
}

fn get(url: &str) -> openidconnect::HttpRequest {
    http::Request::builder().uri(url).body(Vec::new()).unwrap()
}

fn with_ca_file(path: &Path) -> OutboundConfig {
    OutboundConfig {
        ca_file: Some(path.to_owned()),
        ..OutboundConfig::default()
    }
}

#[tokio::test]
async fn a_private_ca_in_ca_file_is_trusted_beside_the_system_roots() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Ward unit-test CA").unwrap();
    let ca_file = ca.write_cert(dir.path(), "private").unwrap();
    let url = serve_once(&ca, dir.path());
    let outbound = Outbound::load(&with_ca_file(&ca_file)).unwrap();
    assert_eq!(outbound.ca_roots, 1);
    assert_eq!(
        outbound.trusted_certificates().len(),
        outbound.system_roots + 1
    );
    let response = IdpHttpClient::new(&outbound)
        .unwrap()
        .execute(get(&url))
        .await
        .expect("the private CA's certificate verifies");
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), b"ok");
}

#[tokio::test]
async fn without_ca_file_a_private_ca_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Ward unit-test CA").unwrap();
    let url = serve_once(&ca, dir.path());
    let outbound = Outbound::load(&OutboundConfig::default()).unwrap();
    let err = IdpHttpClient::new(&outbound)
        .unwrap()
        .execute(get(&url))
        .await
        .unwrap_err();
    assert!(matches!(err, HttpError::Untrusted(..)), "{err:?}");
    assert!(err.is_unavailable());
    let shown = err.to_string();
    assert!(
        shown.starts_with(
            "IdP's TLS certificate is not trusted (invalid peer certificate: UnknownIssuer)"
        ) && shown.contains("[outbound] ca_file"),
        "{shown}"
    );
}

#[test]
fn a_ca_file_with_a_broken_certificate_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.pem");
    // Valid PEM and base64, not a certificate.
    std::fs::write(
        &path,
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = Outbound::load(&with_ca_file(&path)).unwrap_err();
    assert!(
        matches!(err, OutboundError::BadCertificate { number: 1, .. }),
        "{err:?}"
    );
    let problem = check_ca_file(&path).unwrap_err();
    assert!(
        problem.starts_with("certificate 1 of ") && problem.contains("bad.pem"),
        "{problem}"
    );
}

#[test]
fn a_missing_ca_file_is_named() {
    let problem = check_ca_file(Path::new("/nonexistent/private-ca.pem")).unwrap_err();
    assert!(
        problem.starts_with("cannot read /nonexistent/private-ca.pem"),
        "{problem}"
    );
}

#[test]
fn each_client_gets_its_own_alpn_on_the_one_configuration() {
    let outbound = Outbound::load(&OutboundConfig::default()).unwrap();
    let h2 = outbound.tls_config(&[b"h2"]);
    let none = outbound.tls_config(&[]);
    assert_eq!(h2.alpn_protocols, vec![b"h2".to_vec()]);
    assert!(none.alpn_protocols.is_empty());
}

#[test]
fn the_description_names_the_ca_file_and_masks_proxy_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Ward unit-test CA").unwrap();
    let ca_file = ca.write_cert(dir.path(), "private").unwrap();
    let proxy = EgressProxy {
        https: ProxyUrl::parse("http://user:hunter2@127.0.0.1:3128"),
        ..EgressProxy::default()
    };
    let outbound = Outbound::load(&OutboundConfig {
        proxy,
        ..with_ca_file(&ca_file)
    })
    .unwrap();
    let shown = outbound.describe();
    assert!(
        shown.contains(&format!("1 from {}", ca_file.display())),
        "{shown}"
    );
    assert!(
        shown.contains("https via http://***@127.0.0.1:3128"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(outbound.http_client().unwrap().build().is_ok());
}

/// A proxy address where nothing listens: a request sent to it fails to connect.
fn dead_proxy() -> Option<ProxyUrl> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ProxyUrl::parse(&format!("http://127.0.0.1:{port}"))
}

#[tokio::test]
async fn https_calls_take_the_proxy_unless_no_proxy_names_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Ward unit-test CA").unwrap();
    let ca_file = ca.write_cert(dir.path(), "private").unwrap();
    // With a client certificate (tls_client_auth) too: the IdP client keeps the proxies.
    let client = ca
        .write_client(dir.path(), "ward-client", "ward-client.test")
        .unwrap();
    let identity = ClientIdentity::load(&client.cert_file, &client.key_file).unwrap();
    let through = |no_proxy: Option<&str>| {
        let proxy = EgressProxy {
            https: dead_proxy(),
            http: None,
            no_proxy: no_proxy.map(str::to_owned),
        };
        Outbound::load(&OutboundConfig {
            proxy,
            ..with_ca_file(&ca_file)
        })
        .unwrap()
        .with_client_identity(Some(identity.clone()))
    };
    let url = serve_once(&ca, dir.path());
    let direct = IdpHttpClient::new(&through(Some("example.org, 127.0.0.1")))
        .unwrap()
        .execute(get(&url))
        .await
        .expect("127.0.0.1 is in NO_PROXY: reached directly");
    assert_eq!(direct.body(), b"ok");
    let url = serve_once(&ca, dir.path());
    let err = IdpHttpClient::new(&through(Some("example.org")))
        .unwrap()
        .execute(get(&url))
        .await
        .expect_err("sent to the dead proxy");
    assert!(matches!(err, HttpError::Transport(_)), "{err:?}");
}
