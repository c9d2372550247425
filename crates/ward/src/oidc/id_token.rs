//! ID-token validation (OpenID Connect Core §3.1.3.7) on top of openidconnect's verifier,
//! plus the checks it leaves to the client: `azp`, `iat` bounds, `nbf`, a non-empty `sub`, and
//! a stored nonce that must exist (fail closed).
//!
//! Algorithm, key and header rules are the shared [`JwsPolicy`] (as for logout tokens): it picks
//! the one key and algorithm, and openidconnect's verifier then checks the signature with that
//! key alone and the claims. The verifier is built as a public client, so the client secret can
//! never become a MAC key.
//!
//! A login's ID token must be fresh (`iat` within [`MAX_ID_TOKEN_AGE`]); a refreshed one need
//! not be: OpenID Connect Core §12.2 lets an IdP return the original ID token on refresh, and
//! its `exp` bounds it.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{
    ClaimsVerificationError, ClientId, IssuerUrl, Nonce, NonceVerifier, SignatureVerificationError,
};
use serde_json::{Map, Value};
use ward_store::Clock;

use super::jws::{Jws, JwsError, JwsPolicy};
use crate::secret::SecretString;

/// Allowed difference between Ward's clock and the IdP's, in seconds.
pub(crate) const CLOCK_SKEW: u64 = 60;
/// Oldest acceptable `iat`, in seconds before now. The token is minted at the code exchange,
/// which must happen within the login transaction's 10-minute lifetime.
pub(crate) const MAX_ID_TOKEN_AGE: u64 = 600;

/// Claims about the protocol rather than the user; they never reach `TokenSet::claims`.
const PROTOCOL_CLAIMS: &[&str] = &[
    "iss", "aud", "exp", "iat", "nbf", "nonce", "azp", "at_hash", "c_hash", "s_hash", "jti", "sid",
    "typ", "events",
];

/// Why an ID token was refused. Texts name the failed check, never the token or the nonce.
#[derive(Debug, thiserror::Error)]
pub enum IdTokenError {
    /// Signature, `iss`, `aud`, `exp`, `nonce` or header checks (openidconnect).
    #[error(transparent)]
    Claims(#[from] ClaimsVerificationError),
    /// The shared signature policy: header, algorithm or key selection.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// The login transaction has no nonce to compare with.
    #[error("no nonce stored for this login")]
    MissingExpectedNonce,
    /// `azp` names another client.
    #[error("azp is not this client")]
    AuthorizedParty,
    /// Several audiences but no `azp`.
    #[error("several audiences and no azp")]
    MissingAuthorizedParty,
    /// `iat` lies beyond the clock skew in the future.
    #[error("iat is in the future")]
    IssuedInFuture,
    /// `iat` is older than [`MAX_ID_TOKEN_AGE`].
    #[error("iat is older than {MAX_ID_TOKEN_AGE}s")]
    IssuedTooLongAgo,
    /// `nbf` lies beyond the clock skew in the future, or is not a number.
    #[error("nbf is in the future or invalid")]
    NotYetValid,
    /// `sub` is empty.
    #[error("sub is empty")]
    EmptySubject,
    /// The token is not a well-formed JWT with a JSON object payload.
    #[error("ID token is not a well-formed JWT")]
    Malformed,
    /// UserInfo answered for another subject (OpenID Connect Core §5.3.2).
    #[error("userinfo sub differs from the ID token's")]
    UserinfoSubjectMismatch,
}

impl IdTokenError {
    /// Whether no key of the JWKS fits the token (its `kid` may be newly rotated in).
    pub(crate) fn is_unknown_key(&self) -> bool {
        matches!(
            self,
            Self::Jws(JwsError::UnknownKey)
                | Self::Claims(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey
                ))
        )
    }
}

/// A validated ID token's identity.
#[derive(Debug)]
pub(crate) struct VerifiedIdToken {
    pub sub: String,
    pub sid: Option<String>,
    /// User claims of the token (protocol claims removed).
    pub claims: Map<String, Value>,
}

/// What an ID token is checked against.
pub(crate) struct IdTokenValidator {
    client_id: ClientId,
    issuer: IssuerUrl,
    policy: JwsPolicy,
    clock: Arc<dyn Clock>,
}

impl IdTokenValidator {
    pub(crate) fn new(
        client_id: ClientId,
        issuer: IssuerUrl,
        policy: JwsPolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            client_id,
            issuer,
            policy,
            clock,
        }
    }

    /// Validates `id_token` with `keys` against the login's `nonce`.
    pub(crate) fn validate(
        &self,
        id_token: &CoreIdToken,
        nonce: &SecretString,
        keys: &CoreJsonWebKeySet,
    ) -> Result<VerifiedIdToken, IdTokenError> {
        if nonce.is_empty() {
            return Err(IdTokenError::MissingExpectedNonce);
        }
        let expected_nonce = Nonce::new(nonce.expose().to_owned());
        self.validate_with(id_token, keys, &expected_nonce, Some(MAX_ID_TOKEN_AGE))
    }

    /// Validates an ID token from a refresh response (OpenID Connect Core §12.2): signature,
    /// `iss`, `aud`, `azp`, `exp` and `nbf` as at login; `iat` only for not lying in the
    /// future, since an IdP may return the original ID token; the nonce is not compared, as it
    /// belongs to the original authentication (IdPs repeat it or leave it out). That `sub` is
    /// the session's is the caller's check.
    pub(crate) fn validate_refreshed(
        &self,
        id_token: &CoreIdToken,
        keys: &CoreJsonWebKeySet,
    ) -> Result<VerifiedIdToken, IdTokenError> {
        self.validate_with(id_token, keys, |_: Option<&Nonce>| Ok(()), None)
    }

    /// Validates an ID token from a password grant (`oidc::password`): as at login, `iat`
    /// fresh included, but with no nonce to compare, since the grant cannot carry one.
    pub(crate) fn validate_without_nonce(
        &self,
        id_token: &CoreIdToken,
        keys: &CoreJsonWebKeySet,
    ) -> Result<VerifiedIdToken, IdTokenError> {
        let no_nonce = |_: Option<&Nonce>| Ok(());
        self.validate_with(id_token, keys, no_nonce, Some(MAX_ID_TOKEN_AGE))
    }

    /// `max_age`: the oldest `iat` accepted, in seconds before now (`None`: any past `iat`).
    fn validate_with(
        &self,
        id_token: &CoreIdToken,
        keys: &CoreJsonWebKeySet,
        nonce: impl NonceVerifier,
        max_age: Option<u64>,
    ) -> Result<VerifiedIdToken, IdTokenError> {
        let now = self.clock.now();
        let compact = id_token.to_string();
        let (alg, key) = self.policy.key_for(&Jws::parse(&compact)?.header, keys)?;
        // openidconnect rejects `now >= exp`; shifting its clock back grants the skew.
        let skewed_now = UNIX_EPOCH + Duration::from_secs(now.saturating_sub(CLOCK_SKEW));
        let verifier = CoreIdTokenVerifier::new_public_client(
            self.client_id.clone(),
            self.issuer.clone(),
            CoreJsonWebKeySet::new(vec![key.clone()]),
        )
        .set_allowed_algs([alg])
        .set_time_fn(move || skewed_now.into());
        let claims = id_token.claims(&verifier, nonce)?;

        match claims.authorized_party() {
            Some(azp) if azp.as_str() != self.client_id.as_str() => {
                return Err(IdTokenError::AuthorizedParty);
            }
            None if claims.audiences().len() > 1 => {
                return Err(IdTokenError::MissingAuthorizedParty);
            }
            _ => {}
        }
        check_issued_at(claims.issue_time().timestamp(), now, max_age)?;
        let sub = claims.subject().as_str();
        if sub.is_empty() {
            return Err(IdTokenError::EmptySubject);
        }
        let payload = payload(id_token)?;
        check_not_before(payload.get("nbf"), now)?;
        let sid = payload
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(VerifiedIdToken {
            sub: sub.to_owned(),
            sid,
            claims: user_claims(payload),
        })
    }
}

fn check_issued_at(iat: i64, now: u64, max_age: Option<u64>) -> Result<(), IdTokenError> {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let skew = CLOCK_SKEW as i64;
    if iat > now.saturating_add(skew) {
        return Err(IdTokenError::IssuedInFuture);
    }
    let max_age = max_age.map(|age| i64::try_from(age).unwrap_or(i64::MAX));
    if max_age.is_some_and(|age| iat < now.saturating_sub(age.saturating_add(skew))) {
        return Err(IdTokenError::IssuedTooLongAgo);
    }
    Ok(())
}

fn check_not_before(nbf: Option<&Value>, now: u64) -> Result<(), IdTokenError> {
    match nbf {
        None => Ok(()),
        Some(value) => match value.as_u64() {
            Some(nbf) if nbf <= now.saturating_add(CLOCK_SKEW) => Ok(()),
            _ => Err(IdTokenError::NotYetValid),
        },
    }
}

/// The JSON payload of a JWT whose signature openidconnect has already verified.
fn payload(id_token: &CoreIdToken) -> Result<Map<String, Value>, IdTokenError> {
    payload_of(&id_token.to_string())
}

/// The claims of a compact JWT, decoded but not verified: for a token verified already (the
/// login's ID token, kept sealed in the session) or about to be.
pub(crate) fn payload_of(compact: &str) -> Result<Map<String, Value>, IdTokenError> {
    let encoded = compact.split('.').nth(1).ok_or(IdTokenError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| IdTokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| IdTokenError::Malformed)
}

/// `claims` without protocol claims.
pub(crate) fn user_claims(mut claims: Map<String, Value>) -> Map<String, Value> {
    claims.retain(|name, _| !PROTOCOL_CLAIMS.contains(&name.as_str()));
    claims
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn protocol_claims_are_dropped_and_user_claims_kept() {
        let Value::Object(all) = json!({
            "iss": "https://idp.example", "aud": ["bff"], "exp": 2, "iat": 1, "nbf": 1,
            "nonce": "n", "azp": "bff", "at_hash": "h", "c_hash": "h", "sid": "s", "jti": "j",
            "sub": "alice", "email": "alice@example.test", "name": "Alice",
            "auth_time": 1, "acr": "1", "amr": ["pwd"],
        }) else {
            unreachable!()
        };
        let kept: Vec<_> = user_claims(all).keys().cloned().collect();
        assert_eq!(kept, ["acr", "amr", "auth_time", "email", "name", "sub"]);
    }

    #[test]
    fn iat_within_skew_and_age_is_accepted() {
        let age = Some(MAX_ID_TOKEN_AGE);
        assert!(check_issued_at(1_000, 1_000, age).is_ok());
        assert!(check_issued_at(1_060, 1_000, age).is_ok());
        assert!(check_issued_at(10_000 - 660, 10_000, age).is_ok());
    }

    #[test]
    fn iat_beyond_skew_or_age_is_refused() {
        let age = Some(MAX_ID_TOKEN_AGE);
        assert!(matches!(
            check_issued_at(1_061, 1_000, age),
            Err(IdTokenError::IssuedInFuture)
        ));
        assert!(matches!(
            check_issued_at(10_000 - 661, 10_000, age),
            Err(IdTokenError::IssuedTooLongAgo)
        ));
    }

    #[test]
    fn without_a_max_age_only_a_future_iat_is_refused() {
        assert!(check_issued_at(0, 10_000, None).is_ok());
        assert!(matches!(
            check_issued_at(10_061, 10_000, None),
            Err(IdTokenError::IssuedInFuture)
        ));
    }

    #[test]
    fn nbf_must_be_a_number_not_beyond_skew() {
        assert!(check_not_before(None, 1_000).is_ok());
        assert!(check_not_before(Some(&json!(1_060)), 1_000).is_ok());
        assert!(check_not_before(Some(&json!(1_061)), 1_000).is_err());
        assert!(check_not_before(Some(&json!("1000")), 1_000).is_err());
    }
}
