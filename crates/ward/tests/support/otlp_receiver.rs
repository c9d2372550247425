//! A small OTLP trace receiver for tests: HTTP/protobuf (`POST /v1/traces`) and gRPC
//! (`TraceService/Export`) on loopback, decoding what Ward exports with the
//! `opentelemetry-proto` types, and a collector that accepts connections and never answers.

#![allow(dead_code)] // each test binary uses a different part

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use tokio::sync::Notify;

/// Every request the receiver decoded, and a wake-up for waiters.
#[derive(Clone, Default)]
struct Received {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    arrived: Arc<Notify>,
}

impl Received {
    fn push(&self, request: ExportTraceServiceRequest) {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(request);
        self.arrived.notify_waiters();
    }
}

/// A running receiver; `endpoint` is the base URL for `[telemetry] otlp_endpoint`.
pub struct Receiver {
    pub endpoint: String,
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// OTLP/HTTP with protobuf bodies on `127.0.0.1:<any>`.
    pub async fn http() -> Self {
        let received = Received::default();
        let sink = received.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let sink = sink.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    sink.push(request);
                    (
                        [("content-type", "application/x-protobuf")],
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            endpoint: format!("http://{addr}"),
            received,
            task,
        }
    }

    /// OTLP/gRPC (`opentelemetry.proto.collector.trace.v1.TraceService`) on
    /// `127.0.0.1:<any>`.
    pub async fn grpc() -> Self {
        let received = Received::default();
        let service = TraceServiceServer::new(GrpcSink(received.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Self {
            endpoint: format!("http://{addr}"),
            received,
            task,
        }
    }

    /// Every span received so far, with the `service.name` of its resource.
    pub fn spans(&self) -> Vec<(String, Span)> {
        let requests = self
            .received
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for request in requests.iter() {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .and_then(|r| attr(&r.attributes, "service.name"))
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        out.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        out
    }

    /// Everything received, as text: for the secret sweep.
    pub fn dump(&self) -> String {
        format!(
            "{:?}",
            self.received
                .requests
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        )
    }

    /// Waits until `done` holds for the received spans, at most `within` (no fixed sleep: it
    /// wakes on every export).
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[Span]) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let arrived = self.received.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let spans: Vec<Span> = self.spans().into_iter().map(|(_, s)| s).collect();
            if done(&spans) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, arrived).await.is_err() {
                return false;
            }
        }
    }
}

struct GrpcSink(Received);

#[tonic::async_trait]
impl TraceService for GrpcSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A "collector" that accepts connections and never answers (nor closes them).
pub struct Blackhole {
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Blackhole {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self {
            endpoint: format!("http://{addr}"),
            task,
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The string value of attribute `key`.
pub fn attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(value_text)
}

fn value_text(value: &AnyValue) -> String {
    match &value.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Lower-case hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// The tree under `root` (same trace), one span per line, indented by depth, with each span's
/// kind, id and attributes.
pub fn tree(spans: &[Span], root: &Span) -> String {
    let mut out = String::new();
    print_node(spans, root, 0, &mut out);
    out
}

fn print_node(spans: &[Span], node: &Span, depth: usize, out: &mut String) {
    let attrs: Vec<String> = node
        .attributes
        .iter()
        .map(|kv| {
            format!(
                "{}={}",
                kv.key,
                kv.value.as_ref().map(value_text).unwrap_or_default()
            )
        })
        .collect();
    let links: Vec<String> = node
        .links
        .iter()
        .map(|l| format!("link trace={} span={}", hex(&l.trace_id), hex(&l.span_id)))
        .collect();
    let _ = writeln!(
        out,
        "{:indent$}{} [kind={} span={} parent={} trace={}] {}{}",
        "",
        node.name,
        node.kind,
        hex(&node.span_id),
        hex(&node.parent_span_id),
        hex(&node.trace_id),
        attrs.join(" "),
        if links.is_empty() {
            String::new()
        } else {
            format!(" ({})", links.join(", "))
        },
        indent = depth * 2
    );
    let mut children: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == node.trace_id && s.parent_span_id == node.span_id)
        .collect();
    children.sort_by_key(|s| s.start_time_unix_nano);
    for child in children {
        print_node(spans, child, depth + 1, out);
    }
}
