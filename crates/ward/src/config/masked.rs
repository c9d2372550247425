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
    /// The effective configuration as TOML: `client_secret = "***"`, keys as `"<kid>:***"`.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string(self)
            .unwrap_or_else(|error| format!("# cannot render the configuration: {error}\n"))
    }
}

/// `serialize_with` for `oidc.client_secret`.
pub(crate) fn client_secret<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(MASK)
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

pub(crate) fn optional_url<S: Serializer>(
    url: &Option<SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&mask_url_password(url.expose())),
        None => s.serialize_none(),
    }
}

/// The URL with any password replaced by `***` (user, host and path stay readable).
fn mask_url_password(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "***".to_owned(),
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
}
