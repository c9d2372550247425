//! Loader-level tests of what the proxy and refresh read: `oidc.refresh_skew`, body limits
//! (`server.max_request_body`, per route), token modes and the scopes of `token = "client"`.

use std::time::Duration;

use super::tests::{assert_problem, config_text, load_err, load_ok, problems_with};
use super::*;

/// A `[[routes]]` entry on `/api` with `token` and extra `lines`.
fn route(token: &str, lines: &str) -> String {
    format!(
        "[[routes]]\nprefix = \"/api\"\nupstream = \"http://127.0.0.1:7001\"\ntoken = \"{token}\"\n\
         {lines}\n"
    )
}

#[test]
fn the_new_keys_have_their_documented_defaults() {
    let config = load_ok(&config_text(&route("user", "")), &[]);
    assert_eq!(config.oidc.refresh_skew, Duration::from_secs(60));
    assert_eq!(config.server.max_request_body, 10 * 1024 * 1024);
    assert_eq!(config.routes[0].max_request_body, None);
    assert_eq!(config.routes[0].scopes, None);
}

#[test]
fn body_limits_are_bytes_or_sizes_with_a_unit() {
    let text = config_text(&format!(
        "[server]\nmax_request_body = 1048576\n{}{}",
        route("user", "max_request_body = \"1GiB\""),
        route("none", "max_request_body = \"64kB\"").replace("/api", "/public")
    ));
    let config = load_ok(&text, &[]);
    assert_eq!(config.server.max_request_body, 1 << 20);
    assert_eq!(config.routes[0].max_request_body, Some(1 << 30));
    assert_eq!(config.routes[1].max_request_body, Some(64_000));
}

#[test]
fn refresh_skew_and_the_body_limit_come_from_the_environment() {
    for (value, bytes) in [("2097152", 2 << 20), ("512KiB", 512 << 10)] {
        let config = load_ok(
            &config_text(""),
            &[
                ("WARD_SERVER__MAX_REQUEST_BODY", value),
                ("WARD_OIDC__REFRESH_SKEW", "30s"),
            ],
        );
        assert_eq!(config.server.max_request_body, bytes, "{value}");
        assert_eq!(config.oidc.refresh_skew, Duration::from_secs(30));
    }
    let errors = load_err(
        &config_text(""),
        &[
            ("WARD_SERVER__MAX_REQUEST_BODY", "10mb"),
            ("WARD_OIDC__REFRESH_SKEW", "60"),
        ],
    );
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(
        lines,
        [
            "oidc.refresh_skew (from WARD_OIDC__REFRESH_SKEW): \"60\" has no unit (use ms, s, m, \
             h or d, e.g. \"30m\")",
            "server.max_request_body (from WARD_SERVER__MAX_REQUEST_BODY): \"10mb\": unknown unit \
             \"mb\"; units are case-sensitive, did you mean \"MB\"?",
        ]
    );
}

#[test]
fn malformed_sizes_name_their_key() {
    assert_problem(
        "[server]\nmax_request_body = -1",
        "server.max_request_body: -1 is negative",
    );
    assert_problem(
        "[server]\nmax_request_body = \"1.5GiB\"",
        "server.max_request_body: \"1.5GiB\": use a whole number",
    );
    assert_problem(
        "[server]\nmax_request_body = \"64KB\"",
        "server.max_request_body: \"64KB\": \"KB\" is ambiguous",
    );
    assert_problem(
        &route("user", "max_request_body = true"),
        "routes[0].max_request_body: invalid type: boolean `true`, expected a size in bytes",
    );
}

#[test]
fn body_limits_must_be_positive_and_at_most_64_gib() {
    let lines = problems_with(&format!(
        "[server]\nmax_request_body = 0\n{}{}",
        route("user", "max_request_body = \"0B\""),
        route("user", "max_request_body = \"65GiB\"").replace("/api", "/upload"),
    ));
    assert_eq!(
        lines,
        [
            "server.max_request_body: must be greater than zero",
            "routes[0].max_request_body: must be greater than zero",
            "routes[1].max_request_body: 65GiB is more than the largest accepted limit, 64GiB",
        ]
    );
    load_ok(&config_text("[server]\nmax_request_body = \"64GiB\""), &[]);
}

#[test]
fn refresh_skew_must_be_shorter_than_the_session() {
    let text = config_text("").replace(
        "client_id = \"ward\"",
        "client_id = \"ward\"\nrefresh_skew = \"1h\"",
    );
    let with_session = |absolute: &str| {
        format!("{text}[session]\nabsolute_timeout = \"{absolute}\"\nidle_timeout = \"1m\"\n")
    };
    assert_eq!(
        load_err(&with_session("1h"), &[]),
        "oidc.refresh_skew: must be shorter than session.absolute_timeout (1h)"
    );
    assert_eq!(
        load_err(&with_session("30m"), &[]),
        "oidc.refresh_skew: must be shorter than session.absolute_timeout (30m)"
    );
    load_ok(&with_session("61m"), &[]);
    let zero = config_text("").replace(
        "client_id = \"ward\"",
        "client_id = \"ward\"\nrefresh_skew = \"0s\"",
    );
    assert_eq!(load_ok(&zero, &[]).oidc.refresh_skew, Duration::ZERO);
}

#[test]
fn every_token_mode_parses_and_others_are_refused() {
    for (text, mode) in [
        ("user", TokenMode::User),
        ("user-optional", TokenMode::UserOptional),
        ("client", TokenMode::Client),
        ("none", TokenMode::None),
    ] {
        let config = load_ok(&config_text(&route(text, "")), &[]);
        assert_eq!(config.routes[0].token, mode, "{text}");
    }
    assert_problem(
        &route("user_optional", ""),
        "routes[0].token: unknown variant `user_optional`, expected one of `user`, \
         `user-optional`, `client`, `none`",
    );
}

#[test]
fn a_client_route_takes_scopes_or_none() {
    let config = load_ok(
        &config_text(&route(
            "client",
            "scopes = [\"reports:read\", \"api://x/.default\"]",
        )),
        &[],
    );
    let scopes = config.routes[0].scopes.as_deref().unwrap_or_default();
    assert_eq!(scopes, ["reports:read", "api://x/.default"]);
    let config = load_ok(&config_text(&route("client", "")), &[]);
    assert_eq!(config.routes[0].scopes, None);
}

#[test]
fn scopes_are_refused_on_routes_without_a_client_token() {
    for (index, token) in ["user", "user-optional", "none"].iter().enumerate() {
        let lines = problems_with(&route(token, "scopes = [\"api\"]"));
        assert_eq!(
            lines,
            [
                "routes[0].scopes: only applies to token = \"client\" (a user's token carries the \
              scopes of the login, oidc.scopes)"
            ],
            "{index}: {token}"
        );
    }
}

#[test]
fn client_scopes_must_be_listed_single_tokens() {
    assert_eq!(
        problems_with(&route("client", "scopes = []")),
        [
            "routes[0].scopes: must list at least one scope; leave scopes out to request the \
          client's default scopes"
        ]
    );
    assert_eq!(
        problems_with(&route(
            "client",
            "scopes = [\"ok\", \"\", \"read write\", \"a\\\"b\"]"
        )),
        [
            "routes[0].scopes[1]: \"\" must be one scope: visible ASCII without spaces, '\"' or '\\'",
            "routes[0].scopes[2]: \"read write\" must be one scope: visible ASCII without spaces, \
             '\"' or '\\'",
            "routes[0].scopes[3]: \"a\\\"b\" must be one scope: visible ASCII without spaces, \
             '\"' or '\\'",
        ]
    );
    assert_problem(
        &route("client", "scopes = \"api\""),
        "routes[0].scopes: invalid type: string \"api\", expected a sequence",
    );
    assert_problem(
        &route("client", "scope = [\"api\"]"),
        "routes[0].scope: unknown key",
    );
}

#[test]
fn problems_of_the_new_keys_are_reported_together() {
    let text = config_text(&format!(
        "[server]\nmax_request_body = 0\n[session]\nabsolute_timeout = \"1m\"\n{}",
        route("user", "scopes = [\"x\"]\nmax_request_body = \"1XB\"")
    ));
    let lines: Vec<String> = load_err(&text, &[]).lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        [
            "routes[0].max_request_body: \"1XB\": unknown unit \"XB\" (use B, KiB, MiB, GiB, kB, \
             MB or GB)",
            "server.max_request_body: must be greater than zero",
            "session.idle_timeout: must not exceed session.absolute_timeout",
            "oidc.refresh_skew: must be shorter than session.absolute_timeout (1m)",
        ],
    );
}

#[test]
fn the_masked_toml_writes_sizes_with_units_and_keeps_scopes() {
    let config = load_ok(
        &config_text(&route(
            "client",
            "scopes = [\"reports:read\"]\nmax_request_body = 1073741824",
        )),
        &[],
    );
    let masked = config.to_masked_toml();
    assert!(masked.contains("max_request_body = \"10MiB\""), "{masked}");
    assert!(masked.contains("max_request_body = \"1GiB\""), "{masked}");
    assert!(masked.contains("refresh_skew = \"1m\""), "{masked}");
    assert!(masked.contains("token = \"client\""), "{masked}");
    assert!(masked.contains("scopes = [\"reports:read\"]"), "{masked}");
    let reloaded = load_ok(
        &masked.replace("\"***\"", "\"s\"").replace(
            "[\"k1:***\"]",
            &format!("[\"{}\"]", super::tests::key("k1", 1)),
        ),
        &[],
    );
    assert_eq!(reloaded.routes[0].max_request_body, Some(1 << 30));
    assert_eq!(reloaded.server.max_request_body, 10 << 20);
}

#[test]
fn validate_checks_the_new_keys_of_a_configuration_built_in_code() {
    let mut config = load_ok(&config_text(&route("user", "")), &[]);
    config.oidc.refresh_skew = config.session.absolute_timeout;
    config.server.max_request_body = 0;
    config.routes[0].scopes = Some(vec!["api".into()]);
    config.routes[0].max_request_body = Some(0);
    let errors = validate(&config).expect_err("four problems");
    assert_eq!(errors.errors().len(), 4, "{errors}");
}
