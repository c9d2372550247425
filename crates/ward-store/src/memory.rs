//! The in-process backend: one map of records and one map of index entries behind one lock.
//!
//! Every operation takes the lock once and never awaits while holding it, so `take` and
//! `put_new` are atomic with respect to every other call. Expiry is read through the injected
//! [`Clock`]: a record at or past its `expires_at` reads as absent at once, and the memory it
//! holds is released by [`Sweep::sweep_expired`] (or by the next write to its key).
//! Nothing survives the process; use it for tests and single-instance deployments that accept
//! logging everyone out on restart.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::rate::{LocalRateLimits, RateLimits};
use crate::{Clock, Count, Indexes, Record, RecordInfo, SessionStore, StoreError, Sweep, UnixTime};

/// Keys the store's rate limits hold, all limits together (see [`LocalRateLimits`]): about
/// 200 bytes each, so some 50 MB at most, however many addresses an attacker rotates through.
pub const STORE_RATE_KEYS: usize = 262_144;

/// An in-memory [`SessionStore`].
pub struct MemoryStore {
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
    /// The store lives in one process, so its shared rate limits are that process's.
    rate: LocalRateLimits,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("records", &inner.records.len())
            .field("indexes", &inner.index.len())
            .finish()
    }
}

/// Invariant: `index[i]` contains `k` exactly when `records[k].indexes` contains `i`, and no
/// set in `index` is empty.
#[derive(Default)]
struct Inner {
    records: HashMap<String, Record>,
    index: HashMap<String, BTreeSet<String>>,
}

fn is_live(record: &Record, now: UnixTime) -> bool {
    record.expires_at > now
}

impl Inner {
    /// Removes the record under `key` and its index entries, returning it.
    fn remove(&mut self, key: &str) -> Option<Record> {
        let record = self.records.remove(key)?;
        for index in &record.indexes {
            if let Some(keys) = self.index.get_mut(index) {
                keys.remove(key);
                if keys.is_empty() {
                    self.index.remove(index);
                }
            }
        }
        Some(record)
    }

    /// Inserts `record` under `key`, replacing whatever was there.
    fn insert(&mut self, key: &str, record: Record) {
        self.remove(key);
        for index in &record.indexes {
            self.index
                .entry(index.clone())
                .or_default()
                .insert(key.to_owned());
        }
        self.records.insert(key.to_owned(), record);
    }

    /// Removes the record under `key` and returns it only when it was live.
    fn remove_live(&mut self, key: &str, now: UnixTime) -> Option<Record> {
        self.remove(key).filter(|record| is_live(record, now))
    }
}

impl MemoryStore {
    /// An empty store whose expiry reads `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            inner: Mutex::new(Inner::default()),
            rate: LocalRateLimits::new(STORE_RATE_KEYS),
        }
    }

    /// No method panics while holding the lock with the invariant broken (all updates are
    /// plain map operations), so a poisoned lock still guards consistent data.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        self.lock().insert(key, record);
        Ok(())
    }

    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        if inner.records.get(key).is_some_and(|r| is_live(r, now)) {
            return Ok(false);
        }
        inner.insert(key, record);
        Ok(true)
    }

    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        if !inner.records.get(key).is_some_and(|r| is_live(r, now)) {
            return Ok(false);
        }
        inner.insert(key, record);
        Ok(true)
    }

    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let current = inner.records.get(key);
        if !current.is_some_and(|r| is_live(r, now) && r.value == expected) {
            return Ok(false);
        }
        inner.insert(key, record);
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_expiring(key).await?.map(|(value, _)| value))
    }

    async fn get_expiring(&self, key: &str) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        Ok(inner
            .records
            .get(key)
            .filter(|r| is_live(r, now))
            .map(|r| (r.value.clone(), r.expires_at)))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = self.clock.now();
        Ok(self.lock().remove_live(key, now).map(|r| r.value))
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        Ok(self.lock().remove_live(key, now).is_some())
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let current = inner.records.get(key);
        if !current.is_some_and(|r| is_live(r, now) && r.value == expected) {
            return Ok(false);
        }
        inner.remove(key);
        Ok(true)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }

    fn indexes(&self) -> Option<&dyn Indexes> {
        Some(self)
    }

    fn sweeper(&self) -> Option<&dyn Sweep> {
        Some(self)
    }

    fn rate_limits(&self) -> Option<&dyn RateLimits> {
        Some(&self.rate)
    }

    fn counter(&self) -> Option<&dyn Count> {
        Some(self)
    }
}

#[async_trait]
impl Count for MemoryStore {
    async fn count_live(&self, prefix: &str) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        let live = inner
            .records
            .iter()
            .filter(|(key, r)| key.starts_with(prefix) && is_live(r, now))
            .count();
        Ok(live as u64)
    }
}

#[async_trait]
impl Indexes for MemoryStore {
    async fn keys_by_index(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        let Some(keys) = inner.index.get(index) else {
            return Ok(Vec::new());
        };
        Ok(keys
            .iter()
            .filter(|k| inner.records.get(*k).is_some_and(|r| is_live(r, now)))
            .cloned()
            .collect())
    }

    async fn list_by_index(&self, index: &str) -> Result<Vec<RecordInfo>, StoreError> {
        let now = self.clock.now();
        let inner = self.lock();
        let Some(keys) = inner.index.get(index) else {
            return Ok(Vec::new());
        };
        Ok(keys
            .iter()
            .filter_map(|k| {
                let r = inner.records.get(k).filter(|r| is_live(r, now))?;
                Some(RecordInfo {
                    key: k.clone(),
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                    expires_at: r.expires_at,
                })
            })
            .collect())
    }
}

#[async_trait]
impl Sweep for MemoryStore {
    async fn sweep_expired(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .records
            .iter()
            .filter(|(_, r)| !is_live(r, now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            inner.remove(key);
        }
        Ok(expired.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn record(expires_at: UnixTime, indexes: &[&str]) -> Record {
        Record {
            value: b"sealed".to_vec(),
            expires_at,
            indexes: indexes.iter().map(|s| (*s).to_owned()).collect(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[tokio::test]
    async fn sweep_leaves_no_empty_index_sets_behind() {
        let clock = Arc::new(ManualClock::new(100));
        let store = MemoryStore::new(clock.clone());
        store.put("a", record(110, &["i:sub:x"])).await.unwrap();
        store.put("b", record(200, &["i:sub:y"])).await.unwrap();
        clock.advance(10);
        assert_eq!(store.sweep_expired().await.unwrap(), 1);
        let inner = store.lock();
        assert_eq!(inner.records.len(), 1);
        assert_eq!(inner.index.len(), 1);
        assert!(inner.index.contains_key("i:sub:y"));
    }

    #[tokio::test]
    async fn debug_shows_counts_only() {
        let store = MemoryStore::new(Arc::new(ManualClock::new(0)));
        store.put("secret-key", record(10, &["idx"])).await.unwrap();
        let shown = format!("{store:?}");
        assert!(
            !shown.contains("secret-key") && !shown.contains("idx"),
            "{shown}"
        );
    }
}
