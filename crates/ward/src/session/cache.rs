//! A short-lived in-process cache of opened sessions, so a busy session is not unsealed
//! (HKDF + AES-GCM) and parsed on every request.
//!
//! What holds:
//! - **Never staler than the store.** The cache saves the open and the parse, not the store
//!   read: a hit needs the record just read from the store to be byte-for-byte the one that was
//!   opened. A logout, revocation or refresh by any instance changes or removes the record, so
//!   it is seen on the very next request, exactly as without the cache.
//! - **Only for the cookie that opened it.** An entry keeps the cookie secret that opened it and
//!   is used only when the request's secret is equal (compared in constant time): knowing a
//!   session id alone reads nothing, as with the sealed record.
//! - **Short-lived and bounded.** Entries live [`TTL`]; at most [`CAPACITY`] are kept, expired
//!   ones are dropped at least once per `TTL` on insert, and a full cache evicts an arbitrary
//!   entry. This instance's own writes and deletes remove the entry at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::HeaderValue;
use subtle::ConstantTimeEq;

use super::record::SessionData;

/// How long an opened session is reused.
pub const TTL: Duration = Duration::from_secs(1);
/// Most entries kept.
pub const CAPACITY: usize = 10_000;

/// Opened sessions by store key.
#[derive(Default)]
pub struct OpenedCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    last_purge: Option<Instant>,
}

struct Entry {
    sealed: Vec<u8>,
    secret: [u8; 32],
    data: Arc<SessionData>,
    /// `Authorization` value of the access token, prepared once (`None`: unsendable).
    bearer: Option<HeaderValue>,
    at: Instant,
}

impl std::fmt::Debug for OpenedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedCache").finish_non_exhaustive()
    }
}

impl OpenedCache {
    /// The data opened from exactly `sealed` under `key` with `secret`, when still fresh.
    /// With it, the access token's prepared `Authorization` value, when sendable.
    pub fn get(
        &self,
        key: &str,
        secret: &[u8; 32],
        sealed: &[u8],
    ) -> Option<(Arc<SessionData>, Option<HeaderValue>)> {
        let inner = self.lock();
        let entry = inner.entries.get(key)?;
        let fresh = entry.at.elapsed() < TTL;
        let same = entry.sealed == sealed && bool::from(entry.secret.ct_eq(secret));
        (fresh && same).then(|| (entry.data.clone(), entry.bearer.clone()))
    }

    /// Remembers that `sealed` under `key` opened with `secret` to `data`.
    pub fn insert(&self, key: &str, secret: &[u8; 32], sealed: Vec<u8>, data: &Arc<SessionData>) {
        let bearer = crate::secret::bearer_value(&data.access_token).ok();
        let now = Instant::now();
        let mut inner = self.lock();
        let purge_due = inner
            .last_purge
            .is_none_or(|at| now.duration_since(at) >= TTL);
        if purge_due || inner.entries.len() >= CAPACITY {
            inner.entries.retain(|_, e| now.duration_since(e.at) < TTL);
            inner.last_purge = Some(now);
        }
        if inner.entries.len() >= CAPACITY
            && !inner.entries.contains_key(key)
            && let Some(victim) = inner.entries.keys().next().cloned()
        {
            inner.entries.remove(&victim);
        }
        inner.entries.insert(
            key.to_owned(),
            Entry {
                sealed,
                secret: *secret,
                data: data.clone(),
                bearer,
                at: now,
            },
        );
    }

    /// Forgets `key` (this instance wrote or deleted its record).
    pub fn remove(&self, key: &str) {
        self.lock().entries.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map holds no invariant a panic elsewhere could break half-way.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Store keys of session ids: a pure function (a hash of the id), remembered so that a busy
/// session's key is not hashed again on every request. Bounded: cleared when full.
#[derive(Default)]
pub struct StoreKeys {
    keys: Mutex<HashMap<[u8; 32], String>>,
}

impl std::fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreKeys").finish_non_exhaustive()
    }
}

impl StoreKeys {
    /// The key of `id`, computed by `derive` the first time.
    pub fn get_or_derive(&self, id: &[u8; 32], derive: impl FnOnce() -> String) -> String {
        let mut keys = self
            .keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(key) = keys.get(id) {
            return key.clone();
        }
        if keys.len() >= CAPACITY {
            keys.clear();
        }
        keys.entry(*id).or_insert_with(derive).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use crate::session::record::SESSION_FORMAT;

    fn data(sub: &str) -> SessionData {
        SessionData {
            v: SESSION_FORMAT,
            sub: sub.to_owned(),
            sid: None,
            claims: serde_json::Map::new(),
            access_token: SecretString::new("at"),
            refresh_token: None,
            id_token: SecretString::new("idt"),
            access_expires_at: None,
            csrf_token: SecretString::new("csrf"),
            created_at: 1,
            last_seen: 1,
            absolute_expires_at: 2,
        }
    }

    #[test]
    fn a_hit_needs_the_same_sealed_bytes_and_the_same_secret() {
        let cache = OpenedCache::default();
        cache.insert(
            "s:1",
            &[1; 32],
            b"sealed".to_vec(),
            &Arc::new(data("alice")),
        );
        let (hit, bearer) = cache.get("s:1", &[1; 32], b"sealed").expect("hit");
        assert_eq!(hit.sub, "alice");
        assert_eq!(bearer.expect("sendable").as_bytes(), b"Bearer at");
        assert!(cache.get("s:1", &[2; 32], b"sealed").is_none());
        assert!(cache.get("s:1", &[1; 32], b"resealed").is_none());
        assert!(cache.get("s:2", &[1; 32], b"sealed").is_none());
    }

    #[test]
    fn a_removed_entry_is_not_served() {
        let cache = OpenedCache::default();
        cache.insert(
            "s:1",
            &[1; 32],
            b"sealed".to_vec(),
            &Arc::new(data("alice")),
        );
        cache.remove("s:1");
        assert!(cache.get("s:1", &[1; 32], b"sealed").is_none());
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = OpenedCache::default();
        for i in 0..CAPACITY + 10 {
            cache.insert(
                &format!("s:{i}"),
                &[1; 32],
                Vec::new(),
                &Arc::new(data("alice")),
            );
        }
        assert_eq!(cache.len(), CAPACITY);
    }
}

#[cfg(test)]
mod store_key_tests {
    use super::*;

    #[test]
    fn a_remembered_key_is_derived_once_and_the_memo_stays_bounded() {
        let keys = StoreKeys::default();
        let mut derived = 0;
        for _ in 0..3 {
            let key = keys.get_or_derive(&[7; 32], || {
                derived += 1;
                "s:seven".to_owned()
            });
            assert_eq!(key, "s:seven");
        }
        assert_eq!(derived, 1);
        for i in 0..=CAPACITY {
            let mut id = [0; 32];
            id[..8].copy_from_slice(&(i as u64).to_le_bytes());
            keys.get_or_derive(&id, || format!("s:{i}"));
        }
        assert!(keys.keys.lock().unwrap().len() <= CAPACITY);
    }
}
