//! The store over TLS with the one outbound trust (SPEC §7 `[outbound]`): a real Redis
//! (`redis-server --tls-port`, Debian's build) and a real PostgreSQL server (a cluster of its
//! own, `initdb` + `postgres -c ssl=on`, Debian's build, run as the `postgres` user) serving a
//! certificate from a private CA that this test makes. Opened the way `ward serve` opens it,
//! the store is reached when `[outbound] ca_file` names the CA and refused (certificate not
//! trusted) when it does not.

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

/// A PostgreSQL server of its own (a fresh cluster in a temporary directory) accepting TLS
/// with a certificate from `ca` on a loopback port; stopped on drop. The server refuses to run
/// as root, so the cluster belongs to the `postgres` user of Debian's package.
struct TlsPostgres {
    child: Child,
    port: u16,
}

impl TlsPostgres {
    fn start(dir: &Path, ca: &TestCa) -> Self {
        let bin = postgres_bin_dir();
        let data = dir.join("pgdata");
        let files = ca
            .write_server(dir, "postgres", &["127.0.0.1"])
            .expect("make the server certificate");
        let (uid, gid) = postgres_user();
        for path in [dir, files.cert_file.as_path(), files.key_file.as_path()] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
        }
        // The server insists on a key only its owner can read.
        std::fs::set_permissions(
            &files.key_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("chmod the key");
        let initdb = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdin(Stdio::null())
            .output()
            .expect("runuser and initdb run");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let setting = |name: &str, value: &Path| format!("{name}={}", value.display());
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-c", "listen_addresses=127.0.0.1", "-c"])
            .arg(format!("port={port}"))
            .args(["-c", "ssl=on", "-c", "fsync=off", "-c"])
            .arg(setting("unix_socket_directories", dir))
            .arg("-c")
            .arg(setting("ssl_cert_file", &files.cert_file))
            .arg("-c")
            .arg(setting("ssl_key_file", &files.key_file))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("runuser and postgres run");
        let server = Self { child, port };
        let deadline = Instant::now() + READY;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres did not accept on 127.0.0.1:{port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        // runuser passes SIGTERM on: the server's "smart" shutdown, then the process is reaped.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

/// Where Debian's PostgreSQL server binaries are (`/usr/lib/postgresql/<version>/bin`).
fn postgres_bin_dir() -> std::path::PathBuf {
    std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (Debian package postgresql)")
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .find(|bin| bin.join("initdb").is_file())
        .expect("an initdb under /usr/lib/postgresql/<version>/bin")
}

/// The uid and gid of the `postgres` user (Debian's package makes it).
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id runs");
        assert!(out.status.success(), "the postgres user exists");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u32>()
            .expect("a numeric id")
    };
    (id("-u"), id("-g"))
}

/// A configuration with the Redis store at `rediss://127.0.0.1:<port>` and, when given,
/// `[outbound] ca_file`.
fn config(port: u16, ca_file: Option<&Path>) -> ward::config::Config {
    store_config(
        &format!("kind = \"redis\"\nurl = \"rediss://127.0.0.1:{port}\""),
        ca_file,
    )
}

/// A configuration with `store` as its `[store]` table and, when given, `[outbound] ca_file`.
fn store_config(store: &str, ca_file: Option<&Path>) -> ward::config::Config {
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
{store}

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

#[tokio::test]
async fn postgres_over_tls_is_trusted_through_the_outbound_ca_file_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("Ward store TLS test CA").expect("make the CA");
    let postgres = TlsPostgres::start(dir.path(), &ca);
    let ca_file = ca.write_cert(dir.path(), "outbound").expect("write the CA");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // No sslmode: TLS required and verified (SPEC §6), here against [outbound] ca_file.
    let store = format!(
        "kind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:{}/postgres\"",
        postgres.port
    );

    let trusted = store_config(&store, Some(&ca_file));
    let outbound = ward::outbound::Outbound::load(&trusted.outbound).expect("outbound trust");
    let opened = ward::server::open_store(&trusted, &outbound, clock.clone())
        .await
        .expect("the store over TLS, its CA in ca_file");
    opened.ping().await.expect("the store answers over TLS");

    let untrusted = store_config(&store, None);
    let outbound = ward::outbound::Outbound::load(&untrusted.outbound).expect("outbound trust");
    let Err(error) = ward::server::open_store(&untrusted, &outbound, clock).await else {
        panic!("a PostgreSQL certificate from an unknown CA was accepted");
    };
    let causes = chain(&error);
    assert!(causes.contains("UnknownIssuer"), "{causes}");
}

/// `[store] client_cache` opens a second, RESP3 connection for `CLIENT TRACKING`, and the store
/// opens only once it is up: over TLS it is trusted through the same `ca_file`. Without the CA
/// the store is refused as before.
#[tokio::test]
async fn the_client_caches_tracking_connection_uses_the_same_trust() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("Ward store TLS test CA").expect("make the CA");
    let redis = TlsRedis::start(dir.path(), &ca);
    let ca_file = ca.write_cert(dir.path(), "outbound").expect("write the CA");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = format!(
        "kind = \"redis\"\nurl = \"rediss://127.0.0.1:{}\"\nclient_cache = true",
        redis.port
    );

    let trusted = store_config(&store, Some(&ca_file));
    assert!(trusted.store.client_cache);
    let outbound = ward::outbound::Outbound::load(&trusted.outbound).expect("outbound trust");
    let opened = ward::server::open_store(&trusted, &outbound, clock.clone())
        .await
        .expect("the store and its tracking connection over TLS, the CA in ca_file");
    let record = ward_store::Record {
        value: b"sealed".to_vec(),
        expires_at: clock.now() + 60,
        indexes: Vec::new(),
        created_at: clock.now(),
        updated_at: clock.now(),
    };
    opened.put("s:tls", record).await.expect("put over TLS");
    for _ in 0..2 {
        let read = opened.get("s:tls").await.expect("get over TLS");
        assert_eq!(read.as_deref(), Some(&b"sealed"[..]));
    }
    assert!(opened.delete("s:tls").await.expect("delete over TLS"));
    assert_eq!(opened.get("s:tls").await.expect("get over TLS"), None);

    let untrusted = store_config(&store, None);
    let outbound = ward::outbound::Outbound::load(&untrusted.outbound).expect("outbound trust");
    let Err(error) = ward::server::open_store(&untrusted, &outbound, clock).await else {
        panic!("a Redis certificate from an unknown CA was accepted");
    };
    let causes = chain(&error);
    assert!(causes.contains("UnknownIssuer"), "{causes}");
}
