//! `[telemetry]` checks: the log filter, the OTLP endpoint and the sampling ratio.

use super::errors::Problems;
use super::model::TelemetryConfig;

/// `[telemetry]`: the log filter parses; the OTLP endpoint is an http(s) base URL without query
/// or credentials; the sampling ratio is a share.
pub(crate) fn check_telemetry(telemetry: &TelemetryConfig, out: &mut Problems) {
    if let Err(error) = tracing_subscriber::EnvFilter::try_new(&telemetry.log_level) {
        out.push(
            "telemetry.log_level",
            format!("not a tracing filter: {error}"),
        );
    }
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host().is_none() {
            out.push(
                "telemetry.otlp_endpoint",
                "must be an http or https URL with a host".to_owned(),
            );
        }
        if endpoint.query().is_some() || endpoint.fragment().is_some() {
            out.push(
                "telemetry.otlp_endpoint",
                "must be a base URL without query or fragment".to_owned(),
            );
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            out.push(
                "telemetry.otlp_endpoint",
                "must not carry credentials".to_owned(),
            );
        }
    }
    if !(0.0..=1.0).contains(&telemetry.sampling_ratio) {
        out.push(
            "telemetry.sampling_ratio",
            "must be between 0 and 1".to_owned(),
        );
    }
    if telemetry.service_name.trim().is_empty() {
        out.push("telemetry.service_name", "must not be empty".to_owned());
    }
}
