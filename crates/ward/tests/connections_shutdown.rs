//! Graceful shutdown under held connections (SPEC §8): on SIGTERM the real binary finishes
//! what is in flight and exits within `shutdown_timeout` whatever clients hold. Every wait is
//! for an event (a response, the exit) with a bounded deadline.

mod common;
#[path = "support/procs.rs"]
mod procs;
#[path = "support/raw_h2.rs"]
mod raw_h2;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use raw_h2::{closed_by_peer, raw_h2_after_one_request};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use ward_testkit::{Idp, IdpOptions};

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

/// An HTTP/2 connection by hyper's client, answered once at `url` and then left idle; its
/// sender (kept so the connection stays open) and its connection task.
async fn idle_h2_client(
    addr: SocketAddr,
    url: &str,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(url)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("answer");
    assert_eq!(response.status(), 401);
    response.into_body().collect().await.expect("body");
    (sender, conn)
}

/// Every idle connection was ended by Ward: hyper's at once, the raw ones by their deadline.
async fn all_closed(
    idle: Vec<(
        hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
        tokio::task::JoinHandle<()>,
    )>,
    raw_closed: Vec<tokio::task::JoinHandle<Option<Duration>>>,
) {
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
    let mut raw = Vec::new();
    for _ in 0..5 {
        idle.push(idle_h2_client(addr, &ward.url("/bff/user")).await);
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
    all_closed(idle, raw_closed).await;
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
