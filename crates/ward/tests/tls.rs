//! TLS termination in the real binary (SPEC §7 `tls_cert`/`tls_key`/`hsts`, §2): ALPN chooses
//! HTTP/2 or HTTP/1.1, every response over TLS carries the configured HSTS (Ward's own and
//! proxied), plain HTTP gets none, and TLS 1.0 and 1.1 are refused while a control server shows
//! the same client does speak them.

mod common;
#[path = "support/served.rs"]
mod served;
#[path = "support/tls.rs"]
mod tls;
#[path = "support/tls_ward.rs"]
mod tls_ward;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tls::{Client, TestCa, connect, negotiated};
use tls_ward::TlsWard;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HSTS: &str = "max-age=31536000; includeSubDomains; preload";

#[tokio::test]
async fn alpn_chooses_the_protocol_and_every_response_carries_hsts() {
    let ca = TestCa::new();
    let leaf = ca.leaf("ward");
    let ward = TlsWard::start(ca, &leaf, &format!("hsts = \"{HSTS}\"")).await;
    for (offered, expected) in [
        (vec![&b"h2"[..], b"http/1.1"], Some(&b"h2"[..])),
        (vec![&b"http/1.1"[..]], Some(&b"http/1.1"[..])),
        (vec![], None),
    ] {
        let stream = connect(&ward.ca.client(&offered), ward.addr)
            .await
            .expect("TLS connection");
        let (alpn, fingerprint) = negotiated(&stream);
        assert_eq!(alpn.as_deref(), expected, "offered {offered:?}");
        assert_eq!(fingerprint, leaf.fingerprint);
        let mut client = Client::on(stream).await;
        for (path, status) in [("/bff/user", 401), ("/up/hello", 200), ("/nowhere", 404)] {
            let answer = client.get(path).await.expect("response");
            assert_eq!(answer.status, status, "{path} over {expected:?}");
            assert_eq!(
                answer
                    .headers
                    .get("strict-transport-security")
                    .map(|v| v.to_str().unwrap()),
                Some(HSTS),
                "{path} over {expected:?}"
            );
        }
    }
    let proxied = ward.upstream.last().expect("the upstream was reached");
    assert_eq!(proxied.path(), "/up/hello");
}

#[tokio::test]
async fn plain_http_gets_no_hsts_and_the_tls_port_speaks_no_plain_http() {
    let plain = common::Ward::start().await;
    let reply = ward_testkit::Browser::new()
        .expect("browser")
        .get(plain.url("/bff/user"))
        .await
        .expect("GET /bff/user");
    assert_eq!(reply.status, 401);
    assert!(reply.header("strict-transport-security").is_none());
    plain.stop().await;

    let ca = TestCa::new();
    let leaf = ca.leaf("ward");
    let ward = TlsWard::start(ca, &leaf, "").await;
    let mut socket = tokio::net::TcpStream::connect(ward.addr)
        .await
        .expect("connect");
    socket
        .write_all(b"GET /bff/user HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut answer)).await;
    assert!(
        !answer.starts_with(b"HTTP/"),
        "plain HTTP answered on the TLS port: {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_at_the_header_read_timeout() {
    let ca = TestCa::new();
    let leaf = ca.leaf("ward");
    let ward = TlsWard::start(ca, &leaf, "header_read_timeout = \"1s\"").await;
    // The first bytes of a TLS record header, then nothing: the handshake never completes.
    let mut socket = tokio::net::TcpStream::connect(ward.addr)
        .await
        .expect("connect");
    socket.write_all(&[0x16, 0x03, 0x01]).await.expect("write");
    let mut rest = Vec::new();
    // idle_timeout (60 s) is far away: only the head deadline closes this socket in time.
    let closed = tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a stalled handshake was held open");
    ward.logged(&["connection_closed", "header_read_timeout"], 1)
        .await;
}

#[tokio::test]
async fn tls_1_0_and_1_1_are_refused_and_1_2_and_1_3_accepted() {
    let ca = TestCa::new();
    let leaf = ca.leaf("ward");
    let ward = TlsWard::start(ca, &leaf, "").await;
    let control = OldTlsServer::start(&ward.tls_dir);
    for version in ["-tls1", "-tls1_1"] {
        let at_control = s_client(control.port, version, ward.ca.pem(), &ward.tls_dir);
        assert!(
            at_control.status.success() && stdout(&at_control).contains("Protocol  : TLSv1"),
            "the control server did not accept {version}, so this test proves nothing:\n{}",
            both(&at_control)
        );
        let at_ward = s_client(ward.addr.port(), version, ward.ca.pem(), &ward.tls_dir);
        assert!(
            !at_ward.status.success(),
            "Ward accepted {version}:\n{}",
            both(&at_ward)
        );
    }
    for (version, protocol) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let at_ward = s_client(ward.addr.port(), version, ward.ca.pem(), &ward.tls_dir);
        assert!(
            at_ward.status.success()
                // The handshake line: s_client may exit before TLS 1.3's session block.
                && stdout(&at_ward).contains(&format!("New, {protocol}, Cipher is"))
                && stdout(&at_ward).contains("Verify return code: 0 (ok)"),
            "{version}:\n{}",
            both(&at_ward)
        );
    }
    ward.logged(&["tls_handshake_failed"], 2).await;
}

/// `openssl s_client` with one protocol version, old ones allowed client-side (OpenSSL 3
/// refuses them at its default security level).
fn s_client(port: u16, version: &str, ca_pem: &str, dir: &Path) -> Output {
    let ca_file = dir.join("test-ca.pem");
    std::fs::write(&ca_file, ca_pem).expect("write the CA");
    Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-servername",
            "localhost",
            version,
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .arg("-CAfile")
        .arg(&ca_file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("openssl (Debian package openssl) is required: {e}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn both(output: &Output) -> String {
    format!(
        "{}\n{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `openssl s_server` accepting TLS 1.0 and 1.1 on Ward's certificate: the control that shows
/// the client really offers them. Killed when dropped.
struct OldTlsServer {
    port: u16,
    child: std::process::Child,
}

impl OldTlsServer {
    fn start(tls_dir: &Path) -> Self {
        let port = served::free_port();
        let child = Command::new("openssl")
            .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(tls_dir.join("cert.pem"))
            .arg("-key")
            .arg(tls_dir.join("key.pem"))
            .args([
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
                "-no_tls1_3",
                "-www",
                "-quiet",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("openssl (Debian package openssl) is required: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "openssl s_server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, child }
    }
}

impl Drop for OldTlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
