//! Holding up under connection abuse (SPEC §8 "Connections", "Graceful shutdown"): silent and
//! half-open connections are dropped at `header_read_timeout`, idle ones at `idle_timeout`
//! (HTTP/1 and HTTP/2 alike), and at most `max_connections` are open (SIGTERM with clients
//! holding connections: `connections_shutdown.rs`).
//! Every wait is for an event (EOF, a response, the exit) with a bounded deadline.

mod common;
#[path = "support/raw_h2.rs"]
mod raw_h2;

use raw_h2::{H2_PREFACE, H2_SETTINGS, closed_by_peer, raw_h2_after_one_request};

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Options, Ward};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

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

/// 200 connections that send nothing, 20 that stop inside the HTTP/2 preface and 20 that send
/// the preface and SETTINGS but no request, each named by what it sent.
async fn silent_connections(addr: SocketAddr) -> Vec<(&'static str, TcpStream)> {
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
    held
}

/// The fastest and slowest close of `waits`; panics naming a connection still open after
/// `patience`.
async fn closing_times(
    waits: Vec<tokio::task::JoinHandle<(&'static str, Option<Duration>)>>,
    patience: Duration,
) -> (Duration, Duration) {
    let mut slowest = Duration::ZERO;
    let mut fastest = Duration::MAX;
    for wait in waits {
        let (kind, closed) = wait.await.expect("reader task");
        let after = closed.unwrap_or_else(|| {
            panic!("a connection with {kind} was still open {patience:?} after opening")
        });
        slowest = slowest.max(after);
        fastest = fastest.min(after);
    }
    (fastest, slowest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_open_connections_are_closed_at_the_header_read_timeout_while_others_are_served()
 {
    raise_test_descriptor_limit();
    let header_read_timeout = Duration::from_secs(1);
    let ward = ward_with(&[("header_read_timeout", "1s")]).await;
    let addr = address(&ward.origin);

    let opened = Instant::now();
    let held = silent_connections(addr).await;
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

    let (fastest, slowest) = closing_times(waits, deadline - opened).await;
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
