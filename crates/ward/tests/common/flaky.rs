//! A store wrapper whose outage a test switches on and off: every call fails with
//! `StoreError::Unavailable` while the switch is on.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use ward_store::{
    Count, Indexes, RateDecision, RateLimits, RateRule, Record, SessionStore, StoreError, Sweep,
};

/// The switch of a [`FlakyStore`]; `deletes` fails only deletes (a store that fails mid-way).
#[derive(Clone, Default)]
pub struct Outage(Arc<AtomicBool>, Arc<AtomicBool>);

impl Outage {
    /// Starts failing every store call.
    pub fn begin(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Stops failing.
    pub fn end(&self) {
        self.0.store(false, Ordering::SeqCst);
        self.1.store(false, Ordering::SeqCst);
    }

    /// Starts failing deletes only: reads and writes still work.
    pub fn begin_deletes(&self) {
        self.1.store(true, Ordering::SeqCst);
    }

    fn check_delete(&self) -> Result<(), StoreError> {
        if self.1.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected delete failure".into()));
        }
        self.check()
    }

    fn check(&self) -> Result<(), StoreError> {
        if self.0.load(Ordering::SeqCst) {
            Err(StoreError::Unavailable("injected outage".into()))
        } else {
            Ok(())
        }
    }
}

/// `inner`, failing while `outage` is on.
pub struct FlakyStore {
    pub inner: Arc<dyn SessionStore>,
    pub outage: Outage,
}

#[async_trait]
impl SessionStore for FlakyStore {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        self.outage.check()?;
        self.inner.put(key, record).await
    }
    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.outage.check()?;
        self.inner.put_new(key, record).await
    }
    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.outage.check()?;
        self.inner.replace(key, record).await
    }
    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        self.outage.check()?;
        self.inner.replace_if(key, expected, record).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.outage.check()?;
        self.inner.get(key).await
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.outage.check()?;
        self.inner.take(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.outage.check_delete()?;
        self.inner.delete(key).await
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.outage.check_delete()?;
        self.inner.delete_if(key, expected).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.outage.check()?;
        self.inner.ping().await
    }
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn indexes(&self) -> Option<&dyn Indexes> {
        self.inner.indexes().is_some().then_some(self)
    }
    fn sweeper(&self) -> Option<&dyn Sweep> {
        self.inner.sweeper().is_some().then_some(self)
    }

    fn rate_limits(&self) -> Option<&dyn RateLimits> {
        // Counting fails with the store during an outage, like every other call.
        self.inner.rate_limits().map(|_| self as &dyn RateLimits)
    }
    fn counter(&self) -> Option<&dyn Count> {
        self.inner.counter().is_some().then_some(self)
    }
}

#[async_trait]
impl Count for FlakyStore {
    async fn count_live(&self, prefix: &str) -> Result<u64, StoreError> {
        self.outage.check()?;
        self.inner
            .counter()
            .expect("checked")
            .count_live(prefix)
            .await
    }
}

#[async_trait]
impl Indexes for FlakyStore {
    async fn keys_by_index(&self, index: &str) -> Result<Vec<String>, StoreError> {
        self.outage.check()?;
        self.inner
            .indexes()
            .expect("checked")
            .keys_by_index(index)
            .await
    }
    async fn list_by_index(&self, index: &str) -> Result<Vec<ward_store::RecordInfo>, StoreError> {
        self.outage.check()?;
        self.inner
            .indexes()
            .expect("checked")
            .list_by_index(index)
            .await
    }
}

#[async_trait]
impl Sweep for FlakyStore {
    async fn sweep_expired(&self) -> Result<u64, StoreError> {
        self.outage.check()?;
        self.inner.sweeper().expect("checked").sweep_expired().await
    }
}

#[async_trait]
impl RateLimits for FlakyStore {
    async fn hit(
        &self,
        key: &str,
        rule: RateRule,
        now_ms: u64,
    ) -> Result<RateDecision, StoreError> {
        self.outage.check()?;
        match self.inner.rate_limits() {
            Some(limits) => limits.hit(key, rule, now_ms).await,
            None => unreachable!("offered only when the inner store counts"),
        }
    }
}
