//! Loader-level tests of `[store]` (kinds, URL, key prefix) and `[admin]`: file, environment
//! and `*_file` in; a `Config` or every problem out, never a password or token.

use std::collections::BTreeMap;

use super::tests::{CLIENT_SECRET, assert_problem, config_text, load_err, load_ok, problems_with};
use super::*;

const STORE_PASSWORD: &str = "St0re-PASSW0RD";
const ADMIN_TOKEN: &str = "adm1n-T0KEN-0123456789abcdefghijklmnop";

/// `config_text` with a `[store]` of `kind` and `url`.
fn with_store(kind: &str, url: &str) -> String {
    config_text(&format!("[store]\nkind = \"{kind}\"\nurl = \"{url}\"\n"))
}

/// Every way these sections can leak a secret into a message, checked on `text`.
fn assert_no_secret(text: &str) {
    for secret in [
        STORE_PASSWORD,
        ADMIN_TOKEN,
        &ADMIN_TOKEN[..20],
        CLIENT_SECRET,
    ] {
        assert!(!text.contains(secret), "secret in:\n{text}");
    }
}

#[test]
fn a_redis_store_keeps_its_url_and_key_prefix() {
    let url = format!("rediss://ward:{STORE_PASSWORD}@cache.internal:6380/2");
    let text = config_text(&format!(
        "[store]\nkind = \"redis\"\nurl = \"{url}\"\nkey_prefix = \"shop.prod:\"\n"
    ));
    let config = load_ok(&text, &[]);
    assert_eq!(config.store.kind, StoreKind::Redis);
    assert_eq!(config.store.url.as_ref().map(|u| u.expose()), Some(&*url));
    assert_eq!(config.store.key_prefix, "shop.prod:");
}

#[test]
fn every_accepted_url_form_loads_with_its_kind() {
    for (kind, url) in [
        ("redis", "redis://127.0.0.1:6379"),
        ("redis", "redis+cluster://n1:7000,n2:7000,n3:7000"),
        ("redis", "rediss+cluster://ward:pw@n1.example:7000"),
        (
            "postgres",
            "postgres://ward:pw@db.internal/ward?sslmode=verify-full",
        ),
        ("postgres", "postgresql:///ward?host=/run/postgresql"),
    ] {
        let config = load_ok(&with_store(kind, url), &[]);
        assert_eq!(
            config.store.url.map(|u| u.expose().to_owned()),
            Some(url.into())
        );
    }
    let config = load_ok(&config_text("[store]\nkind = \"cookie\""), &[]);
    assert_eq!(config.store.kind, StoreKind::Cookie);
}

#[test]
fn shared_stores_require_a_url() {
    for kind in ["redis", "postgres"] {
        assert_problem(
            &format!("[store]\nkind = \"{kind}\""),
            &format!(
                "store.url: required when store.kind = \"{kind}\" (or store.url_file, or \
                 WARD_STORE__URL)"
            ),
        );
    }
}

#[test]
fn a_url_of_the_wrong_kind_is_refused_without_quoting_it() {
    let redis = format!("redis://:{STORE_PASSWORD}@cache:6379");
    let postgres = format!("postgres://ward:{STORE_PASSWORD}@db/ward");
    let cases = [
        (
            with_store("redis", &postgres),
            "store.url: must be a redis://, rediss://",
        ),
        (
            with_store("postgres", &redis),
            "store.url: must be a postgres:// or",
        ),
        (
            with_store("redis", &format!("{STORE_PASSWORD}@cache:6379")),
            "store.url: must be a redis://",
        ),
        (
            with_store("redis", &format!("redis://:{STORE_PASSWORD}@h1:1,h2:2")),
            "store.url: several hosts need redis+cluster://",
        ),
        (
            with_store(
                "redis",
                &format!("redis+cluster://:{STORE_PASSWORD}@n1,,n2"),
            ),
            "store.url: cluster seed 2 is empty",
        ),
        (
            with_store(
                "postgres",
                &format!("postgres://ward:{STORE_PASSWORD}@/ward"),
            ),
            "store.url: not a valid URL (empty host)",
        ),
    ];
    for (text, expected) in cases {
        let errors = load_err(&text, &[]);
        assert!(errors.starts_with(expected), "{expected:?} in\n{errors}");
        assert_no_secret(&errors);
    }
}

#[test]
fn a_url_is_an_error_for_stores_that_do_not_use_one() {
    for kind in ["memory", "embedded", "cookie"] {
        assert_problem(
            &format!("[store]\nkind = \"{kind}\"\nurl = \"redis://cache\""),
            &format!(
                "store.url: only used by store.kind = \"redis\" and \"postgres\", not \"{kind}\""
            ),
        );
    }
    // A blanked variable counts as unset.
    load_ok(&config_text(""), &[("WARD_STORE__URL", "")]);
}

#[test]
fn key_prefixes_are_limited_to_a_safe_charset() {
    assert_problem(
        "[store]\nkey_prefix = \"ward prod\"",
        "store.key_prefix: \"ward prod\" must be 1-64 characters of A-Z, a-z, 0-9, _, :, . and -",
    );
    assert_problem(
        "[store]\nkey_prefix = \"\"",
        "store.key_prefix: \"\" must be 1-64",
    );
    let long = "p".repeat(65);
    assert_problem(
        &format!("[store]\nkey_prefix = \"{long}\""),
        "store.key_prefix: ",
    );
}

#[test]
fn the_store_url_has_a_file_form_relative_to_the_base_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("redis://:{STORE_PASSWORD}@cache:6379/0");
    std::fs::write(dir.path().join("store-url"), format!("{url}\n")).expect("write");
    let text = config_text("[store]\nkind = \"redis\"\nurl_file = \"store-url\"\n");
    let config = load_from_str(&text, &BTreeMap::new(), dir.path()).expect("loads");
    assert_eq!(config.store.url.map(|u| u.expose().to_owned()), Some(url));

    // Malformed content is reported by key, never quoted.
    std::fs::write(dir.path().join("bad-url"), format!("{STORE_PASSWORD}\n")).expect("write");
    let text = config_text("[store]\nkind = \"redis\"\nurl_file = \"bad-url\"\n");
    let errors = load_from_str(&text, &BTreeMap::new(), dir.path())
        .expect_err("not a URL")
        .to_string();
    assert!(
        errors.starts_with("store.url: must be a redis://"),
        "{errors}"
    );
    assert_no_secret(&errors);
}

#[test]
fn both_forms_or_a_non_string_of_a_store_or_admin_secret_are_errors() {
    let lines = problems_with(&format!(
        "[store]\nkind = \"redis\"\nurl = \"redis://:{STORE_PASSWORD}@c\"\nurl_file = \"f\"\n\
         [admin]\ntoken = \"{ADMIN_TOKEN}\"\ntoken_file = \"f\"\n"
    ));
    assert_eq!(
        lines,
        [
            "store.url_file: set either url or url_file, not both",
            "admin.token_file: set either token or token_file, not both",
        ]
    );
    let lines = problems_with("[store]\nurl = 12345678\n[admin]\ntoken = 87654321\n");
    assert_eq!(
        lines,
        [
            "store.url: must be a string",
            "admin.token: must be a string"
        ]
    );
    let errors = load_err(
        &config_text(""),
        &[
            ("WARD_ADMIN__TOKEN", ADMIN_TOKEN),
            ("WARD_ADMIN__TOKEN_FILE", "/x"),
        ],
    );
    assert_eq!(
        errors,
        "admin.token_file (from WARD_ADMIN__TOKEN_FILE): set either token or token_file, not both"
    );
}

#[test]
fn store_settings_come_from_the_environment_over_the_file() {
    let url = format!("redis+cluster://:{STORE_PASSWORD}@n1:7000,n2:7000");
    let config = load_ok(
        &config_text("[store]\nkind = \"embedded\"\nurl_file = \"/nonexistent\"\n"),
        &[
            ("WARD_STORE__KIND", "redis"),
            ("WARD_STORE__URL", &url),
            ("WARD_STORE__KEY_PREFIX", "blue:"),
        ],
    );
    assert_eq!(config.store.kind, StoreKind::Redis);
    assert_eq!(config.store.url.map(|u| u.expose().to_owned()), Some(url));
    assert_eq!(config.store.key_prefix, "blue:");

    let errors = load_err(
        &config_text(""),
        &[
            ("WARD_STORE__KIND", "postgres"),
            ("WARD_STORE__URL", &format!("mysql://u:{STORE_PASSWORD}@db")),
        ],
    );
    assert!(
        errors.starts_with("store.url (from WARD_STORE__URL): must be a postgres://"),
        "{errors}"
    );
    assert_no_secret(&errors);
}

#[test]
fn an_admin_section_is_optional_and_enabled_by_any_admin_setting() {
    assert!(load_ok(&config_text(""), &[]).admin.is_none());
    let config = load_ok(
        &config_text(&format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"")),
        &[],
    );
    let admin = config.admin.expect("[admin] present");
    assert_eq!(admin.listen.to_string(), "127.0.0.1:9090");
    assert_eq!(admin.token.expose(), ADMIN_TOKEN);

    let config = load_ok(
        &config_text(""),
        &[
            ("WARD_ADMIN__TOKEN", ADMIN_TOKEN),
            ("WARD_ADMIN__LISTEN", "127.0.0.1:9999"),
        ],
    );
    let admin = config.admin.expect("enabled from the environment");
    assert_eq!(admin.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(admin.token.expose(), ADMIN_TOKEN);
}

#[test]
fn the_admin_token_has_a_file_form() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), format!("{ADMIN_TOKEN}\r\n")).expect("write");
    let text = config_text("[admin]\nlisten = \"[::1]:9091\"\ntoken_file = \"token\"\n");
    let config = load_from_str(&text, &BTreeMap::new(), dir.path()).expect("loads");
    let admin = config.admin.expect("[admin] present");
    assert_eq!(admin.token.expose(), ADMIN_TOKEN);
    assert_eq!(admin.listen.to_string(), "[::1]:9091");
}

#[test]
fn an_admin_token_is_required_and_at_least_32_characters() {
    assert_eq!(
        problems_with("[admin]\nlisten = \"127.0.0.1:9090\""),
        [
            "admin.token: required when [admin] is present (or admin.token_file, or \
          WARD_ADMIN__TOKEN)"
        ]
    );
    let short = &ADMIN_TOKEN[..31];
    let errors = load_err(&config_text(""), &[("WARD_ADMIN__TOKEN", short)]);
    assert!(
        errors.starts_with(
            "admin.token (from WARD_ADMIN__TOKEN): must be at least 32 characters: it is the \
             bearer secret"
        ),
        "{errors}"
    );
    assert_no_secret(&errors);
    load_ok(
        &config_text(""),
        &[("WARD_ADMIN__TOKEN", &ADMIN_TOKEN[..32])],
    );
}

#[test]
fn the_admin_listener_must_not_collide_with_the_server() {
    let token = format!("token = \"{ADMIN_TOKEN}\"");
    for (server, admin) in [
        ("127.0.0.1:8080", "127.0.0.1:8080"),
        ("0.0.0.0:8080", "127.0.0.1:8080"),
    ] {
        assert_eq!(
            problems_with(&format!(
                "[server]\nlisten = \"{server}\"\n[admin]\nlisten = \"{admin}\"\n{token}"
            )),
            [
                "admin.listen: must differ from server.listen (same port on the same or an \
              overlapping address)"
            ]
        );
    }
    // Port 0 picks a free port for each (as tests do), and any address is accepted.
    load_ok(
        &config_text(&format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{token}"
        )),
        &[],
    );
    load_ok(
        &config_text(&format!("[admin]\nlisten = \"0.0.0.0:9090\"\n{token}")),
        &[],
    );
}

#[test]
fn admin_shape_errors_name_the_key() {
    let errors = load_err(&format!("admin = 1\n{}", config_text("")), &[]);
    assert_eq!(errors, "admin: must be a table ([admin])");
    let lines = problems_with(&format!(
        "[admin]\ntokn = \"x\"\nlisten = \"nowhere\"\ntoken = \"{ADMIN_TOKEN}\""
    ));
    assert!(
        lines
            .iter()
            .any(|l| l == "admin.tokn: unknown key; did you mean `token`?"),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("admin.listen: invalid")),
        "{lines:#?}"
    );
}

#[test]
fn store_and_admin_problems_are_reported_together() {
    let lines = problems_with(
        "[store]\nkind = \"postgres\"\nkey_prefix = \"a b\"\n\
         [admin]\nlisten = \"127.0.0.1:8080\"\ntoken = \"short\"\n",
    );
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for start in [
        "store.url: required",
        "store.key_prefix: ",
        "admin.token: must be at least 32",
        "admin.listen: must differ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(start)),
            "{start} in {lines:#?}"
        );
    }
}

#[test]
fn the_masked_toml_hides_the_store_password_and_admin_token() {
    let text = config_text(&format!(
        "[store]\nkind = \"redis\"\n\
         url = \"rediss+cluster://ward:{STORE_PASSWORD}@n1:7000,n2:7000\"\n\
         [admin]\ntoken = \"{ADMIN_TOKEN}\"\n"
    ));
    let masked = load_ok(&text, &[]).to_masked_toml();
    assert!(
        masked.contains("url = \"rediss+cluster://ward:***@n1:7000,n2:7000\""),
        "{masked}"
    );
    assert!(masked.contains("key_prefix = \"ward:\""), "{masked}");
    assert!(
        masked.contains("[admin]\nlisten = \"127.0.0.1:9090\"\ntoken = \"***\""),
        "{masked}"
    );
    assert_no_secret(&masked);
    let reparsed: toml::Table = masked.parse().expect("valid TOML");
    assert_eq!(reparsed["store"]["kind"].as_str(), Some("redis"));

    let text = with_store(
        "postgres",
        &format!("postgres://ward@db/ward?password={STORE_PASSWORD}"),
    );
    let masked = load_ok(&text, &[]).to_masked_toml();
    assert!(
        masked.contains("url = \"postgres://ward@db/ward?password=***\""),
        "{masked}"
    );
    assert_no_secret(&masked);
    // No [admin] and no url: neither appears.
    let masked = load_ok(&config_text(""), &[]).to_masked_toml();
    assert!(
        !masked.contains("[admin]") && !masked.contains("\nurl ="),
        "{masked}"
    );
}

#[test]
fn validate_checks_store_and_admin_of_a_configuration_built_in_code() {
    let mut config = load_ok(&config_text(""), &[]);
    config.store.kind = StoreKind::Redis;
    config.admin = Some(AdminConfig {
        listen: config.server.listen,
        token: crate::secret::SecretString::new(ADMIN_TOKEN),
    });
    let errors = validate(&config).expect_err("two problems").to_string();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 2, "{errors}");
    assert!(lines[0].starts_with("store.url: required"));
    assert!(lines[1].starts_with("admin.listen: must differ"));
}

#[test]
fn a_redis_read_cache_is_off_unless_set_and_bounded() {
    let config = load_ok(&with_store("redis", "redis://127.0.0.1:6379"), &[]);
    assert_eq!(config.store.cache_ttl, std::time::Duration::ZERO);
    let text = format!(
        "{}cache_ttl = \"250ms\"\n",
        with_store("redis", "redis://127.0.0.1:6379")
    );
    let config = load_ok(&text, &[]);
    assert_eq!(
        config.store.cache_ttl,
        std::time::Duration::from_millis(250)
    );
    let config = load_ok(
        &with_store("redis", "redis://127.0.0.1:6379"),
        &[("WARD_STORE__CACHE_TTL", "1s")],
    );
    assert_eq!(config.store.cache_ttl, std::time::Duration::from_secs(1));
}

#[test]
fn a_read_cache_too_long_or_on_another_store_is_refused() {
    assert_problem(
        "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\ncache_ttl = \"11s\"\n",
        "store.cache_ttl: at most 10s",
    );
    assert_problem(
        "[store]\nkind = \"embedded\"\ncache_ttl = \"1s\"\n",
        "store.cache_ttl: only used by store.kind = \"redis\", not \"embedded\"",
    );
    assert_problem(
        "[store]\nkind = \"postgres\"\nurl = \"postgres://db/ward\"\ncache_ttl = \"1s\"\n",
        "store.cache_ttl: only used by store.kind = \"redis\", not \"postgres\"",
    );
    assert_problem(
        "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\ncache_ttl = \"soon\"\n",
        "store.cache_ttl",
    );
}

#[test]
fn the_redis_client_cache_is_off_unless_set() {
    let config = load_ok(&with_store("redis", "redis://127.0.0.1:6379"), &[]);
    assert!(!config.store.client_cache);
    let text = format!(
        "{}client_cache = true\n",
        with_store("redis", "rediss://127.0.0.1:6380")
    );
    assert!(load_ok(&text, &[]).store.client_cache);
    let config = load_ok(
        &with_store("redis", "redis://127.0.0.1:6379"),
        &[("WARD_STORE__CLIENT_CACHE", "true")],
    );
    assert!(config.store.client_cache);
}

#[test]
fn the_client_cache_is_refused_off_redis_on_a_cluster_and_with_cache_ttl() {
    assert_problem(
        "[store]\nkind = \"embedded\"\nclient_cache = true\n",
        "store.client_cache: only used by store.kind = \"redis\", not \"embedded\"",
    );
    assert_problem(
        "[store]\nkind = \"postgres\"\nurl = \"postgres://db/ward\"\nclient_cache = true\n",
        "store.client_cache: only used by store.kind = \"redis\", not \"postgres\"",
    );
    assert_problem(
        "[store]\nkind = \"redis\"\nurl = \"redis+cluster://n1:7000,n2:7001\"\nclient_cache = true\n",
        "store.client_cache: not supported on a Redis Cluster",
    );
    assert_problem(
        "[store]\nkind = \"redis\"\nurl = \"REDISS+CLUSTER://n1:7000\"\nclient_cache = true\n",
        "store.client_cache: not supported on a Redis Cluster",
    );
    assert_problem(
        "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\ncache_ttl = \"1s\"\nclient_cache = true\n",
        "store.client_cache: cannot be combined with store.cache_ttl",
    );
    assert_problem(
        "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\nclient_cache = \"yes\"\n",
        "store.client_cache",
    );
}
