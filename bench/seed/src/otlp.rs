//! `ward-bench-otlp`: the live OTLP receiver of `bench/run`'s traced row. It accepts
//! OTLP/HTTP protobuf exports (`POST /v1/traces`) on a loopback port, decodes each with the
//! official `opentelemetry-proto` definitions, counts requests and spans, and answers `200`
//! with an empty `ExportTraceServiceResponse`, as a collector would; spans are then dropped.
//! `GET /stats` answers `requests <n> spans <m>`, so the bench can show that spans arrived.
//!
//! Usage: `ward-bench-otlp --port <p>` (always 127.0.0.1). Benchmark tool only: not part of
//! Ward or its tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;

/// What arrived so far.
#[derive(Default)]
struct Received {
    requests: AtomicU64,
    spans: AtomicU64,
}

async fn export(State(received): State<Arc<Received>>, body: Bytes) -> impl IntoResponse {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new()).into_response();
    };
    let spans: usize = request
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    received.requests.fetch_add(1, Relaxed);
    received.spans.fetch_add(spans as u64, Relaxed);
    (
        [("content-type", "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

async fn stats(State(received): State<Arc<Received>>) -> String {
    format!(
        "requests {} spans {}\n",
        received.requests.load(Relaxed),
        received.spans.load(Relaxed)
    )
}

fn port() -> anyhow::Result<u16> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--port"), Some(port), None) => port.parse().context("--port: not a port number"),
        _ => bail!("usage: ward-bench-otlp --port <port>"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port = port()?;
    let app = Router::new()
        .route("/v1/traces", post(export))
        .route("/stats", get(stats))
        .with_state(Arc::new(Received::default()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("bind 127.0.0.1:{port}"))?;
    axum::serve(listener, app).await.context("serve")
}
