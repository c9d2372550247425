//! Logout tokens for back-channel logout tests: valid claims at Ward's time, signed by the real
//! IdP's key through its test-only `/__test/sign` hook, and posted as the IdP posts them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use ward_testkit::{Browser, Reply};

use super::Ward;

/// The `events` member a logout token must carry.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A `jti` no other token of this test process carries.
pub fn fresh_jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "jti-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// Valid logout-token claims at Ward's time; `sub` and `sid` only when given.
pub fn claims(ward: &Ward, sub: Option<&str>, sid: Option<&str>) -> Value {
    let now = ward.clock_now();
    let mut claims = json!({
        "iss": ward.idp.issuer(), "aud": "bff", "iat": now, "exp": now + 120,
        "jti": fresh_jti(), "events": { EVENT: {} },
    });
    if let Some(sub) = sub {
        claims["sub"] = json!(sub);
    }
    if let Some(sid) = sid {
        claims["sid"] = json!(sid);
    }
    claims
}

/// `claims` signed with the IdP's own key; `header` entries override the default
/// `{"alg": "RS256", "kid": <the IdP's>, "typ": "logout+jwt"}` (`null` removes one).
pub async fn sign(ward: &Ward, claims: &Value, header: Value) -> String {
    let reply: Value = reqwest::Client::new()
        .post(ward.idp.url("/__test/sign"))
        .json(&json!({ "claims": claims, "header": header }))
        .send()
        .await
        .expect("POST /__test/sign")
        .json()
        .await
        .expect("signed token");
    reply["token"].as_str().expect("token").to_owned()
}

/// POSTs `logout_token=<token>` as the IdP does: server to server, no cookie, no Origin.
pub async fn post_token(ward: &Ward, token: &str) -> Reply {
    Browser::new()
        .unwrap()
        .post(ward.url("/bff/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .expect("POST /bff/backchannel-logout")
}

/// `/bff/user`'s status for `browser`, without sliding the session.
pub async fn user_status(ward: &Ward, browser: &Browser) -> u16 {
    browser
        .get(ward.url("/bff/user?slide=false"))
        .await
        .expect("GET /bff/user")
        .status
        .as_u16()
}

/// A `400 invalid_logout_token` refusal, not cached.
pub fn assert_invalid(reply: &Reply, case: &str) {
    assert_eq!(reply.status, 400, "{case}: {}", reply.text());
    assert_eq!(
        reply.json().unwrap()["error"],
        "invalid_logout_token",
        "{case}"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"), "{case}");
}

/// A `200` with an empty body, not cached.
pub fn assert_ok(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert!(reply.body.is_empty(), "empty body");
}

/// Ends `browser`'s session at the IdP without Ward: `GET /session/end?client_id=bff` with the
/// IdP's session cookie, then the confirmation form (`xsrf`, `logout=yes`). oidc-provider
/// sends the back-channel logout before it answers the confirmation.
pub async fn end_idp_session(ward: &Ward, browser: &Browser) {
    let page = browser
        .get(ward.idp.url("/session/end?client_id=bff"))
        .await
        .expect("GET /session/end");
    assert_eq!(page.status, 200, "{}", page.text());
    let html = page.text();
    let xsrf = html
        .split("name=\"xsrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the confirmation form has an xsrf field")
        .to_owned();
    let confirmed = browser
        .post(ward.idp.url("/session/end/confirm"))
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .expect("POST /session/end/confirm");
    assert!(confirmed.is_redirect(), "{}", confirmed.text());
}

/// Waits (at most 10 s) until the IdP has logged `count` lines containing `needle`.
pub async fn wait_for_idp_log(ward: &Ward, needle: &str, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = ward.idp.logs();
        if logs.matches(needle).count() >= count {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "no `{needle}` from the IdP:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logout-token claims naming `sub` and `sid`, valid at Ward's time (a fresh `jti` on every
/// call), and the same with exactly one flaw.
pub struct ValidClaims<'a> {
    pub ward: &'a Ward,
    pub sub: &'a str,
    pub sid: &'a str,
}

impl ValidClaims<'_> {
    /// Valid claims, with a `jti` of their own.
    pub fn valid(&self) -> Value {
        claims(self.ward, Some(self.sub), Some(self.sid))
    }

    /// Valid claims but for `name`, set to `value`.
    pub fn with(&self, name: &str, value: Value) -> Value {
        let mut claims = self.valid();
        claims[name] = value;
        claims
    }

    /// Valid claims without the members `names`.
    pub fn without(&self, names: &[&str]) -> Value {
        let mut claims = self.valid();
        for name in names {
            claims.as_object_mut().unwrap().remove(*name);
        }
        claims
    }
}

/// Claims valid but for one flaw each, at Ward's time `now`: what every logout token check
/// refuses.
pub fn claim_flaws(claims: &ValidClaims<'_>, now: u64) -> Vec<(&'static str, Value)> {
    vec![
        ("wrong aud", claims.with("aud", json!("other-client"))),
        (
            "wrong iss",
            claims.with("iss", json!("http://evil.invalid")),
        ),
        ("nonce", claims.with("nonce", json!("n"))),
        ("no events", claims.without(&["events"])),
        (
            "wrong event",
            claims.with("events", json!({ "urn:other": {} })),
        ),
        ("iat too old", claims.with("iat", json!(now - 3600))),
        ("iat in the future", claims.with("iat", json!(now + 3600))),
        ("expired", claims.with("exp", json!(now - 3600))),
        ("neither sub nor sid", claims.without(&["sub", "sid"])),
        ("no jti", claims.without(&["jti"])),
    ]
}

/// Signs each `(case, claims)` with the IdP's key and asserts Ward refuses it.
pub async fn assert_claims_refused(ward: &Ward, cases: Vec<(&str, Value)>) {
    for (case, claims) in cases {
        let token = sign(ward, &claims, json!({})).await;
        assert_invalid(&post_token(ward, &token).await, case);
    }
}

/// Signs valid claims under each `(case, header)` and asserts Ward refuses it.
pub async fn assert_headers_refused(
    ward: &Ward,
    claims: &ValidClaims<'_>,
    cases: Vec<(&str, Value)>,
) {
    for (case, header) in cases {
        let token = sign(ward, &claims.valid(), header).await;
        assert_invalid(&post_token(ward, &token).await, case);
    }
}

/// Tokens no IdP signed, each refused: `token` with its signature flipped, `alg: none`, HS256
/// (its MAC, were it keyed with the IdP's public key material, is never checked: the algorithm
/// is refused first), and garbage.
pub async fn assert_forgeries_refused(ward: &Ward, token: &str, claims: &ValidClaims<'_>) {
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 0xff;
    let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes));
    assert_invalid(&post_token(ward, &flipped).await, "bad signature");
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        encode(&json!({ "alg": "none" })),
        encode(&claims.valid())
    );
    assert_invalid(&post_token(ward, &unsigned).await, "alg none");
    let hs = format!(
        "{}.{}.AAAA",
        encode(&json!({ "alg": "HS256" })),
        encode(&claims.valid())
    );
    assert_invalid(&post_token(ward, &hs).await, "HS256");
    assert_invalid(&post_token(ward, "not-a-jwt").await, "garbage");
}
