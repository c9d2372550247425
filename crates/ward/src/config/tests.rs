//! Loader-level tests: TOML + environment + `*_file` in, a `Config` or every problem out.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

pub(super) const CLIENT_SECRET: &str = "cl1ent-S3CRET-value";
const EXAMPLE: &str = include_str!("../../../../ward.example.toml");

pub(super) fn key(kid: &str, byte: u8) -> String {
    format!("{kid}:{}", STANDARD.encode([byte; 32]))
}

/// The smallest valid configuration, plus `extra` appended.
pub(super) fn config_text(extra: &str) -> String {
    format!(
        "[oidc]\nissuer = \"https://idp.example.com\"\nclient_id = \"ward\"\n\
         client_secret = \"{CLIENT_SECRET}\"\n\n[crypto]\nkeys = [\"{}\"]\n\n{extra}",
        key("k1", 1)
    )
}

pub(super) fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn load_ok(text: &str, vars: &[(&str, &str)]) -> Config {
    match load_from_str(text, &env(vars), Path::new("/base")) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid configuration, got:\n{errors}"),
    }
}

pub(super) fn load_err(text: &str, vars: &[(&str, &str)]) -> String {
    match load_from_str(text, &env(vars), Path::new("/base")) {
        Ok(_) => panic!("expected problems"),
        Err(errors) => errors.to_string(),
    }
}

/// Loads `config_text(extra)` and returns the problem lines.
pub(super) fn problems_with(extra: &str) -> Vec<String> {
    load_err(&config_text(extra), &[])
        .lines()
        .map(str::to_owned)
        .collect()
}

pub(super) fn assert_problem(extra: &str, expected_start: &str) {
    let lines = problems_with(extra);
    assert!(
        lines.iter().any(|line| line.starts_with(expected_start)),
        "no line starting with {expected_start:?} in {lines:#?}"
    );
}

#[test]
fn a_minimal_configuration_gets_the_documented_defaults() {
    let config = load_ok(&config_text(""), &[]);
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.server.public_url.as_str(), "http://localhost:8080/");
    assert_eq!(config.oidc.client_secret.expose(), CLIENT_SECRET);
    assert_eq!(config.oidc.client_auth, ClientAuth::ClientSecretBasic);
    assert_eq!(config.session.cookie_name, "__Host-ward");
    assert_eq!(config.session.idle_timeout, Duration::from_secs(1800));
    assert_eq!(
        config.session.absolute_timeout,
        Duration::from_secs(8 * 3600)
    );
    assert_eq!(config.store.kind, StoreKind::Embedded);
    assert_eq!(config.store.path, Path::new("/base/ward-data/ward.db"));
    assert!(config.store.url.is_none());
    assert_eq!(config.store.key_prefix, "ward:");
    assert!(config.admin.is_none());
    assert_eq!(config.crypto.keys.len(), 1);
    assert!(config.static_files.is_none());
    assert!(config.routes.is_empty());
    assert!(config.cookie_secure());
    assert_eq!(config.effective_cookie_name(), "__Host-ward");
}

#[test]
fn the_example_file_loads_with_secrets_from_the_environment() {
    let keys = format!("[\"{}\"]", key("k1", 3));
    let config = load_ok(
        EXAMPLE,
        &[
            ("WARD_OIDC__CLIENT_SECRET", CLIENT_SECRET),
            ("WARD_CRYPTO__KEYS", &keys),
        ],
    );
    assert_eq!(config.routes.len(), 1);
    assert_eq!(config.oidc.client_secret.expose(), CLIENT_SECRET);
}

#[test]
fn the_example_documents_every_accepted_key() {
    let documented = |key: &str| {
        EXAMPLE.lines().any(|line| {
            let line = line.trim_start_matches("# ");
            line.starts_with(&format!("{key} = "))
        })
    };
    for (section, key, _) in schema::KEYS {
        assert!(EXAMPLE.contains(&format!("[{section}]")), "[{section}]");
        assert!(
            documented(key),
            "{section}.{key} is not in ward.example.toml"
        );
    }
    for key in schema::ROUTE_KEYS {
        assert!(documented(key), "routes.{key} is not in ward.example.toml");
    }
}

#[test]
fn the_example_documents_nothing_the_build_rejects_as_unknown() {
    // Uncomment every commented-out key and section: none may be unknown (other problems,
    // such as both forms of a secret or a missing static dir, are expected).
    let uncommented: String = EXAMPLE
        .lines()
        .map(|line| {
            let rest = line.strip_prefix("# ").unwrap_or(line);
            let is_key = rest
                .split_once(" = ")
                .is_some_and(|(k, _)| k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            if is_key || rest.starts_with('[') {
                rest
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(uncommented.contains("\nclient_secret_file = "));
    assert!(uncommented.contains("\n[static]\ndir = "));
    assert!(uncommented.contains("\n[admin]\n"));
    let errors = load_err(&uncommented, &[]);
    // A key documented twice would be a syntax error, which hides every other check.
    assert!(!errors.starts_with("configuration: line"), "{errors}");
    assert!(!errors.contains("unknown"), "{errors}");
}

#[test]
fn environment_overrides_take_precedence_over_the_file() {
    let text = config_text("[server]\nlisten = \"127.0.0.1:1111\"\ntrusted_proxy_hops = 0");
    let config = load_ok(
        &text,
        &[
            ("WARD_SERVER__LISTEN", "127.0.0.1:2222"),
            ("WARD_SERVER__TRUSTED_PROXY_HOPS", "2"),
            ("WARD_SESSION__IDLE_TIMEOUT", "10m"),
            ("WARD_OIDC__CLIENT_SECRET", "from-env"),
            ("WARD_OIDC__SCOPES", r#"["openid"]"#),
            ("WARD_LOGOUT__ID_TOKEN_HINT", "true"),
        ],
    );
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:2222");
    assert_eq!(config.server.trusted_proxy_hops, 2);
    assert_eq!(config.session.idle_timeout, Duration::from_secs(600));
    assert_eq!(config.oidc.client_secret.expose(), "from-env");
    assert_eq!(config.oidc.scopes, ["openid"]);
    assert!(config.logout.id_token_hint);
}

#[test]
fn a_configuration_can_come_entirely_from_the_environment() {
    let keys = format!("[\"{}\"]", key("k1", 4));
    let config = load(
        Path::new("/nonexistent/ward.toml"),
        &env(&[
            ("WARD_OIDC__ISSUER", "https://idp.example.com"),
            ("WARD_OIDC__CLIENT_ID", "ward"),
            ("WARD_OIDC__CLIENT_SECRET", CLIENT_SECRET),
            ("WARD_CRYPTO__KEYS", &keys),
        ]),
    )
    .expect("loads from the environment alone");
    assert_eq!(config.oidc.client_id, "ward");
}

#[test]
fn a_missing_file_is_named_with_the_missing_keys() {
    let errors = load(Path::new("/nonexistent/ward.toml"), &BTreeMap::new())
        .expect_err("nothing configured")
        .to_string();
    let lines: Vec<&str> = errors.lines().collect();
    assert!(
        lines[0].starts_with("/nonexistent/ward.toml: file not found"),
        "{errors}"
    );
    for key in [
        "oidc.issuer",
        "oidc.client_id",
        "oidc.client_secret",
        "crypto.keys",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(key)),
            "{key} in {errors}"
        );
    }
}

#[test]
fn a_file_is_loaded_from_disk_with_paths_relative_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("dist")).expect("mkdir");
    std::fs::write(dir.path().join("secret"), format!("{CLIENT_SECRET}\n")).expect("write");
    std::fs::write(
        dir.path().join("keys"),
        format!("# primary\n{}\n", key("k2", 5)),
    )
    .expect("write");
    let text = "[oidc]\nissuer = \"https://idp.example.com\"\nclient_id = \"ward\"\n\
                client_secret_file = \"secret\"\n[crypto]\nkeys_file = \"keys\"\n\
                [static]\ndir = \"dist\"\n";
    let path = dir.path().join("ward.toml");
    std::fs::write(&path, text).expect("write");
    let config = load(&path, &BTreeMap::new()).expect("loads");
    assert_eq!(config.oidc.client_secret.expose(), CLIENT_SECRET);
    assert_eq!(config.crypto.keys[0].expose(), key("k2", 5));
    let static_dir = config.static_files.map(|s| s.dir);
    assert_eq!(static_dir, Some(dir.path().join("dist")));
}

#[test]
fn unknown_keys_are_reported_in_every_section_and_from_the_environment() {
    let text = "typo_top = 1\n".to_owned()
        + &config_text(
            "[server]\nlistn = \"x\"\n[nonsense]\na = 1\n\
         [[routes]]\nprefix = \"/api\"\nupstream = \"http://127.0.0.1:1\"\ntoken = \"user\"\n\
         timout = \"1s\"\n",
        );
    let errors = load_err(&text, &[("WARD_SESSION__IDLE", "1m")]);
    for expected in [
        "typo_top: unknown key",
        "nonsense: unknown section",
        "server.listn: unknown key; did you mean `listen`?",
        "routes[0].timout: unknown key; did you mean `timeout`?",
        "session.idle (from WARD_SESSION__IDLE): unknown key; did you mean `idle_timeout`?",
    ] {
        assert!(
            errors.lines().any(|l| l == expected),
            "{expected:?} in\n{errors}"
        );
    }
}

#[test]
fn three_problems_in_three_sections_are_three_messages() {
    let lines = problems_with(
        "[session]\nidle_timeout = \"30\"\n\
         [telemetry]\nlog_format = \"xml\"\n\
         [[routes]]\nprefix = \"api\"\nupstream = \"http://127.0.0.1:1\"\ntoken = \"none\"\n",
    );
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].starts_with("session.idle_timeout: \"30\" has no unit"));
    assert!(lines[1].starts_with("telemetry.log_format: unknown variant `xml`"));
    assert_eq!(lines[2], "routes[0].prefix: \"api\" must start with \"/\"");
}

#[test]
fn type_errors_name_the_key_and_value() {
    assert_problem(
        "[server]\ntrusted_proxy_hops = 300",
        "server.trusted_proxy_hops: invalid value",
    );
    assert_problem("[server]\nlisten = \"nowhere\"", "server.listen: invalid");
    assert_problem(
        "[session]\nabsolute_timeout = 8",
        "session.absolute_timeout: 8 has no unit",
    );
    assert_problem(
        "[store]\nkind = \"mongodb\"",
        "store.kind: unknown variant `mongodb`",
    );
    assert_problem(
        "[server]\ncors_origins = [1]",
        "server.cors_origins[0]: invalid type",
    );
    for (top, expected) in [
        ("server = 1", "server: must be a table ([server])"),
        (
            "routes = 1",
            "routes: must be an array of tables ([[routes]])",
        ),
    ] {
        let errors = load_err(&format!("{top}\n{}", config_text("")), &[]);
        assert_eq!(errors, expected);
    }
}

#[test]
fn a_route_missing_its_keys_reports_each_one() {
    let lines = problems_with("[[routes]]\nstrip_prefix = true\n");
    assert_eq!(
        lines,
        [
            "routes[0].prefix: required key is missing",
            "routes[0].upstream: required key is missing",
            "routes[0].token: required key is missing",
        ]
    );
}
