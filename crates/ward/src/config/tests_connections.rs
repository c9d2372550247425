//! `[server]` connection keys: their defaults, the effective values `ward check` prints, and
//! every bad value reported at once.

use std::time::Duration;

use super::tests::{config_text, load_ok, problems_with};

#[test]
fn connection_keys_default_to_the_documented_values() {
    let config = load_ok(&config_text(""), &[]);
    assert_eq!(config.server.max_connections, 10_000);
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(config.server.idle_timeout, Duration::from_secs(60));
    assert_eq!(config.server.shutdown_timeout, Duration::from_secs(30));
    let masked = config.to_masked_toml();
    for line in [
        "max_connections = 10000",
        "header_read_timeout = \"10s\"",
        "idle_timeout = \"1m\"",
        "shutdown_timeout = \"30s\"",
    ] {
        assert!(masked.contains(line), "{line} not in\n{masked}");
    }
}

#[test]
fn connection_keys_may_be_set_in_the_file_or_the_environment() {
    let config = load_ok(
        &config_text("[server]\nmax_connections = 5\nheader_read_timeout = \"500ms\""),
        &[
            ("WARD_SERVER__IDLE_TIMEOUT", "2m"),
            ("WARD_SERVER__SHUTDOWN_TIMEOUT", "5s"),
        ],
    );
    assert_eq!(config.server.max_connections, 5);
    assert_eq!(
        config.server.header_read_timeout,
        Duration::from_millis(500)
    );
    assert_eq!(config.server.idle_timeout, Duration::from_secs(120));
    assert_eq!(config.server.shutdown_timeout, Duration::from_secs(5));
}

#[test]
fn zero_or_malformed_connection_values_are_all_reported_together() {
    let lines = problems_with(
        "[server]\nmax_connections = 0\nheader_read_timeout = \"0s\"\nidle_timeout = \"0ms\"\n\
         shutdown_timeout = \"0s\"",
    );
    for expected in [
        "server.max_connections: must be at least 1",
        "server.header_read_timeout: must be greater than zero",
        "server.idle_timeout: must be greater than zero",
        "server.shutdown_timeout: must be greater than zero",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(expected)),
            "no {expected:?} in {lines:#?}"
        );
    }
    let lines = problems_with(
        "[server]\nmax_connections = -1\nheader_read_timeout = 10\nidle_timeout = \"soon\"",
    );
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines[0..]
            .iter()
            .any(|l| l.starts_with("server.max_connections: invalid value"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("server.header_read_timeout: 10 has no unit"))
    );
    assert!(lines.iter().any(|l| l.starts_with("server.idle_timeout: ")));
}

#[test]
fn tls_files_resolve_against_the_configuration_and_hsts_has_its_default() {
    let config = load_ok(
        &config_text(
            "[server]\npublic_url = \"https://ward.example\"\ntls_cert = \"tls/cert.pem\"\n\
             tls_key = \"/etc/ward/key.pem\"",
        ),
        &[],
    );
    assert_eq!(
        config.server.tls_cert.as_deref(),
        Some(std::path::Path::new("/base/tls/cert.pem"))
    );
    assert_eq!(
        config.server.tls_key.as_deref(),
        Some(std::path::Path::new("/etc/ward/key.pem"))
    );
    assert_eq!(config.server.hsts, "max-age=63072000; includeSubDomains");
}

#[test]
fn tls_needs_both_files_an_https_public_url_and_a_max_age() {
    let lines = problems_with("[server]\ntls_cert = \"cert.pem\"\nhsts = \"preload\"");
    for expected in [
        "server.tls_key: must be set with server.tls_cert",
        "server.hsts: needs a max-age directive",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(expected)),
            "no {expected:?} in {lines:#?}"
        );
    }
    let lines = problems_with(
        "[server]\npublic_url = \"http://localhost:8443\"\ntls_cert = \"c.pem\"\n\
         tls_key = \"k.pem\"",
    );
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].starts_with("server.public_url: must be https:// when Ward terminates TLS")
            && lines[0].contains("\"https://localhost:8443\""),
        "{lines:#?}"
    );
    // Another plain-http origin: the one message that already refuses it, not a second.
    let lines = problems_with(
        "[server]\npublic_url = \"http://ward.example\"\ntls_cert = \"c.pem\"\n\
         tls_key = \"k.pem\"",
    );
    assert_eq!(lines.len(), 1, "{lines:#?}");
    // Development over TLS on a plain-http public_url stays possible, as for cookies.
    load_ok(
        &config_text(
            "[server]\npublic_url = \"http://localhost:8443\"\ntls_cert = \"c.pem\"\n\
             tls_key = \"k.pem\"\ninsecure_dev = true",
        ),
        &[],
    );
}
