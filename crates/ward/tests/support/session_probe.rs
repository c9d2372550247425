//! White-box reads of a Ward session through its cookie: the store key, the sealing key id,
//! the tokens inside. The refresh token and `sid` never leave Ward otherwise.

#![allow(dead_code)] // each test binary uses a different part

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ward_testkit::Browser;

use crate::common::Ward;

/// The store key of `browser`'s session at `ward`.
pub fn session_key(ward: &Ward, browser: &Browser) -> String {
    let cookies = browser.cookie_header_for(&ward.url("/"));
    ward.state
        .sessions
        .session_key(cookies.as_deref())
        .expect("a session cookie")
}

/// The key id a stored session record is sealed under (format v1: `[1][kid_len][kid]…`).
pub async fn sealed_kid(ward: &Ward, key: &str) -> String {
    let sealed = ward
        .state
        .sessions
        .store()
        .get(key)
        .await
        .expect("store read")
        .expect("the record is stored");
    assert_eq!(sealed.first(), Some(&1), "sealed format v1");
    let len = usize::from(sealed[1]);
    String::from_utf8(sealed[2..2 + len].to_vec()).expect("kid is UTF-8")
}

/// The id and per-session secret inside a session cookie value (`v1.` + base64url(id ‖ secret)).
pub fn cookie_parts(cookie: &str) -> ([u8; 32], [u8; 32]) {
    let raw = URL_SAFE_NO_PAD
        .decode(cookie.strip_prefix("v1.").expect("v1 cookie"))
        .expect("cookie is base64url");
    let (id, secret) = raw.split_at(32);
    (id.try_into().unwrap(), secret.try_into().unwrap())
}

/// The bearer token the upstream received for `path`, if it received that path.
pub fn bearer_of(ward: &Ward, path: &str) -> Option<String> {
    ward.upstream
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path() == path)
        .and_then(|r| r.header("authorization").map(str::to_owned))
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
}

/// The tokens a session holds.
pub struct Tokens {
    pub access: String,
    pub refresh: Option<String>,
    pub id: String,
    pub sid: String,
}

/// `who` names the session in a failure, which also says whether its record is still stored.
pub async fn tokens_of(ward: &Ward, browser: &Browser, who: &str) -> Tokens {
    let cookies = browser.cookie_header_for(&ward.url("/"));
    let loaded = ward
        .state
        .sessions
        .load(cookies.as_deref())
        .await
        .unwrap_or_else(|e| panic!("{who}: store error {}", chain(&e)));
    let Some(session) = loaded else {
        let key = session_key(ward, browser);
        let stored = ward.state.sessions.store().get(&key).await;
        panic!(
            "{who}: no session; its record under its store key: {}",
            match stored {
                Ok(Some(_)) => "present (did not open or expired)",
                Ok(None) => "absent",
                Err(_) => "unreadable",
            }
        );
    };
    Tokens {
        access: session.data.access_token.expose().to_owned(),
        refresh: session
            .data
            .refresh_token
            .as_ref()
            .map(|t| t.expose().to_owned()),
        id: session.data.id_token.expose().to_owned(),
        sid: session.data.sid.clone().expect("the ID token had a sid"),
    }
}

/// The `sid` of the IdP session behind `browser`'s session.
pub async fn sid_of(ward: &Ward, browser: &Browser, who: &str) -> String {
    tokens_of(ward, browser, who).await.sid
}

/// An error and its causes, on one line.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cause = e.source();
    }
    out
}
