//! How Ward authenticates itself to the IdP: the one component every call that authenticates
//! the client goes through (code exchange, refresh, client credentials, revocation, PAR).
//!
//! `client_secret_basic` / `client_secret_post` send the secret; `tls_client_auth` (RFC 8705
//! §2.1) sends only `client_id`, the certificate Ward's IdP client presents in the TLS
//! handshake being the credential; `private_key_jwt` (RFC 7523
//! §2.2, OpenID Connect Core §9) sends a fresh JWT signed with Ward's key, whose `aud` is the
//! issuer identifier as a single string: the fix for CVE-2025-27370/27371 that
//! draft-ietf-oauth-rfc7523bis and FAPI 2.0 require (an assertion made for one IdP cannot be
//! replayed at another endpoint that names a different audience). Each assertion has its own
//! random `jti` and lives [`ASSERTION_TTL`] seconds by the injectable clock.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use url::form_urlencoded::byte_serialize;
use ward_store::Clock;

use super::discovery::ProviderMetadata;
use super::signing_key::{KeyError, SignError, SigningKey};
use crate::config::{ClientAuth, OidcConfig};
use crate::random;
use crate::secret::SecretString;

/// Lifetime of a client assertion: long enough for one request, short enough that a leaked
/// one is soon worthless.
pub(crate) const ASSERTION_TTL: u64 = 60;

/// RFC 7523 §2.2 `client_assertion_type`.
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Why client authentication cannot be set up (a start error: retrying cannot help).
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    /// `private_key_jwt` without a key file (config validation normally catches it).
    #[error("oidc.private_key_file is required with private_key_jwt")]
    NoKeyFile,
    /// The key file cannot be used.
    #[error("oidc.private_key_file: {0}")]
    Key(#[from] KeyError),
    /// The IdP lists signing algorithms and none fits the key.
    #[error(
        "oidc.private_key_file: the IdP accepts {advertised} for client assertions, \
         none of which a {kind} key makes ({offered})"
    )]
    NoCommonAlg {
        /// The key type.
        kind: String,
        /// What the key can make.
        offered: String,
        /// `token_endpoint_auth_signing_alg_values_supported`.
        advertised: String,
    },
    /// The IdP lists its client authentication methods and the configured one is not among them.
    #[error(
        "oidc.client_auth: the IdP does not accept {0} (token_endpoint_auth_methods_supported)"
    )]
    MethodNotOffered(&'static str),
    /// `tls_client_auth` without a client certificate on the IdP client (a wiring error: the
    /// caller must load `oidc.client_cert` / `client_key` into the outbound settings).
    #[error("oidc.client_cert: tls_client_auth needs Ward's client certificate")]
    NoClientCertificate,
}

/// Ward's client authentication at one IdP.
pub(crate) struct ClientAuthenticator {
    client_id: String,
    method: Method,
}

enum Method {
    SecretBasic(SecretString),
    SecretPost(SecretString),
    PrivateKeyJwt(AssertionSigner),
    /// The certificate is in the TLS layer; the requests carry `client_id` alone.
    TlsClientAuth,
}

/// Makes `private_key_jwt` client assertions.
pub(crate) struct AssertionSigner {
    key: SigningKey,
    alg: &'static str,
    kid: String,
    client_id: String,
    audience: String,
    clock: Arc<dyn Clock>,
}

/// What one request carries to authenticate the client.
pub(crate) struct Credentials {
    /// `Authorization` header value, for `client_secret_basic`.
    pub header: Option<SecretString>,
    /// Form fields (`client_id` always; the secret or the assertion).
    pub form: Vec<(&'static str, SecretString)>,
}

impl ClientAuthenticator {
    /// The configured method, checked against the IdP's metadata; `issuer` is the issuer
    /// identifier exactly as discovery states it (the assertions' `aud`).
    pub(crate) fn new(
        config: &OidcConfig,
        metadata: &ProviderMetadata,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ClientAuthError> {
        let name = method_name(config.client_auth);
        // Only for the key and certificate methods: secret methods worked before this check
        // existed, and IdPs that list their methods incompletely would otherwise stop a running
        // deployment.
        if matches!(
            config.client_auth,
            ClientAuth::PrivateKeyJwt | ClientAuth::TlsClientAuth
        ) && let Some(methods) = metadata.token_endpoint_auth_methods_supported()
            && !methods.iter().any(|m| m.as_ref() == name)
        {
            return Err(ClientAuthError::MethodNotOffered(name));
        }
        let method = match config.client_auth {
            ClientAuth::ClientSecretBasic => Method::SecretBasic(config.client_secret.clone()),
            ClientAuth::ClientSecretPost => Method::SecretPost(config.client_secret.clone()),
            ClientAuth::TlsClientAuth => Method::TlsClientAuth,
            ClientAuth::PrivateKeyJwt => {
                let path = config
                    .private_key_file
                    .as_ref()
                    .ok_or(ClientAuthError::NoKeyFile)?;
                let key = SigningKey::load(path)?;
                let advertised = advertised_algs(metadata);
                let alg = choose_alg(&key, advertised.as_deref())?;
                Method::PrivateKeyJwt(AssertionSigner {
                    kid: config
                        .private_key_id
                        .clone()
                        .unwrap_or_else(|| key.thumbprint()),
                    key,
                    alg,
                    client_id: config.client_id.clone(),
                    audience: metadata.issuer().as_str().to_owned(),
                    clock,
                })
            }
        };
        Ok(Self {
            client_id: config.client_id.clone(),
            method,
        })
    }

    /// Whether the token requests openidconnect builds need [`Self::assertion_params`]
    /// (secret methods are applied by openidconnect itself).
    pub(crate) fn signer(&self) -> Option<&AssertionSigner> {
        match &self.method {
            Method::PrivateKeyJwt(signer) => Some(signer),
            _ => None,
        }
    }

    /// For a hand-built request (revocation, PAR): the header and form fields, with a fresh
    /// assertion for `private_key_jwt`.
    pub(crate) fn credentials(&self) -> Result<Credentials, SignError> {
        let id = SecretString::new(self.client_id.clone());
        Ok(match &self.method {
            Method::SecretBasic(secret) => Credentials {
                header: Some(basic_header(&self.client_id, secret)),
                form: Vec::new(),
            },
            Method::SecretPost(secret) => Credentials {
                header: None,
                form: vec![("client_id", id), ("client_secret", secret.clone())],
            },
            Method::PrivateKeyJwt(signer) => {
                let mut form = vec![("client_id", id)];
                form.extend(signer.params()?);
                Credentials { header: None, form }
            }
            Method::TlsClientAuth => Credentials {
                header: None,
                form: vec![("client_id", id)],
            },
        })
    }
}

impl AssertionSigner {
    /// `client_assertion_type` and a fresh `client_assertion`.
    pub(crate) fn params(&self) -> Result<[(&'static str, SecretString); 2], SignError> {
        Ok([
            ("client_assertion_type", SecretString::new(ASSERTION_TYPE)),
            ("client_assertion", self.assertion()?),
        ])
    }

    /// A new assertion: `iss` = `sub` = client id, `aud` = the issuer, a random `jti`, `iat`
    /// now and `exp` [`ASSERTION_TTL`] later.
    pub(crate) fn assertion(&self) -> Result<SecretString, SignError> {
        let now = self.clock.now();
        let header = json!({"alg": self.alg, "kid": self.kid, "typ": "JWT"});
        let claims = json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.audience,
            "jti": random::token(),
            "iat": now,
            "exp": now + ASSERTION_TTL,
        });
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(self.alg, input.as_bytes())?;
        Ok(SecretString::new(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }

    /// The JWS `alg` in use.
    pub(crate) fn alg(&self) -> &'static str {
        self.alg
    }

    /// The JWS `kid` in use.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// Tests only: a signer with a fixed audience (to show the IdP refuses a wrong one).
    #[cfg(test)]
    pub(crate) fn with_audience(mut self, audience: &str) -> Self {
        self.audience = audience.to_owned();
        self
    }
}

fn method_name(auth: ClientAuth) -> &'static str {
    match auth {
        ClientAuth::ClientSecretBasic => "client_secret_basic",
        ClientAuth::ClientSecretPost => "client_secret_post",
        ClientAuth::PrivateKeyJwt => "private_key_jwt",
        ClientAuth::TlsClientAuth => "tls_client_auth",
    }
}

/// `token_endpoint_auth_signing_alg_values_supported` as strings, when the IdP lists them.
fn advertised_algs(metadata: &ProviderMetadata) -> Option<Vec<String>> {
    metadata
        .token_endpoint_auth_signing_alg_values_supported()
        .map(|algs| {
            algs.iter()
                .filter_map(|alg| serde_json::to_value(alg).ok())
                .filter_map(|alg| alg.as_str().map(str::to_owned))
                .collect()
        })
}

/// The key's preferred algorithm among those the IdP lists (the preferred one when it lists
/// none: RFC 8414 gives no default).
pub(crate) fn choose_alg(
    key: &SigningKey,
    advertised: Option<&[String]>,
) -> Result<&'static str, ClientAuthError> {
    let offered = key.algs();
    let Some(advertised) = advertised else {
        return Ok(offered[0]);
    };
    offered
        .iter()
        .find(|alg| advertised.iter().any(|a| a == *alg))
        .copied()
        .ok_or_else(|| ClientAuthError::NoCommonAlg {
            kind: key.kind(),
            offered: offered.join(", "),
            advertised: advertised.join(", "),
        })
}

/// `Authorization: Basic` over the form-urlencoded id and secret (RFC 6749 §2.3.1).
pub(crate) fn basic_header(id: &str, secret: &SecretString) -> SecretString {
    let id: String = byte_serialize(id.as_bytes()).collect();
    let secret: String = byte_serialize(secret.expose().as_bytes()).collect();
    SecretString::new(format!(
        "Basic {}",
        STANDARD.encode(format!("{id}:{secret}"))
    ))
}

#[cfg(test)]
mod tests;
