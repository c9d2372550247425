//! Logout-token validation (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6).
//!
//! Signature, algorithm and key: the shared [`JwsPolicy`] (as for ID tokens). `typ`, when
//! present, must be `logout+jwt` or `JWT` as a media type (SPEC §2; explicit typing is
//! recommended to IdPs, not required of them); a `nonce` or a missing `events` member is what
//! keeps an ID token from passing for a logout token (§4.1 cross-JWT confusion).
//!
//! Time: `iat` is required and may be at most [`LOGOUT_CLOCK_SKEW`] in the future and at most
//! [`MAX_LOGOUT_TOKEN_AGE`] (+ skew) in the past; `exp` and `nbf` are checked when present.
//! A token is thus accepted for at most `MAX_LOGOUT_TOKEN_AGE + 2 × skew` seconds, which bounds
//! how long its `jti` must be remembered ([`LogoutToken::replay_until`]).
//!
//! `aud` must name this client and nobody else (OpenID Connect Core §3.1.3.7: audiences the
//! client does not trust refuse the token; Ward trusts none). Error texts name the failed
//! check, never a claim value.

use openidconnect::core::CoreJsonWebKeySet;
use serde_json::{Map, Value};

use super::jws::{Jws, JwsError, JwsPolicy};

/// Allowed difference between Ward's clock and the IdP's, in seconds (±2 minutes).
pub const LOGOUT_CLOCK_SKEW: u64 = 120;
/// Oldest acceptable `iat`, in seconds before now (plus the skew). The OP sends the token the
/// moment the user logs out; five minutes covers slow deliveries, not stored tokens.
pub const MAX_LOGOUT_TOKEN_AGE: u64 = 300;
/// Longest compact token accepted, in bytes: logout tokens are a few hundred bytes.
pub const MAX_LOGOUT_TOKEN_LEN: usize = 8 * 1024;
/// The `events` member that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Why a logout token was refused. Texts name the check, never the token or a claim value.
#[derive(Debug, thiserror::Error)]
pub enum LogoutTokenError {
    /// Not a compact JWS with base64url JSON-object header and payload, or too long.
    #[error("logout token is not a well-formed JWS")]
    Malformed,
    /// A header that brings its own key or critical extensions.
    #[error("logout token has a refused `{0}` header")]
    RefusedHeader(&'static str),
    /// `typ` is present and neither `logout+jwt` nor `JWT`.
    #[error("logout token typ is neither logout+jwt nor JWT")]
    WrongType,
    /// `alg` is missing, symmetric, `none` or not advertised by the IdP.
    #[error("logout token alg is not allowed")]
    DisallowedAlg,
    /// No key of the JWKS fits `kid` and `alg` (it may be newly rotated in).
    #[error("no JWKS key matches the logout token")]
    UnknownKey,
    /// Several keys fit a token without `kid`.
    #[error("several JWKS keys match a logout token without kid")]
    AmbiguousKey,
    /// The signature does not verify.
    #[error("logout token signature is invalid")]
    BadSignature,
    /// `iss` is not the issuer.
    #[error("logout token iss is not the issuer")]
    Issuer,
    /// `aud` does not name this client, or names someone else too.
    #[error("logout token aud is not exactly this client")]
    Audience,
    /// `iat` is missing or not a number.
    #[error("logout token has no valid iat")]
    MissingIssuedAt,
    /// `iat` lies beyond the clock skew in the future.
    #[error("logout token iat is in the future")]
    IssuedInFuture,
    /// `iat` is older than [`MAX_LOGOUT_TOKEN_AGE`] plus the skew.
    #[error("logout token iat is older than {MAX_LOGOUT_TOKEN_AGE}s")]
    IssuedTooLongAgo,
    /// `exp` is past (beyond the skew) or not a number.
    #[error("logout token is expired or has an invalid exp")]
    Expired,
    /// `nbf` is in the future (beyond the skew) or not a number.
    #[error("logout token is not yet valid or has an invalid nbf")]
    NotYetValid,
    /// `events` lacks the back-channel logout member, or it is not a JSON object.
    #[error("logout token events lack the back-channel logout event")]
    MissingEvent,
    /// A `nonce` claim is present (§2.4: it must not be).
    #[error("logout token carries a nonce")]
    NoncePresent,
    /// Neither `sub` nor `sid`, or one of them is empty or not a string.
    #[error("logout token names no valid sub or sid")]
    MissingSubject,
    /// `jti` is missing, empty or not a string.
    #[error("logout token has no valid jti")]
    MissingJti,
}

/// A validated logout token: whom to log out, and what to remember against replay.
#[derive(Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// `sub`, when present.
    pub sub: Option<String>,
    /// `sid`, when present.
    pub sid: Option<String>,
    /// `jti`: unique per token; remembered until [`LogoutToken::replay_until`].
    pub jti: String,
    /// `iat` (unix seconds), already checked against the clock.
    pub iat: u64,
}

impl LogoutToken {
    /// Until when (unix seconds) this token could still be accepted, so its `jti` must be
    /// remembered: later, `iat` alone refuses it.
    pub fn replay_until(&self) -> u64 {
        self.iat
            .saturating_add(MAX_LOGOUT_TOKEN_AGE)
            .saturating_add(LOGOUT_CLOCK_SKEW)
    }
}

impl std::fmt::Debug for LogoutToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Identifiers of a person and a session stay out of debug output.
        f.debug_struct("LogoutToken")
            .field("sub", &self.sub.as_ref().map(|_| "<redacted>"))
            .field("sid", &self.sid.as_ref().map(|_| "<redacted>"))
            .field("iat", &self.iat)
            .finish_non_exhaustive()
    }
}

impl From<JwsError> for LogoutTokenError {
    fn from(err: JwsError) -> Self {
        match err {
            JwsError::Malformed => Self::Malformed,
            JwsError::RefusedHeader(name) => Self::RefusedHeader(name),
            JwsError::DisallowedAlg => Self::DisallowedAlg,
            JwsError::UnknownKey => Self::UnknownKey,
            JwsError::AmbiguousKey => Self::AmbiguousKey,
            JwsError::BadSignature => Self::BadSignature,
        }
    }
}

/// What a logout token is checked against, at one instant.
pub(crate) struct LogoutTokenValidator<'a> {
    pub client_id: &'a str,
    pub issuer: &'a str,
    /// The signature policy shared with ID tokens.
    pub policy: &'a JwsPolicy,
    /// Unix seconds.
    pub now: u64,
}

impl LogoutTokenValidator<'_> {
    /// Validates the compact `token` with `keys`.
    pub(crate) fn validate(
        &self,
        token: &str,
        keys: &CoreJsonWebKeySet,
    ) -> Result<LogoutToken, LogoutTokenError> {
        if token.len() > MAX_LOGOUT_TOKEN_LEN {
            return Err(LogoutTokenError::Malformed);
        }
        let jws = Jws::parse(token)?;
        self.policy.check_header(&jws.header)?;
        match jws.header.get("typ") {
            None => {}
            Some(Value::String(typ)) if is_logout_jwt_type(typ) => {}
            Some(_) => return Err(LogoutTokenError::WrongType),
        }
        let claims = self.policy.verify(&jws, keys)?;
        self.check_claims(&claims)
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<LogoutToken, LogoutTokenError> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer) {
            return Err(LogoutTokenError::Issuer);
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => aud == self.client_id,
            Some(Value::Array(auds)) => {
                !auds.is_empty() && auds.iter().all(|a| a.as_str() == Some(self.client_id))
            }
            _ => false,
        };
        if !audience_ok {
            return Err(LogoutTokenError::Audience);
        }
        let iat = self.check_times(claims)?;
        let is_logout_event = claims
            .get("events")
            .and_then(Value::as_object)
            .and_then(|events| events.get(BACKCHANNEL_LOGOUT_EVENT))
            .is_some_and(Value::is_object);
        if !is_logout_event {
            return Err(LogoutTokenError::MissingEvent);
        }
        if claims.contains_key("nonce") {
            return Err(LogoutTokenError::NoncePresent);
        }
        let sub = identifier(claims, "sub").ok_or(LogoutTokenError::MissingSubject)?;
        let sid = identifier(claims, "sid").ok_or(LogoutTokenError::MissingSubject)?;
        if sub.is_none() && sid.is_none() {
            return Err(LogoutTokenError::MissingSubject);
        }
        let jti = match claims.get("jti") {
            Some(Value::String(jti)) if !jti.is_empty() => jti.clone(),
            _ => return Err(LogoutTokenError::MissingJti),
        };
        Ok(LogoutToken { sub, sid, jti, iat })
    }

    /// `iat` (required), `exp` and `nbf` (when present) against the clock; `iat`.
    fn check_times(&self, claims: &Map<String, Value>) -> Result<u64, LogoutTokenError> {
        let now = self.now;
        let iat = claims
            .get("iat")
            .and_then(numeric_date)
            .ok_or(LogoutTokenError::MissingIssuedAt)?;
        if iat > now.saturating_add(LOGOUT_CLOCK_SKEW) {
            return Err(LogoutTokenError::IssuedInFuture);
        }
        if iat.saturating_add(MAX_LOGOUT_TOKEN_AGE + LOGOUT_CLOCK_SKEW) < now {
            return Err(LogoutTokenError::IssuedTooLongAgo);
        }
        if let Some(exp) = claims.get("exp") {
            match numeric_date(exp) {
                Some(exp) if now < exp.saturating_add(LOGOUT_CLOCK_SKEW) => {}
                _ => return Err(LogoutTokenError::Expired),
            }
        }
        if let Some(nbf) = claims.get("nbf") {
            match numeric_date(nbf) {
                Some(nbf) if nbf <= now.saturating_add(LOGOUT_CLOCK_SKEW) => {}
                _ => return Err(LogoutTokenError::NotYetValid),
            }
        }
        Ok(iat)
    }
}

/// `typ` is a media type (RFC 7515 §4.1.9, case-insensitive, `application/` optional):
/// `logout+jwt` (§2.4) or the generic `JWT` (SPEC §2).
fn is_logout_jwt_type(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    let subtype = typ.strip_prefix("application/").unwrap_or(&typ);
    subtype == "logout+jwt" || subtype == "jwt"
}

/// Claim `name` as `Some(Some(value))` when it is a non-empty string, `Some(None)` when absent,
/// `None` when present but not usable.
fn identifier(claims: &Map<String, Value>, name: &str) -> Option<Option<String>> {
    match claims.get(name) {
        None => Some(None),
        Some(Value::String(value)) if !value.is_empty() => Some(Some(value.clone())),
        Some(_) => None,
    }
}

/// A NumericDate (RFC 7519 §2) as whole seconds; fractions are truncated, negatives refused.
fn numeric_date(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
            .map(|f| f as u64)
    })
}
