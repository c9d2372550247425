//! An upstream for aggregation and trimming tests: JSON documents with fields to trim, parts
//! that meet at a barrier (concurrency without timing), one that never answers, non-JSON,
//! error statuses, a body over a small cap, a compressed body. Every request is recorded.
//!
//! Paths are matched on their last segments, so they work behind any route prefix:
//! - `…/profile`, `…/orders` (the query is echoed as `query`): JSON documents;
//! - `…/meet/<name>`: waits until every party of the barrier has arrived, then `{"met": name}`;
//! - `…/hang`: never answers;
//! - `…/html`: `text/html`;
//! - `…/untyped`: the profile document without a `Content-Type`; `…/untyped-text`: plain text
//!   without one; `…/two-types`: the profile document with `text/plain` and `application/json`;
//! - `…/status/<code>`: that status with a JSON body;
//! - `…/big`: about 20 KiB of JSON;
//! - `…/gzip`: `Content-Encoding: gzip` JSON (not really compressed: Ward must not read it).

#![allow(dead_code)] // each test binary uses a different part of it

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct Shared {
    seen: Mutex<Vec<Seen>>,
    barrier: Barrier,
}

/// The upstream on `127.0.0.1:<free port>`; stops when dropped.
pub struct PartsUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl PartsUpstream {
    /// Starts it; `…/meet/<name>` releases once `parties` requests wait there.
    pub async fn start(parties: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the parts upstream");
        let addr = listener.local_addr().expect("address");
        let shared = Arc::new(Shared {
            seen: Mutex::new(Vec::new()),
            barrier: Barrier::new(parties),
        });
        let app = Router::new()
            .fallback(answer)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().expect("log").clone()
    }

    /// The one request whose path ends with `suffix`.
    #[track_caller]
    pub fn seen_at(&self, suffix: &str) -> Seen {
        let matching: Vec<Seen> = self
            .seen()
            .into_iter()
            .filter(|s| {
                s.path_and_query
                    .split('?')
                    .next()
                    .unwrap_or("")
                    .ends_with(suffix)
            })
            .collect();
        assert_eq!(matching.len(), 1, "requests to …{suffix}: {matching:?}");
        matching.into_iter().next().expect("one")
    }
}

impl Drop for PartsUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(String::new, |pq| pq.as_str().to_owned());
    shared.seen.lock().expect("log").push(Seen {
        method: req.method().clone(),
        path_and_query: path_and_query.clone(),
        headers: req.headers().clone(),
    });
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("").to_owned();
    let segments: Vec<&str> = path.rsplit('/').take(2).collect();
    match segments.as_slice() {
        ["profile", ..] => json_reply(json!({
            "name": "Ada", "email": "ada@example.com", "internal": {"ssn": "000-00-0000"}
        })),
        ["orders", ..] => json_reply(json!({
            "items": [{"sku": "a1", "price": 5, "supplier": "s1"}, {"sku": "b2", "price": 7}],
            "total": 12,
            "query": query,
        })),
        [name, "meet"] => {
            let name = (*name).to_owned();
            shared.barrier.wait().await;
            json_reply(json!({ "met": name }))
        }
        ["hang", ..] => std::future::pending().await,
        ["html", ..] => ([(header::CONTENT_TYPE, "text/html")], "<p>not json</p>").into_response(),
        ["untyped", ..] => untyped(PROFILE, &[]),
        ["untyped-text", ..] => untyped("not json", &[]),
        ["two-types", ..] => untyped(PROFILE, &["text/plain", "application/json"]),
        [code, "status"] => {
            let status = code.parse().ok().and_then(|c| StatusCode::from_u16(c).ok());
            let status = status.unwrap_or(StatusCode::BAD_REQUEST);
            (status, axum::Json(json!({"detail": "upstream detail"}))).into_response()
        }
        ["big", ..] => json_reply(Value::Array(
            (0..1000)
                .map(|i| json!({"id": i, "pad": "xxxxxxxx"}))
                .collect(),
        )),
        ["gzip", ..] => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CONTENT_ENCODING, "gzip"),
            ],
            "{\"total\": 1}",
        )
            .into_response(),
        _ => (StatusCode::NOT_FOUND, "no such test path").into_response(),
    }
}

/// The profile document as raw JSON text.
const PROFILE: &str =
    r#"{"name": "Ada", "email": "ada@example.com", "internal": {"ssn": "000-00-0000"}}"#;

/// `body` with exactly the `Content-Type` values `types` (none: no `Content-Type` at all).
fn untyped(body: &'static str, types: &[&'static str]) -> Response {
    let mut reply = Response::builder();
    for kind in types {
        reply = reply.header(header::CONTENT_TYPE, *kind);
    }
    reply
        .body(axum::body::Body::from(body))
        .expect("a valid response")
}

fn json_reply(value: Value) -> Response {
    axum::Json(value).into_response()
}
