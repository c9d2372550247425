//! The refresh-token grant (RFC 6749 §6) and the checks on what it returns.
//!
//! A refresh answer may carry a new ID token; OpenID Connect Core §12.2 requires it to name the
//! same issuer, audience and subject as the login's, so it is validated like a login's (minus
//! the nonce) and must carry the session's `sub`. Its claims are never merged into the session.
//!
//! Failures keep one distinction the session layer acts on: the IdP *refused* the grant
//! (`invalid_grant`: the refresh token is revoked, expired or was already used) or returned an
//! ID token that does not belong to the session — both end the session — versus everything
//! else (unreachable, 5xx, timeout, a malformed answer), after which the session stays.

use openidconnect::core::CoreIdToken;
use openidconnect::{OAuth2TokenResponse, RefreshToken, TokenResponse};
use tracing::Instrument as _;

use super::dpop::DpopKey;
use super::endpoint::EndpointError;
use std::collections::BTreeSet;

use serde_json::Value;

use super::id_token::{IdTokenError, VerifiedIdToken, payload_of};
use super::{OidcClient, OidcError};
use crate::secret::SecretString;

/// What a successful refresh returned, validated.
#[derive(Debug)]
pub struct RefreshedTokens {
    /// The new access token.
    pub access_token: SecretString,
    /// The new refresh token when the IdP rotated it; `None` means the old one stays valid
    /// (RFC 6749 §6: a new one, if issued, replaces it).
    pub refresh_token: Option<SecretString>,
    /// The new raw ID token, when the IdP sent one (kept for `id_token_hint`).
    pub id_token: Option<SecretString>,
    /// Access-token expiry (unix seconds) from `expires_in`; `None` when the IdP sent none.
    pub access_expires_at: Option<u64>,
}

/// An ID token in a refresh answer that does not belong to the session.
#[derive(Debug, thiserror::Error)]
pub enum RefreshedIdTokenError {
    /// `sub` differs from the session's (OpenID Connect Core §12.2).
    #[error("refreshed ID token names another subject")]
    SubjectChanged,
    /// `aud` differs from the login's ID token (Core §12.2: "MUST be the same").
    #[error("refreshed ID token names other audiences")]
    AudienceChanged,
    /// It carries a `nonce` other than the login's (Core §12.2: if present, "MUST be the same").
    #[error("refreshed ID token carries another nonce")]
    NonceChanged,
}

/// Core §12.2 beyond what every ID token is checked for: the refreshed token's `aud` is the
/// login's, and a `nonce` in it is the login's. (`iat` is the new token's own issue time, so it
/// is not held to any age, and an IdP may return the login's ID token itself.)
fn same_login(refreshed: &str, original: &str) -> Result<(), RefreshedIdTokenError> {
    let (Ok(refreshed), Ok(original)) = (payload_of(refreshed), payload_of(original)) else {
        // Both were verified (the original at login): unreadable means nothing to compare.
        return Ok(());
    };
    let audiences = |claims: &serde_json::Map<String, Value>| -> BTreeSet<String> {
        match claims.get("aud") {
            Some(Value::String(aud)) => BTreeSet::from([aud.clone()]),
            Some(Value::Array(auds)) => auds
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => BTreeSet::new(),
        }
    };
    if audiences(&refreshed) != audiences(&original) {
        return Err(RefreshedIdTokenError::AudienceChanged);
    }
    match refreshed.get("nonce") {
        Some(nonce) if original.get("nonce") != Some(nonce) => {
            Err(RefreshedIdTokenError::NonceChanged)
        }
        _ => Ok(()),
    }
}

impl OidcError {
    /// Whether the IdP refused the grant itself (`invalid_grant`, RFC 6749 §5.2): the refresh
    /// token is no longer valid and retrying cannot help.
    pub fn is_invalid_grant(&self) -> bool {
        match self {
            Self::TokenRequest(err) => matches!(
                err.downcast_ref::<EndpointError>(),
                Some(EndpointError::Refused(code)) if code == "invalid_grant"
            ),
            _ => false,
        }
    }

    /// Whether a refresh failed in a way that ends the session: the grant is refused, or the
    /// returned ID token is invalid or names another user (never merged, never retried).
    pub fn ends_session(&self) -> bool {
        self.is_invalid_grant() || matches!(self, Self::InvalidIdToken(_))
    }
}

impl OidcClient {
    /// Redeems `refresh_token` for new tokens. A returned ID token must validate (signature,
    /// `iss`, `aud`, `azp`, `exp`, `nbf`), carry the session's `sub` and, as Core §12.2 asks,
    /// the audiences (and nonce, if any) of `original`, the login's ID token; a missing one is
    /// fine. With the session's `dpop_key` the request carries a proof of it and the new access
    /// token must come back bound to it.
    pub async fn refresh(
        &self,
        refresh_token: &SecretString,
        sub: &str,
        original: &SecretString,
        dpop_key: Option<&DpopKey>,
    ) -> Result<RefreshedTokens, OidcError> {
        let token = &RefreshToken::new(refresh_token.expose().to_owned());
        let timer = crate::telemetry::metrics::idp_timer("refresh");
        let response = self
            .with_dpop_retry(dpop_key, None, |http| async move {
                let request = self.with_assertion(
                    self.client.exchange_refresh_token(token),
                    |r, name, value| r.add_extra_param(name, value),
                )?;
                request
                    .request_async(&http)
                    .instrument(crate::telemetry::spans::idp("idp refresh"))
                    .await
                    .map_err(super::token_request_failed)
            })
            .await;
        drop(timer);
        let response = response?;
        super::check_token_type(&response, dpop_key.is_some())?;
        let id_token = match response.id_token() {
            Some(id_token) => {
                let identity = self
                    .validate_refreshed_id_token(id_token)
                    .await
                    .map_err(|err| OidcError::InvalidIdToken(Box::new(err)))?;
                if identity.sub != sub {
                    return Err(OidcError::InvalidIdToken(Box::new(
                        RefreshedIdTokenError::SubjectChanged,
                    )));
                }
                same_login(&id_token.to_string(), original.expose())
                    .map_err(|err| OidcError::InvalidIdToken(Box::new(err)))?;
                Some(SecretString::new(id_token.to_string()))
            }
            None => None,
        };
        Ok(RefreshedTokens {
            access_token: SecretString::new(response.access_token().secret().clone()),
            refresh_token: response
                .refresh_token()
                .map(|token| SecretString::new(token.secret().clone()))
                .filter(|token| !token.is_empty()),
            id_token,
            access_expires_at: response
                .expires_in()
                .map(|ttl| self.clock.now().saturating_add(ttl.as_secs())),
        })
    }

    /// As at login, a key the JWKS lacks triggers one (rate-limited) refetch.
    async fn validate_refreshed_id_token(
        &self,
        id_token: &CoreIdToken,
    ) -> Result<VerifiedIdToken, IdTokenError> {
        self.with_keys(
            |keys| self.validator.validate_refreshed(id_token, keys),
            IdTokenError::is_unknown_key,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::HttpError;

    fn refused(code: &str) -> OidcError {
        OidcError::TokenRequest(Box::new(EndpointError::Refused(code.to_owned())))
    }

    #[test]
    fn refresh_refused_with_invalid_grant_ends_the_session() {
        assert!(refused("invalid_grant").is_invalid_grant());
        assert!(refused("invalid_grant").ends_session());
    }

    #[test]
    fn refresh_with_a_foreign_id_token_ends_the_session() {
        let err = OidcError::InvalidIdToken(Box::new(RefreshedIdTokenError::SubjectChanged));
        assert!(!err.is_invalid_grant());
        assert!(err.ends_session());
    }

    #[test]
    fn refresh_failures_of_the_idp_keep_the_session() {
        let unavailable = OidcError::TokenRequest(Box::new(EndpointError::Http(
            HttpError::ServerError(http::StatusCode::BAD_GATEWAY),
        )));
        let malformed = OidcError::TokenRequest(Box::new(EndpointError::Malformed {
            path: "expires_in".to_owned(),
        }));
        for err in [
            unavailable,
            malformed,
            refused("server_error"),
            refused("temporarily_unavailable"),
            OidcError::IncompleteResponse("access_token"),
        ] {
            assert!(!err.ends_session(), "{err}");
        }
    }
}
