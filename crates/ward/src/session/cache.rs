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
//! - **Short-lived and bounded.** Entries are served for [`TTL`]; at most [`CAPACITY`] are
//!   kept (`quick_cache`, which evicts by its S3-FIFO policy when full). This instance's own
//!   writes and deletes remove the entry at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::record::SessionData;

/// How long an opened session is reused.
pub const TTL: Duration = Duration::from_secs(1);
/// Most entries kept.
pub const CAPACITY: usize = 10_000;

/// Opened sessions by store key.
pub struct OpenedCache {
    entries: quick_cache::sync::Cache<String, Arc<Entry>>,
}

struct Entry {
    sealed: Vec<u8>,
    secret: Zeroizing<[u8; 32]>,
    data: Arc<SessionData>,
    /// `Authorization` value of the access token, prepared once (`None`: unsendable).
    bearer: Option<HeaderValue>,
    at: Instant,
}

impl Default for OpenedCache {
    fn default() -> Self {
        Self {
            entries: quick_cache::sync::Cache::new(CAPACITY),
        }
    }
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
        let entry = self.entries.get(key)?;
        let fresh = entry.at.elapsed() < TTL;
        let same = entry.sealed == sealed && bool::from(entry.secret.ct_eq(secret));
        (fresh && same).then(|| (entry.data.clone(), entry.bearer.clone()))
    }

    /// Remembers that `sealed` under `key` opened with `secret` to `data`.
    pub fn insert(&self, key: &str, secret: &[u8; 32], sealed: Vec<u8>, data: &Arc<SessionData>) {
        let entry = Entry {
            sealed,
            secret: Zeroizing::new(*secret),
            data: data.clone(),
            bearer: crate::secret::bearer_value(&data.access_token).ok(),
            at: Instant::now(),
        };
        self.entries.insert(key.to_owned(), Arc::new(entry));
    }

    /// Forgets `key` (this instance wrote or deleted its record).
    pub fn remove(&self, key: &str) {
        self.entries.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
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
            dpop_key: None,
            resource_tokens: Default::default(),
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
        assert!(cache.len() <= CAPACITY, "{} entries", cache.len());
    }
}
