//! `[oidc] client_auth` and the keys each method needs. The private key itself is read and
//! checked against the IdP's metadata at start (`oidc::client_auth`), where its algorithm can
//! be chosen; here only what the file alone decides.

use serde::{Deserialize, Serialize};

use super::errors::Problems;
use super::model::OidcConfig;

/// Token endpoint client authentication.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with client id and secret.
    #[default]
    ClientSecretBasic,
    /// Client id and secret in the form body.
    ClientSecretPost,
    /// A JWT signed with Ward's private key (RFC 7523 §2.2, OpenID Connect Core §9).
    PrivateKeyJwt,
    /// Mutual TLS with a client certificate (RFC 8705): not supported yet, refused at load.
    TlsClientAuth,
}

impl ClientAuth {
    /// Whether the method authenticates with `client_secret`.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::ClientSecretBasic | Self::ClientSecretPost)
    }
}

/// `[oidc] par`: when the authorization request is pushed (RFC 9126).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParMode {
    /// Pushed when the IdP offers a `pushed_authorization_request_endpoint` (so always when it
    /// requires PAR).
    #[default]
    Auto,
    /// Always pushed; an IdP without the endpoint is a start error.
    Always,
    /// Never pushed; an IdP that requires PAR is a start error.
    Never,
}

/// The keys of `oidc` that `client_auth` requires or forbids.
pub(crate) fn check(oidc: &OidcConfig, out: &mut Problems) {
    match oidc.client_auth {
        ClientAuth::PrivateKeyJwt => {
            if oidc.private_key_file.is_none() {
                out.push(
                    "oidc.private_key_file",
                    "required with client_auth = \"private_key_jwt\" (a PEM or JWK private key)",
                );
            }
            if oidc.private_key_id.as_deref().is_some_and(str::is_empty) {
                out.push(
                    "oidc.private_key_id",
                    "must not be empty (leave it out to use the key's RFC 7638 thumbprint)",
                );
            }
        }
        ClientAuth::TlsClientAuth => out.push(
            "oidc.client_auth",
            "tls_client_auth (RFC 8705) is not supported yet: use private_key_jwt",
        ),
        ClientAuth::ClientSecretBasic | ClientAuth::ClientSecretPost => {
            for (key, set) in [
                ("oidc.private_key_file", oidc.private_key_file.is_some()),
                ("oidc.private_key_id", oidc.private_key_id.is_some()),
            ] {
                if set {
                    out.push(key, "only used with client_auth = \"private_key_jwt\"");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::load_from_str;
    use super::super::tests::key;

    fn text(oidc_extra: &str) -> String {
        format!(
            "[oidc]\nissuer = \"https://idp.example.com\"\nclient_id = \"ward\"\n\
             client_secret = \"s\"\n{oidc_extra}\n\n[crypto]\nkeys = [\"{}\"]\n",
            key("k1", 1)
        )
    }

    fn errors(oidc_extra: &str) -> String {
        match load_from_str(
            &text(oidc_extra),
            &Default::default(),
            Path::new("/etc/ward"),
        ) {
            Ok(_) => String::new(),
            Err(errors) => errors.to_string(),
        }
    }

    #[test]
    fn private_key_jwt_needs_a_key_file_and_resolves_it_against_the_config_dir() {
        let problems = errors("client_auth = \"private_key_jwt\"");
        assert!(
            problems.contains("oidc.private_key_file: required"),
            "{problems}"
        );
        let config = load_from_str(
            &text("client_auth = \"private_key_jwt\"\nprivate_key_file = \"k.pem\""),
            &Default::default(),
            Path::new("/etc/ward"),
        )
        .unwrap();
        assert_eq!(
            config.oidc.private_key_file.unwrap(),
            Path::new("/etc/ward/k.pem")
        );
    }

    #[test]
    fn tls_client_auth_is_refused_as_not_supported_yet() {
        let problems = errors("client_auth = \"tls_client_auth\"");
        assert!(problems.contains("not supported yet"), "{problems}");
    }

    #[test]
    fn key_settings_without_private_key_jwt_are_refused() {
        let problems = errors("private_key_id = \"k1\"");
        assert!(
            problems.contains("oidc.private_key_id: only used with"),
            "{problems}"
        );
    }

    #[test]
    fn par_modes_parse_and_unknown_ones_are_refused() {
        assert!(errors("par = \"always\"").is_empty());
        assert!(errors("par = \"never\"").is_empty());
        assert!(errors("par = \"sometimes\"").contains("oidc.par"));
    }
}
