//! Loading, creating, sliding and deleting sessions and pending logins, on top of the store.
//!
//! Every record is sealed (see [`super::seal`]) under a key that needs the browser's cookie:
//! a session under its per-session secret, a pending login under the browser's login binding.
//! Anything that fails to open, parse or is past its time reads as "no session" — only a store
//! that cannot answer is an error, and callers turn it into 503.

use std::sync::Arc;

use http::HeaderValue;
use ward_store::{Clock, Record, SessionStore, StoreError, UnixTime};

use super::cache::OpenedCache;
use super::cookie::{self, CookieAttributes, SessionCookie};
use super::live::LiveSessions;
use super::record::{SESSION_FORMAT, SessionData};
use super::refresh::RefreshFlights;
use super::resource_tokens::ResourceFlights;
use super::seal::Sealer;
use crate::oidc::TokenSet;
use crate::secret::SecretString;
use crate::secret::{UnsendableBearer, bearer_value};

/// Store namespace of sessions.
const SESSION_NS: &str = "s";
/// Store namespace of the `jti`s of accepted back-channel logout tokens (replay cache).
const LOGOUT_JTI_NS: &str = "j";
pub use pending::{
    LOGIN_TTL, MAX_PENDING_PER_BROWSER, MAX_PENDING_PER_CLIENT, TooManyPendingLogins,
};
/// The idle timer is written back at most this often, so reads do not turn into writes.
const SLIDE_GRANULARITY: u64 = 60;

/// Whether a session read may be answered by a read cache of the store (`[store] cache_ttl`).
#[derive(Debug, Clone, Copy)]
enum Read {
    Cached,
    Current,
}

/// Whether a write creates a session or changes the very record the request read.
#[derive(Debug, Clone, Copy)]
enum Write {
    New,
    /// Only over the record's version the session was loaded from (compare-and-swap).
    Over,
}

/// How often [`SessionManager::update`] re-reads and retries after another writer replaced
/// the record in between; each retry follows a write that succeeded, so conflicts end fast.
const UPDATE_ATTEMPTS: usize = 5;

/// A change of a session lost to other writers [`UPDATE_ATTEMPTS`] times in a row.
#[derive(Debug, thiserror::Error)]
#[error("the session record kept changing under the write")]
pub struct WriteConflict;

/// The sealed bytes a session was read from (or last written as): the record's version for
/// [`SessionStore::replace_if`]. Opaque ciphertext, shown only by length.
#[derive(Clone, Default)]
pub(super) struct Version(Vec<u8>);

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} sealed bytes>", self.0.len())
    }
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
    /// The record as the store held it when this was read; writes compare against it.
    version: Version,
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
    /// In-process single flight and back-off of resource tokens ([`super::resource_tokens`]).
    resources: ResourceFlights,
    /// Opened sessions, reused while their record in the store is unchanged (see
    /// [`super::cache`]).
    opened: OpenedCache,
    /// The store's count of live sessions, for `ward_sessions_active` ([`super::live`]).
    live: LiveSessions,
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
        let live = LiveSessions::new(store.clone(), clock.clone(), format!("{SESSION_NS}:"));
        Self {
            live,
            store,
            sealer,
            clock,
            settings,
            login_cookie_name,
            login_cookie,
            refreshes: RefreshFlights::default(),
            resources: ResourceFlights::default(),
            opened: OpenedCache::default(),
        }
    }

    /// The live sessions of every instance, as the store counts them (at most every
    /// [`super::live::COUNT_INTERVAL`] s); `None` when the store cannot count or failed to.
    pub async fn live_count(&self) -> Option<u64> {
        self.live.current().await
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
        let key = self.sealer.store_key(SESSION_NS, cookie.id());
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
            let version = Version(sealed);
            return Ok(Some(LoadedSession {
                cookie,
                key,
                data,
                bearer,
                version,
            }));
        }
        self.open_record(cookie, key, sealed).await
    }

    /// Opens and checks the sealed record `sealed` read under `key`; re-seals it under the
    /// primary key when it was sealed under an older one.
    async fn open_record(
        &self,
        cookie: SessionCookie,
        key: String,
        sealed: Vec<u8>,
    ) -> Result<Option<LoadedSession>, StoreError> {
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
        let mut session = LoadedSession {
            cookie,
            key,
            data: Arc::new(data),
            bearer: None,
            version: Version(sealed.clone()),
        };
        if !opened.stale_key {
            self.opened
                .insert(&session.key, session.cookie.secret(), sealed, &session.data);
        } else if self.save(&mut session, Write::Over).await? {
            // Rotation completes as sessions are used.
            tracing::info!(event = "session_resealed", session = session.log_id());
        } else if self.store.get_current(&session.key).await?.is_none() {
            // Ended meanwhile. (Otherwise another request wrote it first, re-sealed too:
            // serve it; later writes compare against the record it wrote.)
            return Ok(None);
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
            csrf_token: SecretString::new(crate::random::token()),
            created_at: now,
            last_seen: now,
            absolute_expires_at: now.saturating_add(self.settings.absolute_timeout),
            dpop_key: tokens.dpop_key,
            resource_tokens: Default::default(),
        };
        let mut session = LoadedSession {
            cookie,
            key,
            data: Arc::new(data),
            bearer: None,
            version: Version::default(),
        };
        self.save(&mut session, Write::New).await?;
        Ok(session)
    }

    /// Resets the idle timer (written back at most once a minute). `false` when the session
    /// ended meanwhile (logout, revocation elsewhere): the caller treats it as no session.
    pub async fn slide(&self, session: &mut LoadedSession) -> Result<bool, StoreError> {
        let now = self.clock.now();
        if now.saturating_sub(session.data.last_seen) < SLIDE_GRANULARITY {
            return Ok(true);
        }
        // Boxed: the write is rare (once per granularity) and its future large; unboxed, every
        // request's future would carry it (and the router copies that future per request).
        Box::pin(self.slide_now(session, now)).await
    }

    /// [`slide`](Self::slide) once the granularity has passed: writes `last_seen = now`.
    async fn slide_now(
        &self,
        session: &mut LoadedSession,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // Start from the record as it is now (the copy this request loaded may come from a
        // read cache); the compare-and-swap in `update` then keeps any write landing between
        // this read and the slide's write, such as a refresh's rotated tokens.
        let Some(current) = self.load_current(session.cookie.clone()).await? else {
            return Ok(false);
        };
        let slid = self
            .update(current, |s| {
                if now.saturating_sub(s.data.last_seen) < SLIDE_GRANULARITY {
                    return false;
                }
                s.data_mut().last_seen = now;
                true
            })
            .await?;
        match slid {
            Some(current) => {
                *session = current;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Applies `change` to `session` and writes it over the exact record it was read from
    /// (`replace_if`). When another writer replaced the record in between, re-reads it and
    /// applies `change` to that, so neither write is lost. `change` returns `false` when
    /// nothing (more) needs writing. `None` when the session ended.
    pub(super) async fn update(
        &self,
        mut session: LoadedSession,
        change: impl Fn(&mut LoadedSession) -> bool,
    ) -> Result<Option<LoadedSession>, StoreError> {
        for _ in 0..UPDATE_ATTEMPTS {
            if !change(&mut session) || self.save(&mut session, Write::Over).await? {
                return Ok(Some(session));
            }
            match self.load_current(session.cookie.clone()).await? {
                Some(current) => session = current,
                None => return Ok(None),
            }
        }
        Err(StoreError::Unavailable(Box::new(WriteConflict)))
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

    /// Hooks of the token refresh: clock and in-process refresh state.
    pub(super) fn refresh_parts(&self) -> (&Arc<dyn Clock>, &RefreshFlights) {
        (&self.clock, &self.refreshes)
    }

    /// Hook of the resource tokens: their in-process state.
    pub(super) fn resource_flights(&self) -> &ResourceFlights {
        &self.resources
    }

    /// Seals and writes the session; with [`Write::Over`] only over the record's version it
    /// was read from, so neither an ended session nor another writer's newer record is ever
    /// overwritten. `false` when that version is no longer there. On success the session's
    /// version is the record just written.
    async fn save(&self, session: &mut LoadedSession, write: Write) -> Result<bool, StoreError> {
        self.opened.remove(&session.key);
        let plaintext = zeroize::Zeroizing::new(
            serde_json::to_vec(&*session.data).map_err(|e| StoreError::Corrupt(Box::new(e)))?,
        );
        let mut indexes = self.sealer.index_keys("sub", &session.data.sub);
        indexes.truncate(1);
        if let Some(sid) = &session.data.sid {
            indexes.extend(self.sealer.index_keys("sid", sid).into_iter().take(1));
        }
        let sealed = self
            .sealer
            .seal(&session.key, session.cookie.secret(), &plaintext);
        let record = Record {
            value: sealed.clone(),
            expires_at: self.expires_at(&session.data),
            indexes,
            created_at: session.data.created_at,
            updated_at: session.data.last_seen,
        };
        let written = match write {
            Write::New => self.store.put(&session.key, record).await.map(|()| true)?,
            Write::Over => {
                let expected = &session.version.0;
                self.store
                    .replace_if(&session.key, expected, record)
                    .await?
            }
        };
        if written {
            session.version = Version(sealed);
        }
        Ok(written)
    }
}

mod pending;
#[cfg(test)]
mod tests;
