//! What a session and a pending login hold. Serialized to JSON, then sealed: nothing here
//! reaches a backend in the clear.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::oidc::dpop::DpopKey;
use crate::secret::SecretString;

/// Format version of [`SessionData`] inside the sealed record.
pub const SESSION_FORMAT: u8 = 1;

/// A logged-in session. `Clone` serves copy-on-write of a record shared by the opened-session
/// cache (`LoadedSession::data_mut`); its secrets stay `SecretString`s in every copy.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionData {
    /// [`SESSION_FORMAT`].
    pub v: u8,
    /// Subject of the ID token.
    pub sub: String,
    /// IdP session id (`sid`), for back-channel logout.
    pub sid: Option<String>,
    /// ID-token and userinfo claims.
    pub claims: Map<String, Value>,
    /// Access token, attached upstream.
    #[serde(with = "secret")]
    pub access_token: SecretString,
    /// Refresh token, when issued.
    #[serde(with = "optional_secret")]
    pub refresh_token: Option<SecretString>,
    /// Raw ID token, for `id_token_hint`.
    #[serde(with = "secret")]
    pub id_token: SecretString,
    /// Access-token expiry (unix seconds).
    pub access_expires_at: Option<u64>,
    /// The synchronizer CSRF token of SPEC §4.
    #[serde(with = "secret")]
    pub csrf_token: SecretString,
    /// Login time.
    pub created_at: u64,
    /// Last time the idle timer was reset.
    pub last_seen: u64,
    /// End of the absolute lifetime.
    pub absolute_expires_at: u64,
    /// With `[oidc] dpop`: the key pair the tokens are bound to (RFC 9449), made at login.
    /// Only ever in this sealed record; absent in records of sessions without DPoP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<DpopKey>,
    /// RFC 8707 access tokens of the `resource` routes, by resource
    /// (`session::resource_tokens`). Absent in records written before them: none yet.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_tokens: BTreeMap<String, ResourceToken>,
}

/// An access token for one resource, as the session keeps it.
#[derive(Clone, Serialize, Deserialize)]
pub struct ResourceToken {
    /// The token, sent only to the routes of its resource.
    #[serde(with = "secret")]
    pub access_token: SecretString,
    /// From when it is renewed (unix seconds): `refresh_skew` before its expiry, at most
    /// half its lifetime early.
    pub renew_at: u64,
    /// Its expiry (unix seconds); an expired token is never sent.
    pub expires_at: u64,
}

impl std::fmt::Debug for ResourceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceToken")
            .field("renew_at", &self.renew_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionData")
            .field("created_at", &self.created_at)
            .field("last_seen", &self.last_seen)
            .field("absolute_expires_at", &self.absolute_expires_at)
            .finish_non_exhaustive()
    }
}

/// A pending login (SPEC §1 step 2): what the callback needs to finish it.
#[derive(Serialize, Deserialize)]
pub struct LoginTransaction {
    /// Format version.
    pub v: u8,
    /// `state` sent to the IdP.
    #[serde(with = "secret")]
    pub state: SecretString,
    /// `nonce` expected in the ID token.
    #[serde(with = "secret")]
    pub nonce: SecretString,
    /// PKCE verifier.
    #[serde(with = "secret")]
    pub pkce_verifier: SecretString,
    /// Local path to land on after login.
    pub return_url: String,
    /// Store key of the session this browser held when the login started: ended when the
    /// login completes. (The `SameSite=Strict` cookie does not come along on the IdP's
    /// cross-site redirect to the callback, so it is captured here.)
    #[serde(default)]
    pub replaces: Option<String>,
    /// When the login started.
    pub created_at: u64,
    /// With `[oidc] dpop`: the key pair named by the authorization request's `dpop_jkt`,
    /// which the code exchange must prove and the session then keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<DpopKey>,
}

impl std::fmt::Debug for LoginTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginTransaction")
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

mod secret {
    use super::*;

    pub fn serialize<S: Serializer>(value: &SecretString, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        SecretString::deserialize(d)
    }
}

mod optional_secret {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
        value.as_ref().map(SecretString::expose).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        Option::<String>::deserialize(d).map(|v| v.map(SecretString::new))
    }
}
