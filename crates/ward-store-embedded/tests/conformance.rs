//! The embedded backend against the shared conformance suite, one fresh file per case.

use std::sync::Arc;

use ward_store::ManualClock;
use ward_store::conformance::Guarded;
use ward_store_embedded::EmbeddedStore;

ward_store::conformance_tests!(|clock: Arc<ManualClock>| async move {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = EmbeddedStore::open(&dir.path().join("ward.db"), clock).expect("store opens");
    Guarded::new(store, dir)
});
