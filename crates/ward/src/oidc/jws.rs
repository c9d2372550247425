//! The one signature policy for every JWT Ward accepts from the IdP: ID tokens and logout
//! tokens are checked by the same rules, so a hardening of one cannot miss the other.
//!
//! - Algorithms: only the asymmetric members of the IdP's `id_token_signing_alg_values_supported`
//!   (RS256, the OpenID Connect default, when it names none). Never `none`, never HS*: the
//!   client secret is never a MAC key (the OP signs logout tokens like ID tokens, Back-Channel
//!   Logout 1.0 §2.4).
//! - Keys: only from the JWKS at the discovered `jwks_uri`. A header that brings or points at a
//!   key of its own (`jwk`, `jku`, `x5u`, `x5c`) or demands extensions (`crit`, RFC 7515
//!   §4.1.11) refuses the token rather than being ignored.
//! - Selection: `kid` when given, a key whose `use` allows signatures, whose type fits `alg`
//!   and whose own `alg`, when stated, is `alg`. A token without `kid` verifies only when
//!   exactly one key fits; several candidates are refused as ambiguous.
//!
//! What a token *says* (claims, `typ`) is checked by the module of its kind.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKey, JsonWebKeyAlgorithm, JsonWebKeyUse, JwsSigningAlgorithm};
use serde_json::{Map, Value};

/// JOSE headers that carry or point at a key, or demand extensions Ward does not implement.
const REFUSED_HEADERS: &[&str] = &["crit", "jku", "jwk", "x5u", "x5c"];

/// Why a JWT failed the signature policy. Texts name the check, never a token or key.
#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    /// Not a compact JWS with base64url JSON-object header and payload.
    #[error("token is not a well-formed JWS")]
    Malformed,
    /// A header that brings its own key or critical extensions.
    #[error("token has a refused `{0}` header")]
    RefusedHeader(&'static str),
    /// `alg` is missing, symmetric, `none` or not advertised by the IdP.
    #[error("token alg is not allowed")]
    DisallowedAlg,
    /// No key of the JWKS fits `kid` and `alg` (it may be newly rotated in).
    #[error("no JWKS key matches the token")]
    UnknownKey,
    /// Several keys fit a token without `kid`.
    #[error("several JWKS keys match a token without kid")]
    AmbiguousKey,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
}

/// The algorithms Ward accepts from one IdP.
#[derive(Clone, Debug)]
pub(crate) struct JwsPolicy {
    algs: Vec<CoreJwsSigningAlgorithm>,
}

impl JwsPolicy {
    /// `advertised`: the IdP's `id_token_signing_alg_values_supported`.
    pub(crate) fn new(advertised: &[CoreJwsSigningAlgorithm]) -> Self {
        let mut algs: Vec<_> = advertised
            .iter()
            .filter(|alg| !alg.uses_shared_secret() && alg.key_type().is_some())
            .cloned()
            .collect();
        if algs.is_empty() {
            algs.push(CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256);
        }
        Self { algs }
    }

    /// The allowed algorithms.
    #[cfg(test)]
    pub(crate) fn algs(&self) -> &[CoreJwsSigningAlgorithm] {
        &self.algs
    }

    /// The refused headers, then `alg`: the algorithm to verify with.
    pub(crate) fn check_header(
        &self,
        header: &Map<String, Value>,
    ) -> Result<CoreJwsSigningAlgorithm, JwsError> {
        if let Some(name) = REFUSED_HEADERS.iter().find(|h| header.contains_key(**h)) {
            return Err(JwsError::RefusedHeader(name));
        }
        header
            .get("alg")
            .cloned()
            .and_then(|alg| serde_json::from_value::<CoreJwsSigningAlgorithm>(alg).ok())
            .filter(|alg| self.algs.contains(alg))
            .ok_or(JwsError::DisallowedAlg)
    }

    /// The algorithm and the one key `header` may be verified with.
    pub(crate) fn key_for<'k>(
        &self,
        header: &Map<String, Value>,
        keys: &'k CoreJsonWebKeySet,
    ) -> Result<(CoreJwsSigningAlgorithm, &'k CoreJsonWebKey), JwsError> {
        let alg = self.check_header(header)?;
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(JwsError::Malformed),
        };
        let key = signing_key(keys, kid, &alg)?;
        Ok((alg, key))
    }

    /// Verifies `jws` under this policy with `keys`; its payload as a JSON object.
    pub(crate) fn verify(
        &self,
        jws: &Jws<'_>,
        keys: &CoreJsonWebKeySet,
    ) -> Result<Map<String, Value>, JwsError> {
        let (alg, key) = self.key_for(&jws.header, keys)?;
        key.verify_signature(&alg, jws.signing_input.as_bytes(), &jws.signature)
            .map_err(|_| JwsError::BadSignature)?;
        decode_object(jws.payload)
    }
}

/// The one key of `keys` that may verify a token with `kid` and `alg`.
fn signing_key<'k>(
    keys: &'k CoreJsonWebKeySet,
    kid: Option<&str>,
    alg: &CoreJwsSigningAlgorithm,
) -> Result<&'k CoreJsonWebKey, JwsError> {
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
        (None, _) => Err(JwsError::UnknownKey),
        (Some(_), Some(_)) => Err(JwsError::AmbiguousKey),
    }
}

/// The parts of a compact JWS, header decoded, nothing verified yet.
pub(crate) struct Jws<'t> {
    pub header: Map<String, Value>,
    /// `header.payload` as sent: the bytes the signature covers.
    signing_input: &'t str,
    payload: &'t str,
    signature: Vec<u8>,
}

impl<'t> Jws<'t> {
    pub(crate) fn parse(token: &'t str) -> Result<Self, JwsError> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(JwsError::Malformed)?;
        let (header, payload) = signing_input.split_once('.').ok_or(JwsError::Malformed)?;
        // Five-part (encrypted) tokens and stray dots end up here with a dot in `payload`.
        if payload.contains('.') {
            return Err(JwsError::Malformed);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwsError::Malformed)?;
        if signature.is_empty() {
            return Err(JwsError::Malformed);
        }
        Ok(Self {
            header: decode_object(header)?,
            signing_input,
            payload,
            signature,
        })
    }
}

fn decode_object(part: &str) -> Result<Map<String, Value>, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwsError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwsError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_advertised_asymmetric_algorithms_are_allowed() {
        let policy = JwsPolicy::new(&[
            CoreJwsSigningAlgorithm::HmacSha256,
            CoreJwsSigningAlgorithm::None,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        ]);
        assert_eq!(policy.algs(), [CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
        assert_eq!(
            JwsPolicy::new(&[]).algs(),
            [CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]
        );
    }

    #[test]
    fn refused_headers_and_none_fail_before_any_key_is_looked_at() {
        let policy = JwsPolicy::new(&[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]);
        let keys = CoreJsonWebKeySet::new(Vec::new());
        for name in REFUSED_HEADERS {
            let mut header = Map::new();
            header.insert("alg".into(), "RS256".into());
            header.insert((*name).into(), "x".into());
            assert!(matches!(
                policy.key_for(&header, &keys),
                Err(JwsError::RefusedHeader(n)) if n == *name
            ));
        }
        for alg in ["none", "HS256", "PS256", ""] {
            let mut header = Map::new();
            header.insert("alg".into(), alg.into());
            assert!(matches!(
                policy.key_for(&header, &keys),
                Err(JwsError::DisallowedAlg)
            ));
        }
    }
}
