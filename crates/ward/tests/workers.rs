//! Serving workers (`[server] workers`): connections are handed to the workers in turn, each
//! worker keeps its own upstream connections, and a shutdown lets every worker answer what it
//! has in flight. Observed from outside: the upstream counts the TCP connections it accepts
//! and holds requests until the test releases them.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use common::{Options, Ward};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// An upstream that counts connections and can hold requests.
struct CountingUpstream {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    /// One message per request that reached `/hold`.
    arrived: mpsc::UnboundedReceiver<()>,
}

struct Shared {
    connections: AtomicUsize,
    arrived: mpsc::UnboundedSender<()>,
    /// `/hold` answers once this is `true`.
    release: watch::Sender<bool>,
}

impl CountingUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (arrived_tx, arrived) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            connections: AtomicUsize::new(0),
            arrived: arrived_tx,
            release: watch::channel(false).0,
        });
        let app = Router::new()
            .route("/hello", get(|| async { "hello" }))
            .route("/hold", get(hold))
            .with_state(shared.clone());
        let counter = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counter.connections.fetch_add(1, Ordering::SeqCst);
                let service = TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    let builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            shared,
            arrived,
        }
    }

    fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    fn release(&self) {
        self.shared.release.send_replace(true);
    }

    /// A Ward on `workers` serving threads with a `token = "none"` route to this upstream.
    async fn ward(&self, workers: u16) -> Ward {
        Ward::start_with(Options {
            extra_toml: format!(
                "[[routes]]\nprefix = \"/up\"\nupstream = \"http://{}\"\ntoken = \"none\"\n\
                 strip_prefix = true\n",
                self.addr
            ),
            env: [("WARD_SERVER__WORKERS".to_owned(), workers.to_string())].into(),
            ..Options::default()
        })
        .await
    }
}

async fn hold(State(shared): State<Arc<Shared>>) -> &'static str {
    let _ = shared.arrived.send(());
    let mut release = shared.release.subscribe();
    let _ = release.wait_for(|released| *released).await;
    "released"
}

/// A client with a connection of its own (reqwest pools per client).
fn own_connection() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client")
}

/// `clients` browsers, one connection each, send `rounds` requests each, one at a time; returns
/// the upstream connections Ward opened for them.
async fn upstream_connections_for(workers: u16, clients: usize, rounds: usize) -> usize {
    let upstream = CountingUpstream::start().await;
    let ward = upstream.ward(workers).await;
    let clients: Vec<_> = (0..clients).map(|_| own_connection()).collect();
    for round in 0..rounds {
        for client in &clients {
            let response = client
                .get(ward.url("/up/hello"))
                .send()
                .await
                .expect("request");
            assert_eq!(response.status(), 200, "round {round}");
            assert_eq!(response.text().await.expect("body"), "hello");
        }
    }
    let connections = upstream.connections();
    ward.stop().await;
    connections
}

#[tokio::test]
async fn each_worker_keeps_its_own_upstream_connections() {
    // Three browser connections land on three workers; each worker opens one upstream
    // connection and reuses it for every later request of its browser.
    assert_eq!(upstream_connections_for(3, 3, 4).await, 3);
    // On one worker the same requests, one at a time, share one upstream connection.
    assert_eq!(upstream_connections_for(1, 3, 4).await, 1);
}

#[tokio::test]
async fn shutdown_lets_every_worker_answer_its_requests_in_flight() {
    const IN_FLIGHT: usize = 6;
    let mut upstream = CountingUpstream::start().await;
    let ward = upstream.ward(3).await;
    let url = ward.url("/up/hold");
    let mut requests = Vec::new();
    for _ in 0..IN_FLIGHT {
        let client = own_connection();
        let url = url.clone();
        requests.push(tokio::spawn(async move {
            let response = client.get(url).send().await?;
            let status = response.status().as_u16();
            Ok::<_, reqwest::Error>((status, response.text().await?))
        }));
    }
    for _ in 0..IN_FLIGHT {
        upstream.arrived.recv().await.expect("a held request");
    }
    // Six connections in turn over three workers: every worker holds two requests now.
    let port = ward.origin.rsplit(':').next().expect("port").to_owned();
    let stopping = tokio::spawn(ward.stop());
    // The shutdown has begun once the listener is closed; only then are the requests let go.
    while tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .is_ok()
    {
        tokio::task::yield_now().await;
    }
    assert!(!stopping.is_finished(), "Ward waits for its requests");
    upstream.release();
    for request in requests {
        let (status, body) = request.await.expect("task").expect("answered");
        assert_eq!((status, body.as_str()), (200, "released"));
    }
    stopping.await.expect("Ward stopped");
    let refused = own_connection().get(&url).send().await;
    assert!(refused.is_err(), "nothing listens after the shutdown");
}
