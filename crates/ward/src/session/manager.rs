//! Loading, creating, sliding and deleting sessions and pending logins, on top of the store.
//!
//! Every record is sealed (see [`super::seal`]) under a key that needs the browser's cookie:
//! a session under its per-session secret, a pending login under the browser's login binding.
//! Anything that fails to open, parse or is past its time reads as "no session" — only a store
//! that cannot answer is an error, and callers turn it into 503.

use std::sync::Arc;

use axum::http::HeaderValue;
use ward_store::{Clock, Record, SessionStore, StoreError};

use super::cache::{OpenedCache, StoreKeys};
use super::cookie::{self, CookieAttributes, LoginBinding, SessionCookie};
use super::record::{LoginTransaction, SESSION_FORMAT, SessionData};
use super::refresh::RefreshFlights;
use super::seal::Sealer;
use crate::oidc::TokenSet;
use crate::proxy::{UnsendableBearer, bearer_value};
use crate::secret::SecretString;

/// Store namespace of sessions.
const SESSION_NS: &str = "s";
/// Store namespace of pending logins.
const LOGIN_NS: &str = "t";
/// Store namespace of the `jti`s of accepted back-channel logout tokens (replay cache).
const LOGOUT_JTI_NS: &str = "j";
/// How long a login may take at the IdP (SPEC §1: at most 10 minutes).
pub const LOGIN_TTL: u64 = 600;
/// The idle timer is written back at most this often, so reads do not turn into writes.
const SLIDE_GRANULARITY: u64 = 60;

/// Whether a session read may be answered by a read cache of the store (`[store] cache_ttl`).
#[derive(Debug, Clone, Copy)]
enum Read {
    Cached,
    Current,
}

/// Whether a write creates a session or refreshes one that must still exist.
#[derive(Debug, Clone, Copy)]
enum Write {
    New,
    Existing,
}

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
    /// The opened record, shared with the opened-session cache until changed (see
    /// [`LoadedSession::data_mut`]).
    pub data: Arc<SessionData>,
    /// The access token's `Authorization` value when the cache had it prepared.
    bearer: Option<HeaderValue>,
}

impl LoadedSession {
    /// The record for changing: a copy of its own when the cache shares it.
    pub fn data_mut(&mut self) -> &mut SessionData {
        // The tokens may change: the prepared header would name the old one.
        self.bearer = None;
        Arc::make_mut(&mut self.data)
    }

    /// `Authorization: Bearer <access token>`, prepared once per opened record.
    pub fn bearer(&self) -> Result<HeaderValue, UnsendableBearer> {
        match &self.bearer {
            Some(value) => Ok(value.clone()),
            None => bearer_value(&self.data.access_token),
        }
    }

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
    /// In-process single flight and back-off of access-token refreshes (see [`super::refresh`]).
    refreshes: RefreshFlights,
    /// Opened sessions, reused while their record in the store is unchanged (see
    /// [`super::cache`]).
    opened: OpenedCache,
    /// Store keys of recently seen session ids.
    store_keys: StoreKeys,
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
            refreshes: RefreshFlights::default(),
            opened: OpenedCache::default(),
            store_keys: StoreKeys::default(),
        }
    }

    /// The store, for readiness checks.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    /// The sealer, for work without a cookie (session administration by index entries).
    pub fn sealer(&self) -> &Sealer {
        &self.sealer
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
        self.load_cookie(cookie).await
    }

    /// The session these cookie credentials name, read afresh from the store (`load` without
    /// the header parsing; token refresh re-reads with it).
    pub(super) async fn load_cookie(
        &self,
        cookie: SessionCookie,
    ) -> Result<Option<LoadedSession>, StoreError> {
        self.load_from_store(cookie, Read::Cached).await
    }

    /// [`load_cookie`](Self::load_cookie) past any read cache of the store: for a read that
    /// decides a write (refresh, idle timer), which must see another instance's latest tokens.
    pub(super) async fn load_current(
        &self,
        cookie: SessionCookie,
    ) -> Result<Option<LoadedSession>, StoreError> {
        self.load_from_store(cookie, Read::Current).await
    }

    async fn load_from_store(
        &self,
        cookie: SessionCookie,
        read: Read,
    ) -> Result<Option<LoadedSession>, StoreError> {
        let key = self.store_keys.get_or_derive(cookie.id(), || {
            self.sealer.store_key(SESSION_NS, cookie.id())
        });
        let sealed = match read {
            Read::Cached => self.store.get(&key).await?,
            Read::Current => self.store.get_current(&key).await?,
        };
        let Some(sealed) = sealed else {
            self.opened.remove(&key);
            return Ok(None);
        };
        if let Some((data, bearer)) = self.opened.get(&key, cookie.secret(), &sealed) {
            // The very record this cookie opened before: same result, without the open and
            // the parse.
            if self.expires_at(&data) <= self.clock.now() {
                return Ok(None);
            }
            return Ok(Some(LoadedSession {
                cookie,
                key,
                data,
                bearer,
            }));
        }
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
        let session = LoadedSession {
            cookie,
            key,
            data: Arc::new(data),
            bearer: None,
        };
        if opened.stale_key {
            // Re-seal under the primary key: rotation completes as sessions are used.
            if !self.save(&session, Write::Existing).await? {
                return Ok(None);
            }
            tracing::info!(event = "session_resealed", session = session.log_id());
        } else {
            self.opened
                .insert(&session.key, session.cookie.secret(), sealed, &session.data);
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
        let session = LoadedSession {
            cookie,
            key,
            data: Arc::new(data),
            bearer: None,
        };
        self.save(&session, Write::New).await?;
        Ok(session)
    }

    /// Resets the idle timer (written back at most once a minute). `false` when the session
    /// ended meanwhile (logout, revocation elsewhere): the caller treats it as no session.
    pub async fn slide(&self, session: &mut LoadedSession) -> Result<bool, StoreError> {
        let now = self.clock.now();
        if now.saturating_sub(session.data.last_seen) < SLIDE_GRANULARITY {
            return Ok(true);
        }
        // Write back the record as it is now, not the copy this request loaded: another
        // request may have refreshed the tokens meanwhile (a rotated refresh token must not be
        // overwritten by the one it replaced).
        let Some(mut current) = self.load_current(session.cookie.clone()).await? else {
            return Ok(false);
        };
        current.data_mut().last_seen = now;
        let written = self.save(&current, Write::Existing).await?;
        *session = current;
        Ok(written)
    }

    /// The store key named by the session cookie in `cookie_header`, without loading it.
    pub fn session_key(&self, cookie_header: Option<&str>) -> Option<String> {
        let cookie = self.session_cookie(cookie_header)?;
        Some(self.sealer.store_key(SESSION_NS, cookie.id()))
    }

    /// Deletes the record under a session store key (the session a new login replaces).
    pub async fn delete_key(&self, key: &str) -> Result<(), StoreError> {
        self.opened.remove(key);
        self.store.delete(key).await.map(|_| ())
    }

    /// Deletes the session record.
    pub async fn delete(&self, session: &LoadedSession) -> Result<(), StoreError> {
        self.opened.remove(&session.key);
        self.store.delete(&session.key).await.map(|_| ())
    }

    /// Deletes the sessions a back-channel logout names: with `sid`, the sessions indexed
    /// under that `sid` (and, when `sub` is given too, also under that `sub`: a token pairing
    /// one user's `sub` with another's `sid` ends nothing); with only `sub`, every session of
    /// `sub`. Index entries are looked up under every key of the ring (records are indexed
    /// under the key that was primary when they were last written). Returns how many live
    /// sessions were deleted. Needs no cookie: the records are never opened.
    pub async fn end_sessions_by(
        &self,
        sub: Option<&str>,
        sid: Option<&str>,
    ) -> Result<u64, StoreError> {
        let keys = match (sub, sid) {
            (_, Some(sid)) => {
                let mut keys = self.indexed("sid", sid).await?;
                if let Some(sub) = sub {
                    let of_sub = self.indexed("sub", sub).await?;
                    keys.retain(|key| of_sub.contains(key));
                }
                keys
            }
            (Some(sub), None) => self.indexed("sub", sub).await?,
            (None, None) => return Ok(0),
        };
        let mut ended = 0;
        for key in keys {
            self.opened.remove(&key);
            if self.store.delete(&key).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Remembers the `jti` of an accepted logout token until `until` (unix seconds), across
    /// instances sharing the store; `false` when it was already remembered (a replay).
    pub async fn remember_logout_token(&self, jti: &str, until: u64) -> Result<bool, StoreError> {
        let key = self.sealer.store_key(LOGOUT_JTI_NS, jti.as_bytes());
        let now = self.clock.now();
        let record = Record {
            value: Vec::new(),
            expires_at: until,
            indexes: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        self.store.put_new(&key, record).await
    }

    /// Whether a logout token with this `jti` was already carried out (replay).
    pub async fn logout_token_seen(&self, jti: &str) -> Result<bool, StoreError> {
        let key = self.sealer.store_key(LOGOUT_JTI_NS, jti.as_bytes());
        Ok(self.store.get(&key).await?.is_some())
    }

    /// Store keys of the live sessions indexed under `kind` = `value`, under any ring key.
    async fn indexed(&self, kind: &str, value: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        // A store without indexes (cookie) has no sessions to find.
        let Some(indexes) = self.store.indexes() else {
            return Ok(keys);
        };
        for index in self.sealer.index_keys(kind, value) {
            for info in indexes.list_by_index(&index).await? {
                let is_session = info
                    .key
                    .split_once(':')
                    .is_some_and(|(ns, _)| ns == SESSION_NS);
                if is_session && !keys.contains(&info.key) {
                    keys.push(info.key);
                }
            }
        }
        Ok(keys)
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

    /// Writes an updated session over its live record (token refresh); `false` when the
    /// session ended meanwhile.
    pub(super) async fn save_existing(&self, session: &LoadedSession) -> Result<bool, StoreError> {
        self.save(session, Write::Existing).await
    }

    /// Hooks of the token refresh: clock and in-process refresh state.
    pub(super) fn refresh_parts(&self) -> (&Arc<dyn Clock>, &RefreshFlights) {
        (&self.clock, &self.refreshes)
    }

    /// Seals and writes the session; with [`Write::Existing`] only over a live record, so an
    /// ended session is never written back. `false` when there was nothing to overwrite.
    async fn save(&self, session: &LoadedSession, write: Write) -> Result<bool, StoreError> {
        self.opened.remove(&session.key);
        let plaintext =
            serde_json::to_vec(&*session.data).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
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
        match write {
            Write::New => self.store.put(&session.key, record).await.map(|()| true),
            Write::Existing => self.store.replace(&session.key, record).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::keyring::KeyRing;
    use ward_store::ManualClock;
    use ward_store::memory::MemoryStore;

    const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

    fn manager() -> (SessionManager, Arc<ManualClock>, Arc<MemoryStore>) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let store = Arc::new(MemoryStore::new(clock.clone()));
        manager_over(store, clock)
    }

    fn manager_over(
        store: Arc<MemoryStore>,
        clock: Arc<ManualClock>,
    ) -> (SessionManager, Arc<ManualClock>, Arc<MemoryStore>) {
        let ring = KeyRing::from_config(&[SecretString::new(KEY)]).unwrap();
        let settings = SessionSettings {
            idle_timeout: 1800,
            absolute_timeout: 28_800,
            cookie_name: "__Host-ward".to_owned(),
            cookie: CookieAttributes {
                secure: true,
                same_site: "Strict",
            },
        };
        let manager =
            SessionManager::new(store.clone(), Sealer::new(ring), clock.clone(), settings);
        (manager, clock, store)
    }

    fn tokens() -> TokenSet {
        TokenSet {
            access_token: SecretString::new("at"),
            refresh_token: None,
            id_token: SecretString::new("idt"),
            access_expires_at: None,
            sub: "alice".to_owned(),
            sid: Some("sid-1".to_owned()),
            claims: serde_json::Map::new(),
        }
    }

    fn header(session: &LoadedSession) -> String {
        format!("__Host-ward={}", session.cookie.encode())
    }

    #[tokio::test]
    async fn a_slide_keeps_tokens_another_request_refreshed_meanwhile() {
        let (manager, clock, _) = manager();
        let created = manager.create(tokens()).await.unwrap();
        let cookie = header(&created);
        let mut stale = manager.load(Some(&cookie)).await.unwrap().unwrap();
        let mut refreshed = manager.load(Some(&cookie)).await.unwrap().unwrap();
        refreshed.data_mut().access_token = SecretString::new("at-2");
        refreshed.data_mut().refresh_token = Some(SecretString::new("rt-2"));
        assert!(manager.save_existing(&refreshed).await.unwrap());
        clock.advance(SLIDE_GRANULARITY);
        assert!(manager.slide(&mut stale).await.unwrap());
        let stored = manager.load(Some(&cookie)).await.unwrap().unwrap();
        assert_eq!(stored.data.access_token.expose(), "at-2");
        assert_eq!(
            stored.data.refresh_token.as_ref().map(SecretString::expose),
            Some("rt-2")
        );
        assert_eq!(stored.data.last_seen, clock.now());
        assert_eq!(
            stale.data.access_token.expose(),
            "at-2",
            "the caller sees the current copy"
        );
    }

    #[tokio::test]
    async fn a_session_ended_elsewhere_is_not_written_back_by_a_slide() {
        let (manager, clock, store) = manager();
        let created = manager.create(tokens()).await.unwrap();
        let cookie = header(&created);
        let mut in_flight = manager.load(Some(&cookie)).await.unwrap().unwrap();
        let other = manager.load(Some(&cookie)).await.unwrap().unwrap();
        manager.delete(&other).await.unwrap();
        clock.advance(SLIDE_GRANULARITY);
        assert!(!manager.slide(&mut in_flight).await.unwrap());
        assert_eq!(store.get(&in_flight.key).await.unwrap(), None);
        assert!(manager.load(Some(&cookie)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_cached_session_deleted_by_another_instance_is_not_served() {
        let (manager, _, store) = manager();
        let created = manager.create(tokens()).await.unwrap();
        let cookie = header(&created);
        assert!(manager.load(Some(&cookie)).await.unwrap().is_some());
        assert!(manager.load(Some(&cookie)).await.unwrap().is_some());
        // Another instance's logout: straight to the shared store, past this manager.
        assert!(store.delete(&created.key).await.unwrap());
        assert!(manager.load(Some(&cookie)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_cached_session_replaced_by_another_instance_is_read_afresh() {
        let (manager, clock, store) = manager();
        let created = manager.create(tokens()).await.unwrap();
        let cookie = header(&created);
        manager.load(Some(&cookie)).await.unwrap().unwrap();
        // Another instance (same keys, same store) refreshes the tokens.
        let (other, _, _) = manager_over(store.clone(), clock.clone());
        let mut session = other.load(Some(&cookie)).await.unwrap().unwrap();
        session.data_mut().access_token = SecretString::new("at-2");
        assert!(other.save_existing(&session).await.unwrap());
        let reloaded = manager.load(Some(&cookie)).await.unwrap().unwrap();
        assert_eq!(reloaded.data.access_token.expose(), "at-2");
    }

    #[tokio::test]
    async fn a_cached_session_does_not_open_for_the_id_with_another_secret() {
        let (manager, _, _) = manager();
        let created = manager.create(tokens()).await.unwrap();
        manager
            .load(Some(&header(&created)))
            .await
            .unwrap()
            .unwrap();
        let mut raw = created.cookie.encode();
        // Same id, different secret: change a character near the end (inside the secret).
        let at = raw.len() - 5;
        let other = if &raw[at..=at] == "A" { "B" } else { "A" };
        raw.replace_range(at..=at, other);
        assert!(SessionCookie::parse(&raw).is_some_and(|c| c.id() == created.cookie.id()));
        let forged = format!("__Host-ward={raw}");
        assert!(manager.load(Some(&forged)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn slide_writes_at_most_once_a_minute_and_extends_the_idle_expiry() {
        let (manager, clock, _) = manager();
        let created = manager.create(tokens()).await.unwrap();
        let cookie = header(&created);
        clock.advance(SLIDE_GRANULARITY - 1);
        let mut session = manager.load(Some(&cookie)).await.unwrap().unwrap();
        assert!(manager.slide(&mut session).await.unwrap());
        assert_eq!(session.data.last_seen, created.data.last_seen);
        clock.advance(1);
        assert!(manager.slide(&mut session).await.unwrap());
        let reloaded = manager.load(Some(&cookie)).await.unwrap().unwrap();
        assert_eq!(reloaded.data.last_seen, clock.now());
        assert_eq!(manager.expires_at(&reloaded.data), clock.now() + 1800);
    }
}
