//! The PostgreSQL backend against the shared conformance suite, on fresh tables per case.

#[allow(dead_code)]
mod scratch;

use std::sync::Arc;

use ward_store::ManualClock;
use ward_store::conformance::Guarded;

ward_store::conformance_tests!(|clock: Arc<ManualClock>| async move {
    let scratch = scratch::Scratch::new();
    let store = scratch.store(clock).await;
    Guarded::new(store, scratch)
});
