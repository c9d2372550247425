//! `[oidc] client_auth` and the keys each method needs. The private key itself is read and
//! checked against the IdP's metadata at start (`oidc::client_auth`), where its algorithm can
//! be chosen; the client certificate and its key (`tls_client_auth`) are read at start too
//! (`outbound::identity`); here only what the file alone decides.

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
    /// Mutual TLS with a PKI client certificate (RFC 8705 §2.1): `client_cert` and
    /// `client_key`; the requests carry `client_id` and no secret or assertion.
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
    let key_jwt = oidc.client_auth == ClientAuth::PrivateKeyJwt;
    let mtls = oidc.client_auth == ClientAuth::TlsClientAuth;
    if key_jwt {
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
    if mtls && oidc.issuer.scheme() != "https" {
        out.push(
            "oidc.issuer",
            "must be https with client_auth = \"tls_client_auth\" (the client certificate \
             travels only in a TLS handshake)",
        );
    }
    if mtls {
        for (key, set, what) in [
            (
                "oidc.client_cert",
                oidc.client_cert.is_some(),
                "the client certificate chain, PEM, leaf first",
            ),
            (
                "oidc.client_key",
                oidc.client_key.is_some(),
                "the certificate's private key, PEM: PKCS#8, SEC1 or PKCS#1",
            ),
        ] {
            if !set {
                out.push(
                    key,
                    format!("required with client_auth = \"tls_client_auth\" ({what})"),
                );
            }
        }
    }
    let only = [
        (
            "oidc.private_key_file",
            oidc.private_key_file.is_some(),
            key_jwt,
            "private_key_jwt",
        ),
        (
            "oidc.private_key_id",
            oidc.private_key_id.is_some(),
            key_jwt,
            "private_key_jwt",
        ),
        (
            "oidc.client_cert",
            oidc.client_cert.is_some(),
            mtls,
            "tls_client_auth",
        ),
        (
            "oidc.client_key",
            oidc.client_key.is_some(),
            mtls,
            "tls_client_auth",
        ),
    ];
    for (key, set, used, method) in only {
        if set && !used {
            out.push(key, format!("only used with client_auth = \"{method}\""));
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
    fn tls_client_auth_needs_a_certificate_and_key_resolved_against_the_config_dir() {
        let problems = errors("client_auth = \"tls_client_auth\"");
        assert!(
            problems.contains("oidc.client_cert: required"),
            "{problems}"
        );
        assert!(problems.contains("oidc.client_key: required"), "{problems}");
        assert!(!problems.contains("not supported"), "{problems}");
        let config = load_from_str(
            &text(
                "client_auth = \"tls_client_auth\"\nclient_cert = \"c.pem\"\n\
                 client_key = \"/keys/k.pem\"",
            ),
            &Default::default(),
            Path::new("/etc/ward"),
        )
        .unwrap();
        assert_eq!(
            config.oidc.client_cert.unwrap(),
            Path::new("/etc/ward/c.pem")
        );
        assert_eq!(config.oidc.client_key.unwrap(), Path::new("/keys/k.pem"));
    }

    #[test]
    fn tls_client_auth_needs_an_https_issuer() {
        let text = "[oidc]\nissuer = \"http://localhost:4000\"\nclient_id = \"ward\"\n\
                    client_auth = \"tls_client_auth\"\nclient_cert = \"c\"\nclient_key = \"k\"\n\n\
                    [crypto]\nkeys = [\"KEY\"]\n"
            .replace("KEY", &key("k1", 1));
        let problems = load_from_str(&text, &Default::default(), Path::new("/etc/ward"))
            .expect_err("refused")
            .to_string();
        assert!(
            problems.contains("oidc.issuer: must be https with client_auth = \"tls_client_auth\""),
            "{problems}"
        );
    }

    #[test]
    fn a_client_certificate_without_tls_client_auth_is_refused() {
        let problems = errors("client_cert = \"c.pem\"\nclient_key = \"k.pem\"");
        assert!(
            problems.contains("oidc.client_cert: only used with client_auth = \"tls_client_auth\""),
            "{problems}"
        );
        assert!(
            problems.contains("oidc.client_key: only used with"),
            "{problems}"
        );
        let problems = errors(
            "client_auth = \"tls_client_auth\"\nclient_cert = \"c\"\n\
                               client_key = \"k\"\nprivate_key_file = \"p\"",
        );
        assert!(
            problems.contains(
                "oidc.private_key_file: only used with client_auth = \"private_key_jwt\""
            ),
            "{problems}"
        );
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
