//! Holding up under connection abuse (SPEC §8 "Connections", "Graceful shutdown"): silent and
//! half-open connections are dropped at `header_read_timeout`, idle ones at `idle_timeout`
//! (HTTP/1 and HTTP/2 alike), at most `max_connections` are open, and on SIGTERM the real
//! binary finishes what is in flight and exits within `shutdown_timeout` whatever clients hold.
//! Every wait is for an event (EOF, a response, the exit) with a bounded deadline.

mod common;
#[path = "support/procs.rs"]
mod procs;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use common::{Options, Ward};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use ward_testkit::{Idp, IdpOptions};

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Enough descriptors for a few hundred sockets on each end in this process.
fn raise_test_descriptor_limit() {
    let _ = rlimit::increase_nofile_limit(8192);
}

/// A Ward in this process with `[server]` overrides (as `WARD_SERVER__*` variables).
async fn ward_with(server: &[(&str, &str)]) -> Ward {
    Ward::start_with(Options {
        env: server
            .iter()
            .map(|(key, value)| {
                (
                    format!("WARD_SERVER__{}", key.to_ascii_uppercase()),
                    (*value).to_owned(),
                )
            })
            .collect(),
        ..Options::default()
    })
    .await
}

/// The loopback address behind `http://localhost:<port>`.
fn address(origin: &str) -> SocketAddr {
    let port = origin
        .rsplit(':')
        .next()
        .expect("a port")
        .parse()
        .expect("a number");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Reads (and discards) until the peer closes; the time that took, or `None` past `deadline`.
async fn closed_by_peer(
    mut stream: TcpStream,
    since: Instant,
    deadline: Instant,
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await;
        match read {
            Err(_) => return None,
            // EOF, or a reset: closed either way.
            Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A `GET /bff/user` HTTP/2 HEADERS frame on stream 1 (HPACK: static-table `:method GET` and
/// `:scheme http`, literal `:path` and `:authority`), ending the stream.
fn h2_get_user() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 9];
    block.extend_from_slice(b"/bff/user");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"localhost");
    let len = u32::try_from(block.len()).expect("small");
    let mut frame = len.to_be_bytes()[1..].to_vec();
    // HEADERS, END_STREAM | END_HEADERS, stream 1.
    frame.extend_from_slice(&[0x01, 0x05, 0, 0, 0, 1]);
    frame.extend_from_slice(&block);
    frame
}

/// A raw HTTP/2 client that asks once and then answers nothing (no SETTINGS ack, no PING ack).
async fn raw_h2_after_one_request(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut hello = H2_PREFACE.to_vec();
    hello.extend_from_slice(H2_SETTINGS);
    hello.extend_from_slice(&h2_get_user());
    stream
        .write_all(&hello)
        .await
        .expect("send preface and request");
    stream
}

/// An HTTP/1.1 connection (hyper's client) that has been answered once and is kept alive.
struct H1Conn {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    conn: tokio::task::JoinHandle<()>,
}

async fn h1_conn(addr: SocketAddr) -> H1Conn {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1 handshake");
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    H1Conn { sender, conn }
}

fn get_user() -> hyper::Request<Empty<Bytes>> {
    hyper::Request::get("/bff/user")
        .header("host", "localhost")
        .body(Empty::new())
        .expect("request")
}

/// Sends `GET /bff/user`, reads the whole answer (so the connection stays usable), returns
/// the status.
async fn ask(sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>) -> u16 {
    let response = sender.send_request(get_user()).await.expect("answer");
    let status = response.status().as_u16();
    response.into_body().collect().await.expect("body");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_open_connections_are_closed_at_the_header_read_timeout_while_others_are_served()
 {
    raise_test_descriptor_limit();
    let header_read_timeout = Duration::from_secs(1);
    let ward = ward_with(&[("header_read_timeout", "1s")]).await;
    let addr = address(&ward.origin);

    let opened = Instant::now();
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push((
            "zero bytes",
            TcpStream::connect(addr).await.expect("connect"),
        ));
    }
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(&H2_PREFACE[..16]).await.expect("write");
        held.push(("a partial HTTP/2 preface", stream));
    }
    for _ in 0..20 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(H2_PREFACE).await.expect("write");
        stream.write_all(H2_SETTINGS).await.expect("write");
        held.push(("an HTTP/2 preface and SETTINGS", stream));
    }
    let count = held.len();
    let deadline = opened + header_read_timeout + Duration::from_secs(5);
    let waits: Vec<_> = held
        .into_iter()
        .map(|(kind, stream)| {
            tokio::spawn(async move { (kind, closed_by_peer(stream, opened, deadline).await) })
        })
        .collect();

    // Meanwhile a browser is served at once.
    let asked = Instant::now();
    let reply = reqwest::Client::new()
        .get(ward.url("/bff/user"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("a normal request is answered while the silent connections are held");
    let answered_in = asked.elapsed();
    assert_eq!(reply.status(), 401);
    assert!(
        answered_in < Duration::from_secs(1),
        "answered in {answered_in:?}"
    );

    let mut slowest = Duration::ZERO;
    let mut fastest = Duration::MAX;
    for wait in waits {
        let (kind, closed) = wait.await.expect("reader task");
        let after = closed.unwrap_or_else(|| {
            panic!(
                "a connection with {kind} was still open {:?} after opening",
                deadline - opened
            )
        });
        slowest = slowest.max(after);
        fastest = fastest.min(after);
    }
    // Not before the timeout (the rule closed them, not an accident), and not long after.
    assert!(
        fastest >= header_read_timeout - Duration::from_millis(100),
        "closed after {fastest:?}"
    );
    eprintln!(
        "{count} silent connections closed {fastest:?}..{slowest:?} after opening; a normal \
         request answered in {answered_in:?}"
    );
    ward.stop().await;
}

/// Everything the process's subscriber wrote (one subscriber per test process).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("ward=debug")
            .with_writer(move || Sink(sink.clone()))
            .try_init();
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_max_connections_the_next_connection_waits_until_one_closes() {
    let logs = captured_logs();
    let ward = ward_with(&[("max_connections", "3"), ("header_read_timeout", "30s")]).await;
    let addr = address(&ward.origin);

    let mut open = Vec::new();
    for _ in 0..3 {
        let mut conn = h1_conn(addr).await;
        assert_eq!(ask(&mut conn.sender).await, 401);
        open.push(conn);
    }
    // The fourth: the kernel completes the handshake, Ward does not take it.
    let mut fourth = h1_conn(addr).await;
    let mut answer = tokio::spawn(async move {
        let status = ask(&mut fourth.sender).await;
        (status, fourth)
    });
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut answer)
            .await
            .is_err(),
        "the connection beyond max_connections was served"
    );

    let first = open.remove(0);
    drop(first.sender);
    first.conn.abort();
    let freed = Instant::now();
    let (status, _fourth) = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("served once a connection closed")
        .expect("client task");
    assert_eq!(status, 401);
    eprintln!(
        "the waiting connection was served {:?} after one closed",
        freed.elapsed()
    );

    let text =
        String::from_utf8_lossy(&logs.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    assert!(text.contains("connection_limit_reached"), "{text}");
    assert!(!text.contains("accept_failed"), "{text}");
    ward.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http1_and_http2_connections_are_closed_after_the_idle_timeout() {
    let idle_timeout = Duration::from_secs(1);
    let ward = ward_with(&[("idle_timeout", "1s")]).await;
    let addr = address(&ward.origin);
    let deadline = || Instant::now() + idle_timeout + Duration::from_secs(5);

    // HTTP/1.1 keep-alive, hyper's client.
    let mut h1 = h1_conn(addr).await;
    assert_eq!(ask(&mut h1.sender).await, 401);
    let h1_idle = Instant::now();
    let h1_end = deadline();
    tokio::time::timeout_at(h1_end.into(), &mut h1.conn)
        .await
        .expect("the idle HTTP/1 connection was closed")
        .expect("client task");
    let h1_after = h1_idle.elapsed();

    // HTTP/2, hyper's client (answers the GOAWAY's PING).
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    let mut conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(ward.url("/bff/user"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("answer");
    assert_eq!(response.status(), 401);
    response.into_body().collect().await.expect("body");
    let h2_idle = Instant::now();
    tokio::time::timeout_at(deadline().into(), &mut conn)
        .await
        .expect("the idle HTTP/2 connection was closed")
        .expect("client task");
    let h2_after = h2_idle.elapsed();

    // HTTP/2 from a client that acknowledges nothing.
    let raw = raw_h2_after_one_request(addr).await;
    let raw_idle = Instant::now();
    let raw_after = closed_by_peer(raw, raw_idle, deadline())
        .await
        .expect("the idle raw HTTP/2 connection was closed");

    for (what, after) in [
        ("HTTP/1", h1_after),
        ("HTTP/2", h2_after),
        ("raw HTTP/2", raw_after),
    ] {
        assert!(
            after >= idle_timeout - Duration::from_millis(100),
            "{what} closed after {after:?}, before the idle timeout"
        );
    }
    eprintln!(
        "idle connections closed after: HTTP/1 {h1_after:?}, HTTP/2 {h2_after:?}, raw HTTP/2 {raw_after:?}"
    );
    ward.stop().await;
}

/// An upstream whose `/hold` answers once released, reporting each arrival.
struct HoldingUpstream {
    addr: SocketAddr,
    arrived: mpsc::UnboundedReceiver<()>,
    release: watch::Sender<bool>,
}

impl HoldingUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        let release = watch::channel(false).0;
        let app = Router::new()
            .route("/hold", get(hold))
            .with_state((arrived_tx, release.clone()));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            arrived,
            release,
        }
    }
}

async fn hold(
    State((arrived, release)): State<(mpsc::UnboundedSender<()>, watch::Sender<bool>)>,
) -> &'static str {
    let _ = arrived.send(());
    let mut released = release.subscribe();
    let _ = released.wait_for(|released| *released).await;
    "released"
}

/// A `ward serve` child with a `/up` route to `upstream` and `shutdown_timeout`.
async fn ward_process(
    dir: &std::path::Path,
    idp: &Idp,
    port: u16,
    upstream: SocketAddr,
    shutdown_timeout: &str,
) -> procs::WardProcess {
    let config = dir.join("ward.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"
shutdown_timeout = "{shutdown_timeout}"

[oidc]
issuer = "{issuer}"
client_id = "bff"
client_secret = "bff-secret"

[store]
kind = "memory"

[crypto]
keys = ["{key}"]

[telemetry]
log_level = "info"

[[routes]]
prefix = "/up"
upstream = "http://{upstream}"
token = "none"
strip_prefix = true
"#,
            issuer = idp.issuer(),
            key = common::TEST_KEY,
        ),
    )
    .expect("write the config");
    procs::WardProcess::start(dir, &config, port).await
}

/// Waits (bounded) until the process has logged `needle`.
async fn logged(ward: &procs::WardProcess, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ward.output.text().contains(needle) {
        assert!(
            Instant::now() < deadline,
            "no {needle} in\n{}",
            ward.output.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_idle_http2_connections_held_finishes_the_request_in_flight_and_exits_in_time()
{
    let shutdown_timeout = Duration::from_secs(3);
    let port = procs::free_port();
    let idp = Idp::start(IdpOptions::new(format!("http://localhost:{port}")))
        .await
        .expect("start the IdP");
    let mut upstream = HoldingUpstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ward = ward_process(dir.path(), &idp, port, upstream.addr, "3s").await;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    // Idle HTTP/2 connections: hyper's client, and raw ones that acknowledge nothing.
    let mut idle = Vec::new();
    for _ in 0..5 {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("HTTP/2 handshake");
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let request = hyper::Request::get(ward.url("/bff/user"))
            .body(Empty::<Bytes>::new())
            .expect("request");
        let response = sender.send_request(request).await.expect("answer");
        assert_eq!(response.status(), 401);
        response.into_body().collect().await.expect("body");
        idle.push((sender, conn));
    }
    let mut raw = Vec::new();
    for _ in 0..5 {
        raw.push(raw_h2_after_one_request(addr).await);
    }

    // A request in flight: the upstream holds it.
    let in_flight = tokio::spawn(
        reqwest::Client::new()
            .get(ward.url("/up/hold"))
            .timeout(Duration::from_secs(30))
            .send(),
    );
    tokio::time::timeout(Duration::from_secs(10), upstream.arrived.recv())
        .await
        .expect("the request reached the upstream");

    let signalled = Instant::now();
    ward.terminate();
    logged(&ward, "\"shutdown\"").await;
    let raw_closed: Vec<_> = raw
        .into_iter()
        .map(|stream| {
            tokio::spawn(closed_by_peer(
                stream,
                signalled,
                signalled + shutdown_timeout + Duration::from_secs(5),
            ))
        })
        .collect();
    upstream.release.send_replace(true);
    let reply = in_flight
        .await
        .expect("client task")
        .expect("the request in flight at SIGTERM is answered");
    assert_eq!(reply.status(), 200);
    assert_eq!(reply.text().await.expect("body"), "released");

    let status = ward
        .exited_within(shutdown_timeout + Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("ward still running after SIGTERM\n{}", ward.output.text()));
    let exited_after = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{}", ward.output.text());
    assert!(
        exited_after <= shutdown_timeout + Duration::from_millis(500),
        "exited {exited_after:?} after SIGTERM"
    );
    for (_, conn) in idle {
        tokio::time::timeout(Duration::from_secs(1), conn)
            .await
            .expect("hyper's HTTP/2 connection ended")
            .expect("client task");
    }
    for closed in raw_closed {
        closed
            .await
            .expect("reader task")
            .expect("the raw HTTP/2 connection was closed");
    }
    eprintln!("ward exited {exited_after:?} after SIGTERM with 10 idle HTTP/2 connections held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_in_flight_at_the_shutdown_timeout_is_cut_and_ward_exits() {
    let shutdown_timeout = Duration::from_secs(2);
    let port = procs::free_port();
    let idp = Idp::start(IdpOptions::new(format!("http://localhost:{port}")))
        .await
        .expect("start the IdP");
    let mut upstream = HoldingUpstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ward = ward_process(dir.path(), &idp, port, upstream.addr, "2s").await;

    let in_flight = tokio::spawn(
        reqwest::Client::new()
            .get(ward.url("/up/hold"))
            .timeout(Duration::from_secs(30))
            .send(),
    );
    tokio::time::timeout(Duration::from_secs(10), upstream.arrived.recv())
        .await
        .expect("the request reached the upstream");
    let signalled = Instant::now();
    ward.terminate();
    let status = ward
        .exited_within(shutdown_timeout + Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("ward still running after SIGTERM\n{}", ward.output.text()));
    let exited_after = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{}", ward.output.text());
    assert!(
        exited_after >= shutdown_timeout - Duration::from_millis(100),
        "exited {exited_after:?} after SIGTERM: before the request could finish"
    );
    assert!(
        exited_after <= shutdown_timeout + Duration::from_secs(1),
        "exited {exited_after:?} after SIGTERM"
    );
    let cut = in_flight.await.expect("client task");
    assert!(cut.is_err(), "the held request was answered: {cut:?}");
    eprintln!("ward exited {exited_after:?} after SIGTERM with a request held upstream");
}
