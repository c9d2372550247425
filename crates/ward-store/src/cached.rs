//! [`CachedReads`]: a shared store (Redis, PostgreSQL) with reads reused in process for a
//! bounded time, saving a round trip per request at the price of a bounded delay before
//! another instance's writes are seen here.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::read_cache::{Lookup, ReadCache};
use crate::{Clock, Count, Indexes, RateLimits, Record, SessionStore, StoreError, Sweep, UnixTime};

/// `inner` with `get` answered from a [`ReadCache`] of time to live `ttl`:
/// - every write and delete through this handle is seen by its next read, as without the
///   cache (the key bypasses the cache while the write is under way and is dropped after);
/// - a write or delete by another process (another Ward instance) is seen here at most `ttl`
///   later: until then this handle may return the value it read before.
///
/// [`SessionStore::get_current`] (refreshes, the idle timer) always reads `inner`; everything
/// but `get` goes straight to `inner`.
pub struct CachedReads {
    inner: Arc<dyn SessionStore>,
    cache: Arc<ReadCache>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for CachedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedReads")
            .field("kind", &self.inner.kind())
            .field("cache", &self.cache)
            .finish()
    }
}

impl CachedReads {
    /// Reads of `inner` reused for up to `ttl`, and never past the record's expiry on `clock`.
    pub fn new(inner: Arc<dyn SessionStore>, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner,
            cache: Arc::new(ReadCache::new(ttl, clock.clone())),
            clock,
        }
    }

    /// Runs `work` (a write of `key`) with the key marked as being written until the write
    /// has ended, even if the caller stops waiting: the write runs as a task of its own, so a
    /// dropped request cannot end the mark while the write is still on its way.
    async fn write<T: Send + 'static>(
        &self,
        key: &str,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let writing = self.cache.writing(key);
        tokio::spawn(async move {
            let _writing = writing;
            work.await
        })
        .await
        .map_err(|err| StoreError::Unavailable(Box::new(err)))?
    }
}

#[async_trait]
impl SessionStore for CachedReads {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        self.write(key, async move { inner.put(&owned, record).await })
            .await
    }

    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        self.write(key, async move { inner.put_new(&owned, record).await })
            .await
    }

    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        self.write(key, async move { inner.replace(&owned, record).await })
            .await
    }

    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        let (inner, owned, expected) = (self.inner.clone(), key.to_owned(), expected.to_vec());
        self.write(key, async move {
            inner.replace_if(&owned, &expected, record).await
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_expiring(key).await?.map(|(value, _)| value))
    }

    async fn get_expiring(&self, key: &str) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        let generation = match self.cache.lookup(key, self.clock.now()) {
            Lookup::Hit(value, expires_at) => return Ok(Some((value, expires_at))),
            Lookup::Miss(generation) => generation,
        };
        let found = self.inner.get_expiring(key).await?;
        if let Some((value, expires_at)) = &found {
            self.cache.insert(generation, key, value, *expires_at);
        }
        Ok(found)
    }

    async fn get_current(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_current(key).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        self.write(key, async move { inner.take(&owned).await })
            .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let (inner, owned) = (self.inner.clone(), key.to_owned());
        self.write(key, async move { inner.delete(&owned).await })
            .await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let (inner, owned, expected) = (self.inner.clone(), key.to_owned(), expected.to_vec());
        self.write(key, async move { inner.delete_if(&owned, &expected).await })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    // Index lookups and sweeps read no cached value: straight to the store behind.
    fn indexes(&self) -> Option<&dyn Indexes> {
        self.inner.indexes()
    }

    fn sweeper(&self) -> Option<&dyn Sweep> {
        self.inner.sweeper()
    }

    fn rate_limits(&self) -> Option<&dyn RateLimits> {
        self.inner.rate_limits()
    }

    fn counter(&self) -> Option<&dyn Count> {
        self.inner.counter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use crate::memory::MemoryStore;

    const NOW: UnixTime = 1_700_000_000;
    const TTL: Duration = Duration::from_millis(500);

    fn record(value: &[u8]) -> Record {
        Record {
            value: value.to_vec(),
            expires_at: NOW + 60,
            indexes: Vec::new(),
            created_at: NOW,
            updated_at: NOW,
        }
    }

    /// Two handles on one store, as two Ward instances on one Redis: `cached` with the cache,
    /// `other` writing past it.
    fn handles() -> (CachedReads, Arc<dyn SessionStore>, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(NOW));
        let shared: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(clock.clone()));
        (
            CachedReads::new(shared.clone(), TTL, clock.clone()),
            shared,
            clock,
        )
    }

    fn advance(clock: &ManualClock, by: Duration) {
        clock.advance_millis(u64::try_from(by.as_millis()).unwrap());
    }

    #[tokio::test]
    async fn another_processes_write_is_seen_once_the_time_to_live_has_passed() {
        let (cached, other, clock) = handles();
        other.put("s:k", record(b"v1")).await.unwrap();
        assert_eq!(
            cached.get("s:k").await.unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        other.put("s:k", record(b"v2")).await.unwrap();
        assert_eq!(
            cached.get("s:k").await.unwrap().as_deref(),
            Some(&b"v1"[..]),
            "within the time to live the value read before is reused"
        );
        advance(&clock, TTL);
        assert_eq!(
            cached.get("s:k").await.unwrap().as_deref(),
            Some(&b"v2"[..])
        );
        assert!(other.delete("s:k").await.unwrap());
        advance(&clock, TTL);
        assert_eq!(
            cached.get("s:k").await.unwrap(),
            None,
            "a delete elsewhere too"
        );
    }

    #[tokio::test]
    async fn a_current_read_never_answers_from_the_cache() {
        let (cached, other, _) = handles();
        other.put("s:k", record(b"v1")).await.unwrap();
        assert_eq!(
            cached.get("s:k").await.unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        other.put("s:k", record(b"v2")).await.unwrap();
        assert_eq!(
            cached.get_current("s:k").await.unwrap().as_deref(),
            Some(&b"v2"[..])
        );
    }

    #[tokio::test]
    async fn this_handles_writes_and_deletes_are_seen_at_once() {
        let (cached, _other, _) = handles();
        cached.put("s:k", record(b"v1")).await.unwrap();
        assert_eq!(
            cached.get("s:k").await.unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        assert!(cached.replace("s:k", record(b"v2")).await.unwrap());
        assert_eq!(
            cached.get("s:k").await.unwrap().as_deref(),
            Some(&b"v2"[..])
        );
        assert!(cached.delete("s:k").await.unwrap());
        assert_eq!(cached.get("s:k").await.unwrap(), None);
        cached.put("s:t", record(b"tx")).await.unwrap();
        assert_eq!(
            cached.get("s:t").await.unwrap().as_deref(),
            Some(&b"tx"[..])
        );
        assert_eq!(
            cached.take("s:t").await.unwrap().as_deref(),
            Some(&b"tx"[..])
        );
        assert_eq!(cached.get("s:t").await.unwrap(), None);
    }
}
