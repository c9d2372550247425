//! Checks of `[store]`: which kinds take a URL, the URL forms each accepts, the key prefix.
//!
//! Accepted `store.url` forms (the backends parse them; this only makes sure they can):
//!
//! - `redis`: `redis://[[user]:password@]host[:port][/db][?…]`, or `rediss://…` for TLS.
//! - `redis` (cluster): `redis+cluster://[[user]:password@]host[:port][,host[:port]…][?…]`, or
//!   `rediss+cluster://…` for TLS: a comma-separated list of seed nodes sharing one user and
//!   password, no database (a cluster has only database 0). Everything after `://` up to the
//!   first `/`, `?` or `#` is the authority; the user information ends at its last `@`.
//! - `postgres`: `postgres://[user[:password]@]host[:port][/database][?…]` or `postgresql://…`;
//!   one host, or `postgres:///database?host=/socket/dir` for a Unix socket. Every accepted
//!   PostgreSQL URL parses as a `url::Url`.
//!
//! The URL may carry a password, so no message here quotes it, not even its scheme.

use url::Url;

use super::errors::Problems;
use super::model::{StoreConfig, StoreKind};

const URL_KEY: &str = "store.url";

/// Checks `store` as a whole: the URL against the kind, and the key prefix.
/// Longest `store.cache_ttl`.
const MAX_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) fn check_store(store: &StoreConfig, out: &mut Problems) {
    // An empty value (a blanked WARD_STORE__URL) counts as unset.
    let url = store
        .url
        .as_ref()
        .map(|url| url.expose())
        .filter(|url| !url.is_empty());
    match (store.kind, url) {
        (StoreKind::Redis | StoreKind::Postgres, None) => out.push(
            URL_KEY,
            format!(
                "required when store.kind = \"{}\" (or store.url_file, or WARD_STORE__URL)",
                kind_name(store.kind)
            ),
        ),
        (StoreKind::Redis, Some(url)) => report(redis_url(url), out),
        (StoreKind::Postgres, Some(url)) => report(postgres_url(url), out),
        (StoreKind::Memory | StoreKind::Embedded | StoreKind::Cookie, Some(_)) => out.push(
            URL_KEY,
            format!(
                "only used by store.kind = \"redis\" and \"postgres\", not \"{}\"",
                kind_name(store.kind)
            ),
        ),
        (StoreKind::Memory | StoreKind::Embedded | StoreKind::Cookie, None) => {}
    }
    if store.cache_ttl > MAX_CACHE_TTL {
        out.push(
            "store.cache_ttl",
            format!(
                "at most {}s: a logout on another instance must not take longer to arrive",
                MAX_CACHE_TTL.as_secs()
            ),
        );
    } else if !store.cache_ttl.is_zero() && store.kind != StoreKind::Redis {
        out.push(
            "store.cache_ttl",
            format!(
                "only used by store.kind = \"redis\", not \"{}\" (the embedded store already \
                 serves repeated reads from memory, exactly)",
                kind_name(store.kind)
            ),
        );
    }
    if store.client_cache {
        check_client_cache(store, url, out);
    }
    if !is_key_prefix(&store.key_prefix) {
        out.push(
            "store.key_prefix",
            format!(
                "{:?} must be 1-64 characters of A-Z, a-z, 0-9, _, :, . and -",
                store.key_prefix
            ),
        );
    }
}

/// `store.client_cache`: Redis on one server, and not together with `cache_ttl` (whose
/// bounded staleness it replaces).
fn check_client_cache(store: &StoreConfig, url: Option<&str>, out: &mut Problems) {
    const KEY: &str = "store.client_cache";
    if store.kind != StoreKind::Redis {
        out.push(
            KEY,
            format!(
                "only used by store.kind = \"redis\", not \"{}\"",
                kind_name(store.kind)
            ),
        );
    } else if url.is_some_and(is_cluster_url) {
        out.push(
            KEY,
            "not supported on a Redis Cluster (redis+cluster://): tracking is per node and is \
             lost when the cluster connection reconnects a node",
        );
    } else if !store.cache_ttl.is_zero() {
        out.push(
            KEY,
            "cannot be combined with store.cache_ttl: choose one (client_cache is exact, \
             cache_ttl lets another instance's logout arrive up to cache_ttl later)",
        );
    }
}

fn is_cluster_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("redis+cluster")
            || scheme.eq_ignore_ascii_case("rediss+cluster")
    })
}

fn report(result: Result<(), String>, out: &mut Problems) {
    if let Err(reason) = result {
        out.push(URL_KEY, reason);
    }
}

fn kind_name(kind: StoreKind) -> &'static str {
    match kind {
        StoreKind::Memory => "memory",
        StoreKind::Embedded => "embedded",
        StoreKind::Redis => "redis",
        StoreKind::Postgres => "postgres",
        StoreKind::Cookie => "cookie",
    }
}

/// A Redis key prefix; the PostgreSQL backend maps every character but letters, digits and `_`
/// to `_` to build its table names, so the same charset serves both.
fn is_key_prefix(prefix: &str) -> bool {
    (1..=64).contains(&prefix.len())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_:.-".contains(&b))
}

fn redis_url(text: &str) -> Result<(), String> {
    let scheme = text.split_once("://").map(|(scheme, _)| scheme);
    match scheme.map(str::to_ascii_lowercase).as_deref() {
        Some("redis" | "rediss") => redis_standalone_url(text),
        Some("redis+cluster" | "rediss+cluster") => redis_cluster_url(text),
        _ => Err(
            "must be a redis://, rediss://, redis+cluster:// or rediss+cluster:// URL \
             for store.kind = \"redis\""
                .into(),
        ),
    }
}

fn redis_standalone_url(text: &str) -> Result<(), String> {
    if Authority::of(text).hosts.contains(',') {
        return Err("several hosts need redis+cluster:// (or rediss+cluster://)".into());
    }
    let url = parse(text)?;
    require_host(&url)?;
    no_fragment(&url)?;
    let db = url.path().strip_prefix('/').unwrap_or(url.path());
    if !db.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the path must be empty or a database number (redis://host:6379/0)".into());
    }
    Ok(())
}

/// A URL cut around its host list, which `url::Url` cannot parse when it has several hosts.
struct Authority<'a> {
    /// `scheme://`.
    scheme: &'a str,
    /// `user:password@`, or empty.
    userinfo: &'a str,
    /// `host[:port][,host[:port]…]`.
    hosts: &'a str,
    /// From the first `/`, `?` or `#` after the authority on.
    tail: &'a str,
}

impl<'a> Authority<'a> {
    fn of(text: &'a str) -> Self {
        let split = text.find("://").map_or(0, |at| at + 3);
        let (scheme, rest) = text.split_at(split);
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let hosts_start = authority.rfind('@').map_or(0, |at| at + 1);
        let (userinfo, hosts) = authority.split_at(hosts_start);
        Self {
            scheme,
            userinfo,
            hosts,
            tail,
        }
    }
}

fn redis_cluster_url(text: &str) -> Result<(), String> {
    let Authority {
        scheme,
        userinfo,
        hosts: seeds,
        tail,
    } = Authority::of(text);
    for (index, seed) in seeds.split(',').enumerate() {
        let number = index + 1;
        if seed.is_empty() {
            return Err(format!(
                "cluster seed {number} is empty (host[:port],host[:port]…)"
            ));
        }
        let url = Url::parse(&format!("redis://{seed}"))
            .map_err(|error| format!("cluster seed {number} is not host[:port] ({error})"))?;
        require_host(&url).map_err(|_| format!("cluster seed {number} must name a host"))?;
    }
    // User information and everything after the seeds, checked once on the first seed.
    let first = seeds.split(',').next().unwrap_or_default();
    let url = parse(&format!("{scheme}{userinfo}{first}{tail}"))?;
    no_fragment(&url)?;
    if !matches!(url.path(), "" | "/") {
        return Err("a cluster URL takes no database (Redis Cluster has only database 0)".into());
    }
    Ok(())
}

fn postgres_url(text: &str) -> Result<(), String> {
    let scheme = text.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(
        scheme.map(str::to_ascii_lowercase).as_deref(),
        Some("postgres" | "postgresql")
    ) {
        return Err(
            "must be a postgres:// or postgresql:// URL for store.kind = \"postgres\"".into(),
        );
    }
    let url = parse(text)?;
    no_fragment(&url)?;
    let socket_dir = url
        .query_pairs()
        .any(|(key, value)| key == "host" && !value.is_empty());
    if require_host(&url).is_err() && !socket_dir {
        return Err("must name a host (or a Unix socket directory as ?host=/path)".into());
    }
    Ok(())
}

/// `url::ParseError`'s messages name the problem, never the input.
fn parse(text: &str) -> Result<Url, String> {
    Url::parse(text).map_err(|error| format!("not a valid URL ({error})"))
}

fn require_host(url: &Url) -> Result<(), String> {
    match url.host_str() {
        Some(host) if !host.is_empty() => Ok(()),
        _ => Err("must name a host".into()),
    }
}

fn no_fragment(url: &Url) -> Result<(), String> {
    match url.fragment() {
        Some(_) => Err("must not have a fragment (#…)".into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_accepts_standalone_and_cluster_forms() {
        for ok in [
            "redis://127.0.0.1",
            "redis://localhost:6379/0",
            "redis://:p%40ss@cache.internal:6380/15",
            "rediss://ward:pw@cache.example.com:6380?protocol=resp3",
            "redis://[::1]:6379",
            "REDIS://host",
            "redis+cluster://n1:7000",
            "redis+cluster://n1:7000,n2:7001,[::1]:7002",
            "rediss+cluster://ward:pw@n1.example:7000,n2.example/",
        ] {
            assert_eq!(redis_url(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn redis_refuses_other_schemes_missing_hosts_and_bad_paths() {
        for (bad, reason) in [
            ("postgres://h/db", "must be a redis://"),
            ("localhost:6379", "must be a redis://"),
            ("redis+unix:///tmp/redis.sock", "must be a redis://"),
            ("redis://", "must name a host"),
            ("redis://:pw@:6379", "not a valid URL (empty host)"),
            (
                "redis://h:notaport",
                "not a valid URL (invalid port number)",
            ),
            (
                "redis://h/db0",
                "the path must be empty or a database number",
            ),
            ("redis://h/0#x", "must not have a fragment"),
            ("redis://h1:1,h2:2", "several hosts need redis+cluster://"),
            ("redis+cluster://n1:7000,,n3", "cluster seed 2 is empty"),
            ("redis+cluster://", "cluster seed 1 is empty"),
            (
                "redis+cluster://n1,:7001",
                "cluster seed 2 is not host[:port] (empty host)",
            ),
            (
                "redis+cluster://n1,n2:x",
                "cluster seed 2 is not host[:port]",
            ),
            ("redis+cluster://n1,n2/3", "a cluster URL takes no database"),
        ] {
            let error = redis_url(bad).expect_err(bad);
            assert!(error.starts_with(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn postgres_accepts_a_host_or_a_socket_directory() {
        for ok in [
            "postgres://ward:pw@db.internal:5432/ward?sslmode=verify-full",
            "postgresql://localhost/ward",
            "postgres:///ward?host=/run/postgresql",
            "postgres:///ward?user=ward&host=/run/postgresql",
            "postgresql://%2Frun%2Fpostgresql/ward",
        ] {
            assert_eq!(postgres_url(ok), Ok(()), "{ok}");
        }
        for (bad, reason) in [
            ("redis://h", "must be a postgres:// or postgresql:// URL"),
            ("postgres:///ward", "must name a host"),
            ("postgres:///ward?host=", "must name a host"),
            (
                "postgres://ward@/ward?host=/run/postgresql",
                "not a valid URL (empty host)",
            ),
            (
                "postgres://h:port/ward",
                "not a valid URL (invalid port number)",
            ),
            ("postgres://h1:5432,h2:5432/ward", "not a valid URL"),
            ("postgres://h/ward#x", "must not have a fragment"),
        ] {
            let error = postgres_url(bad).expect_err(bad);
            assert!(error.starts_with(reason), "{bad}: {error}");
        }
    }

    #[test]
    fn key_prefixes_are_short_and_of_a_safe_charset() {
        for ok in ["ward:", "a", "ward.prod-1_x:", &"p".repeat(64)] {
            assert!(is_key_prefix(ok), "{ok}");
        }
        for bad in ["", "ward prod", "ward/", "wärd", "{ward}", &"p".repeat(65)] {
            assert!(!is_key_prefix(bad), "{bad}");
        }
    }
}
