//! Logging: `tracing` with JSON (default) or pretty lines, filtered by `[telemetry] log_level`;
//! traces: the spans of [`spans`] exported over OTLP when `otlp_endpoint` is set ([`otlp`]).
//!
//! The two are separate layers with their own filters: the log layer never sees the trace
//! spans (target [`spans::TARGET`]), and the OTLP layer sees nothing else, so no log event
//! becomes a span event and, without OTLP, the trace spans are disabled callsites.
//!
//! Dependencies' debug/trace output (hyper, h2, reqwest, rustls) can describe wire traffic; it
//! is capped at `info` unless the filter names those crates explicitly, so `log_level = "debug"`
//! shows Ward's own detail without risking a token in a dependency's frame dump.

mod access_log;
mod chain;
pub mod events;
pub mod metrics;
pub mod otlp;
mod process;
pub mod spans;
mod store;
mod traced_store;

pub use access_log::AccessLog;
pub use chain::Chain;
pub use otlp::OtlpPipeline;
pub use store::InstrumentedStore;
pub use traced_store::TracedStore;

use tracing::Level;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::{LogFormat, TelemetryConfig};

/// Crates whose verbose levels could print request or response contents.
const CAPPED: [&str; 7] = [
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
    "tower_http",
    "openidconnect",
];

/// The filter for `log_level`, with [`CAPPED`] crates held at `info` unless named.
pub fn filter(log_level: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    let mut directives = log_level.to_owned();
    for krate in CAPPED {
        if !log_level.contains(krate) {
            directives.push_str(&format!(",{krate}=info"));
        }
    }
    if !log_level.contains(spans::TARGET) {
        // The trace spans belong to the OTLP layer alone.
        directives.push_str(&format!(",{}=off", spans::TARGET));
    }
    EnvFilter::try_new(directives)
}

/// Installs the global subscriber writing logs to `writer` (stdout in production) under
/// `log_level`; beside them, under a filter of its own, the counting of catalogued events
/// ([`events::EventCounter`]), so `log_level = "error"` hides events without uncounting them;
/// and, when `otlp_endpoint` is set, the OTLP trace layer, whose pipeline is returned for
/// shutdown; the exporter connects with the trust and egress proxy of `outbound`. Runs inside a
/// tokio runtime.
pub fn init<W>(
    config: &TelemetryConfig,
    outbound: &crate::outbound::Outbound,
    writer: W,
) -> Result<Option<OtlpPipeline>, Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let logs = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    }
    .with_filter(filter(&config.log_level)?);
    let pipeline = OtlpPipeline::build(config, outbound)?;
    let traces = pipeline.as_ref().map(|pipeline| {
        // Only the attributes `spans` sets: no source locations, thread names or timings.
        tracing_opentelemetry::layer()
            .with_tracer(pipeline.tracer())
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(spans::TARGET, Level::INFO))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .with(events::EventCounter.with_filter(events::EventCounter::filter()))
        .try_init()?;
    Ok(pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_level_keeps_wire_level_crates_at_info() {
        let filter = filter("debug").unwrap().to_string();
        assert!(filter.contains("hyper=info"));
        assert!(filter.contains("reqwest=info"));
        let explicit = filter_string("debug,hyper=trace");
        assert!(!explicit.contains("hyper=info"));
    }

    #[test]
    fn the_log_layer_never_sees_the_trace_spans() {
        assert!(filter_string("trace").contains("ward::trace=off"));
        assert!(filter_string("info,ward=debug").contains("ward::trace=off"));
    }

    fn filter_string(level: &str) -> String {
        filter(level).unwrap().to_string()
    }
}
