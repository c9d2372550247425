//! Store metrics: a [`SessionStore`] decorator timing every operation
//! (`ward_store_operation_duration_seconds{op}`) and counting failures
//! (`ward_store_errors_total{op}`). It wraps whichever backend is configured, once, when the
//! state is built; the hot path adds two clock reads and three atomic adds per operation.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use ward_store::{
    Count, Indexes, RateLimits, Record, RecordInfo, SessionStore, StoreError, Sweep, UnixTime,
};

use super::metrics;

/// `inner` with every operation measured.
pub struct InstrumentedStore {
    inner: Arc<dyn SessionStore>,
}

impl InstrumentedStore {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn SessionStore>) -> Arc<dyn SessionStore> {
        Arc::new(Self { inner })
    }
}

/// Runs `op`'s future under its timer and counts its error.
async fn measured<T>(
    op: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let timer = metrics::store_timer(op);
    let result = call.await;
    drop(timer);
    if result.is_err() {
        metrics::store_error(op);
    }
    result
}

#[async_trait]
impl SessionStore for InstrumentedStore {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        measured("put", self.inner.put(key, record)).await
    }

    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        measured("put_new", self.inner.put_new(key, record)).await
    }

    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        measured("replace", self.inner.replace(key, record)).await
    }

    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        measured("replace_if", self.inner.replace_if(key, expected, record)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        measured("get", self.inner.get(key)).await
    }

    async fn get_current(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        measured("get_current", self.inner.get_current(key)).await
    }

    async fn get_expiring(&self, key: &str) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        measured("get_expiring", self.inner.get_expiring(key)).await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        measured("take", self.inner.take(key)).await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        measured("delete", self.inner.delete(key)).await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        measured("delete_if", self.inner.delete_if(key, expected)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        measured("ping", self.inner.ping()).await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn indexes(&self) -> Option<&dyn Indexes> {
        self.inner.indexes().map(|_| self as &dyn Indexes)
    }

    fn sweeper(&self) -> Option<&dyn Sweep> {
        self.inner.sweeper().map(|_| self as &dyn Sweep)
    }

    fn rate_limits(&self) -> Option<&dyn RateLimits> {
        self.inner.rate_limits()
    }

    fn counter(&self) -> Option<&dyn Count> {
        self.inner.counter().map(|_| self as &dyn Count)
    }
}

#[async_trait]
impl Count for InstrumentedStore {
    async fn count_live(&self, prefix: &str) -> Result<u64, StoreError> {
        let Some(inner) = self.inner.counter() else {
            return Ok(0);
        };
        measured("count_live", inner.count_live(prefix)).await
    }
}

#[async_trait]
impl Indexes for InstrumentedStore {
    async fn keys_by_index(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let Some(inner) = self.inner.indexes() else {
            return Ok(Vec::new());
        };
        measured("keys_by_index", inner.keys_by_index(index)).await
    }

    async fn list_by_index(&self, index: &str) -> Result<Vec<RecordInfo>, StoreError> {
        let Some(inner) = self.inner.indexes() else {
            return Ok(Vec::new());
        };
        measured("list_by_index", inner.list_by_index(index)).await
    }
}

#[async_trait]
impl Sweep for InstrumentedStore {
    async fn sweep_expired(&self) -> Result<u64, StoreError> {
        let Some(inner) = self.inner.sweeper() else {
            return Ok(0);
        };
        measured("sweep_expired", inner.sweep_expired()).await
    }
}

#[cfg(test)]
mod tests {
    use ward_store::SystemClock;
    use ward_store::memory::MemoryStore;

    use super::*;

    #[tokio::test]
    async fn operations_reach_the_backend_and_keep_its_capabilities() {
        let store = InstrumentedStore::wrap(Arc::new(MemoryStore::new(Arc::new(SystemClock))));
        let record = Record {
            value: b"sealed".to_vec(),
            expires_at: u64::MAX / 2,
            indexes: vec!["sub:x".into()],
            created_at: 0,
            updated_at: 0,
        };
        store.put("k", record).await.unwrap();
        assert_eq!(
            store.get("k").await.unwrap().as_deref(),
            Some(&b"sealed"[..])
        );
        let keys = store
            .indexes()
            .unwrap()
            .keys_by_index("sub:x")
            .await
            .unwrap();
        assert_eq!(keys, vec!["k".to_owned()]);
        assert!(store.sweeper().is_some());
        assert_eq!(store.counter().unwrap().count_live("k").await.unwrap(), 1);
        assert!(
            store.rate_limits().is_some(),
            "rate limits count in the backend"
        );
        assert_eq!(store.kind(), "memory");
        let text = metrics::render(None);
        assert!(text.contains("ward_store_operation_duration_seconds_count{op=\"put\"} "));
        assert!(text.contains("ward_store_operation_duration_seconds_count{op=\"count_live\"} "));
    }
}
