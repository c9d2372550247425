//! Validation tests: each rule on the values of a loaded configuration, every problem named,
//! no secret echoed.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::tests::{
    CLIENT_SECRET, assert_problem, config_text, key, load_err, load_ok, problems_with,
};
use super::*;

#[test]
fn public_url_must_be_a_secure_origin_unless_insecure_dev() {
    assert_problem(
        "[server]\npublic_url = \"https://a.example/app\"",
        "server.public_url: must be an origin",
    );
    assert_problem(
        "[server]\npublic_url = \"https://a.example/?x=1\"",
        "server.public_url: must not have a query",
    );
    assert_problem(
        "[server]\npublic_url = \"ftp://a.example\"",
        "server.public_url: scheme must be http or https",
    );
    assert_problem(
        "[server]\npublic_url = \"http://a.example\"",
        "server.public_url: plain http is only allowed",
    );
    for ok in [
        "https://a.example/",
        "http://127.0.0.1:8080",
        "http://[::1]:8080",
    ] {
        load_ok(
            &config_text(&format!("[server]\npublic_url = \"{ok}\"")),
            &[],
        );
    }
}

#[test]
fn insecure_dev_drops_the_prefix_of_the_default_cookie_only() {
    let config = load_ok(
        &config_text("[server]\npublic_url = \"http://dev.example:8080\"\ninsecure_dev = true"),
        &[],
    );
    assert!(!config.cookie_secure());
    assert_eq!(config.effective_cookie_name(), "ward");

    assert_problem(
        "[server]\npublic_url = \"http://dev.example\"\ninsecure_dev = true\n\
         [session]\ncookie_name = \"__Secure-app\"",
        "session.cookie_name: \"__Secure-app\": browsers reject a \"__Secure-\" cookie",
    );
    let config = load_ok(
        &config_text(
            "[server]\npublic_url = \"https://a.example\"\ninsecure_dev = true\n\
             [session]\ncookie_name = \"app\"",
        ),
        &[],
    );
    assert_eq!(config.effective_cookie_name(), "app");
    assert!(config.cookie_secure());
}

#[test]
fn cookie_names_must_be_tokens_with_the_host_prefix() {
    assert_problem(
        "[session]\ncookie_name = \"ward\"",
        "session.cookie_name: \"ward\" must start with \"__Host-\"",
    );
    assert_problem(
        "[session]\ncookie_name = \"__Secure-ward\"",
        "session.cookie_name: \"__Secure-ward\" must start",
    );
    assert_problem(
        "[session]\ncookie_name = \"__Host-w;x\"",
        "session.cookie_name: \"__Host-w;x\" is not a valid cookie name",
    );
    assert_problem(
        "[session]\ncookie_name = \"__Host-\"",
        "session.cookie_name: \"__Host-\" has a prefix but no name",
    );
    let config = load_ok(
        &config_text("[session]\ncookie_name = \"__Host-Http-ward\""),
        &[],
    );
    assert_eq!(config.effective_cookie_name(), "__Host-Http-ward");
}

#[test]
fn session_lifetimes_must_be_positive_and_ordered() {
    assert_problem(
        "[session]\nidle_timeout = \"0s\"",
        "session.idle_timeout: must be greater than zero",
    );
    assert_problem(
        "[session]\nidle_timeout = \"9h\"\nabsolute_timeout = \"8h\"",
        "session.idle_timeout: must not exceed session.absolute_timeout",
    );
}

#[test]
fn oidc_settings_are_checked() {
    assert_problem(
        "[oidc.extra_auth_params]\nstate = \"x\"",
        "oidc.extra_auth_params.state: is set by Ward",
    );
    let lines = load_err(
        &config_text("")
            .replace(
                "https://idp.example.com\"",
                "http://idp.example.com\"\nscopes = [\"profile\"]",
            )
            .replace("client_id = \"ward\"", "client_id = \"\""),
        &[],
    );
    assert!(lines.contains("oidc.issuer: must be https"), "{lines}");
    assert!(
        lines.contains("oidc.scopes: must contain \"openid\""),
        "{lines}"
    );
    assert!(
        lines.contains("oidc.client_id: must not be empty"),
        "{lines}"
    );
    let local = config_text("").replace("https://idp.example.com", "http://127.0.0.1:4000");
    load_ok(&local, &[]);
}

#[test]
fn an_empty_client_secret_is_reported_as_required() {
    let errors = load_err(&config_text(""), &[("WARD_OIDC__CLIENT_SECRET", "")]);
    assert_eq!(
        errors,
        "oidc.client_secret (from WARD_OIDC__CLIENT_SECRET): required (or \
         oidc.client_secret_file, or WARD_OIDC__CLIENT_SECRET)"
    );
}

#[test]
fn keys_must_be_well_formed_with_unique_ids() {
    let keys = format!(
        "[\"{}\", \"{}\", \"nokid\", \"k3:c2hvcnQ=\"]",
        key("k1", 1),
        key("k1", 2)
    );
    let errors = load_err(&config_text(""), &[("WARD_CRYPTO__KEYS", &keys)]);
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(
        lines,
        [
            "crypto.keys[1] (from WARD_CRYPTO__KEYS): key id is already used by crypto.keys[0]",
            "crypto.keys[2] (from WARD_CRYPTO__KEYS): expected \"<kid>:<base64 of 32 bytes>\"",
            "crypto.keys[3] (from WARD_CRYPTO__KEYS): key material is 5 bytes, expected 32",
        ]
    );
    let errors = load_err(&config_text(""), &[("WARD_CRYPTO__KEYS", "[]")]);
    assert!(errors.starts_with("crypto.keys (from WARD_CRYPTO__KEYS): at least one key"));
}

#[test]
fn paths_must_be_local() {
    assert_problem(
        "[login]\nerror_path = \"https://evil.example\"",
        "login.error_path: \"https://evil.example\" must be a local path",
    );
    assert_problem(
        "[logout]\nredirect_path = \"//evil.example\"",
        "logout.redirect_path: \"//evil.example\" must be a local path",
    );
}

#[test]
fn routes_are_checked_against_each_other_and_bff() {
    let route = |prefix: &str, upstream: &str, timeout: &str| {
        format!(
            "[[routes]]\nprefix = \"{prefix}\"\nupstream = \"{upstream}\"\ntoken = \"user\"\ntimeout = \"{timeout}\"\n"
        )
    };
    let lines = problems_with(
        &[
            route("/api", "http://127.0.0.1:1", "1s"),
            route("/api", "https://api.example/base", "1s"),
            route("/bff/x", "http://127.0.0.1:1", "1s"),
            route("/v1/", "ftp://h", "0s"),
            route("/q", "http://h/?a=1", "1s"),
            route("/c", "http://user:pw@h", "1s"),
        ]
        .concat(),
    );
    assert_eq!(
        lines,
        [
            "routes[1].prefix: \"/api\" is already the prefix of routes[0]",
            "routes[2].prefix: \"/bff/x\" is reserved for Ward's own endpoints (/bff)",
            "routes[3].prefix: \"/v1/\" must not end with \"/\" (prefixes match whole path segments)",
            "routes[3].upstream: scheme must be http or https, not \"ftp\"",
            "routes[3].timeout: must be greater than zero",
            "routes[4].upstream: must not have a query or fragment",
            "routes[5].upstream: must not contain credentials",
        ]
    );
}

#[test]
fn static_dir_must_be_an_existing_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("file");
    std::fs::write(&file, "x").expect("write");
    let root_route =
        "[[routes]]\nprefix = \"/\"\nupstream = \"http://127.0.0.1:1\"\ntoken = \"none\"\n";
    let lines = problems_with(&format!(
        "[static]\ndir = \"{}\"\n{root_route}",
        file.display()
    ));
    assert!(lines[0].starts_with("static.dir: ") && lines[0].ends_with("is not a directory"));
    assert_eq!(
        lines[1],
        "routes[0].prefix: \"/\" takes every path, and [static] serves the same paths"
    );
    assert_problem(
        "[static]\ndir = \"/nonexistent/dist\"",
        "static.dir: /nonexistent/dist: No such file",
    );
}

#[test]
fn telemetry_and_cors_values_are_checked() {
    assert_problem(
        "[telemetry]\nlog_level = \"ward=loud\"",
        "telemetry.log_level: not a tracing filter",
    );
    assert_problem(
        "[server]\ncors_origins = [\"https://app.example/\"]",
        "server.cors_origins[0]: \"https://app.example/\" is not an origin; write \"https://app.example\"",
    );
    assert_problem(
        "[server]\ncors_origins = [\"*\"]",
        "server.cors_origins[0]: \"*\" is not an origin",
    );
}

#[test]
fn secret_values_never_appear_in_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("keys"),
        "TOPSECRETKEYLINE\nk1:TOPSECRETB64\n",
    )
    .expect("write");
    let keys_file = dir.path().join("keys").display().to_string();
    let cases = [
        load_err(&config_text("").replace(CLIENT_SECRET, "x\" = 2"), &[]),
        load_err(&format!("[oidc]\nclient_secret = \"{CLIENT_SECRET}"), &[]),
        load_err(
            &format!("[oidc]\nclient_secret = [\"{CLIENT_SECRET}\"]"),
            &[],
        ),
        load_err(
            "",
            &[
                ("WARD_OIDC__CLIENT_SECRET", CLIENT_SECRET),
                ("WARD_OIDC__CLIENT_SECRET_FILE", "/x"),
            ],
        ),
        load_err("[crypto]\nkeys = \"TOPSECRETKEYLINE\"", &[]),
        load_err(
            "[crypto]\nkeys = [\"TOPSECRETKEYLINE\", \"k1:TOPSECRETB64\"]",
            &[],
        ),
        load_err(&format!("[crypto]\nkeys_file = \"{keys_file}\""), &[]),
        load_err("", &[("WARD_CRYPTO__KEYS", "TOPSECRETKEYLINE")]),
    ];
    for errors in cases {
        assert!(!errors.is_empty());
        for secret in [CLIENT_SECRET, "TOPSECRET"] {
            assert!(!errors.contains(secret), "secret in:\n{errors}");
        }
    }
}

#[test]
fn a_syntax_error_gives_its_position_but_not_the_line() {
    let errors = load_err(&format!("[oidc]\nclient_secret = \"{CLIENT_SECRET}"), &[]);
    assert!(
        errors.starts_with("configuration: line 2, column "),
        "{errors}"
    );
    assert!(!errors.contains(CLIENT_SECRET));
}

#[test]
fn the_masked_toml_shows_the_effective_setup_without_secrets() {
    let config = load_ok(
        &config_text(
            "[[routes]]\nprefix = \"/api\"\nupstream = \"http://127.0.0.1:1\"\ntoken = \"user\"\n",
        ),
        &[],
    );
    let masked = config.to_masked_toml();
    assert!(masked.contains("client_secret = \"***\""), "{masked}");
    assert!(masked.contains("keys = [\"k1:***\"]"), "{masked}");
    assert!(masked.contains("idle_timeout = \"30m\""), "{masked}");
    assert!(masked.contains("[[routes]]"), "{masked}");
    assert!(!masked.contains(CLIENT_SECRET));
    assert!(!masked.contains(&key("k1", 1)[3..]));
    let reparsed: toml::Table = masked.parse().expect("valid TOML");
    assert_eq!(
        reparsed["session"]["cookie_name"].as_str(),
        Some("__Host-ward")
    );
}

#[test]
fn validate_checks_a_configuration_built_in_code() {
    let mut config = load_ok(&config_text(""), &[]);
    assert_eq!(validate(&config), Ok(()));
    config.session.idle_timeout = Duration::ZERO;
    config.crypto.keys.clear();
    let errors = validate(&config).expect_err("two problems");
    assert_eq!(errors.errors().len(), 2, "{errors}");
}

#[test]
fn workers_default_to_the_cores_and_may_be_set() {
    let config = load_from_str(&config_text(""), &BTreeMap::new(), Path::new(".")).expect("valid");
    assert_eq!(config.server.workers, None);
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    assert_eq!(config.effective_workers(), cores);

    let text = config_text("[server]\nlisten = \"127.0.0.1:1111\"\nworkers = 3");
    let config = load_from_str(&text, &BTreeMap::new(), Path::new(".")).expect("valid");
    assert_eq!(config.effective_workers(), 3);
}

#[test]
fn workers_out_of_range_are_refused() {
    for (value, expected) in [
        ("0", "server.workers: 0 is out of range: 1 to 256"),
        ("257", "server.workers: 257 is out of range: 1 to 256"),
        ("-1", "server.workers: invalid value"),
        ("\"two\"", "server.workers: invalid type"),
    ] {
        let text = config_text(&format!("[server]\nworkers = {value}"));
        let errors = load_from_str(&text, &BTreeMap::new(), Path::new("."))
            .expect_err(value)
            .to_string();
        assert!(errors.contains(expected), "{value}: {errors}");
    }
}

#[test]
fn rate_limits_are_on_by_default_with_the_documented_values() {
    let config = load_ok(&config_text(""), &[]);
    let minute = Duration::from_secs(60);
    let limit = |limit| {
        Some(Limit {
            limit,
            window: minute,
        })
    };
    assert_eq!(config.rate_limit.login, limit(20));
    assert_eq!(config.rate_limit.api, limit(600));
    assert_eq!(config.rate_limit.anonymous, limit(300));
    assert_eq!(config.rate_limit.invalid_session, limit(30));
    assert_eq!(config.rate_limit.backend, RateLimitBackend::Local);
    let shown = describe_rate_limits(&config.rate_limit);
    assert!(
        shown.contains("rate limit login: 20 per 1m per client address"),
        "{shown}"
    );
}

#[test]
fn a_rate_limit_can_be_turned_off_or_changed_from_the_environment() {
    let config = load_ok(
        &config_text("[rate_limit]\nanonymous = \"off\"\nbackend = \"store\""),
        &[("WARD_RATE_LIMIT__LOGIN", "{ limit = 5, window = \"30s\" }")],
    );
    assert_eq!(config.rate_limit.anonymous, None);
    assert_eq!(
        config.rate_limit.login,
        Some(Limit {
            limit: 5,
            window: Duration::from_secs(30)
        })
    );
    assert_eq!(config.rate_limit.backend, RateLimitBackend::Store);
    assert!(describe_rate_limits(&config.rate_limit).contains("rate limit anonymous: off"));
}

#[test]
fn rate_limit_problems_are_reported_all_at_once() {
    // Values: every limit and window, with the other sections' problems.
    let lines = problems_with(
        "[session]\nidle_timeout = \"0s\"\n[rate_limit]\nlogin = { limit = 0, window = \"1m\" }\n\
         api = { limit = 10, window = \"0s\" }\nanonymous = { limit = 0, window = \"2d\" }",
    );
    for expected in [
        "rate_limit.login.limit: at least 1",
        "rate_limit.api.window: longer than zero",
        "rate_limit.anonymous.limit: at least 1",
        "rate_limit.anonymous.window: at most 1d",
        "session.idle_timeout",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(expected)),
            "no {expected:?} in {lines:#?}"
        );
    }
    // Types and unknown keys: every one, though the section then skips its value checks.
    let lines = problems_with(
        "[rate_limit]\nanonymous = \"on\"\n\
         invalid_session = { limit = 3, window = \"1m\", burst = 2 }\nbackend = \"redis\"",
    );
    for expected in [
        "rate_limit.anonymous: invalid value",
        "rate_limit.invalid_session.burst: unknown key",
        "rate_limit.backend: unknown variant",
    ] {
        assert!(
            lines.iter().any(|line| line.starts_with(expected)),
            "no {expected:?} in {lines:#?}"
        );
    }
}

#[test]
fn a_shared_rate_limit_needs_a_store_that_keeps_state() {
    assert_problem(
        "[store]\nkind = \"cookie\"\n[rate_limit]\nbackend = \"store\"",
        "rate_limit.backend: \"store\" needs a store that keeps state",
    );
}
