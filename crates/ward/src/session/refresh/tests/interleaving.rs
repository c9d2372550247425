//! A store that can hold back one write, so a test can land another write between a read and
//! the write that follows it (the race of a slide and a refresh).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedMutexGuard};
use ward_store::memory::MemoryStore;
use ward_store::{Record, SessionStore, StoreError};

/// `inner`, whose next `replace`/`replace_if` of an armed key waits for the test's guard.
pub(super) struct Interleaving {
    inner: MemoryStore,
    armed: std::sync::Mutex<Option<String>>,
    gate: Arc<Mutex<()>>,
    waiting: AtomicBool,
}

impl Interleaving {
    pub(super) fn new(inner: MemoryStore) -> Self {
        Self {
            inner,
            armed: std::sync::Mutex::new(None),
            gate: Arc::new(Mutex::new(())),
            waiting: AtomicBool::new(false),
        }
    }

    /// Holds back the next write of `key` until the returned guard is dropped.
    pub(super) async fn pause_next_write(&self, key: &str) -> OwnedMutexGuard<()> {
        *self.armed.lock().unwrap() = Some(key.to_owned());
        self.gate.clone().lock_owned().await
    }

    /// Whether the held-back write has arrived and waits.
    pub(super) fn write_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }

    async fn hold_if_armed(&self, key: &str) {
        let armed = {
            let mut armed = self.armed.lock().unwrap();
            armed.take_if(|k| k == key).is_some()
        };
        if armed {
            self.waiting.store(true, Ordering::SeqCst);
            drop(self.gate.lock().await);
        }
    }
}

#[async_trait]
impl SessionStore for Interleaving {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        self.inner.put(key, record).await
    }
    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.inner.put_new(key, record).await
    }
    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.hold_if_armed(key).await;
        self.inner.replace(key, record).await
    }
    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        self.hold_if_armed(key).await;
        self.inner.replace_if(key, expected, record).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.take(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.inner.delete(key).await
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.inner.delete_if(key, expected).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "interleaving"
    }
}
