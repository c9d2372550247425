//! What `ward check` says about the client credentials, from the token endpoint's answer to a
//! made-up code ([`OidcClient::probe_client_credentials`](crate::oidc::OidcClient)). The
//! secret is never part of it; the client id and the authentication method are.

use crate::config::{ClientAuth, OidcConfig};
use crate::oidc::{CredentialsVerdict, EndpointError};

/// One line of the check, by severity.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Finding {
    Fine(String),
    Warning(String),
    Problem(String),
}

pub(super) fn finding(
    verdict: Result<CredentialsVerdict, EndpointError>,
    oidc: &OidcConfig,
) -> Finding {
    let (method, credential) = match oidc.client_auth {
        ClientAuth::ClientSecretBasic => ("client_secret_basic", "oidc.client_secret"),
        ClientAuth::ClientSecretPost => ("client_secret_post", "oidc.client_secret"),
        ClientAuth::PrivateKeyJwt => (
            "private_key_jwt",
            "that the IdP holds the public half of oidc.private_key_file (under the kid \
             oidc.private_key_id or the key's RFC 7638 thumbprint)",
        ),
        ClientAuth::TlsClientAuth => (
            "tls_client_auth",
            "that the IdP trusts the issuer of oidc.client_cert and has this client registered \
             with its subject (tls_client_auth_subject_dn or a tls_client_auth_san_* value)",
        ),
    };
    match verdict {
        Ok(CredentialsVerdict::Accepted) => Finding::Fine(format!(
            "oidc: client credentials accepted at the token endpoint (client {:?}, {method})",
            oidc.client_id
        )),
        Ok(CredentialsVerdict::Rejected) => Finding::Problem(format!(
            "oidc: the IdP refused Ward's client credentials (invalid_client): check \
             oidc.client_id ({:?}), {credential}, and that the IdP expects \
             oidc.client_auth = {method:?} for this client",
            oidc.client_id
        )),
        Ok(CredentialsVerdict::GrantNotAllowed) => Finding::Problem(format!(
            "oidc: the IdP accepted client {:?} but does not allow it the authorization_code \
             grant (unauthorized_client): allow that grant for the client at the IdP",
            oidc.client_id
        )),
        Ok(CredentialsVerdict::Unverified(reason)) => Finding::Warning(format!(
            "oidc: could not verify the client credentials: {reason}, not invalid_client \
             (wrong credentials) or invalid_grant (right ones); the first login will tell"
        )),
        Err(err) => Finding::Problem(format!(
            "oidc: the token endpoint cannot be reached: {}",
            super::describe(&err)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;

    fn oidc(auth: ClientAuth) -> OidcConfig {
        let text = r#"issuer = "https://idp.example.com"
client_id = "bff""#;
        let mut config: OidcConfig = toml::from_str(text).unwrap();
        config.client_secret = SecretString::new("not-in-any-message");
        config.client_auth = auth;
        config
    }

    #[test]
    fn invalid_client_is_a_problem_naming_the_keys_to_check() {
        let Finding::Problem(text) = finding(
            Ok(CredentialsVerdict::Rejected),
            &oidc(ClientAuth::ClientSecretPost),
        ) else {
            panic!("invalid_client must fail the check");
        };
        assert!(text.contains("invalid_client"), "{text}");
        assert!(text.contains("oidc.client_secret"), "{text}");
        assert!(text.contains(r#""client_secret_post""#), "{text}");
        assert!(!text.contains("not-in-any-message"));
    }

    #[test]
    fn invalid_client_with_a_private_key_names_the_key_not_the_secret() {
        let Finding::Problem(text) = finding(
            Ok(CredentialsVerdict::Rejected),
            &oidc(ClientAuth::PrivateKeyJwt),
        ) else {
            panic!("invalid_client must fail the check");
        };
        assert!(text.contains("oidc.private_key_file"), "{text}");
        assert!(!text.contains("oidc.client_secret"), "{text}");
        assert!(text.contains(r#""private_key_jwt""#), "{text}");
    }

    #[test]
    fn invalid_client_with_a_certificate_names_the_certificate_and_the_registration() {
        let Finding::Problem(text) = finding(
            Ok(CredentialsVerdict::Rejected),
            &oidc(ClientAuth::TlsClientAuth),
        ) else {
            panic!("invalid_client must fail the check");
        };
        assert!(text.contains("oidc.client_cert"), "{text}");
        assert!(text.contains("tls_client_auth_subject_dn"), "{text}");
        assert!(!text.contains("oidc.client_secret"), "{text}");
        assert!(!text.contains("not-in-any-message"), "{text}");
    }

    #[test]
    fn an_answer_that_does_not_tell_is_a_warning() {
        let found = finding(
            Ok(CredentialsVerdict::Unverified("HTTP 401".into())),
            &oidc(ClientAuth::ClientSecretBasic),
        );
        assert!(
            matches!(&found, Finding::Warning(text) if text.contains("could not verify")),
            "{found:?}"
        );
    }
}
