//! Secrets a test learns while it walks a session (from redirects, the upstream, the logout
//! URL), and the search for them in what Ward wrote: logs, bodies, files.

#![allow(dead_code)] // each test binary uses a different part

use ward_testkit::{Browser, EchoUpstream, Reply};

/// A secret the test learned, by name (the name, never the value, goes into failure messages).
pub struct Secret {
    pub name: &'static str,
    pub value: String,
}

/// The strings whose presence means `value` leaked: the whole value and, for long values, its
/// first and last 16 characters (a truncated or partly formatted copy is a leak too). For a
/// JWT, its claims and signature segments (the header is the same for every token).
pub fn needles(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    let segments: Vec<&str> = value.split('.').collect();
    if value.starts_with("eyJ") && segments.len() == 3 {
        out.extend(segments[1..].iter().map(|s| (*s).to_owned()));
    } else if value.len() >= 32 {
        let chars: Vec<char> = value.chars().collect();
        out.push(chars[..16].iter().collect());
        out.push(chars[chars.len() - 16..].iter().collect());
    }
    out
}

/// The names of the secrets found in `haystack`.
pub fn leaked<'s>(haystack: &str, secrets: &'s [Secret]) -> Vec<&'s str> {
    secrets
        .iter()
        .filter(|s| {
            needles(&s.value)
                .iter()
                .any(|n| haystack.contains(n.as_str()))
        })
        .map(|s| s.name)
        .collect()
}

/// Query parameter `name` of a redirect's `Location`.
pub fn param(reply: &Reply, name: &str) -> String {
    reply
        .location_param(name)
        .unwrap_or_else(|| panic!("no {name} in the redirect"))
}

/// The `id_token_hint` in the `logoutUrl` of a logout answer (`[logout] id_token_hint = true`).
pub fn id_token_hint(logout: &Reply) -> String {
    let logout_url =
        url::Url::parse(logout.json().unwrap()["logoutUrl"].as_str().unwrap()).unwrap();
    logout_url
        .query_pairs()
        .find(|(k, _)| k == "id_token_hint")
        .map(|(_, v)| v.into_owned())
        .expect("id_token_hint")
}

/// The bearer token of the last request `upstream` received.
pub fn last_bearer(upstream: &EchoUpstream) -> String {
    upstream
        .last()
        .and_then(|r| r.header("authorization").map(str::to_owned))
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned))
        .expect("the upstream received a bearer token")
}

/// The secrets of one whole session, as a test learned them.
pub struct SessionSecrets {
    pub session_cookie: String,
    pub binding: String,
    pub csrf: String,
    pub code: String,
    pub state: String,
    pub nonce: String,
    pub access_token: String,
    pub id_token: String,
}

impl SessionSecrets {
    /// These, named, with the two Ward was configured with: the client secret `bff-secret`
    /// and the key material of key ring entry `key` (`id:material`).
    pub fn named_with_configured(self, key: &str) -> Vec<Secret> {
        let named = |name, value| Secret { name, value };
        vec![
            named("session cookie", self.session_cookie),
            named("login binding cookie", self.binding),
            named("CSRF token", self.csrf),
            named("authorization code", self.code),
            named("state", self.state),
            named("nonce", self.nonce),
            named("access token", self.access_token),
            named("ID token", self.id_token),
            named("client secret", "bff-secret".to_owned()),
            named("encryption key", key.split_once(':').unwrap().1.to_owned()),
        ]
    }
}

/// A login walked hop by hop (`/bff/login?returnUrl=/app`, the IdP's pages, the callback):
/// each hop's answer and the secrets it revealed.
pub struct WalkedLogin {
    /// Ward's redirect to the IdP.
    pub start: Reply,
    /// The IdP's redirect back to the callback.
    pub back: Reply,
    /// The callback's answer.
    pub callback: Reply,
    pub state: String,
    pub nonce: String,
    pub binding: String,
    pub code: String,
    pub session_cookie: String,
}

impl WalkedLogin {
    /// Logs `user` in on the Ward at `origin`; `diagnostics` explains a refused start.
    pub async fn walk(
        browser: &Browser,
        origin: &str,
        user: &str,
        diagnostics: impl Fn() -> String,
    ) -> Self {
        let start = browser
            .get(format!("{origin}/bff/login?returnUrl=/app"))
            .await
            .unwrap();
        assert_eq!(start.status, 302, "{}", diagnostics());
        let state = param(&start, "state");
        let nonce = param(&start, "nonce");
        let binding = browser
            .cookie("localhost", "__Host-ward-tx")
            .expect("login binding cookie");
        let back = browser
            .login_at_idp(start.location().unwrap(), user)
            .await
            .unwrap();
        let code = param(&back, "code");
        let callback = browser.follow(&back).await.unwrap();
        assert_eq!(callback.status, 302, "{}", callback.text());
        let session_cookie = browser
            .cookie("localhost", "__Host-ward")
            .expect("session cookie");
        Self {
            start,
            back,
            callback,
            state,
            nonce,
            binding,
            code,
            session_cookie,
        }
    }

    /// This login's secrets with those the session revealed afterwards.
    pub fn with(self, csrf: String, access_token: String, id_token: String) -> SessionSecrets {
        SessionSecrets {
            session_cookie: self.session_cookie,
            binding: self.binding,
            csrf,
            code: self.code,
            state: self.state,
            nonce: self.nonce,
            access_token,
            id_token,
        }
    }
}
