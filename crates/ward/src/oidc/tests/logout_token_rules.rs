//! The logout-token rules (Back-Channel Logout 1.0 §2.4, §2.6) on the validator alone, with
//! test RSA keys and a fixed clock.

use std::sync::LazyLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use serde_json::{Map, Value, json};

use crate::oidc::jws::JwsPolicy;
use crate::oidc::logout_token::{
    BACKCHANNEL_LOGOUT_EVENT, LOGOUT_CLOCK_SKEW, LogoutToken, LogoutTokenError,
    LogoutTokenValidator, MAX_LOGOUT_TOKEN_AGE, MAX_LOGOUT_TOKEN_LEN,
};

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

/// The policy for an IdP that advertises RS256.
static POLICY: LazyLock<JwsPolicy> =
    LazyLock::new(|| JwsPolicy::new(&[CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256]));

fn validator() -> LogoutTokenValidator<'static> {
    LogoutTokenValidator {
        client_id: CLIENT_ID,
        issuer: ISSUER,
        policy: &POLICY,
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
fn typ_may_be_absent_logout_jwt_or_jwt_as_a_media_type() {
    for typ in [
        "logout+jwt",
        "application/logout+JWT",
        "JWT",
        "jwt",
        "application/jwt",
    ] {
        assert!(
            with_header(|h| drop(h.insert("typ".into(), json!(typ)))).is_ok(),
            "{typ}"
        );
    }
    assert!(with_header(|h| drop(h.remove("typ"))).is_ok());
}

#[test]
fn any_other_typ_is_refused() {
    for typ in [
        json!("at+jwt"),
        json!("application/at+jwt"),
        json!("JOSE"),
        json!("logout+jwt; charset=utf-8"),
        json!("application/"),
        json!(""),
        json!(1),
        Value::Null,
    ] {
        let result = with_header(|h| drop(h.insert("typ".into(), typ.clone())));
        assert!(matches!(result, Err(LogoutTokenError::WrongType)), "{typ}");
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
    let set =
        |name: &'static str, value: Value| with_claims(move |c| drop(c.insert(name.into(), value)));
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
    // typ JWT is allowed (SPEC §2): the missing event refuses an ID token, typed or not.
    let id_header = json!({"alg": "RS256", "typ": "JWT", "kid": "idp-key"});
    assert!(matches!(
        validate(&sign(&id_header, &id_token, &KEYS[0])),
        Err(LogoutTokenError::MissingEvent)
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
        !debug.contains("alice") && !debug.contains("idp-session-1") && !debug.contains("jti-1")
    );
    let err =
        with_claims(|c| drop(c.insert("iss".into(), json!("https://evil.example")))).unwrap_err();
    assert!(!format!("{err} {err:?}").contains("evil"));
}
