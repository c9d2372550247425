//! The in-memory backend against the shared conformance suite.
#![cfg(feature = "conformance")]

use std::sync::Arc;

use ward_store::ManualClock;
use ward_store::memory::MemoryStore;

ward_store::conformance_tests!(|clock: Arc<ManualClock>| async move { MemoryStore::new(clock) });
