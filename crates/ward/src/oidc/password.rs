//! The resource-owner password grant (RFC 6749 §4.3) for `POST /bff/login/password`: legacy
//! IdPs without a browser flow. OAuth 2.1 drops the grant; Ward offers it only with
//! `[login] password_grant = true`, and only against an IdP that advertises it.
//!
//! The answer is checked as a code exchange's, with one difference: a password grant carries
//! no `nonce`, so none is compared. What binds the ID token to this login instead is that it
//! arrives in the direct, client-authenticated answer to Ward's own request (as on refresh),
//! and it must be fresh (`iat` within the login's ten minutes). Without an ID token, the
//! UserInfo endpoint must name the user.

use openidconnect::core::{CoreGrantType, CoreIdToken};
use openidconnect::{
    OAuth2TokenResponse, ResourceOwnerPassword, ResourceOwnerUsername, Scope, TokenResponse,
};
use serde_json::{Map, Value};
use tracing::Instrument as _;

use super::dpop::DpopKey;
use super::id_token::{IdTokenError, VerifiedIdToken};
use super::{OidcClient, OidcError, TokenSet};
use crate::secret::SecretString;

/// Why the password grant cannot be offered with this IdP.
#[derive(Debug, thiserror::Error)]
#[error(
    "login.password_grant = true, but the IdP's discovery document does not list \"password\" \
     in grant_types_supported; enable the grant at the IdP, or set login.password_grant = false"
)]
pub struct PasswordGrantNotAdvertised;

impl OidcClient {
    /// Whether the discovery document lists `password` in `grant_types_supported` (absent
    /// means the default, `authorization_code` and `implicit`: not advertised).
    pub fn advertises_password_grant(&self) -> bool {
        self.metadata
            .grant_types_supported()
            .is_some_and(|types| types.contains(&CoreGrantType::Password))
    }

    /// Sends `username` and `password` with the client credentials to the token endpoint and
    /// checks the answer (see the module doc). `invalid_grant` from the IdP is
    /// [`OidcError::is_invalid_grant`]: the credentials were refused.
    pub async fn password_grant(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<TokenSet, OidcError> {
        let username = &ResourceOwnerUsername::new(username.to_owned());
        let password = ResourceOwnerPassword::new(password.expose().to_owned());
        let password_ref = &password;
        let dpop_key = self.dpop.then(DpopKey::generate).transpose()?;
        let timer = crate::telemetry::metrics::idp_timer("token");
        let response = self
            .with_dpop_retry(dpop_key.as_ref(), None, |http| async move {
                let request = self
                    .client
                    .exchange_password(username, password_ref)
                    .add_scope(Scope::new("openid".to_owned()))
                    .add_scopes(self.scopes.iter().cloned());
                // The client authenticates as on every token call (`private_key_jwt` included).
                let request =
                    self.with_assertion(request, |r, name, value| r.add_extra_param(name, value))?;
                request
                    .request_async(&http)
                    .instrument(crate::telemetry::spans::idp("idp token"))
                    .await
                    .map_err(super::token_request_failed)
            })
            .await;
        drop(password);
        drop(timer);
        let response = response?;
        super::check_token_type(&response, dpop_key.is_some())?;
        let access_token = SecretString::new(response.access_token().secret().clone());
        let (identity, id_token) = match response.id_token() {
            Some(id_token) => (
                self.password_identity(id_token).await?,
                id_token.to_string(),
            ),
            None => (
                self.userinfo_identity(&access_token, dpop_key.as_ref())
                    .await?,
                String::new(),
            ),
        };
        let claims = self
            .with_userinfo(
                &access_token,
                dpop_key.as_ref(),
                &identity.sub,
                identity.claims,
            )
            .await?;
        Ok(TokenSet {
            access_expires_at: response
                .expires_in()
                .map(|ttl| self.clock.now().saturating_add(ttl.as_secs())),
            refresh_token: response
                .refresh_token()
                .map(|token| SecretString::new(token.secret().clone()))
                .filter(|token| !token.is_empty()),
            id_token: SecretString::new(id_token),
            access_token,
            sub: identity.sub,
            sid: identity.sid,
            claims,
            dpop_key,
        })
    }

    /// The returned ID token, validated as a login's without a nonce; as at login, a key the
    /// JWKS lacks triggers one (rate-limited) refetch.
    async fn password_identity(
        &self,
        id_token: &CoreIdToken,
    ) -> Result<VerifiedIdToken, OidcError> {
        self.with_keys(
            |keys| self.validator.validate_without_nonce(id_token, keys),
            IdTokenError::is_unknown_key,
        )
        .await
        .map_err(|err| OidcError::InvalidIdToken(Box::new(err)))
    }

    /// Without an ID token: the user as UserInfo names them (its `sub` is required).
    async fn userinfo_identity(
        &self,
        access_token: &SecretString,
        dpop_key: Option<&DpopKey>,
    ) -> Result<VerifiedIdToken, OidcError> {
        if self.metadata.userinfo_endpoint().is_none() {
            return Err(OidcError::IncompleteResponse("id_token (and no userinfo)"));
        }
        let keys = &self.keys.current();
        let info = self
            .with_dpop_retry(dpop_key, Some(access_token), |http| async move {
                super::userinfo::fetch(
                    &self.metadata,
                    keys,
                    self.client.client_id(),
                    &http,
                    access_token,
                )
                .await
            })
            .await
            .map_err(|reason| {
            tracing::warn!(event = "userinfo_failed", reason = %reason, "no ID token to fall back on");
            OidcError::IncompleteResponse("id_token (and userinfo failed)")
        })?;
        match info.get("sub").and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() => Ok(VerifiedIdToken {
                sub: sub.to_owned(),
                sid: None,
                claims: Map::new(),
            }),
            _ => Err(OidcError::IncompleteResponse("a userinfo sub")),
        }
    }
}
