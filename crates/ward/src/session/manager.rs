//! Loading, creating, sliding and deleting sessions and pending logins, on top of the store.
//!
//! Every record is sealed (see [`super::seal`]) under a key that needs the browser's cookie:
//! a session under its per-session secret, a pending login under the browser's login binding.
//! Anything that fails to open, parse or is past its time reads as "no session" — only a store
//! that cannot answer is an error, and callers turn it into 503.

use std::sync::Arc;

use ward_store::{Clock, Record, SessionStore, StoreError};

use super::cookie::{self, CookieAttributes, LoginBinding, SessionCookie};
use super::record::{LoginTransaction, SESSION_FORMAT, SessionData};
use super::seal::Sealer;
use crate::oidc::TokenSet;
use crate::secret::SecretString;

/// Store namespace of sessions.
const SESSION_NS: &str = "s";
/// Store namespace of pending logins.
const LOGIN_NS: &str = "t";
/// How long a login may take at the IdP (SPEC §1: at most 10 minutes).
pub const LOGIN_TTL: u64 = 600;
/// The idle timer is written back at most this often, so reads do not turn into writes.
const SLIDE_GRANULARITY: u64 = 60;

/// Lifetimes and cookie shape, from `[session]` and `[server]`.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Idle timeout in seconds.
    pub idle_timeout: u64,
    /// Absolute timeout in seconds.
    pub absolute_timeout: u64,
    /// Effective session cookie name.
    pub cookie_name: String,
    /// Session cookie attributes.
    pub cookie: CookieAttributes,
}

/// A session read from the store, with the cookie that opened it.
#[derive(Debug)]
pub struct LoadedSession {
    /// The browser's cookie credentials.
    pub cookie: SessionCookie,
    /// The record's store key (a hash of the id).
    pub key: String,
    /// The opened record.
    pub data: SessionData,
}

impl LoadedSession {
    /// A short, non-reversible prefix of the store key, for log correlation.
    pub fn log_id(&self) -> &str {
        self.key.get(2..10).unwrap_or("")
    }
}

/// Sessions and pending logins over one store.
pub struct SessionManager {
    store: Arc<dyn SessionStore>,
    sealer: Sealer,
    clock: Arc<dyn Clock>,
    settings: SessionSettings,
    login_cookie_name: String,
    login_cookie: CookieAttributes,
}

impl SessionManager {
    /// A manager over `store`, sealing with `sealer`.
    pub fn new(
        store: Arc<dyn SessionStore>,
        sealer: Sealer,
        clock: Arc<dyn Clock>,
        settings: SessionSettings,
    ) -> Self {
        let login_cookie_name = format!("{}-tx", settings.cookie_name);
        // The callback arrives by a cross-site top-level navigation from the IdP: Lax is the
        // strictest SameSite that still sends the binding cookie there.
        let login_cookie = CookieAttributes {
            secure: settings.cookie.secure,
            same_site: "Lax",
        };
        Self {
            store,
            sealer,
            clock,
            settings,
            login_cookie_name,
            login_cookie,
        }
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// Names of every cookie Ward sets (never forwarded upstream).
    pub fn cookie_names(&self) -> Vec<String> {
        vec![
            self.settings.cookie_name.clone(),
            self.login_cookie_name.clone(),
        ]
    }

    /// The session cookie credentials in a `Cookie` header, if well-formed.
    pub fn session_cookie(&self, cookie_header: Option<&str>) -> Option<SessionCookie> {
        cookie::find(cookie_header?, &self.settings.cookie_name).and_then(SessionCookie::parse)
    }

    /// Whether the request carries anything under the session cookie's name.
    pub fn has_session_cookie(&self, cookie_header: Option<&str>) -> bool {
        cookie_header
            .map(|h| {
                h.split(';').any(|pair| {
                    pair.trim()
                        .split_once('=')
                        .is_some_and(|(k, _)| k == self.settings.cookie_name)
                })
            })
            .unwrap_or(false)
    }

    /// The session named by the `Cookie` header, or `None` when there is no usable one.
    pub async fn load(
        &self,
        cookie_header: Option<&str>,
    ) -> Result<Option<LoadedSession>, StoreError> {
        let Some(cookie) = self.session_cookie(cookie_header) else {
            return Ok(None);
        };
        let key = self.sealer.store_key(SESSION_NS, cookie.id());
        let Some(sealed) = self.store.get(&key).await? else {
            return Ok(None);
        };
        let opened = match self.sealer.open(&key, cookie.secret(), &sealed) {
            Ok(opened) => opened,
            Err(err) => {
                tracing::info!(event = "session_unreadable", reason = %err, "session record did not open");
                return Ok(None);
            }
        };
        let Ok(data) = serde_json::from_slice::<SessionData>(&opened.plaintext) else {
            tracing::warn!(
                event = "session_unreadable",
                reason = "format",
                "session record did not parse"
            );
            return Ok(None);
        };
        if data.v != SESSION_FORMAT || self.expires_at(&data) <= self.clock.now() {
            return Ok(None);
        }
        let session = LoadedSession { cookie, key, data };
        if opened.stale_key {
            // Re-seal under the primary key: rotation completes as sessions are used.
            self.save(&session).await?;
            tracing::info!(event = "session_resealed", session = session.log_id());
        }
        Ok(Some(session))
    }

    /// Creates a new session (always a new id: no fixation) from a completed login.
    pub async fn create(&self, tokens: TokenSet) -> Result<LoadedSession, StoreError> {
        let now = self.clock.now();
        let cookie = SessionCookie::generate();
        let key = self.sealer.store_key(SESSION_NS, cookie.id());
        let data = SessionData {
            v: SESSION_FORMAT,
            sub: tokens.sub,
            sid: tokens.sid,
            claims: tokens.claims,
            access_token: tokens.access_token,
            refresh_token: tokens.refresh_token,
            id_token: tokens.id_token,
            access_expires_at: tokens.access_expires_at,
            csrf_token: SecretString::new(super::random::token()),
            created_at: now,
            last_seen: now,
            absolute_expires_at: now.saturating_add(self.settings.absolute_timeout),
        };
        let session = LoadedSession { cookie, key, data };
        self.save(&session).await?;
        Ok(session)
    }

    /// Resets the idle timer (written back at most once a minute).
    pub async fn slide(&self, session: &mut LoadedSession) -> Result<(), StoreError> {
        let now = self.clock.now();
        if now.saturating_sub(session.data.last_seen) < SLIDE_GRANULARITY {
            return Ok(());
        }
        session.data.last_seen = now;
        self.save(session).await
    }

    /// Deletes the session record.
    pub async fn delete(&self, session: &LoadedSession) -> Result<(), StoreError> {
        self.store.delete(&session.key).await.map(|_| ())
    }

    /// When the session ends unless used again: the earlier of idle and absolute expiry.
    pub fn expires_at(&self, data: &SessionData) -> u64 {
        data.last_seen
            .saturating_add(self.settings.idle_timeout)
            .min(data.absolute_expires_at)
    }

    /// `Set-Cookie` for the session, living until its absolute expiry.
    pub fn set_session_cookie(&self, session: &LoadedSession) -> String {
        let remaining = session
            .data
            .absolute_expires_at
            .saturating_sub(self.clock.now());
        cookie::set_cookie(
            &self.settings.cookie_name,
            &session.cookie.encode(),
            remaining,
            &self.settings.cookie,
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_session_cookie(&self) -> String {
        cookie::set_cookie(&self.settings.cookie_name, "", 0, &self.settings.cookie)
    }

    /// The browser's login binding from its `Cookie` header, if well-formed.
    pub fn login_binding(&self, cookie_header: Option<&str>) -> Option<LoginBinding> {
        cookie::find(cookie_header?, &self.login_cookie_name).and_then(LoginBinding::parse)
    }

    /// `Set-Cookie` for the login binding (shared by parallel logins of one browser).
    pub fn set_login_cookie(&self, binding: &LoginBinding) -> String {
        cookie::set_cookie(
            &self.login_cookie_name,
            &binding.encode(),
            LOGIN_TTL,
            &self.login_cookie,
        )
    }

    /// Stores a pending login, sealed under the browser's binding, keyed by a hash of `state`.
    pub async fn begin_login(
        &self,
        binding: &LoginBinding,
        tx: &LoginTransaction,
    ) -> Result<(), StoreError> {
        let key = self
            .sealer
            .store_key(LOGIN_NS, tx.state.expose().as_bytes());
        let plaintext = serde_json::to_vec(tx).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
        let record = Record {
            value: self.sealer.seal(&key, binding.secret(), &plaintext),
            expires_at: self.clock.now().saturating_add(LOGIN_TTL),
            indexes: Vec::new(),
            created_at: tx.created_at,
            updated_at: tx.created_at,
        };
        self.store.put(&key, record).await
    }

    /// Consumes the pending login named by `state` if, and only if, this browser started it:
    /// it must open under the browser's binding, and only one caller can take it.
    pub async fn finish_login(
        &self,
        binding: &LoginBinding,
        state: &str,
    ) -> Result<Option<LoginTransaction>, StoreError> {
        let key = self.sealer.store_key(LOGIN_NS, state.as_bytes());
        let Some(sealed) = self.store.get(&key).await? else {
            tracing::info!(event = "login_rejected", reason = "unknown_state");
            return Ok(None);
        };
        // Open before taking: a browser that does not hold the binding cannot burn the
        // transaction of the one that does.
        let Ok(opened) = self.sealer.open(&key, binding.secret(), &sealed) else {
            tracing::warn!(event = "login_rejected", reason = "foreign_browser");
            return Ok(None);
        };
        if self.store.take(&key).await?.is_none() {
            tracing::warn!(event = "login_rejected", reason = "replayed_state");
            return Ok(None);
        }
        let Ok(tx) = serde_json::from_slice::<LoginTransaction>(&opened.plaintext) else {
            return Ok(None);
        };
        if !tx.state.ct_eq(state) || tx.created_at.saturating_add(LOGIN_TTL) <= self.clock.now() {
            return Ok(None);
        }
        Ok(Some(tx))
    }

    async fn save(&self, session: &LoadedSession) -> Result<(), StoreError> {
        let plaintext =
            serde_json::to_vec(&session.data).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
        let mut indexes = self.sealer.index_keys("sub", &session.data.sub);
        indexes.truncate(1);
        if let Some(sid) = &session.data.sid {
            indexes.extend(self.sealer.index_keys("sid", sid).into_iter().take(1));
        }
        let record = Record {
            value: self
                .sealer
                .seal(&session.key, session.cookie.secret(), &plaintext),
            expires_at: self.expires_at(&session.data),
            indexes,
            created_at: session.data.created_at,
            updated_at: session.data.last_seen,
        };
        self.store.put(&session.key, record).await
    }
}
