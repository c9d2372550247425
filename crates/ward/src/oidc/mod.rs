//! The OpenID Connect client: discovery and JWKS cache, the authorization request (PKCE S256,
//! `state`, `nonce`), the RFC 9207 `iss` check, code exchange, ID-token validation, token
//! revocation and the end-session URL. (Stub: to be implemented.)

use std::sync::Arc;

use url::Url;
use ward_store::Clock;

use crate::config::OidcConfig;
use crate::secret::SecretString;

/// Why an OIDC operation failed. The text never carries a token, code or secret.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery or JWKS could not be fetched or parsed.
    #[error("provider metadata unavailable")]
    Discovery(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The `iss` callback parameter did not match (RFC 9207).
    #[error("issuer mismatch in authorization response")]
    IssuerMismatch,
    /// The token endpoint refused or failed.
    #[error("token request failed")]
    TokenRequest(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The ID token failed validation.
    #[error("invalid ID token")]
    InvalidIdToken(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The token response lacked something required (e.g. the ID token).
    #[error("incomplete token response: {0}")]
    IncompleteResponse(&'static str),
}

/// What the browser is sent to the IdP with, and what Ward keeps to finish the login.
pub struct AuthorizationRequest {
    /// The IdP's authorization URL with every parameter.
    pub url: Url,
    /// `state` (32 random bytes, base64url).
    pub state: SecretString,
    /// `nonce` (32 random bytes, base64url).
    pub nonce: SecretString,
    /// PKCE `code_verifier` (32 random bytes, base64url: 43 characters).
    pub pkce_verifier: SecretString,
}

/// Tokens and validated identity from a code exchange.
#[derive(Debug)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, when issued.
    pub refresh_token: Option<SecretString>,
    /// The raw ID token (kept for `id_token_hint`).
    pub id_token: SecretString,
    /// Access-token expiry (unix seconds), from `expires_in`.
    pub access_expires_at: Option<u64>,
    /// `sub` of the validated ID token.
    pub sub: String,
    /// `sid` of the ID token, when present.
    pub sid: Option<String>,
    /// Claims of the ID token (merged with userinfo), minus protocol claims.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// Ward's client at one IdP.
pub struct OidcClient {}

impl OidcClient {
    /// Discovers the provider at `config.issuer` and loads its JWKS.
    pub async fn discover(
        _config: &OidcConfig,
        _redirect_uri: Url,
        _clock: Arc<dyn Clock>,
    ) -> Result<Self, OidcError> {
        todo!()
    }

    /// A new authorization request; `prompt` is passed on when given.
    pub fn authorization_request(&self, _prompt: Option<&str>) -> AuthorizationRequest {
        todo!()
    }

    /// RFC 9207: when the IdP advertises `authorization_response_iss_parameter_supported`,
    /// `iss` must be present and equal the issuer.
    pub fn check_response_issuer(&self, _iss: Option<&str>) -> Result<(), OidcError> {
        todo!()
    }

    /// Exchanges `code` with the client credentials and `pkce_verifier`, validates the ID token
    /// against `nonce`.
    pub async fn exchange_code(
        &self,
        _code: &str,
        _pkce_verifier: &SecretString,
        _nonce: &SecretString,
    ) -> Result<TokenSet, OidcError> {
        todo!()
    }

    /// Revokes a refresh token (RFC 7009) when the IdP has a revocation endpoint.
    pub async fn revoke_refresh_token(&self, _token: &SecretString) -> Result<(), OidcError> {
        todo!()
    }

    /// The RP-initiated logout URL, or `None` without an `end_session_endpoint`.
    pub fn end_session_url(
        &self,
        _id_token_hint: Option<&SecretString>,
        _post_logout_redirect_uri: &Url,
        _state: &str,
    ) -> Option<Url> {
        todo!()
    }
}
