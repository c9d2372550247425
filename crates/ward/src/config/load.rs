//! Loading: the TOML file, then `WARD_<SECTION>__<KEY>` overrides, then the `*_file` secrets,
//! then each section on its own, then validation; every problem of every stage is reported
//! together, and nothing is returned unless there are none.
//!
//! Relative paths (`*_file`, `static.dir`, `store.path`) resolve against the directory of the
//! configuration file, so the same file works whatever directory Ward starts in.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use toml::{Table, Value};

use super::RateLimitConfig;
use super::errors::{ConfigError, ConfigErrors, Problems};
use super::model::*;
use super::outbound::OutboundConfig;
use super::secrets::{self, KeyEntry};
use super::validate::{self, Draft};
use super::{env, schema, sections};
use crate::secret::SecretString;

/// Loads `path` with overrides from `env` (the binary passes `std::env::vars()`).
///
/// A missing file counts as an empty one, so a configuration made only of `WARD_*` variables
/// works; when that leaves problems, the first one says the file was not found.
pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<Config, ConfigErrors> {
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(&text, env, base_dir, &source),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            load_text("", env, base_dir, &source).map_err(|mut errors| {
                errors.0.insert(
                    0,
                    ConfigError {
                        path: source,
                        message: "file not found; every setting must then come from WARD_* \
                                  variables, and these are missing"
                            .to_owned(),
                    },
                );
                errors
            })
        }
        Err(error) => Err(ConfigErrors(vec![ConfigError {
            path: source,
            message: format!("cannot read: {error}"),
        }])),
    }
}

/// Like [`load`] for a configuration held in memory; relative paths resolve against `base_dir`.
pub fn load_from_str(
    toml_text: &str,
    env: &BTreeMap<String, String>,
    base_dir: &Path,
) -> Result<Config, ConfigErrors> {
    load_text(toml_text, env, base_dir, "configuration")
}

fn load_text(
    text: &str,
    env: &BTreeMap<String, String>,
    base_dir: &Path,
    source: &str,
) -> Result<Config, ConfigErrors> {
    let mut table = text
        .parse::<Table>()
        .map_err(|error| ConfigErrors(vec![syntax_error(text, &error, source)]))?;
    let mut problems = Problems::default();
    env::apply(&mut table, env, &mut problems);
    let mut parsed = Parsed::from_table(table, base_dir, &mut problems);
    let proxy = super::outbound::proxy_from_env(env, &mut problems);
    if let Some(outbound) = &mut parsed.outbound {
        outbound.proxy = proxy;
    }
    validate::check(&parsed.draft(), &mut problems);
    problems.into_result(parsed.into_config())
}

/// A syntax error as `line:column: what`, without the source line `toml` would quote: that
/// line may hold a secret.
fn syntax_error(text: &str, error: &toml::de::Error, source: &str) -> ConfigError {
    let location = error.span().map(|span| {
        let before = text.get(..span.start).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        format!("line {line}, column {column}: ")
    });
    ConfigError {
        path: source.to_owned(),
        message: format!(
            "{}{}",
            location.unwrap_or_default(),
            error.message().trim_end().replace('\n', "; ")
        ),
    }
}

/// The sections as far as they deserialized; `None` where problems were reported.
struct Parsed {
    server: Option<ServerConfig>,
    oidc: Option<OidcConfig>,
    client_secret: Option<SecretString>,
    session: Option<SessionConfig>,
    login: Option<LoginConfig>,
    logout: Option<LogoutConfig>,
    store: Option<StoreConfig>,
    keys: Option<Vec<KeyEntry>>,
    rate_limit: Option<RateLimitConfig>,
    /// `Some(None)`: no `[static]`.
    static_files: Option<Option<StaticConfig>>,
    telemetry: Option<TelemetryConfig>,
    outbound: Option<OutboundConfig>,
    /// `Some(None)`: no `[admin]`.
    admin: Option<Option<AdminConfig>>,
    routes: Option<Vec<Option<RouteConfig>>>,
    composites: Option<Vec<Option<super::CompositeConfig>>>,
}

impl Parsed {
    fn from_table(mut table: Table, base_dir: &Path, problems: &mut Problems) -> Self {
        let unknown: Vec<String> = table
            .keys()
            .filter(|key| !schema::SECTIONS.contains(&key.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            let what = match table.remove(&key) {
                Some(Value::Table(_)) => "unknown section",
                _ => "unknown key",
            };
            let message = super::suggest::unknown(&key, what);
            problems.push(key, message);
        }
        let mut section = |name: &str| take_table(&mut table, name, problems);
        let (server, oidc, session, login, logout, store, crypto, telemetry) = (
            section("server"),
            section("oidc"),
            section("session"),
            section("login"),
            section("logout"),
            section("store"),
            section("crypto"),
            section("telemetry"),
        );
        let rate_limit = section("rate_limit");
        let outbound = section("outbound");
        let statics = table.remove("static");
        let admin = table.remove("admin");
        let routes = table.remove("routes");
        let composites = table.remove("composites");

        let (oidc, client_secret) = parse_oidc(oidc, base_dir, problems);
        Self {
            server: parse_server(server, base_dir, problems),
            oidc,
            client_secret,
            session: session.and_then(|t| sections::deserialize("session", t, &[], problems)),
            login: login.and_then(|t| sections::deserialize("login", t, &[], problems)),
            logout: logout.and_then(|t| sections::deserialize("logout", t, &[], problems)),
            store: parse_store(store, base_dir, problems),
            keys: parse_crypto(crypto, base_dir, problems),
            rate_limit: rate_limit
                .and_then(|t| sections::deserialize("rate_limit", t, &[], problems)),
            static_files: parse_static(statics, base_dir, problems),
            telemetry: telemetry.and_then(|t| sections::deserialize("telemetry", t, &[], problems)),
            outbound: outbound
                .and_then(|t| sections::deserialize("outbound", t, &[], problems))
                .map(|o| super::outbound::resolve(o, base_dir)),
            admin: parse_admin(admin, base_dir, problems),
            routes: parse_array(routes, "routes", &["prefix", "upstream", "token"], problems),
            composites: parse_array(composites, "composites", &["path", "parts"], problems),
        }
    }

    fn draft(&self) -> Draft<'_> {
        let routes = self.routes.as_deref().unwrap_or_default();
        Draft {
            server: self.server.as_ref(),
            oidc: self.oidc.as_ref(),
            client_secret: self.client_secret.as_ref(),
            session: self.session.as_ref(),
            login: self.login.as_ref(),
            logout: self.logout.as_ref(),
            store: self.store.as_ref(),
            keys: self.keys.as_deref(),
            rate_limit: self.rate_limit.as_ref(),
            static_files: self.static_files.as_ref().map(Option::as_ref),
            telemetry: self.telemetry.as_ref(),
            outbound: self.outbound.as_ref(),
            admin: self.admin.as_ref().map(Option::as_ref),
            routes: routes
                .iter()
                .enumerate()
                .filter_map(|(index, route)| Some((index, route.as_ref()?)))
                .collect(),
            composites: self
                .composites
                .as_deref()
                .unwrap_or_default()
                .iter()
                .enumerate()
                .filter_map(|(index, composite)| Some((index, composite.as_ref()?)))
                .collect(),
        }
    }

    /// The whole configuration, when every section deserialized.
    fn into_config(self) -> Option<Config> {
        let mut oidc = self.oidc?;
        oidc.client_secret = self.client_secret?;
        let keys = self.keys?.into_iter().map(|entry| entry.value).collect();
        Some(Config {
            server: self.server?,
            oidc,
            session: self.session?,
            login: self.login?,
            logout: self.logout?,
            store: self.store?,
            crypto: CryptoConfig { keys },
            rate_limit: self.rate_limit?,
            static_files: self.static_files?,
            telemetry: self.telemetry?,
            outbound: self.outbound?,
            admin: self.admin?,
            routes: self.routes?.into_iter().collect::<Option<Vec<_>>>()?,
            composites: self.composites?.into_iter().collect::<Option<Vec<_>>>()?,
        })
    }
}

/// `[name]` as a table: empty when absent, `None` (reported) when not a table.
fn take_table(table: &mut Table, name: &str, problems: &mut Problems) -> Option<Table> {
    match table.remove(name) {
        None => Some(Table::new()),
        Some(Value::Table(section)) => Some(section),
        Some(_) => {
            problems.push(name, format!("must be a table ([{name}])"));
            None
        }
    }
}

/// `[server]`; the TLS files resolve against the configuration's directory.
fn parse_server(
    table: Option<Table>,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<ServerConfig> {
    let server = sections::deserialize::<ServerConfig>("server", table?, &[], problems)?;
    Some(ServerConfig {
        tls_cert: server.tls_cert.map(|path| base_dir.join(path)),
        tls_key: server.tls_key.map(|path| base_dir.join(path)),
        ..server
    })
}

fn parse_oidc(
    table: Option<Table>,
    base_dir: &Path,
    problems: &mut Problems,
) -> (Option<OidcConfig>, Option<SecretString>) {
    let Some(mut table) = table else {
        return (None, None);
    };
    let secret = secrets::take_client_secret(&mut table, base_dir, problems);
    let oidc =
        sections::deserialize::<OidcConfig>("oidc", table, &["issuer", "client_id"], problems).map(
            |mut oidc| {
                oidc.private_key_file = oidc.private_key_file.map(|path| base_dir.join(path));
                oidc.client_cert = oidc.client_cert.map(|path| base_dir.join(path));
                oidc.client_key = oidc.client_key.map(|path| base_dir.join(path));
                oidc
            },
        );
    (oidc, secret)
}

fn parse_crypto(
    table: Option<Table>,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<Vec<KeyEntry>> {
    let mut table = table?;
    let keys = secrets::take_keys(&mut table, base_dir, problems);
    // The keys are checked above and in `validate`; deserializing the rest (with an empty
    // stand-in for `keys`) still catches unknown keys.
    table.insert("keys".to_owned(), Value::Array(Vec::new()));
    let rest = sections::deserialize::<CryptoConfig>("crypto", table, &[], problems);
    rest.and(keys)
}

/// `[store]`; `url` is a secret (it may hold a password), taken out before serde.
fn parse_store(
    table: Option<Table>,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<StoreConfig> {
    let mut table = table?;
    let url = secrets::take_secret(&mut table, "store", "url", base_dir, problems);
    let store = sections::deserialize::<StoreConfig>("store", table, &[], problems)?;
    Some(StoreConfig {
        path: base_dir.join(&store.path),
        url: url?,
        ..store
    })
}

/// A section whose absence means "off": `Some(None)` when absent, `None` (reported) when not a
/// table.
fn optional_table(
    value: Option<Value>,
    name: &str,
    problems: &mut Problems,
) -> Option<Option<Table>> {
    match value {
        None => Some(None),
        Some(Value::Table(table)) => Some(Some(table)),
        Some(_) => {
            problems.push(name, format!("must be a table ([{name}])"));
            None
        }
    }
}

/// `[admin]`: absent is no admin listener; present needs a token (checked in `validate`).
fn parse_admin(
    value: Option<Value>,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<Option<AdminConfig>> {
    let Some(mut table) = optional_table(value, "admin", problems)? else {
        return Some(None);
    };
    let token = secrets::take_secret(&mut table, "admin", "token", base_dir, problems);
    let admin = sections::deserialize::<AdminConfig>("admin", table, &[], problems)?;
    Some(Some(AdminConfig {
        token: token?.unwrap_or_default(),
        ..admin
    }))
}

fn parse_static(
    value: Option<Value>,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<Option<StaticConfig>> {
    let Some(table) = optional_table(value, "static", problems)? else {
        return Some(None);
    };
    let parsed = sections::deserialize::<StaticConfig>("static", table, &["dir"], problems)?;
    Some(Some(StaticConfig {
        dir: base_dir.join(parsed.dir),
        ..parsed
    }))
}

/// An array of tables (`[[routes]]`, `[[composites]]`), each entry deserialized on its own.
fn parse_array<T: serde::de::DeserializeOwned>(
    value: Option<Value>,
    name: &str,
    required: &[&str],
    problems: &mut Problems,
) -> Option<Vec<Option<T>>> {
    let items = match value {
        None => return Some(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            problems.push(name, format!("must be an array of tables ([[{name}]])"));
            return None;
        }
    };
    let entries = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let path = format!("{name}[{index}]");
            match item {
                Value::Table(table) => sections::deserialize(&path, table, required, problems),
                _ => {
                    problems.push(path, format!("must be a table ([[{name}]])"));
                    None
                }
            }
        })
        .collect();
    Some(entries)
}
