//! The real `ward serve` terminating TLS on a loopback port: its certificate from a test CA in
//! `<dir>/tls/`, the real IdP, an echo upstream behind the `none` route `/up`, logs at debug.

#![allow(dead_code)] // each test binary uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ward_testkit::{EchoUpstream, Idp, IdpOptions};

use crate::served::{self, Served};
use crate::tls::{Leaf, TestCa, wait_until_serving};

/// A running TLS Ward with what it needs.
pub struct TlsWard {
    pub ca: TestCa,
    pub addr: SocketAddr,
    /// Where `cert.pem` and `key.pem` are (`tls_cert`/`tls_key` name them there).
    pub tls_dir: PathBuf,
    pub ward: Served,
    pub upstream: EchoUpstream,
    pub idp: Idp,
    pub dir: tempfile::TempDir,
}

impl TlsWard {
    /// Starts Ward serving `first` (installed in `<dir>/tls/`), with `[server]` lines
    /// `server_extra`, and waits until it answers over TLS.
    pub async fn start(ca: TestCa, first: &Leaf, server_extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls_dir = dir.path().join("tls");
        std::fs::create_dir(&tls_dir).expect("tls dir");
        first.install(&tls_dir);
        Self::start_in(ca, dir, tls_dir, server_extra).await
    }

    /// Starts Ward on certificate files already in `tls_dir` (inside `dir`).
    pub async fn start_in(
        ca: TestCa,
        dir: tempfile::TempDir,
        tls_dir: PathBuf,
        server_extra: &str,
    ) -> Self {
        let port = served::free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let idp = Idp::start(IdpOptions::new(format!("https://localhost:{port}")))
            .await
            .expect("start the IdP");
        let upstream = EchoUpstream::start().await.expect("start the upstream");
        let config = dir.path().join("ward.toml");
        std::fs::write(
            &config,
            config_text(port, &idp, &upstream, &tls_dir, server_extra),
        )
        .expect("write the config");
        let ward = Served::start(&config);
        let client = ca.client(&[b"http/1.1"]);
        wait_until_serving(&client, addr, || ward.output_so_far()).await;
        Self {
            ca,
            addr,
            tls_dir,
            ward,
            upstream,
            idp,
            dir,
        }
    }

    /// Everything Ward has logged so far.
    pub fn output(&self) -> String {
        self.ward.output_so_far()
    }

    /// Polls (bounded) until Ward has logged `count` lines containing every one of `needles`.
    pub async fn logged(&self, needles: &[&str], count: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let output = self.output();
            let lines = output
                .lines()
                .filter(|line| needles.iter().all(|needle| line.contains(needle)))
                .count();
            if lines >= count {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never logged {count} line(s) with {needles:?}\n{output}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

fn config_text(
    port: u16,
    idp: &Idp,
    upstream: &EchoUpstream,
    tls_dir: &Path,
    server_extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "https://localhost:{port}"
tls_cert = "{cert}"
tls_key = "{key}"
{server_extra}

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "memory"

[crypto]
keys = ["{test_key}"]

[telemetry]
log_format = "json"

[[routes]]
prefix = "/up"
upstream = "{upstream}"
token = "none"
"#,
        cert = tls_dir.join("cert.pem").display(),
        key = tls_dir.join("key.pem").display(),
        issuer = idp.issuer(),
        upstream = upstream.url(),
        test_key = crate::common::TEST_KEY,
    )
}
