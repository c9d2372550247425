//! The `[store] url` forms this backend accepts, and a display of them that hides the password.
//!
//! - `redis://[user:pass@]host:port[/db]` and `rediss://…` (TLS): one server, handed to the
//!   driver as written (it percent-decodes the credentials and reads the database number).
//! - `redis+cluster://[user:pass@]host:port[,host:port…]` and `rediss+cluster://…`: seed nodes
//!   of a Redis Cluster. Each becomes `redis[s]://[user:pass@]host:port`; the credentials apply
//!   to every node. A cluster has only database 0, so a path other than `/` or `/0` is refused.

use std::fmt;

/// Where the store connects: one server, or the seed nodes of a cluster.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// One server's URL, as configured.
    Single(String),
    /// One `redis[s]://` URL per seed node.
    Cluster(Vec<String>),
}

/// Redacts the node URLs, which carry the password.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Single(url) => f.debug_tuple("Single").field(&Redacted(url)).finish(),
            Self::Cluster(nodes) => f
                .debug_list()
                .entries(nodes.iter().map(|n| Redacted(n)))
                .finish(),
        }
    }
}

/// Why a `[store] url` is not one of the accepted forms. Carries no part of the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The scheme is not `redis`, `rediss`, `redis+cluster` or `rediss+cluster`.
    #[error(
        "the Redis URL must start with redis://, rediss://, redis+cluster:// or rediss+cluster://"
    )]
    UnsupportedScheme,
    /// A cluster URL without a `host:port` seed, or with an empty one.
    #[error("the Redis cluster URL needs at least one host:port seed node, and none empty")]
    MissingNode,
    /// A cluster URL naming a database other than 0.
    #[error("a Redis cluster URL cannot select a database (clusters only have database 0)")]
    ClusterDatabase,
}

/// Splits `url` into the driver's connection target.
pub(crate) fn parse(url: &str) -> Result<Target, UrlError> {
    let (scheme, rest) = url.split_once("://").ok_or(UrlError::UnsupportedScheme)?;
    let node_scheme = match scheme.to_ascii_lowercase().as_str() {
        "redis" | "rediss" => return Ok(Target::Single(url.to_owned())),
        "redis+cluster" => "redis",
        "rediss+cluster" => "rediss",
        _ => return Err(UrlError::UnsupportedScheme),
    };
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if !matches!(path, "" | "/" | "/0") {
        return Err(UrlError::ClusterDatabase);
    }
    // The password may itself contain '@' only percent-encoded, so the last '@' ends it.
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|node| match (node.is_empty(), userinfo) {
            (true, _) => Err(UrlError::MissingNode),
            (false, Some(userinfo)) => Ok(format!("{node_scheme}://{userinfo}@{node}")),
            (false, None) => Ok(format!("{node_scheme}://{node}")),
        })
        .collect::<Result<_, _>>()?;
    Ok(Target::Cluster(nodes))
}

/// Shows a URL with its password replaced by `***` and without query or fragment (where a
/// driver could also take credentials).
pub(crate) struct Redacted<'a>(pub(crate) &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str("<not a URL>");
        };
        write!(f, "{scheme}://")?;
        // The user part ends at the LAST `@`: an unencoded `/`, `?`, `#` or `@` in a password
        // must not move the cut into the password (it would be printed).
        let rest = match rest.rsplit_once('@') {
            Some((userinfo, after)) => {
                match userinfo.split_once(':') {
                    Some((user, _password)) => write!(f, "{user}:***@")?,
                    None => write!(f, "{userinfo}@")?,
                }
                after
            }
            None => rest,
        };
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        f.write_str(rest)
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_with_url_delimiters_never_show() {
        for url in [
            "redis://u:ab/cd@127.0.0.1:6379/0",
            "redis://u:ab?cd@127.0.0.1:6379",
            "redis://u:ab#cd@127.0.0.1:6379",
            "redis://u:ab@cd@127.0.0.1:6379",
            "redis+cluster://u:x/y@10.0.0.1:6379,10.0.0.2:6379",
        ] {
            let shown = Redacted(url).to_string();
            assert!(
                !shown.contains("ab") && !shown.contains("cd") && !shown.contains("x/y"),
                "{shown}"
            );
            assert!(shown.contains(":***@"), "{shown}");
        }
    }

    #[test]
    fn standalone_urls_pass_through_unchanged() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://user:p%40ss@127.0.0.1:6379/3",
            "rediss://cache.internal:6380/0",
            "REDIS://127.0.0.1",
        ] {
            assert_eq!(parse(url), Ok(Target::Single(url.to_owned())), "{url}");
        }
    }

    #[test]
    fn cluster_url_becomes_one_url_per_seed_node_with_shared_credentials() {
        assert_eq!(
            parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/"),
            Ok(Target::Cluster(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into(),
            ]))
        );
        assert_eq!(
            parse("rediss+cluster://ward:s3cr%40t@a:1,b:2"),
            Ok(Target::Cluster(vec![
                "rediss://ward:s3cr%40t@a:1".into(),
                "rediss://ward:s3cr%40t@b:2".into(),
            ]))
        );
    }

    #[test]
    fn malformed_urls_are_refused() {
        assert_eq!(
            parse("http://127.0.0.1:6379"),
            Err(UrlError::UnsupportedScheme)
        );
        assert_eq!(parse("127.0.0.1:6379"), Err(UrlError::UnsupportedScheme));
        assert_eq!(parse("redis+cluster://"), Err(UrlError::MissingNode));
        assert_eq!(
            parse("redis+cluster://a:1,,b:2"),
            Err(UrlError::MissingNode)
        );
        assert_eq!(
            parse("redis+cluster://a:1,b:2/2"),
            Err(UrlError::ClusterDatabase)
        );
    }

    #[test]
    fn redacted_url_hides_the_password_only() {
        let shown = |url| Redacted(url).to_string();
        assert_eq!(
            shown("redis://ward:hunter2@10.0.0.1:6379/2"),
            "redis://ward:***@10.0.0.1:6379/2"
        );
        assert_eq!(
            shown("rediss+cluster://:hunter2@a:1,b:2"),
            "rediss+cluster://:***@a:1,b:2"
        );
        assert_eq!(
            shown("redis://10.0.0.1:6379/?pass=hunter2"),
            "redis://10.0.0.1:6379/"
        );
        assert_eq!(shown("redis://u@h:1"), "redis://u@h:1");
        assert_eq!(
            shown("redis://u:p@ss:w@rd@h:1"),
            "redis://u:***@h:1",
            "an unencoded '@' in the password"
        );
        assert_eq!(shown("hunter2"), "<not a URL>");
    }

    #[test]
    fn target_debug_never_shows_the_password() {
        let target = parse("redis+cluster://u:hunter2@a:1,b:2").unwrap();
        let shown = format!("{target:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("a:1"), "{shown}");
    }
}
