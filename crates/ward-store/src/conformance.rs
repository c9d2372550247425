//! The conformance suite: what every [`SessionStore`] backend must do, written once.
//!
//! A backend's test file generates one `#[tokio::test]` per case with one line:
//!
//! ```text
//! ward_store::conformance_tests!(|clock: Arc<ManualClock>| async move {
//!     MyStore::connect(url, clock).await.expect("store opens")
//! });
//! ```
//!
//! The factory receives the [`ManualClock`] the case will advance, so expiry is tested by
//! moving time rather than sleeping; it must return a store that is empty and reads that
//! clock. A store that needs something kept alive beside it (a temporary directory, a test
//! database) returns it wrapped in [`Guarded`]. The tests land in a module named
//! `conformance`, so they report as `conformance::take_is_single_use_under_concurrency`.
//!
//! Each case is also a public async function here, for a backend that wants to drive one by
//! hand. Cases assert through `assert!`: a failing backend fails the generated test.

use std::any::Any;

use async_trait::async_trait;

use crate::{Count, Indexes, RateLimits, Record, SessionStore, StoreError, Sweep, UnixTime};

mod cases;
mod counts;
mod locks;
mod rates;
mod versions;
pub use cases::*;
pub use counts::*;
pub use locks::*;
pub use rates::*;
pub use versions::*;

#[doc(hidden)]
pub use tokio as __tokio;

/// The time every case starts at (2023-11-14T22:13:20Z): far from zero, so a backend that
/// confuses "absolute" with "relative" expiry fails.
pub const START: UnixTime = 1_700_000_000;

/// How long a record made by the suite lives unless a case says otherwise.
pub const TTL: u64 = 600;

/// A store together with whatever must outlive it (a temporary directory, a throw-away
/// database). Every call goes to the store; the guard is dropped after it.
pub struct Guarded<S> {
    store: S,
    _guard: Box<dyn Any + Send + Sync>,
}

impl<S> Guarded<S> {
    /// Keeps `guard` alive as long as `store`.
    pub fn new(store: S, guard: impl Any + Send + Sync) -> Self {
        Self {
            store,
            _guard: Box::new(guard),
        }
    }
}

#[async_trait]
impl<S: SessionStore> SessionStore for Guarded<S> {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        self.store.put(key, record).await
    }
    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.store.put_new(key, record).await
    }
    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.store.replace(key, record).await
    }
    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        self.store.replace_if(key, expected, record).await
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(key).await
    }
    async fn get_current(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get_current(key).await
    }
    async fn get_expiring(&self, key: &str) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        self.store.get_expiring(key).await
    }
    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.take(key).await
    }
    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        self.store.delete(key).await
    }
    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        self.store.delete_if(key, expected).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
    fn kind(&self) -> &'static str {
        self.store.kind()
    }
    fn indexes(&self) -> Option<&dyn Indexes> {
        self.store.indexes()
    }
    fn sweeper(&self) -> Option<&dyn Sweep> {
        self.store.sweeper()
    }

    fn rate_limits(&self) -> Option<&dyn RateLimits> {
        self.store.rate_limits()
    }

    fn counter(&self) -> Option<&dyn Count> {
        self.store.counter()
    }
}

/// Calls `callback!(<its arguments> case, case, …)` with the name of every conformance case:
/// the one list of cases, for [`conformance_tests!`](crate::conformance_tests) and for a
/// backend that drives the cases by hand (e.g. all on one shared Redis Cluster).
#[macro_export]
macro_rules! for_each_conformance_case {
    ($($callback:ident)::+ ! ($($arguments:tt)*)) => {
        $($callback)::+! { $($arguments)*
            put_then_get_returns_value,
            get_of_missing_key_returns_none,
            put_replaces_value_and_indexes,
            expired_record_reads_as_absent,
            record_put_already_expired_reads_as_absent,
            put_new_inserts_when_absent,
            put_new_refuses_live_record_but_accepts_expired_one,
            put_new_admits_one_writer_under_concurrency,
            replace_writes_only_over_a_live_record,
            take_returns_value_once,
            take_of_expired_record_returns_none,
            take_is_single_use_under_concurrency,
            delete_reports_whether_a_live_record_existed,
            delete_removes_index_entries,
            keys_by_index_finds_every_carrier,
            keys_by_index_skips_expired,
            list_by_index_shows_keys_and_times,
            sweep_removes_only_expired,
            large_values_round_trip,
            keys_with_unusual_characters_round_trip,
            ping_succeeds,
            replace_if_replaces_only_the_expected_version,
            replace_if_keeps_a_newer_value,
            replace_if_of_an_absent_or_expired_record_fails,
            delete_if_removes_only_the_expected_version,
            lock_refuses_a_second_owner_while_held,
            lock_release_by_a_non_owner_keeps_the_lock,
            lock_renewal_extends_it_past_its_first_expiry,
            lock_of_a_dead_holder_frees_by_expiry,
            rate_limit_accepts_at_most_the_limit_in_any_window,
            rate_limit_keys_are_independent_and_reopen_after_retry_after,
            rate_limit_counts_every_concurrent_hit_once,
            count_live_counts_live_records_under_the_prefix_once,
            count_live_skips_expired_and_deleted_records,
            count_live_takes_the_prefix_literally,
        }
    };
}

/// Generates the suite as `#[tokio::test]`s in a module named `conformance`.
///
/// The argument is an expression callable as `factory(Arc<ManualClock>)` returning a future
/// of an empty store (`impl SessionStore`), typically an `async move` closure. The caller
/// needs no direct tokio dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        #[allow(dead_code)]
        fn __ward_conformance_store(
            clock: ::std::sync::Arc<$crate::ManualClock>,
        ) -> impl ::std::future::Future<Output = impl $crate::SessionStore> {
            ($factory)(clock)
        }

        $crate::for_each_conformance_case!($crate::conformance_tests!(@cases));
    };
    (@cases $($case:ident),* $(,)?) => {
        #[cfg(test)]
        mod conformance {
            use $crate::conformance::__tokio as tokio;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let clock = ::std::sync::Arc::new(
                        $crate::ManualClock::new($crate::conformance::START),
                    );
                    let store = super::__ward_conformance_store(clock.clone()).await;
                    $crate::conformance::$case(::std::sync::Arc::new(store), clock).await;
                }
            )*
        }
    };
}
