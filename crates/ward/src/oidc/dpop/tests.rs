//! The key's sealed form, its redaction, and the proofs it makes (RFC 9449 §4.2).

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde_json::Value;

use super::*;

/// The header and claims of `proof` once its signature verifies with its own `jwk`.
pub(crate) fn verified(proof: &str) -> (Value, Value) {
    let part = |i: usize| -> Value {
        let bytes = URL_SAFE_NO_PAD
            .decode(proof.split('.').nth(i).unwrap())
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    let (header, claims) = (part(0), part(1));
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(header["jwk"][name].as_str().unwrap());
    let mut point = vec![4u8];
    point.extend(coordinate("x").unwrap());
    point.extend(coordinate("y").unwrap());
    let (input, signature) = proof.rsplit_once('.').unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(
            input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .expect("the proof verifies with its own jwk");
    (header, claims)
}

#[test]
fn a_proof_is_a_dpop_jwt_signed_by_the_key_it_names() {
    let key = DpopKey::generate().unwrap();
    let token = SecretString::new("the-access-token");
    let proof = key
        .proof(
            "POST",
            "https://api.example/v1/orders?id=7#frag",
            Some(&access_token_hash(&token)),
            Some("server-nonce"),
            1_700_000_000,
        )
        .unwrap();
    let (header, claims) = verified(proof.expose());
    assert_eq!(header["typ"], "dpop+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["jwk"]["kty"], "EC");
    assert!(
        header["jwk"].get("d").is_none(),
        "no private part in the header"
    );
    assert_eq!(jwk_thumbprint(&header["jwk"]), key.thumbprint());
    assert_eq!(claims["htm"], "POST");
    assert_eq!(claims["htu"], "https://api.example/v1/orders");
    assert_eq!(claims["iat"], 1_700_000_000);
    assert_eq!(claims["nonce"], "server-nonce");
    // RFC 9449 §7.1 example: ath of "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU".
    let example = SecretString::new("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU");
    assert_eq!(
        access_token_hash(&example),
        "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
    );
    assert_eq!(claims["ath"], access_token_hash(&token));
    assert_eq!(claims["jti"].as_str().unwrap().len(), 43);
}

#[test]
fn every_proof_has_its_own_jti_and_no_ath_or_nonce_unless_given() {
    let key = DpopKey::generate().unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..100 {
        let proof = key
            .proof("GET", "https://idp.example/token", None, None, 1)
            .unwrap();
        let (_, claims) = verified(proof.expose());
        assert!(claims.get("ath").is_none() && claims.get("nonce").is_none());
        assert!(seen.insert(claims["jti"].as_str().unwrap().to_owned()));
    }
}

#[test]
fn the_key_survives_the_record_and_never_shows_in_debug() {
    let key = DpopKey::generate().unwrap();
    let stored = serde_json::to_string(&key).unwrap();
    let back: DpopKey = serde_json::from_str(&stored).unwrap();
    assert_eq!(back.thumbprint(), key.thumbprint());
    let proof = back
        .proof("GET", "https://a.example/", None, None, 1)
        .unwrap();
    let (header, _) = verified(proof.expose());
    assert_eq!(jwk_thumbprint(&header["jwk"]), key.thumbprint());
    assert_eq!(format!("{key:?}"), "DpopKey([redacted])");
    assert_ne!(DpopKey::generate().unwrap().thumbprint(), key.thumbprint());
    for bad in ["\"not base64url!\"", "\"AAAA\"", "7"] {
        assert!(serde_json::from_str::<DpopKey>(bad).is_err(), "{bad}");
    }
}

#[test]
fn nonces_are_kept_per_origin_and_must_be_nqchars() {
    let nonces = DpopNonces::default();
    let headers = |value: &str| {
        let mut headers = http::HeaderMap::new();
        headers.insert(NONCE_HEADER, HeaderValue::from_str(value).unwrap());
        headers
    };
    assert!(nonces.remember("https://a.example", &headers("n-1")));
    assert!(!nonces.remember("https://b.example", &headers("has space")));
    assert!(!nonces.remember("https://b.example", &headers("quote\"")));
    assert!(!nonces.remember("https://b.example", &http::HeaderMap::new()));
    assert_eq!(nonces.get("https://a.example").as_deref(), Some("n-1"));
    assert_eq!(nonces.get("https://b.example"), None);
    assert_eq!(
        origin_of("https://a.example:8443/p/q?x#y"),
        "https://a.example:8443"
    );
    assert_eq!(origin_of("http://a.example"), "http://a.example");
    assert_eq!(target_uri("http://a.example/p?x=1#f"), "http://a.example/p");
}

#[test]
fn an_idp_must_accept_es256_when_it_lists_its_dpop_algorithms() {
    assert!(check_advertised(None).is_ok());
    assert!(check_advertised(Some(&["PS256".into(), "ES256".into()])).is_ok());
    let err = check_advertised(Some(&["PS256".into(), "EdDSA".into()])).unwrap_err();
    assert!(err.to_string().contains("PS256, EdDSA"), "{err}");
    assert!(super::super::OidcError::Dpop(err).is_misconfiguration());
}

#[test]
fn resource_servers_ask_for_a_nonce_with_a_dpop_challenge() {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"DPoP error="use_dpop_nonce", error_description="x""#),
    );
    assert!(www_authenticate_asks_for_nonce(&headers));
    headers.insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Bearer error="use_dpop_nonce""#),
    );
    assert!(!www_authenticate_asks_for_nonce(&headers));
}
