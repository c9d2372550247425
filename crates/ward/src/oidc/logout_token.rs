//! Logout-token validation (OpenID Connect Back-Channel Logout 1.0 §2.4, §2.6).
//!
//! The token must be a compact JWS signed with an asymmetric algorithm the IdP advertises for
//! ID tokens (the OP signs logout tokens like ID tokens), by a key of its JWKS: never `none`,
//! never HS*, and a token that brings its own key (`jwk`, `jku`, `x5u`, `x5c`) or critical
//! extensions (`crit`) is refused rather than ignored. `typ`, when present, must be
//! `logout+jwt` (§2.4), so an ID token cannot pass for a logout token; a `nonce` or a missing
//! `events` member refuses it too (§4.1 cross-JWT confusion).
//!
//! Time: `iat` is required and may be at most [`LOGOUT_CLOCK_SKEW`] in the future and at most
//! [`MAX_LOGOUT_TOKEN_AGE`] (+ skew) in the past; `exp` and `nbf` are checked when present.
//! A token is thus accepted for at most `MAX_LOGOUT_TOKEN_AGE + 2 × skew` seconds, which bounds
//! how long its `jti` must be remembered ([`LogoutToken::replay_until`]).
//!
//! `aud` must name this client and nobody else (OpenID Connect Core §3.1.3.7: audiences the
//! client does not trust refuse the token; Ward trusts none). Error texts name the failed
//! check, never a claim value.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse, JwsSigningAlgorithm};
use serde_json::{Map, Value};

/// Allowed difference between Ward's clock and the IdP's, in seconds (±2 minutes).
pub const LOGOUT_CLOCK_SKEW: u64 = 120;
/// Oldest acceptable `iat`, in seconds before now (plus the skew). The OP sends the token the
/// moment the user logs out; five minutes covers slow deliveries, not stored tokens.
pub const MAX_LOGOUT_TOKEN_AGE: u64 = 300;
/// Longest compact token accepted, in bytes: logout tokens are a few hundred bytes.
pub const MAX_LOGOUT_TOKEN_LEN: usize = 8 * 1024;
/// The `events` member that makes a JWT a logout token (§2.4).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// JOSE headers that carry or point at a key, or demand extensions Ward does not implement.
const REFUSED_HEADERS: &[&str] = &["crit", "jku", "jwk", "x5u", "x5c"];

/// Why a logout token was refused. Texts name the check, never the token or a claim value.
#[derive(Debug, thiserror::Error)]
pub enum LogoutTokenError {
    /// Not a compact JWS with base64url JSON-object header and payload, or too long.
    #[error("logout token is not a well-formed JWS")]
    Malformed,
    /// A header that brings its own key or critical extensions.
    #[error("logout token has a refused `{0}` header")]
    RefusedHeader(&'static str),
    /// `typ` is present and not `logout+jwt`.
    #[error("logout token typ is not logout+jwt")]
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

/// What a logout token is checked against, at one instant.
pub(crate) struct LogoutTokenValidator<'a> {
    pub client_id: &'a str,
    pub issuer: &'a str,
    /// Allowed signing algorithms (asymmetric only; see [`allowed_algs`]).
    pub algs: Vec<CoreJwsSigningAlgorithm>,
    /// Unix seconds.
    pub now: u64,
}

/// The asymmetric members of the IdP's `id_token_signing_alg_values_supported`, RS256 (the
/// OpenID Connect default) when it names none.
pub(crate) fn allowed_algs(advertised: &[CoreJwsSigningAlgorithm]) -> Vec<CoreJwsSigningAlgorithm> {
    let mut algs: Vec<_> = advertised
        .iter()
        .filter(|alg| !alg.uses_shared_secret() && alg.key_type().is_some())
        .cloned()
        .collect();
    if algs.is_empty() {
        algs.push(CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256);
    }
    algs
}

impl LogoutTokenValidator<'_> {
    /// Validates the compact `token` with `keys`.
    pub(crate) fn validate(
        &self,
        token: &str,
        keys: &CoreJsonWebKeySet,
    ) -> Result<LogoutToken, LogoutTokenError> {
        let jws = Jws::parse(token)?;
        let alg = self.check_header(&jws.header)?;
        let kid = match jws.header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(LogoutTokenError::Malformed),
        };
        let key = signing_key(keys, kid, &alg)?;
        key.verify_signature(&alg, jws.signing_input.as_bytes(), &jws.signature)
            .map_err(|_| LogoutTokenError::BadSignature)?;
        let claims = decode_object(jws.payload)?;
        self.check_claims(&claims)
    }

    /// `typ`, refused headers and `alg`; the algorithm to verify with.
    fn check_header(
        &self,
        header: &Map<String, Value>,
    ) -> Result<CoreJwsSigningAlgorithm, LogoutTokenError> {
        if let Some(name) = REFUSED_HEADERS.iter().find(|h| header.contains_key(**h)) {
            return Err(LogoutTokenError::RefusedHeader(name));
        }
        match header.get("typ") {
            None => {}
            Some(Value::String(typ)) if is_logout_jwt_type(typ) => {}
            Some(_) => return Err(LogoutTokenError::WrongType),
        }
        let alg = header
            .get("alg")
            .cloned()
            .and_then(|alg| serde_json::from_value::<CoreJwsSigningAlgorithm>(alg).ok())
            .ok_or(LogoutTokenError::DisallowedAlg)?;
        if !self.algs.contains(&alg) {
            return Err(LogoutTokenError::DisallowedAlg);
        }
        Ok(alg)
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

/// `typ` is a media type: `logout+jwt` or `application/logout+jwt`, case-insensitive
/// (RFC 7515 §4.1.9).
fn is_logout_jwt_type(typ: &str) -> bool {
    let typ = typ.to_ascii_lowercase();
    typ == "logout+jwt" || typ == "application/logout+jwt"
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

/// The one key of `keys` that may verify a token with `kid` and `alg` (the same selection as
/// openidconnect's ID-token verifier: `kid` when given, `use` allowing signatures, key type
/// and key `alg` compatible).
fn signing_key<'k>(
    keys: &'k CoreJsonWebKeySet,
    kid: Option<&str>,
    alg: &CoreJwsSigningAlgorithm,
) -> Result<&'k CoreJsonWebKey, LogoutTokenError> {
    let mut candidates = keys.keys().iter().filter(|key| {
        kid.is_none_or(|kid| key.key_id().is_some_and(|id| id.as_str() == kid))
            && key.key_use().is_none_or(|u| u.allows_signature())
            && alg.key_type().as_ref() == Some(key.key_type())
            && match key.signing_alg() {
                JsonWebKeyAlgorithm::Unspecified => true,
                JsonWebKeyAlgorithm::Algorithm(key_alg) => key_alg == alg,
                JsonWebKeyAlgorithm::Unsupported => false,
            }
    });
    match (candidates.next(), candidates.next()) {
        (Some(key), None) => Ok(key),
        (None, _) => Err(LogoutTokenError::UnknownKey),
        (Some(_), Some(_)) => Err(LogoutTokenError::AmbiguousKey),
    }
}

/// The parts of a compact JWS, header decoded.
struct Jws<'t> {
    header: Map<String, Value>,
    /// `header.payload` as sent: the bytes the signature covers.
    signing_input: &'t str,
    payload: &'t str,
    signature: Vec<u8>,
}

impl<'t> Jws<'t> {
    fn parse(token: &'t str) -> Result<Self, LogoutTokenError> {
        if token.len() > MAX_LOGOUT_TOKEN_LEN {
            return Err(LogoutTokenError::Malformed);
        }
        let (signing_input, signature) =
            token.rsplit_once('.').ok_or(LogoutTokenError::Malformed)?;
        let (header, payload) = signing_input
            .split_once('.')
            .ok_or(LogoutTokenError::Malformed)?;
        // Five-part (encrypted) tokens and stray dots end up here with a dot in `payload`.
        if payload.contains('.') {
            return Err(LogoutTokenError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| LogoutTokenError::Malformed)?;
        if signature.is_empty() {
            return Err(LogoutTokenError::Malformed);
        }
        Ok(Self {
            header: decode_object(header)?,
            signing_input,
            payload,
            signature,
        })
    }
}

fn decode_object(part: &str) -> Result<Map<String, Value>, LogoutTokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| LogoutTokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| LogoutTokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
    use serde_json::json;

    use super::*;

    const NOW: u64 = 1_700_000_000;
    const ISSUER: &str = "https://idp.example";
    const CLIENT_ID: &str = "bff";

    /// The IdP's key and another one (an attacker's).
    static KEYS: LazyLock<[RsaKeyPair; 2]> = LazyLock::new(|| {
        [
            RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
            RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"),
        ]
    });

    fn jwk(key: &RsaKeyPair, kid: Option<&str>) -> Value {
        let public = PublicKeyComponents::<Vec<u8>>::from(key.public_key());
        let mut jwk = json!({
            "kty": "RSA", "use": "sig", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.n), "e": URL_SAFE_NO_PAD.encode(public.e),
        });
        if let Some(kid) = kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    fn jwks(keys: &[Value]) -> CoreJsonWebKeySet {
        serde_json::from_value(json!({ "keys": keys })).expect("JWKS")
    }

    /// The IdP's published keys: one RSA key, `idp-key`.
    fn idp_jwks() -> CoreJsonWebKeySet {
        jwks(&[jwk(&KEYS[0], Some("idp-key"))])
    }

    fn encode(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn sign(header: &Value, claims: &Value, key: &RsaKeyPair) -> String {
        let input = format!("{}.{}", encode(header), encode(claims));
        let mut signature = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .expect("RSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn header() -> Value {
        json!({"alg": "RS256", "typ": "logout+jwt", "kid": "idp-key"})
    }

    /// The claims oidc-provider sends (`sid` required by the client's registration).
    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": CLIENT_ID, "sub": "alice", "sid": "idp-session-1",
            "iat": NOW, "exp": NOW + 120, "jti": "jti-1",
            "events": { BACKCHANNEL_LOGOUT_EVENT: {} },
        })
    }

    fn validator() -> LogoutTokenValidator<'static> {
        LogoutTokenValidator {
            client_id: CLIENT_ID,
            issuer: ISSUER,
            algs: allowed_algs(&[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]),
            now: NOW,
        }
    }

    fn validate(token: &str) -> Result<LogoutToken, LogoutTokenError> {
        validator().validate(token, &idp_jwks())
    }

    /// Validates `claims()` changed by `change`, signed by the IdP.
    fn with_claims(
        change: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<LogoutToken, LogoutTokenError> {
        let mut claims = claims();
        change(claims.as_object_mut().expect("object"));
        validate(&sign(&header(), &claims, &KEYS[0]))
    }

    /// Validates `claims()` under `header()` changed by `change`, signed by the IdP.
    fn with_header(
        change: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<LogoutToken, LogoutTokenError> {
        let mut header = header();
        change(header.as_object_mut().expect("object"));
        validate(&sign(&header, &claims(), &KEYS[0]))
    }

    #[test]
    fn valid_logout_token_yields_sub_sid_jti_and_replay_horizon() {
        let token = validate(&sign(&header(), &claims(), &KEYS[0])).expect("valid");
        assert_eq!(token.sub.as_deref(), Some("alice"));
        assert_eq!(token.sid.as_deref(), Some("idp-session-1"));
        assert_eq!(token.jti, "jti-1");
        assert_eq!(token.iat, NOW);
        assert_eq!(
            token.replay_until(),
            NOW + MAX_LOGOUT_TOKEN_AGE + LOGOUT_CLOCK_SKEW
        );
    }

    #[test]
    fn sid_alone_or_sub_alone_is_enough_but_not_neither() {
        let sid_only = with_claims(|c| drop(c.remove("sub"))).expect("sid only");
        assert_eq!(
            (sid_only.sub, sid_only.sid.as_deref()),
            (None, Some("idp-session-1"))
        );
        let sub_only = with_claims(|c| drop(c.remove("sid"))).expect("sub only");
        assert_eq!(
            (sub_only.sub.as_deref(), sub_only.sid),
            (Some("alice"), None)
        );
        let neither = with_claims(|c| {
            c.remove("sub");
            c.remove("sid");
        });
        assert!(matches!(neither, Err(LogoutTokenError::MissingSubject)));
        for (name, bad) in [("sub", json!("")), ("sid", json!(7)), ("sub", Value::Null)] {
            let result = with_claims(|c| drop(c.insert(name.to_owned(), bad)));
            assert!(
                matches!(result, Err(LogoutTokenError::MissingSubject)),
                "{name}"
            );
        }
    }

    #[test]
    fn typ_must_be_logout_jwt_when_present() {
        assert!(with_header(|h| drop(h.remove("typ"))).is_ok());
        assert!(
            with_header(|h| drop(h.insert("typ".into(), json!("application/logout+JWT")))).is_ok()
        );
        for typ in [json!("JWT"), json!("at+jwt"), json!(""), json!(1)] {
            let result = with_header(|h| drop(h.insert("typ".into(), typ)));
            assert!(matches!(result, Err(LogoutTokenError::WrongType)));
        }
    }

    #[test]
    fn tampered_signature_or_payload_is_rejected() {
        let token = sign(&header(), &claims(), &KEYS[0]);
        let (input, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[10] ^= 1;
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert!(matches!(
            validate(&flipped),
            Err(LogoutTokenError::BadSignature)
        ));

        let mut other = claims();
        other["sub"] = json!("mallory");
        let swapped = format!("{}.{}.{signature}", encode(&header()), encode(&other));
        assert!(matches!(
            validate(&swapped),
            Err(LogoutTokenError::BadSignature)
        ));
    }

    #[test]
    fn foreign_key_carrying_the_idp_kid_is_rejected_and_unknown_kid_is_reported() {
        let foreign = sign(&header(), &claims(), &KEYS[1]);
        assert!(matches!(
            validate(&foreign),
            Err(LogoutTokenError::BadSignature)
        ));
        let unknown = with_header(|h| drop(h.insert("kid".into(), json!("rotated"))));
        assert!(matches!(unknown, Err(LogoutTokenError::UnknownKey)));
    }

    #[test]
    fn token_without_kid_needs_exactly_one_fitting_key() {
        let mut header = header();
        header.as_object_mut().unwrap().remove("kid");
        let token = sign(&header, &claims(), &KEYS[0]);
        let one = jwks(&[jwk(&KEYS[0], None)]);
        assert!(validator().validate(&token, &one).is_ok());
        let two = jwks(&[jwk(&KEYS[0], Some("a")), jwk(&KEYS[1], Some("b"))]);
        assert!(matches!(
            validator().validate(&token, &two),
            Err(LogoutTokenError::AmbiguousKey)
        ));
    }

    #[test]
    fn alg_none_symmetric_and_unadvertised_algorithms_are_refused() {
        let unsigned = format!("{}.{}.", encode(&json!({"alg": "none"})), encode(&claims()));
        assert!(matches!(
            validate(&unsigned),
            Err(LogoutTokenError::Malformed)
        ));
        let none = format!(
            "{}.{}.AAAA",
            encode(&json!({"alg": "none"})),
            encode(&claims())
        );
        assert!(matches!(
            validate(&none),
            Err(LogoutTokenError::DisallowedAlg)
        ));
        for alg in ["HS256", "PS256", "ES256", "XX999", ""] {
            let result = with_header(|h| drop(h.insert("alg".into(), json!(alg))));
            assert!(
                matches!(result, Err(LogoutTokenError::DisallowedAlg)),
                "{alg}"
            );
        }
        assert!(matches!(
            with_header(|h| drop(h.remove("alg"))),
            Err(LogoutTokenError::DisallowedAlg)
        ));
        let symmetric = allowed_algs(&[
            CoreJwsSigningAlgorithm::HmacSha256,
            CoreJwsSigningAlgorithm::None,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        ]);
        assert_eq!(symmetric, [CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
        assert_eq!(
            allowed_algs(&[]),
            [CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]
        );
    }

    #[test]
    fn headers_that_bring_a_key_or_critical_extensions_are_refused() {
        for name in ["jwk", "jku", "x5u", "x5c", "crit"] {
            let result = with_header(|h| drop(h.insert(name.into(), json!("x"))));
            assert!(matches!(result, Err(LogoutTokenError::RefusedHeader(n)) if n == name));
        }
    }

    #[test]
    fn issuer_and_audience_must_match_exactly() {
        for iss in [
            json!("https://idp.example/"),
            json!("https://evil.example"),
            Value::Null,
        ] {
            let result = with_claims(|c| drop(c.insert("iss".into(), iss)));
            assert!(matches!(result, Err(LogoutTokenError::Issuer)));
        }
        assert!(matches!(
            with_claims(|c| drop(c.remove("iss"))),
            Err(LogoutTokenError::Issuer)
        ));
        assert!(with_claims(|c| drop(c.insert("aud".into(), json!([CLIENT_ID])))).is_ok());
        for aud in [
            json!("other"),
            json!([CLIENT_ID, "other"]),
            json!([]),
            json!(["other"]),
            json!(1),
        ] {
            let result = with_claims(|c| drop(c.insert("aud".into(), aud)));
            assert!(matches!(result, Err(LogoutTokenError::Audience)));
        }
        assert!(matches!(
            with_claims(|c| drop(c.remove("aud"))),
            Err(LogoutTokenError::Audience)
        ));
    }

    #[test]
    fn iat_is_required_within_skew_and_age() {
        let skew = LOGOUT_CLOCK_SKEW;
        let oldest = NOW - MAX_LOGOUT_TOKEN_AGE - skew;
        let at = |iat: Value| {
            with_claims(|c| {
                c.insert("iat".into(), iat);
                c.remove("exp");
            })
        };
        assert!(at(json!(NOW + skew)).is_ok());
        assert!(at(json!(oldest)).is_ok());
        assert!(at(json!(NOW as f64 + 0.5)).is_ok());
        assert!(matches!(
            at(json!(NOW + skew + 1)),
            Err(LogoutTokenError::IssuedInFuture)
        ));
        assert!(matches!(
            at(json!(oldest - 1)),
            Err(LogoutTokenError::IssuedTooLongAgo)
        ));
        for bad in [json!("1700000000"), json!(-1), Value::Null] {
            assert!(matches!(at(bad), Err(LogoutTokenError::MissingIssuedAt)));
        }
        assert!(matches!(
            with_claims(|c| drop(c.remove("iat"))),
            Err(LogoutTokenError::MissingIssuedAt)
        ));
    }

    #[test]
    fn exp_and_nbf_are_checked_when_present() {
        let set = |name: &'static str, value: Value| {
            with_claims(move |c| drop(c.insert(name.into(), value)))
        };
        assert!(with_claims(|c| drop(c.remove("exp"))).is_ok());
        assert!(set("exp", json!(NOW - LOGOUT_CLOCK_SKEW + 1)).is_ok());
        assert!(matches!(
            set("exp", json!(NOW - LOGOUT_CLOCK_SKEW)),
            Err(LogoutTokenError::Expired)
        ));
        assert!(matches!(
            set("exp", json!("soon")),
            Err(LogoutTokenError::Expired)
        ));
        assert!(set("nbf", json!(NOW + LOGOUT_CLOCK_SKEW)).is_ok());
        assert!(matches!(
            set("nbf", json!(NOW + LOGOUT_CLOCK_SKEW + 1)),
            Err(LogoutTokenError::NotYetValid)
        ));
    }

    #[test]
    fn events_must_hold_the_backchannel_logout_member_as_an_object() {
        let events = |value: Value| with_claims(move |c| drop(c.insert("events".into(), value)));
        assert!(events(json!({ BACKCHANNEL_LOGOUT_EVENT: {}, "urn:other": {} })).is_ok());
        for bad in [
            json!({}),
            json!({ BACKCHANNEL_LOGOUT_EVENT: "yes" }),
            json!({ BACKCHANNEL_LOGOUT_EVENT: [] }),
            json!({ "http://schemas.openid.net/event/backchannel-logout/": {} }),
            json!([BACKCHANNEL_LOGOUT_EVENT]),
            json!(BACKCHANNEL_LOGOUT_EVENT),
        ] {
            assert!(matches!(events(bad), Err(LogoutTokenError::MissingEvent)));
        }
        assert!(matches!(
            with_claims(|c| drop(c.remove("events"))),
            Err(LogoutTokenError::MissingEvent)
        ));
    }

    #[test]
    fn a_nonce_or_an_id_token_is_refused() {
        for nonce in [json!("n"), Value::Null, json!("")] {
            let result = with_claims(|c| drop(c.insert("nonce".into(), nonce)));
            assert!(matches!(result, Err(LogoutTokenError::NoncePresent)));
        }
        let id_token = json!({
            "iss": ISSUER, "aud": CLIENT_ID, "sub": "alice", "sid": "idp-session-1",
            "iat": NOW, "exp": NOW + 300, "nonce": "n", "jti": "x",
        });
        let id_header = json!({"alg": "RS256", "typ": "JWT", "kid": "idp-key"});
        assert!(matches!(
            validate(&sign(&id_header, &id_token, &KEYS[0])),
            Err(LogoutTokenError::WrongType)
        ));
        let untyped = json!({"alg": "RS256", "kid": "idp-key"});
        assert!(matches!(
            validate(&sign(&untyped, &id_token, &KEYS[0])),
            Err(LogoutTokenError::MissingEvent)
        ));
    }

    #[test]
    fn jti_must_be_a_non_empty_string() {
        for jti in [json!(""), json!(42), Value::Null] {
            let result = with_claims(|c| drop(c.insert("jti".into(), jti)));
            assert!(matches!(result, Err(LogoutTokenError::MissingJti)));
        }
        assert!(matches!(
            with_claims(|c| drop(c.remove("jti"))),
            Err(LogoutTokenError::MissingJti)
        ));
    }

    #[test]
    fn malformed_tokens_are_refused_without_panicking() {
        let valid = sign(&header(), &claims(), &KEYS[0]);
        let long = format!("{valid}{}", "A".repeat(MAX_LOGOUT_TOKEN_LEN));
        let h = encode(&header());
        for token in [
            "",
            "garbage",
            "a.b",
            "...",
            "a.b.c.d.e",
            &format!("{h}.{}.!!", encode(&claims())),
            &format!("{h}.not*base64.AAAA"),
            &format!("{h}.{}.AAAA", encode(&json!([1, 2]))),
            &format!("{}.{}.AAAA", encode(&json!("header")), encode(&claims())),
            &format!("{valid}.extra.parts"),
            &format!("{h}={}", &valid[h.len()..]),
            &long,
        ] {
            let result = validate(token);
            assert!(result.is_err(), "{token:.40}");
        }
        assert!(matches!(validate(&long), Err(LogoutTokenError::Malformed)));
    }

    #[test]
    fn debug_and_errors_show_no_identifiers() {
        let token = validate(&sign(&header(), &claims(), &KEYS[0])).unwrap();
        let debug = format!("{token:?}");
        assert!(
            !debug.contains("alice")
                && !debug.contains("idp-session-1")
                && !debug.contains("jti-1")
        );
        let err = with_claims(|c| drop(c.insert("iss".into(), json!("https://evil.example"))))
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("evil"));
    }
}
