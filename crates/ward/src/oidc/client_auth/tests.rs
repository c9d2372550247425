//! The client assertion (claims, header, signature, fresh `jti`) and the algorithm choice;
//! the real IdP in its FAPI 2.0 configuration refusing a replayed assertion and a wrong `aud`
//! is in `real_idp.rs`.

use aws_lc_rs::encoding::{AsBigEndian, AsDer};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, Ed25519KeyPair, KeyPair, RSA_PKCS1_2048_8192_SHA256,
    RSA_PSS_2048_8192_SHA256, RsaKeyPair, UnparsedPublicKey, VerificationAlgorithm,
};
use serde_json::{Map, Value};
use ward_store::ManualClock;
use ward_testkit::ClientKey;

use super::*;

mod real_idp;
mod vectors;

const NOW: u64 = 1_700_000_000;
const ISSUER: &str = "https://idp.example/realms/bank";

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn signer(key: SigningKey, alg: &'static str, clock: &Arc<ManualClock>) -> AssertionSigner {
    AssertionSigner {
        kid: key.thumbprint(),
        key,
        alg,
        client_id: "ward-client".to_owned(),
        audience: ISSUER.to_owned(),
        clock: clock.clone(),
    }
}

/// Header, claims and the signed input and signature of a compact JWS.
fn split(jwt: &str) -> (Map<String, Value>, Map<String, Value>, String, Vec<u8>) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let json = |part: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap();
    (
        json(parts[0]),
        json(parts[1]),
        format!("{}.{}", parts[0], parts[1]),
        URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
    )
}

fn ec_key() -> (SigningKey, ClientKey) {
    let client_key = ClientKey::generate().unwrap();
    let key = SigningKey::parse(client_key.pkcs8_pem().unwrap().as_bytes(), "k.pem").unwrap();
    (key, client_key)
}

#[test]
fn the_assertion_names_ward_as_iss_and_sub_and_the_issuer_as_its_only_aud() {
    let clock = Arc::new(ManualClock::new(NOW));
    let (key, _) = ec_key();
    let thumbprint = key.thumbprint();
    let signer = signer(key, "ES256", &clock);
    let (header, claims, _, _) = split(signer.assertion().unwrap().expose());

    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert_eq!(header["kid"], thumbprint.as_str());
    assert_eq!(header.len(), 3, "no other header: {header:?}");
    assert_eq!(claims["iss"], "ward-client");
    assert_eq!(claims["sub"], "ward-client");
    // One string, not an array, and exactly the issuer (not the token endpoint URL).
    assert_eq!(claims["aud"], Value::String(ISSUER.to_owned()));
    assert_eq!(claims["iat"], NOW);
    assert_eq!(claims["exp"], NOW + ASSERTION_TTL);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 43);
    assert_eq!(claims.len(), 6, "{claims:?}");
}

#[test]
fn every_assertion_has_its_own_jti_and_the_clocks_time() {
    let clock = Arc::new(ManualClock::new(NOW));
    let signer = signer(ec_key().0, "ES256", &clock);
    let mut seen = std::collections::HashSet::new();
    for step in 0..50 {
        clock.advance(7);
        let (_, claims, _, _) = split(signer.assertion().unwrap().expose());
        assert!(seen.insert(claims["jti"].as_str().unwrap().to_owned()));
        assert_eq!(claims["iat"], NOW + 7 * (step + 1));
        assert_eq!(claims["exp"], NOW + 7 * (step + 1) + ASSERTION_TTL);
    }
}

fn verifies(jwt: &str, alg: &'static dyn VerificationAlgorithm, public: &[u8]) -> bool {
    let (_, _, input, signature) = split(jwt);
    UnparsedPublicKey::new(alg, public)
        .verify(input.as_bytes(), &signature)
        .is_ok()
}

#[test]
fn es256_assertions_verify_with_the_public_key_and_not_with_another() {
    let clock = Arc::new(ManualClock::new(NOW));
    let (key, client_key) = ec_key();
    let jwt = signer(key, "ES256", &clock).assertion().unwrap();
    let jwk = client_key.public_jwk();
    let mut point = vec![4u8];
    for member in ["x", "y"] {
        point.extend(
            URL_SAFE_NO_PAD
                .decode(jwk[member].as_str().unwrap())
                .unwrap(),
        );
    }
    assert!(verifies(jwt.expose(), &ECDSA_P256_SHA256_FIXED, &point));
    let other = ClientKey::generate().unwrap().public_jwk();
    let mut other_point = vec![4u8];
    for member in ["x", "y"] {
        other_point.extend(
            URL_SAFE_NO_PAD
                .decode(other[member].as_str().unwrap())
                .unwrap(),
        );
    }
    assert!(!verifies(
        jwt.expose(),
        &ECDSA_P256_SHA256_FIXED,
        &other_point
    ));
}

#[test]
fn rsa_keys_sign_ps256_or_rs256_and_ed25519_keys_eddsa() {
    let clock = Arc::new(ManualClock::new(NOW));
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = rsa.public_key().as_ref().to_vec();
    let rsa_pem = pem("PRIVATE KEY", rsa.as_der().unwrap().as_ref());
    for (alg, verify) in [
        ("PS256", &RSA_PSS_2048_8192_SHA256),
        ("RS256", &RSA_PKCS1_2048_8192_SHA256),
    ] {
        let key = SigningKey::parse(rsa_pem.as_bytes(), "rsa.pem").unwrap();
        let jwt = signer(key, alg, &clock).assertion().unwrap();
        assert_eq!(split(jwt.expose()).0["alg"], alg);
        assert!(verifies(jwt.expose(), verify, &public), "{alg}");
    }
    let ed = Ed25519KeyPair::generate().unwrap();
    let ed_pem = pem("PRIVATE KEY", ed.to_pkcs8().unwrap().as_ref());
    let key = SigningKey::parse(ed_pem.as_bytes(), "ed.pem").unwrap();
    assert_eq!(key.algs()[0], "EdDSA");
    let jwt = signer(key, "EdDSA", &clock).assertion().unwrap();
    assert!(verifies(jwt.expose(), &ED25519, ed.public_key().as_ref()));
}

#[test]
fn sec1_pem_and_private_jwks_load_as_the_same_key() {
    let client_key = ClientKey::generate().unwrap();
    let pkcs8 = SigningKey::parse(client_key.pkcs8_pem().unwrap().as_bytes(), "a").unwrap();
    let sec1 = SigningKey::parse(client_key.sec1_pem().unwrap().as_bytes(), "b").unwrap();
    assert_eq!(pkcs8.thumbprint(), sec1.thumbprint());
    assert_eq!(sec1.kind(), "EC P-256");

    let ed = Ed25519KeyPair::generate().unwrap();
    let jwk = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(ed.public_key().as_ref()),
        "d": URL_SAFE_NO_PAD.encode(ed.seed().unwrap().as_be_bytes().unwrap().as_ref()),
    });
    let key = SigningKey::parse(jwk.to_string().as_bytes(), "ed.jwk").unwrap();
    assert_eq!(key.kind(), "Ed25519");
    // A public JWK alone is not a signing key.
    let public_only = client_key.public_jwk().to_string();
    let err = SigningKey::parse(public_only.as_bytes(), "pub.jwk").unwrap_err();
    assert!(err.to_string().contains("unsupported key"), "{err}");
}

#[test]
fn the_default_kid_is_the_rfc_7638_thumbprint() {
    // RFC 7638 §3.1's example key and thumbprint.
    let jwk = serde_json::json!({
        "kty": "RSA", "e": "AQAB",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    });
    assert_eq!(
        super::super::signing_key::jwk_thumbprint(&jwk),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

#[test]
fn the_algorithm_is_the_keys_first_that_the_idp_lists() {
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let rsa = SigningKey::parse(
        pem("PRIVATE KEY", rsa.as_der().unwrap().as_ref()).as_bytes(),
        "r",
    )
    .unwrap();
    let list = |algs: &[&str]| algs.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    assert_eq!(choose_alg(&rsa, None).unwrap(), "PS256");
    assert_eq!(
        choose_alg(&rsa, Some(&list(&["RS256", "ES256"]))).unwrap(),
        "RS256"
    );
    assert_eq!(
        choose_alg(&rsa, Some(&list(&["RS256", "PS256"]))).unwrap(),
        "PS256"
    );
    let (ec, _) = ec_key();
    let err = choose_alg(&ec, Some(&list(&["RS256", "PS256"]))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "oidc.private_key_file: the IdP accepts RS256, PS256 for client assertions, none of \
         which a EC P-256 key makes (ES256)"
    );
}

#[test]
fn key_errors_and_debug_show_no_key_material() {
    let client_key = ClientKey::generate().unwrap();
    let pem = client_key.pkcs8_pem().unwrap();
    let body_line = pem.lines().nth(1).unwrap().to_owned();
    let key = SigningKey::parse(pem.as_bytes(), "k.pem").unwrap();
    let debug = format!("{key:?}");
    assert_eq!(debug, "SigningKey(EC P-256, [redacted])");

    let garbled = pem.replace("PRIVATE KEY", "PRIVATE KEX");
    let err = SigningKey::parse(garbled.as_bytes(), "/etc/ward/k.pem").unwrap_err();
    assert_eq!(
        err.to_string(),
        "/etc/ward/k.pem holds no PEM private key (PKCS#8, SEC1, PKCS#1) and no private JWK"
    );
    assert!(!format!("{err:?}").contains(&body_line[..16]));
    let missing = SigningKey::load(std::path::Path::new("/nonexistent/k.pem")).unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("cannot read /nonexistent/k.pem"),
        "{missing}"
    );
}

#[test]
fn basic_credentials_are_form_encoded_before_base64() {
    let header = basic_header("bff client", &SecretString::new("s:%+ é"));
    let decoded = STANDARD
        .decode(header.expose().trim_start_matches("Basic "))
        .unwrap();
    assert_eq!(
        String::from_utf8(decoded).unwrap(),
        "bff+client:s%3A%25%2B+%C3%A9"
    );
}
