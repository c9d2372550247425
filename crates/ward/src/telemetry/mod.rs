//! Logging: `tracing` with JSON (default) or pretty lines, filtered by `[telemetry] log_level`.
//!
//! Dependencies' debug/trace output (hyper, h2, reqwest, rustls) can describe wire traffic; it
//! is capped at `info` unless the filter names those crates explicitly, so `log_level = "debug"`
//! shows Ward's own detail without risking a token in a dependency's frame dump.

mod access_log;
mod chain;
pub mod events;
pub mod metrics;
mod process;
mod store;

pub use access_log::AccessLog;
pub use chain::Chain;
pub use store::InstrumentedStore;

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
    EnvFilter::try_new(directives)
}

/// Installs the global subscriber writing to `writer` (stdout in production): the log lines
/// under `log_level`, and beside them, under a filter of its own, the counting of catalogued
/// events ([`events::EventCounter`]), so `log_level = "error"` hides events without uncounting
/// them.
pub fn init<W>(
    config: &TelemetryConfig,
    writer: W,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = filter(&config.log_level)?;
    let output = tracing_subscriber::fmt::layer().with_writer(writer);
    let output = match config.log_format {
        LogFormat::Json => output
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => output.with_filter(filter).boxed(),
    };
    tracing_subscriber::registry()
        .with(output)
        .with(events::EventCounter.with_filter(events::EventCounter::filter()))
        .try_init()?;
    Ok(())
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

    fn filter_string(level: &str) -> String {
        filter(level).unwrap().to_string()
    }
}
