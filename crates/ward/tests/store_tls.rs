//! The store over TLS with the one outbound trust (SPEC §7 `[outbound]`): a real Redis
//! (`redis-server --tls-port`, Debian's build) serving a certificate from a private CA that
//! this test makes. Opened the way `ward serve` opens it, the store is reached when
//! `[outbound] ca_file` names the CA and refused (certificate not trusted) when it does not.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ward_store::{Clock, SystemClock};
use ward_testkit::TestCa;

/// How long redis-server may take to accept TLS connections.
const READY: Duration = Duration::from_secs(10);
/// The key ring entry of this test (test-only key).
const KEY: &str = "stls:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

/// A redis-server accepting only TLS on a loopback port, without persistence; killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl TlsRedis {
    fn start(dir: &Path, ca: &TestCa) -> Self {
        let ca_file = ca.write_cert(dir, "redis").expect("write the CA");
        let files = ca
            .write_server(dir, "redis", &["127.0.0.1"])
            .expect("make the server certificate");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--tls-port", &port.to_string(), "--tls-auth-clients", "no"])
            .arg("--tls-cert-file")
            .arg(&files.cert_file)
            .arg("--tls-key-file")
            .arg(&files.key_file)
            .arg("--tls-ca-cert-file")
            .arg(&ca_file)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (Debian package redis-server)");
        let redis = Self { child, port };
        let deadline = Instant::now() + READY;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not accept on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration with the Redis store at `rediss://127.0.0.1:<port>` and, when given,
/// `[outbound] ca_file`.
fn config(port: u16, ca_file: Option<&Path>) -> ward::config::Config {
    let outbound = ca_file.map_or_else(String::new, |path| {
        format!("[outbound]\nca_file = {:?}\n", path.display().to_string())
    });
    let text = format!(
        r#"
[oidc]
issuer = "https://idp.example"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "redis"
url = "rediss://127.0.0.1:{port}"

[crypto]
keys = ["{KEY}"]

{outbound}"#
    );
    ward::config::load_from_str(&text, &Default::default(), Path::new("/"))
        .unwrap_or_else(|e| panic!("test configuration invalid:\n{e}"))
}

/// Every cause of `error`, one per line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push('\n');
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

#[tokio::test]
async fn redis_over_tls_is_trusted_through_the_outbound_ca_file_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("Ward store TLS test CA").expect("make the CA");
    let redis = TlsRedis::start(dir.path(), &ca);
    let ca_file = ca.write_cert(dir.path(), "outbound").expect("write the CA");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let trusted = config(redis.port, Some(&ca_file));
    let outbound = ward::outbound::Outbound::load(&trusted.outbound).expect("outbound trust");
    let store = ward::server::open_store(&trusted, &outbound, clock.clone())
        .await
        .expect("the store over TLS, its CA in ca_file");
    store.ping().await.expect("the store answers over TLS");

    let untrusted = config(redis.port, None);
    let outbound = ward::outbound::Outbound::load(&untrusted.outbound).expect("outbound trust");
    let Err(error) = ward::server::open_store(&untrusted, &outbound, clock).await else {
        panic!("a Redis certificate from an unknown CA was accepted");
    };
    let causes = chain(&error);
    assert!(causes.contains("UnknownIssuer"), "{causes}");
}
