//! The in-memory backend against the shared conformance suite.
#![cfg(feature = "conformance")]

use std::sync::Arc;

use ward_store::ManualClock;
use ward_store::memory::MemoryStore;

ward_store::conformance_tests!(|clock: Arc<ManualClock>| async move { MemoryStore::new(clock) });

/// The same suite through [`ward_store::CachedReads`]: one handle with the cache keeps every
/// guarantee of the store behind it.
mod cached_reads {
    use std::sync::Arc;
    use std::time::Duration;

    use ward_store::memory::MemoryStore;
    use ward_store::{CachedReads, ManualClock};

    ward_store::conformance_tests!(|clock: Arc<ManualClock>| async move {
        let store = Arc::new(MemoryStore::new(clock.clone()));
        CachedReads::new(store, Duration::from_secs(1), clock)
    });
}
