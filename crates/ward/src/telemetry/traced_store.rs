//! A [`SessionStore`] decorator giving each store operation a client span (`store get`,
//! `store put`…). Installed only when traces are exported (`otlp::enabled`), so a Ward without
//! `otlp_endpoint` pays nothing for it. Keys and values never reach a span.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument as _;
use ward_store::{Count, Indexes, RateLimits, Record, SessionStore, StoreError, Sweep, UnixTime};

use super::spans;

/// `inner` with a span around every operation.
pub struct TracedStore {
    inner: Arc<dyn SessionStore>,
}

impl TracedStore {
    /// Wraps `inner` when traces are exported; returns it unchanged otherwise.
    pub fn wrap(inner: Arc<dyn SessionStore>) -> Arc<dyn SessionStore> {
        if super::otlp::enabled() {
            Arc::new(Self { inner })
        } else {
            inner
        }
    }

    fn span(&self, name: &'static str) -> tracing::Span {
        spans::store(name, self.inner.kind())
    }
}

/// Runs `op` in `span`, marking the span failed when the store fails.
async fn traced<T>(
    span: tracing::Span,
    op: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let result = op.instrument(span.clone()).await;
    if result.is_err() {
        spans::record_error(&span, "store");
    }
    result
}

#[async_trait]
impl SessionStore for TracedStore {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        traced(self.span("store put"), self.inner.put(key, record)).await
    }

    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        traced(self.span("store put_new"), self.inner.put_new(key, record)).await
    }

    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        traced(self.span("store replace"), self.inner.replace(key, record)).await
    }

    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        let op = self.inner.replace_if(key, expected, record);
        traced(self.span("store replace_if"), op).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        traced(self.span("store get"), self.inner.get(key)).await
    }

    async fn get_current(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        traced(self.span("store get_current"), self.inner.get_current(key)).await
    }

    async fn get_expiring(&self, key: &str) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        traced(
            self.span("store get_expiring"),
            self.inner.get_expiring(key),
        )
        .await
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        traced(self.span("store take"), self.inner.take(key)).await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        traced(self.span("store delete"), self.inner.delete(key)).await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        traced(
            self.span("store delete_if"),
            self.inner.delete_if(key, expected),
        )
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn indexes(&self) -> Option<&dyn Indexes> {
        self.inner.indexes()
    }

    fn sweeper(&self) -> Option<&dyn Sweep> {
        self.inner.sweeper()
    }

    fn rate_limits(&self) -> Option<&dyn RateLimits> {
        self.inner.rate_limits()
    }

    // Counted for a gauge outside any request: no trace to join.
    fn counter(&self) -> Option<&dyn Count> {
        self.inner.counter()
    }
}
