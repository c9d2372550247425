//! Logout tokens for back-channel logout tests: valid claims at Ward's time, signed by the real
//! IdP's key through its test-only `/__test/sign` hook, and posted as the IdP posts them.

use std::sync::atomic::{AtomicU64, Ordering};

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
