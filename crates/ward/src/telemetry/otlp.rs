//! The OTLP trace pipeline: exporter (gRPC or HTTP/protobuf), batch processor, sampler.
//!
//! Spans leave the request path at once: a finished span is queued (bounded, dropped when
//! full) and a batch processor on its own thread and tokio runtime exports it, so a collector
//! that is slow, down or never answers costs requests nothing. Shutdown flushes what is queued,
//! bounded by [`SHUTDOWN_FLUSH`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::runtime::TokioCurrentThread;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::{OtlpProtocol, TelemetryConfig};

/// How long one export may take before the exporter gives up on it.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for the last batch to leave.
pub const SHUTDOWN_FLUSH: Duration = Duration::from_secs(5);

/// Whether an OTLP pipeline is installed: decides whether the store is wrapped in spans.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Whether traces are exported (`[telemetry] otlp_endpoint` set and the pipeline installed).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Why the OTLP pipeline could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    /// The exporter rejected its configuration (endpoint, client).
    #[error("telemetry.otlp_endpoint: cannot build the OTLP exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The HTTP client (trust, proxy) could not be built.
    #[error("telemetry.otlp_endpoint: cannot build the OTLP HTTP client")]
    Client(#[source] reqwest::Error),
    /// The outbound settings are unusable.
    #[error("telemetry.otlp_endpoint")]
    Outbound(#[from] crate::outbound::OutboundError),
    /// The gRPC endpoint is not a valid URI.
    #[error("telemetry.otlp_endpoint: not a valid gRPC endpoint")]
    Endpoint(#[source] tonic::transport::Error),
}

/// The installed pipeline; [`shutdown`](Self::shutdown) flushes it.
#[derive(Debug, Clone)]
pub struct OtlpPipeline {
    provider: SdkTracerProvider,
}

/// A lazily connecting gRPC channel to `base` (`http://` or `https://`), over TLS with the
/// shared trust and ALPN `h2` for `https`.
fn grpc_channel(
    base: &str,
    outbound: &crate::outbound::Outbound,
) -> Result<tonic::transport::Channel, OtlpError> {
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(outbound.tls_config(&[]))
        .https_or_http()
        .enable_http2()
        .wrap_connector(tcp);
    let endpoint = tonic::transport::Endpoint::from_shared(base.to_owned())
        .map_err(OtlpError::Endpoint)?
        .timeout(EXPORT_TIMEOUT);
    Ok(endpoint.connect_with_connector_lazy(connector))
}

impl OtlpPipeline {
    /// Builds the pipeline for `config`, `None` when no `otlp_endpoint` is set. Must run inside
    /// a tokio runtime (the gRPC channel starts its worker there).
    ///
    /// Both protocols verify TLS with the shared trust of `outbound`; OTLP/HTTP also goes
    /// through its egress proxy. OTLP/gRPC connects directly (the gRPC transport has no proxy
    /// support; a collector beyond a proxy is reached over `otlp_protocol = "http"`).
    pub fn build(
        config: &TelemetryConfig,
        outbound: &crate::outbound::Outbound,
    ) -> Result<Option<Self>, OtlpError> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(None);
        };
        let base = endpoint.as_str().trim_end_matches('/');
        let exporter = match config.otlp_protocol {
            OtlpProtocol::Http => {
                let client = outbound
                    .http_client()?
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(EXPORT_TIMEOUT)
                    .build()
                    .map_err(OtlpError::Client)?;
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_http_client(client)
                    .with_protocol(Protocol::HttpBinary)
                    .with_endpoint(format!("{base}/v1/traces"))
                    .with_timeout(EXPORT_TIMEOUT)
                    .build()
            }
            OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_channel(grpc_channel(base, outbound)?)
                .with_timeout(EXPORT_TIMEOUT)
                .build(),
        }
        .map_err(OtlpError::Exporter)?;
        // The batch settings (schedule delay, queue size) follow the OTEL_BSP_* variables.
        let processor = BatchSpanProcessor::builder(exporter, TokioCurrentThread).build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sampling_ratio,
            ))))
            .with_resource(
                Resource::builder_empty()
                    .with_attributes([
                        KeyValue::new("service.name", config.service_name.clone()),
                        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                    ])
                    .build(),
            )
            .build();
        ENABLED.store(true, Ordering::Relaxed);
        Ok(Some(Self { provider }))
    }

    /// The tracer the `tracing-opentelemetry` layer writes to.
    pub(crate) fn tracer(&self) -> SdkTracer {
        self.provider.tracer("ward")
    }

    /// Flushes queued spans and stops the exporter, waiting at most [`SHUTDOWN_FLUSH`].
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The SDK's shutdown blocks its thread until the batch thread answers; a detached
        // thread (not the runtime's blocking pool, which the runtime's drop would wait for)
        // so that a collector that never answers cannot hold the exit.
        let (done, flushed) = tokio::sync::oneshot::channel();
        let started = std::thread::Builder::new()
            .name("ward-otlp-shutdown".to_owned())
            .spawn(move || {
                let _ = done.send(provider.shutdown());
            });
        // A thread that cannot start drops `done`: the same as a flush that never answers.
        drop(started);
        match tokio::time::timeout(SHUTDOWN_FLUSH, flushed).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => tracing::warn!(
                event = "telemetry_flush_failed",
                error = %error,
                "traces not flushed at shutdown"
            ),
            Ok(Err(_)) | Err(_) => tracing::warn!(
                event = "telemetry_flush_failed",
                timeout_s = SHUTDOWN_FLUSH.as_secs(),
                "traces not flushed at shutdown in time"
            ),
        }
        ENABLED.store(false, Ordering::Relaxed);
    }
}
