//! DPoP towards the upstream (RFC 9449 §7): a session whose token is DPoP-bound sends
//! `Authorization: DPoP <token>` and a fresh `DPoP` proof for the upstream's own method and URL
//! (`htm`, `htu` = the URL Ward calls, without query; `ath`, `iat`, a new `jti`).
//!
//! A resource server may demand a nonce (§9): `401` with `WWW-Authenticate: DPoP
//! error="use_dpop_nonce"` and `DPoP-Nonce`. The nonce is remembered per upstream origin (every
//! answer's `DPoP-Nonce` is), so later requests carry it from the start; the refused request is
//! sent once more with a proof carrying it when its body can be replayed: no body, or one that
//! declared a length of at most [`MAX_REPLAYABLE_BODY`] (read whole before the first send). A
//! longer or streamed body is sent once, streaming, and the `401` goes to the browser as it came
//! (an API client retries as after any `401`; the next request carries the nonce).

use axum::body::HttpBody as _;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Request};

use crate::error::ApiError;
use crate::oidc::dpop::{DpopKey, DpopNonces, access_token_hash, origin_of};
use crate::secret::SecretString;

/// Largest request body kept for the one `use_dpop_nonce` retry.
pub const MAX_REPLAYABLE_BODY: u64 = 64 * 1024;

/// What the proxy needs to prove possession of a session's DPoP key for one request.
pub struct DpopProof {
    key: DpopKey,
    /// `ath`: the SHA-256 of the access token the request carries.
    ath: String,
    /// `iat`: now by Ward's clock (the request's admission time).
    iat: u64,
}

impl std::fmt::Debug for DpopProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DpopProof([redacted])")
    }
}

impl DpopProof {
    /// For requests carrying `token`, bound to `key`, at `iat`.
    pub fn new(key: &DpopKey, token: &SecretString, iat: u64) -> Self {
        Self {
            key: key.clone(),
            ath: access_token_hash(token),
            iat,
        }
    }

    /// The `DPoP` header for `method` on `target` (the upstream URL), with `nonces`' latest
    /// nonce of that upstream. `None` when signing failed (logged; the request is not sent).
    pub(crate) fn header(
        &self,
        method: &str,
        target: &str,
        nonces: &DpopNonces,
    ) -> Option<HeaderValue> {
        let nonce = nonces.get(origin_of(target));
        let proof = self
            .key
            .proof(method, target, Some(&self.ath), nonce.as_deref(), self.iat)
            .ok()?;
        let mut value = HeaderValue::try_from(proof.expose()).ok()?;
        value.set_sensitive(true);
        Some(value)
    }
}

/// `Authorization: DPoP <token>` as a sensitive header value.
pub fn dpop_value(token: &SecretString) -> Result<HeaderValue, crate::secret::UnsendableBearer> {
    let text = zeroize::Zeroizing::new(format!("DPoP {}", token.expose()));
    let mut value =
        HeaderValue::try_from(text.as_str()).map_err(|_| crate::secret::UnsendableBearer)?;
    value.set_sensitive(true);
    Ok(value)
}

/// `req` ready to send, and a copy for the one nonce retry when its body can be replayed (see
/// the module documentation).
pub(crate) async fn replayable(
    req: Request<Body>,
) -> Result<(Request<Body>, Option<Request<Body>>), ApiError> {
    let declared = req.body().size_hint().exact();
    let small = declared.is_some_and(|len| len <= MAX_REPLAYABLE_BODY);
    if !small {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let bytes: Bytes = axum::body::to_bytes(body, MAX_REPLAYABLE_BODY as usize)
        .await
        .map_err(|_| ApiError::BadRequest)?;
    let mut copy = Request::new(Body::from(bytes.clone()));
    *copy.method_mut() = parts.method.clone();
    *copy.uri_mut() = parts.uri.clone();
    *copy.version_mut() = parts.version;
    *copy.headers_mut() = parts.headers.clone();
    Ok((Request::from_parts(parts, Body::from(bytes)), Some(copy)))
}

#[cfg(test)]
mod tests;
