//! The background task that removes expired records for backends without a native TTL.
//!
//! Expired records already read as absent; sweeping only reclaims their space and index
//! entries, so a failed sweep is logged and retried on the next tick, never fatal.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::SessionStore;

/// Sweeps `store` now and then every `every` (at least 1 ms) until the handle is aborted; a
/// store without the [`Sweep`](crate::Sweep) capability is never swept (the task only waits).
///
/// Logs only counts and the error's kind chain, which carry no key, value or index.
/// Must be called inside a tokio runtime.
pub fn spawn_sweeper<S>(store: Arc<S>, every: Duration) -> JoinHandle<()>
where
    S: SessionStore + ?Sized,
{
    let mut ticks = tokio::time::interval(every.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::spawn(async move {
        loop {
            ticks.tick().await;
            let Some(sweeper) = store.sweeper() else {
                continue;
            };
            match sweeper.sweep_expired().await {
                Ok(0) => {}
                Ok(removed) => {
                    tracing::debug!(store = store.kind(), removed, "expired sessions swept")
                }
                Err(error) => tracing::warn!(
                    store = store.kind(),
                    error = &error as &dyn std::error::Error,
                    "sweeping expired sessions failed; retrying on the next tick"
                ),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use async_trait::async_trait;
    use tokio::sync::mpsc;

    use super::*;
    use crate::{Record, StoreError, Sweep};

    /// Reports each sweep on a channel; the first one fails.
    struct CountingStore {
        sweeps: AtomicU64,
        report: mpsc::UnboundedSender<u64>,
    }

    #[async_trait]
    impl SessionStore for CountingStore {
        async fn put(&self, _: &str, _: Record) -> Result<(), StoreError> {
            Ok(())
        }
        async fn put_new(&self, _: &str, _: Record) -> Result<bool, StoreError> {
            Ok(true)
        }
        async fn replace(&self, _: &str, _: Record) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn replace_if(&self, _: &str, _: &[u8], _: Record) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn get(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        async fn take(&self, _: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(None)
        }
        async fn delete(&self, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn delete_if(&self, _: &str, _: &[u8]) -> Result<bool, StoreError> {
            Ok(false)
        }
        async fn ping(&self) -> Result<(), StoreError> {
            Ok(())
        }
        fn kind(&self) -> &'static str {
            "counting"
        }
        fn sweeper(&self) -> Option<&dyn Sweep> {
            Some(self)
        }
    }

    #[async_trait]
    impl Sweep for CountingStore {
        async fn sweep_expired(&self) -> Result<u64, StoreError> {
            let n = self.sweeps.fetch_add(1, Ordering::SeqCst);
            let _ = self.report.send(n);
            if n == 0 {
                Err(StoreError::Unavailable("backend down".into()))
            } else {
                Ok(n)
            }
        }
    }

    #[tokio::test]
    async fn sweeper_sweeps_at_once_and_keeps_going_after_a_failure() {
        let (report, mut sweeps) = mpsc::unbounded_channel();
        // As the server holds it: behind `dyn`.
        let store: Arc<dyn SessionStore> = Arc::new(CountingStore {
            sweeps: AtomicU64::new(0),
            report,
        });
        let handle = spawn_sweeper(store, Duration::from_millis(5));
        assert_eq!(sweeps.recv().await, Some(0));
        assert_eq!(sweeps.recv().await, Some(1));
        assert_eq!(sweeps.recv().await, Some(2));
        handle.abort();
        assert!(handle.await.expect_err("aborted").is_cancelled());
    }
}
