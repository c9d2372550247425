//! `[telemetry]` OTLP keys: defaults, every problem at once, environment overrides, masking.

use super::tests::{config_text, load_ok, problems_with};
use super::*;

#[test]
fn traces_are_off_by_default_with_the_documented_defaults() {
    let telemetry = load_ok(&config_text(""), &[]).telemetry;
    assert_eq!(telemetry.otlp_endpoint, None);
    assert_eq!(telemetry.otlp_protocol, OtlpProtocol::Grpc);
    assert_eq!(telemetry.service_name, "ward");
    assert!((telemetry.sampling_ratio - 1.0).abs() < f64::EPSILON);
}

#[test]
fn otlp_keys_load_from_the_file_and_the_environment() {
    let config = load_ok(
        &config_text(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\notlp_protocol = \"http\"\n\
             service_name = \"edge\"",
        ),
        &[("WARD_TELEMETRY__SAMPLING_RATIO", "0.25")],
    );
    let telemetry = config.telemetry;
    assert_eq!(
        telemetry.otlp_endpoint.as_ref().map(url::Url::as_str),
        Some("http://127.0.0.1:4318/")
    );
    assert_eq!(telemetry.otlp_protocol, OtlpProtocol::Http);
    assert_eq!(telemetry.service_name, "edge");
    assert!((telemetry.sampling_ratio - 0.25).abs() < f64::EPSILON);
    let masked = load_ok(
        &config_text("[telemetry]\notlp_endpoint = \"https://otel.example:4317\""),
        &[],
    )
    .to_masked_toml();
    assert!(
        masked.contains("otlp_endpoint = \"https://otel.example:4317/\""),
        "{masked}"
    );
    assert!(masked.contains("otlp_protocol = \"grpc\""), "{masked}");
    assert!(masked.contains("sampling_ratio = 1.0"), "{masked}");
}

#[test]
fn otlp_problems_are_all_reported_at_once() {
    let lines = problems_with(
        "[telemetry]\notlp_endpoint = \"ftp://user:pw@collector.example/?x=1\"\n\
         sampling_ratio = 1.5\nservice_name = \" \"",
    );
    for expected in [
        "telemetry.otlp_endpoint: must be an http or https URL",
        "telemetry.otlp_endpoint: must be a base URL without query",
        "telemetry.otlp_endpoint: must not carry credentials",
        "telemetry.sampling_ratio: must be between 0 and 1",
        "telemetry.service_name: must not be empty",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "no {expected:?} in {lines:#?}"
        );
    }
    let lines = problems_with("[telemetry]\notlp_protocol = \"thrift\"\nsampling_ratio = -0.1");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("telemetry.otlp_protocol: unknown variant `thrift`")),
        "{lines:#?}"
    );
}
