//! TLS for the tests: a private CA made per test (rcgen), leaf certificates for `localhost`
//! written as PEM files, and a client that trusts that CA, chooses its ALPN protocols and
//! reports what the server presented.

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A test CA that issues `localhost` certificates.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
    cert_pem: String,
}

/// A leaf certificate and its key, as PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub fingerprint: String,
}

impl TestCa {
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "Ward test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A new leaf for `localhost` and 127.0.0.1 named `name` (its CN), on a new P-256 key.
    pub fn leaf(&self, name: &str) -> Leaf {
        self.leaf_with_key(name, KeyPair::generate().expect("leaf key"))
    }

    /// A new leaf for `localhost` and 127.0.0.1 named `name`, on `key`.
    pub fn leaf_with_key(&self, name: &str, key: KeyPair) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, name);
        // Dated as a real certificate is: valid from yesterday for 90 days.
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(90);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            fingerprint: fingerprint(cert.der()),
        }
    }

    /// The CA certificate as PEM (for `openssl -CAfile`).
    pub fn pem(&self) -> &str {
        &self.cert_pem
    }

    /// A client trusting this CA only, offering `alpn` (e.g. `[b"h2"]`).
    pub fn client(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).expect("CA as root");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

impl Leaf {
    /// Writes `cert.pem` and `key.pem` into `dir` by renaming complete files over them, as a
    /// certificate manager does.
    pub fn install(&self, dir: &Path) {
        for (name, text) in [("cert.pem", &self.cert_pem), ("key.pem", &self.key_pem)] {
            let staged = dir.join(format!("{name}.staged"));
            std::fs::write(&staged, text).expect("write the staged file");
            std::fs::rename(&staged, dir.join(name)).expect("rename over the file");
        }
    }
}

/// SHA-256 of a DER certificate, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A TLS connection to `addr` for `localhost`.
pub async fn connect(
    client: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    client.connect(name, tcp).await
}

/// The negotiated ALPN protocol and the fingerprint of the leaf the server presented.
pub fn negotiated(stream: &TlsStream<TcpStream>) -> (Option<Vec<u8>>, String) {
    let (_, session) = stream.get_ref();
    let leaf = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a server certificate");
    (
        session.alpn_protocol().map(<[u8]>::to_vec),
        fingerprint(leaf),
    )
}

/// A response's status and headers.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
}

/// An HTTP client on one TLS connection, HTTP/2 or HTTP/1.1 as negotiated.
pub enum Client {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Client {
    /// Starts HTTP on `stream` with the protocol its ALPN chose (HTTP/1.1 without ALPN).
    pub async fn on(stream: TlsStream<TcpStream>) -> Self {
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        if h2 {
            let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("HTTP/2 handshake");
            tokio::spawn(conn);
            Self::H2(sender)
        } else {
            let (sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("HTTP/1.1 handshake");
            tokio::spawn(conn);
            Self::H1(sender)
        }
    }

    /// `GET https://localhost<path>`, body read to the end.
    pub async fn get(&mut self, path: &str) -> hyper::Result<Answer> {
        let request = |version| {
            let builder = http::Request::get(format!("https://localhost{path}")).version(version);
            let builder = match version {
                http::Version::HTTP_11 => builder.header(http::header::HOST, "localhost"),
                _ => builder,
            };
            builder.body(Empty::<Bytes>::new()).expect("request")
        };
        let response = match self {
            Self::H1(sender) => sender.send_request(request(http::Version::HTTP_11)).await?,
            Self::H2(sender) => sender.send_request(request(http::Version::HTTP_2)).await?,
        };
        let status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        body.collect().await?;
        Ok(Answer {
            status,
            headers: parts.headers,
        })
    }
}

/// Polls new connections to `addr` until one answers `GET /bff/user` (401: up, no session),
/// failing after a generous deadline with `context()` (e.g. the process's output).
pub async fn wait_until_serving(
    client: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(stream) = connect(client, addr).await {
            let answer = Client::on(stream).await.get("/bff/user").await;
            if let Ok(answer) = answer {
                assert_eq!(answer.status, 401);
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "ward never answered over TLS\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls new connections until the server presents the certificate `fingerprint`.
pub async fn wait_for_certificate(
    client: &tokio_rustls::TlsConnector,
    addr: SocketAddr,
    fingerprint: &str,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(stream) = connect(client, addr).await
            && negotiated(&stream).1 == fingerprint
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "new connections never got certificate {fingerprint}\n{}",
            context()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
