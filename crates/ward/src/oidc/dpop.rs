//! DPoP (RFC 9449): the per-session key pair and the proofs made with it.
//!
//! With `[oidc] dpop = true` Ward makes an EC P-256 key pair at each login ([`DpopKey`]); the
//! login transaction holds it from the authorization request (whose `dpop_jkt` names its
//! thumbprint) to the code exchange, then the session record keeps it, sealed like the tokens.
//! It never reaches the browser: `Debug` redacts it, and it leaves the process only inside the
//! sealed record. Every request that uses a DPoP-bound token carries a fresh proof
//! ([`DpopKey::proof`]): a `dpop+jwt` with the public key in its `jwk` header, a random `jti`,
//! `htm`, `htu` (the target URI without query and fragment), `iat` from the injectable clock and,
//! towards a resource server, `ath` (the token's SHA-256).
//!
//! Servers may demand a nonce they chose (`DPoP-Nonce`, §8 and §9): [`DpopNonces`] keeps the
//! latest one per server origin, and a request refused for want of it (`use_dpop_nonce`) is sent
//! once more with a new proof carrying it ([`ProofHttp`] for the IdP, `proxy::dpop` for APIs).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::json;
use zeroize::Zeroizing;

use super::http::{HttpError, IdpHttpClient};
#[cfg(test)]
use super::signing_key::jwk_thumbprint;
use super::signing_key::{SignError, SigningKey};

/// The RFC 7638 thumbprint of a proof header's `jwk` (tests).
#[cfg(test)]
pub(crate) fn jwk_thumbprint_of_proof(header: &serde_json::Value) -> String {
    jwk_thumbprint(&header["jwk"])
}
use crate::random;
use crate::secret::SecretString;

/// The one JWS algorithm of Ward's DPoP keys (FAPI 2.0 allows ES256 and PS256; ES256 is the
/// cheaper one to sign with on every proxied request).
pub const DPOP_ALG: &str = "ES256";

/// The `DPoP-Nonce` header (RFC 9449 §8.1).
pub const NONCE_HEADER: &str = "dpop-nonce";

/// How many servers' nonces are remembered; past it the map starts over (a nonce lost is one
/// more `use_dpop_nonce` round trip, never a failure).
const MAX_SERVERS: usize = 256;

/// Why DPoP cannot be used with this IdP (a start error), or a key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DpopError {
    /// The IdP lists its DPoP algorithms and ES256 is not among them.
    #[error(
        "oidc.dpop = true but the IdP does not accept ES256 DPoP proofs \
         (dpop_signing_alg_values_supported: {0})"
    )]
    Es256NotOffered(String),
    /// aws-lc-rs could not make or read a key pair.
    #[error("DPoP key pair could not be made")]
    Key,
}

/// A session's DPoP key pair (EC P-256). Cheap to clone (shared); `Debug` redacts; serializes
/// as its PKCS#8 document, base64url, for the sealed session record only.
#[derive(Clone)]
pub struct DpopKey(Arc<KeyInner>);

struct KeyInner {
    key: SigningKey,
    /// PKCS#8 v1 DER: the serialized form, wiped on drop.
    pkcs8: Zeroizing<Vec<u8>>,
    /// The proof header (`typ`, `alg`, `jwk`) is the same for every proof: encoded once.
    header_b64: String,
    /// RFC 7638 thumbprint of the public key (`dpop_jkt`, `cnf.jkt`).
    thumbprint: String,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DpopKey([redacted])")
    }
}

impl DpopKey {
    /// A fresh key pair from the OS CSPRNG.
    pub fn generate() -> Result<Self, DpopError> {
        let pair =
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| DpopError::Key)?;
        let pkcs8 = Zeroizing::new(
            pair.to_pkcs8v1()
                .map_err(|_| DpopError::Key)?
                .as_ref()
                .to_vec(),
        );
        Ok(Self::assemble(pair, pkcs8))
    }

    /// The key of a PKCS#8 document (as [`Self::generate`] made and the record kept).
    fn from_pkcs8(pkcs8: Zeroizing<Vec<u8>>) -> Result<Self, DpopError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8)
            .map_err(|_| DpopError::Key)?;
        Ok(Self::assemble(pair, pkcs8))
    }

    fn assemble(pair: EcdsaKeyPair, pkcs8: Zeroizing<Vec<u8>>) -> Self {
        let key = SigningKey::Ec(pair, "P-256");
        let header = json!({"typ": "dpop+jwt", "alg": DPOP_ALG, "jwk": key.public_jwk()});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        let thumbprint = key.thumbprint();
        Self(Arc::new(KeyInner {
            key,
            pkcs8,
            header_b64,
            thumbprint,
        }))
    }

    /// The RFC 7638 thumbprint of the public key: `dpop_jkt`, and the `cnf.jkt` of every token
    /// bound to this key.
    pub fn thumbprint(&self) -> &str {
        &self.0.thumbprint
    }

    /// A new proof for one request: `htm` the method, `htu` the target URI (query and fragment
    /// are dropped here), `ath` the bound access token's hash towards a resource server,
    /// `nonce` the server's latest, `iat` now by Ward's clock; a random `jti`.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        ath: Option<&str>,
        nonce: Option<&str>,
        iat: u64,
    ) -> Result<SecretString, SignError> {
        let mut claims = json!({
            "jti": random::token(),
            "htm": htm,
            "htu": target_uri(htu),
            "iat": iat,
        });
        if let Some(ath) = ath {
            claims["ath"] = ath.into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let input = format!(
            "{}.{}",
            self.0.header_b64,
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.0.key.sign(DPOP_ALG, input.as_bytes())?;
        Ok(SecretString::new(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

impl Serialize for DpopKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(URL_SAFE_NO_PAD.encode(&*self.0.pkcs8));
        s.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for DpopKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let encoded = Zeroizing::new(String::deserialize(d)?);
        let pkcs8 = URL_SAFE_NO_PAD
            .decode(encoded.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| serde::de::Error::custom("DPoP key is not base64url"))?;
        Self::from_pkcs8(pkcs8).map_err(|_| serde::de::Error::custom("DPoP key is unreadable"))
    }
}

/// With `[oidc] dpop`: the IdP must accept ES256 proofs when it lists its algorithms. An IdP that
/// lists none may still support DPoP (the list is optional, RFC 9449 §5.1): the first login then
/// shows it, as a `Bearer` answer is refused.
pub(crate) fn check_advertised(advertised: Option<&[String]>) -> Result<(), DpopError> {
    match advertised {
        Some(algs) if !algs.iter().any(|alg| alg == DPOP_ALG) => {
            Err(DpopError::Es256NotOffered(algs.join(", ")))
        }
        Some(_) => Ok(()),
        None => {
            tracing::warn!(
                event = "dpop_not_advertised",
                "IdP does not list dpop_signing_alg_values_supported; using DPoP with ES256 anyway"
            );
            Ok(())
        }
    }
}

/// `ath` (RFC 9449 §4.2): base64url of the SHA-256 of the access token.
pub fn access_token_hash(token: &SecretString) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.expose().as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// `uri` without query and fragment (RFC 9449 §4.2 `htu`).
pub fn target_uri(uri: &str) -> &str {
    let end = uri.find(['?', '#']).unwrap_or(uri.len());
    &uri[..end]
}

/// `scheme://authority` of `uri`: the server a nonce belongs to.
pub fn origin_of(uri: &str) -> &str {
    let after_scheme = uri.find("://").map_or(0, |i| i + 3);
    let end = uri[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(uri.len(), |i| after_scheme + i);
    &uri[..end]
}

/// A `DPoP-Nonce` value, when it is one: 1*NQCHAR (RFC 9449 §8.1), bounded in length.
pub fn nonce_of(value: &HeaderValue) -> Option<&str> {
    let nonce = value.to_str().ok()?;
    let valid = !nonce.is_empty()
        && nonce.len() <= 512
        && nonce
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
    valid.then_some(nonce)
}

/// The latest `DPoP-Nonce` each server gave, by origin.
#[derive(Default)]
pub struct DpopNonces {
    by_origin: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DpopNonces")
    }
}

impl DpopNonces {
    /// The latest nonce of the server at `origin`.
    pub fn get(&self, origin: &str) -> Option<String> {
        let map = self
            .by_origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(origin).cloned()
    }

    /// Remembers `headers`' `DPoP-Nonce` for `origin`, if it carries a valid one; whether it did.
    pub fn remember(&self, origin: &str, headers: &http::HeaderMap) -> bool {
        let Some(nonce) = headers.get(NONCE_HEADER).and_then(nonce_of) else {
            return false;
        };
        let mut map = self
            .by_origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_SERVERS && !map.contains_key(origin) {
            map.clear();
        }
        map.insert(origin.to_owned(), nonce.to_owned());
        true
    }
}

/// The IdP client for one token-endpoint (or userinfo) call: with a DPoP key it adds a fresh
/// proof to the request, remembers the nonce the answer brings, and notes whether the IdP
/// asked for one (`use_dpop_nonce`): then the caller sends the whole request once more
/// ([`super::OidcClient::with_dpop_retry`]), with a new client assertion too (the IdP has seen
/// the first one's `jti`).
pub(crate) struct ProofHttp<'a> {
    http: &'a IdpHttpClient,
    dpop: Option<Prover<'a>>,
}

struct Prover<'a> {
    key: &'a DpopKey,
    nonces: &'a DpopNonces,
    now: u64,
    /// Towards userinfo: the token, sent as `Authorization: DPoP` with its `ath`.
    access_token: Option<&'a SecretString>,
    challenged: Arc<AtomicBool>,
}

impl<'a> ProofHttp<'a> {
    pub(crate) fn new(
        http: &'a IdpHttpClient,
        key: Option<&'a DpopKey>,
        nonces: &'a DpopNonces,
        now: u64,
        access_token: Option<&'a SecretString>,
    ) -> Self {
        Self {
            http,
            dpop: key.map(|key| Prover {
                key,
                nonces,
                now,
                access_token,
                challenged: Arc::default(),
            }),
        }
    }

    /// Set once the IdP refused for want of a (fresh) nonce and gave one.
    pub(crate) fn challenge_flag(&self) -> Arc<AtomicBool> {
        self.dpop
            .as_ref()
            .map_or_else(Arc::default, |p| Arc::clone(&p.challenged))
    }

    async fn execute(
        &self,
        mut request: openidconnect::HttpRequest,
    ) -> Result<openidconnect::HttpResponse, HttpError> {
        let Some(prover) = &self.dpop else {
            return self.http.execute(request).await;
        };
        let uri = request.uri().to_string();
        let origin = origin_of(&uri).to_owned();
        let ath = prover.access_token.map(access_token_hash);
        let nonce = prover.nonces.get(&origin);
        let proof = prover
            .key
            .proof(
                request.method().as_str(),
                &uri,
                ath.as_deref(),
                nonce.as_deref(),
                prover.now,
            )
            .map_err(|_| HttpError::Proof)?;
        let headers = request.headers_mut();
        headers.insert("dpop", sensitive(proof.expose())?);
        if let Some(token) = prover.access_token {
            let value = Zeroizing::new(format!("DPoP {}", token.expose()));
            headers.insert(http::header::AUTHORIZATION, sensitive(&value)?);
        }
        let response = self.http.execute(request).await?;
        let fresh = prover.nonces.remember(&origin, response.headers());
        if fresh && asks_for_nonce(&response) {
            prover.challenged.store(true, Ordering::Relaxed);
        }
        Ok(response)
    }
}

fn sensitive(text: &str) -> Result<HeaderValue, HttpError> {
    let mut value = HeaderValue::try_from(text).map_err(|_| HttpError::Proof)?;
    value.set_sensitive(true);
    Ok(value)
}

/// A refusal for want of a nonce: `400 {"error":"use_dpop_nonce"}` from an authorization server
/// (RFC 9449 §8), `401` with `WWW-Authenticate: DPoP error="use_dpop_nonce"` from a resource
/// server (§9).
fn asks_for_nonce(response: &openidconnect::HttpResponse) -> bool {
    match response.status().as_u16() {
        400 => {
            #[derive(Deserialize)]
            struct OAuthError {
                error: String,
            }
            serde_json::from_slice::<OAuthError>(response.body())
                .is_ok_and(|body| body.error == "use_dpop_nonce")
        }
        401 => www_authenticate_asks_for_nonce(response.headers()),
        _ => false,
    }
}

/// Whether a `WWW-Authenticate` of `headers` is a DPoP challenge with `error="use_dpop_nonce"`.
pub fn www_authenticate_asks_for_nonce(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            let v = v.trim_start();
            v.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("dpop "))
                && v.contains("use_dpop_nonce")
        })
}

type ResponseFuture<'c> = std::pin::Pin<
    Box<dyn Future<Output = Result<openidconnect::HttpResponse, HttpError>> + Send + 'c>,
>;

impl<'c> openidconnect::AsyncHttpClient<'c> for ProofHttp<'_> {
    type Error = HttpError;
    type Future = ResponseFuture<'c>;

    fn call(&'c self, request: openidconnect::HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

#[cfg(test)]
pub(crate) mod tests;
