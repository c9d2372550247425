//! The number of live sessions as the store knows it (`ward_sessions_active`): every
//! instance's sessions, expiries included, counted by the store ([`ward_store::Count`]).
//!
//! A count costs the store work in proportion to its sessions, so it runs on a scrape of
//! `/metrics` (never on a request) and at most once per [`COUNT_INTERVAL`] of Ward's clock;
//! scrapes in between reuse the last answer. A count that fails or outlasts
//! [`COUNT_TIMEOUT`] leaves the gauge without a value until the next one, rather than showing
//! a stale number as current.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use ward_store::{Clock, SessionStore, UnixTime};

use crate::telemetry::Chain;

/// Seconds of Ward's clock between two counts, at most once each: a gauge a dashboard reads
/// per minute needs no fresher value, and a store with many sessions is asked rarely.
pub const COUNT_INTERVAL: u64 = 15;
/// How long one count may take.
pub const COUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// The cached count of the live sessions under one store key prefix.
pub(super) struct LiveSessions {
    store: Arc<dyn SessionStore>,
    clock: Arc<dyn Clock>,
    prefix: String,
    /// When the last count ran and what it answered (`None`: it failed).
    last: Mutex<Option<(UnixTime, Option<u64>)>>,
}

impl LiveSessions {
    pub(super) fn new(store: Arc<dyn SessionStore>, clock: Arc<dyn Clock>, prefix: String) -> Self {
        Self {
            store,
            clock,
            prefix,
            last: Mutex::new(None),
        }
    }

    /// The number of live sessions, counted now unless counted less than [`COUNT_INTERVAL`]
    /// ago; `None` when the store cannot count (the cookie store) or the count failed.
    pub(super) async fn current(&self) -> Option<u64> {
        self.store.counter()?;
        // Concurrent scrapes wait for one count instead of starting their own.
        let mut last = self.last.lock().await;
        let now = self.clock.now();
        if let Some((at, value)) = *last
            && (at..at.saturating_add(COUNT_INTERVAL)).contains(&now)
        {
            return value;
        }
        let value = self.count().await;
        *last = Some((now, value));
        value
    }

    async fn count(&self) -> Option<u64> {
        let counter = self.store.counter()?;
        match tokio::time::timeout(COUNT_TIMEOUT, counter.count_live(&self.prefix)).await {
            Ok(Ok(live)) => Some(live),
            Ok(Err(err)) => {
                tracing::warn!(error = %Chain(&err), "counting the live sessions failed");
                None
            }
            Err(_) => {
                tracing::warn!("counting the live sessions timed out");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use ward_store::memory::MemoryStore;
    use ward_store::{ManualClock, Record};

    use super::*;

    fn record(expires_at: UnixTime) -> Record {
        Record {
            value: b"sealed".to_vec(),
            expires_at,
            indexes: Vec::new(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn the_metric_help_names_the_interval() {
        let help = format!("at most every {COUNT_INTERVAL} s");
        assert!(crate::telemetry::metrics::render(None).contains(&help));
    }

    #[tokio::test]
    async fn the_count_is_reused_for_the_interval_then_taken_again() {
        let clock = Arc::new(ManualClock::new(1_000));
        let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(clock.clone()));
        let live = LiveSessions::new(store.clone(), clock.clone(), "s:".to_owned());
        store.put("s:a", record(1_100)).await.unwrap();
        store.put("t:b", record(1_100)).await.unwrap();
        assert_eq!(live.current().await, Some(1));

        store.put("s:c", record(2_000)).await.unwrap();
        clock.advance(COUNT_INTERVAL - 1);
        assert_eq!(live.current().await, Some(1), "within the interval");
        clock.advance(1);
        assert_eq!(live.current().await, Some(2), "counted again");
        clock.advance(100);
        assert_eq!(live.current().await, Some(1), "s:a expired");
    }
}
