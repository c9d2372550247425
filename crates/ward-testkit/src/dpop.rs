//! A resource server's DPoP check (RFC 9449 §7), for the echo upstream: what an API that
//! accepts DPoP-bound tokens verifies of each request, independent of Ward's code.

use std::collections::HashSet;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use axum::http::{HeaderMap, Method};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// What the echo upstream demands of DPoP requests (see [`crate::EchoUpstream::require_dpop`]).
#[derive(Clone, Debug, Default)]
pub struct DpopPolicy {
    /// Demand a nonce: a proof without the current one is answered `401` with
    /// `WWW-Authenticate: DPoP error="use_dpop_nonce"` and a `DPoP-Nonce`.
    pub nonce: Option<String>,
}

/// The checker's memory: every `jti` it accepted (a repeat is a replay).
#[derive(Default)]
pub(crate) struct DpopState {
    pub policy: Option<DpopPolicy>,
    pub seen_jti: HashSet<String>,
    pub rejections: Vec<String>,
    pub nonce_challenges: u64,
}

/// Why a request fails the check.
#[derive(Debug, PartialEq, Eq)]
pub enum DpopRefusal {
    /// The proof lacks the server's current nonce (answered with `use_dpop_nonce`).
    UseNonce,
    /// Anything else, described (`invalid_dpop_proof` or `invalid_token`).
    Invalid(String),
}

/// Checks one request: `Authorization: DPoP <token>`, exactly one `DPoP` proof signed by its own
/// `jwk` (ES256, `typ` `dpop+jwt`), `htm` = `method`, `htu` = `url` (without query), `ath` =
/// SHA-256 of the token, a `jti` not in `seen`, an `iat`, the token (a JWT) bound to the proof's
/// key by `cnf.jkt` = its RFC 7638 thumbprint, and `nonce` when one is demanded. On success the
/// `jti` joins `seen`.
pub fn verify(
    method: &Method,
    url: &str,
    headers: &HeaderMap,
    nonce: Option<&str>,
    seen: &mut HashSet<String>,
) -> Result<(), DpopRefusal> {
    let invalid = |why: &str| DpopRefusal::Invalid(why.to_owned());
    let authorization = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| invalid("no Authorization"))?;
    let token = match authorization.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("dpop") => token,
        _ => return Err(invalid("Authorization is not DPoP")),
    };
    let proofs: Vec<_> = headers.get_all("dpop").iter().collect();
    let [proof] = proofs.as_slice() else {
        return Err(invalid("not exactly one DPoP header"));
    };
    let proof = proof
        .to_str()
        .map_err(|_| invalid("DPoP header not ASCII"))?;
    let (header, claims, jkt) = verify_signature(proof).map_err(|why| invalid(&why))?;
    if header["typ"] != "dpop+jwt" || header["alg"] != "ES256" {
        return Err(invalid("typ/alg"));
    }
    if claims["htm"] != method.as_str() {
        return Err(invalid("htm mismatch"));
    }
    let target = url.split(['?', '#']).next().unwrap_or(url);
    if claims["htu"] != target {
        return Err(invalid("htu mismatch"));
    }
    if claims["ath"] != sha256_b64(token.as_bytes()) {
        return Err(invalid("ath mismatch"));
    }
    if !claims["iat"].is_u64() {
        return Err(invalid("no iat"));
    }
    let jti = claims["jti"].as_str().ok_or_else(|| invalid("no jti"))?;
    let bound = crate::jwt_claims(token)
        .ok()
        .and_then(|c| c["cnf"]["jkt"].as_str().map(str::to_owned));
    if bound.as_deref() != Some(jkt.as_str()) {
        return Err(invalid("token cnf.jkt is not the proof key's thumbprint"));
    }
    if let Some(nonce) = nonce
        && claims["nonce"] != nonce
    {
        return Err(DpopRefusal::UseNonce);
    }
    if !seen.insert(jti.to_owned()) {
        return Err(invalid("jti replayed"));
    }
    Ok(())
}

/// The proof's header and claims once its signature verifies with its own `jwk`, and that key's
/// thumbprint.
fn verify_signature(proof: &str) -> Result<(Value, Value, String), String> {
    let header = crate::jwt_header(proof).map_err(|e| e.to_string())?;
    let claims = crate::jwt_claims(proof).map_err(|e| e.to_string())?;
    let jwk = &header["jwk"];
    if jwk["kty"] != "EC" || jwk["crv"] != "P-256" || jwk.get("d").is_some() {
        return Err("jwk is not a public EC P-256 key".to_owned());
    }
    let coordinate = |name: &str| {
        jwk[name]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .filter(|v| v.len() == 32)
            .ok_or_else(|| format!("jwk.{name}"))
    };
    let (x, y) = (coordinate("x")?, coordinate("y")?);
    let mut point = vec![4u8];
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    let (input, signature) = proof.rsplit_once('.').ok_or("not a JWS")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "signature not base64url")?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(input.as_bytes(), &signature)
        .map_err(|_| "bad signature".to_owned())?;
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(&x),
        URL_SAFE_NO_PAD.encode(&y)
    );
    Ok((header, claims, sha256_b64(canonical.as_bytes())))
}

fn sha256_b64(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}
