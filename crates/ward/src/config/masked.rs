//! `ward check`'s view of the effective configuration: TOML with every secret masked.
//!
//! Masking lives in the model's `Serialize` (`serialize_with` on the secret fields), so no
//! serialization of a [`Config`] can carry a secret, whichever format it goes to.

use serde::Serializer;

use super::Config;
use crate::secret::SecretString;

/// What every secret value renders as.
const MASK: &str = "***";

impl Config {
    /// The effective configuration as TOML: `client_secret = "***"`, keys as `"<kid>:***"`,
    /// the store URL without its password, the admin token as `"***"`.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string(self)
            .unwrap_or_else(|error| format!("# cannot render the configuration: {error}\n"))
    }
}

/// `serialize_with` for secrets shown only as present: `oidc.client_secret`, `admin.token`.
pub(crate) fn secret<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(MASK)
}

/// `serialize_with` for `store.url`: user, hosts, database and options stay readable, the
/// password (and any `…password=` query parameter) becomes `***`.
pub(crate) fn optional_url<S: Serializer>(
    url: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&mask_url(url.expose())),
        None => s.serialize_none(),
    }
}

/// Works on the text, not on `url::Url`, so cluster seed lists (which `Url` cannot parse) and
/// malformed URLs are masked too. The user information is taken to end at the *last* `@`, so a
/// password with an unencoded `@`, `/` or `?` is still masked whole; text without `://` is all
/// masked.
fn mask_url(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return MASK.to_owned();
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _)) => (format!("{user}:{MASK}@"), rest),
            None => (format!("{userinfo}@"), rest),
        },
        None => (String::new(), rest),
    };
    let rest = match rest.split_once('?') {
        Some((before, query)) => format!("{before}?{}", mask_query_passwords(query)),
        None => rest.to_owned(),
    };
    format!("{scheme}://{userinfo}{rest}")
}

/// `password=…`, `sslpassword=…` (libpq) and the like, masked; other parameters kept.
fn mask_query_passwords(query: &str) -> String {
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.to_ascii_lowercase().contains("pass") => {
                format!("{key}={MASK}")
            }
            _ => pair.to_owned(),
        })
        .collect();
    pairs.join("&")
}

/// `serialize_with` for `crypto.keys`: the key id stays visible, it names the key in records.
pub(crate) fn keys<S: Serializer>(keys: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(keys.iter().map(|entry| mask_key(entry.expose())))
}

fn mask_key(entry: &str) -> String {
    let kid = entry.split_once(':').map(|(kid, _)| kid).filter(|kid| {
        !kid.is_empty()
            && kid.len() <= 32
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    match kid {
        Some(kid) => format!("{kid}:{MASK}"),
        None => MASK.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_shows_only_its_id() {
        assert_eq!(mask_key("k1:AAAA"), "k1:***");
        assert_eq!(mask_key("no-colon-secret"), "***");
        assert_eq!(mask_key("bad kid:AAAA"), "***");
    }

    #[test]
    fn a_url_shows_everything_but_its_password() {
        for (url, masked) in [
            ("redis://cache:6379/0", "redis://cache:6379/0"),
            ("redis://:pw@cache:6379", "redis://:***@cache:6379"),
            (
                "rediss+cluster://ward:pw@n1:7000,n2:7001",
                "rediss+cluster://ward:***@n1:7000,n2:7001",
            ),
            ("redis://user@cache", "redis://user@cache"),
            ("redis://u:p@ss/w?rd@cache", "redis://u:***@cache"),
            (
                "postgres://ward@db/ward?sslmode=require&password=pw&sslpassword=x",
                "postgres://ward@db/ward?sslmode=require&password=***&sslpassword=***",
            ),
            ("not a url with pw", "***"),
        ] {
            assert_eq!(mask_url(url), masked, "{url}");
        }
    }
}
