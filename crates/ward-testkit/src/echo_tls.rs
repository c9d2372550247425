//! The echo upstream over TLS, as an RFC 8705 resource server's front: it requires a client
//! certificate chained to a CA the test names (a connection without one fails its handshake)
//! and records each request's certificate thumbprint (`x5t#S256`), so a test can compare it
//! with the `cnf` of the bound token the request carried.

use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tower::ServiceExt as _;

use crate::echo::{EchoUpstream, Log, PeerCertificate};
use crate::pki::ServerFiles;

impl EchoUpstream {
    /// Binds `127.0.0.1:0` and serves https with `server` (a certificate for `localhost`),
    /// requiring a client certificate chained to `client_ca_pem`.
    pub async fn start_tls(server: &ServerFiles, client_ca_pem: &[u8]) -> anyhow::Result<Self> {
        let acceptor = acceptor(server, client_ca_pem)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the TLS echo upstream")?;
        let addr = listener.local_addr().context("echo upstream address")?;
        let log: Log = Arc::default();
        let dpop = Arc::default();
        let app = Self::app(&log, &dpop, addr);
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    // A client without an acceptable certificate fails here: nothing is served.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let peer = PeerCertificate(
                        tls.get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .map(thumbprint),
                    );
                    let service = hyper::service::service_fn(move |mut req: IncomingRequest| {
                        req.extensions_mut().insert(peer.clone());
                        app.clone().oneshot(req.map(Body::new))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self::from_tls_parts(addr, log, dpop, task))
    }
}

type IncomingRequest = axum::http::Request<Incoming>;

fn acceptor(
    server: &ServerFiles,
    client_ca_pem: &[u8],
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(client_ca_pem) {
        roots
            .add(cert.context("the client CA")?)
            .context("the client CA as a root")?;
    }
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .build()
            .context("the client certificate verifier")?;
    let chain = CertificateDer::pem_file_iter(&server.cert_file)
        .context("the echo upstream's certificate")?
        .collect::<Result<Vec<_>, _>>()
        .context("the echo upstream's certificate")?;
    let key = PrivateKeyDer::from_pem_file(&server.key_file).context("the echo upstream's key")?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .context("the echo upstream's certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// RFC 8705 §3.1 `x5t#S256`: base64url SHA-256 of the DER certificate.
fn thumbprint(cert: &CertificateDer<'_>) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.as_ref());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}
