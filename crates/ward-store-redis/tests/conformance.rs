//! The Redis backend against the shared conformance suite, on the machine's Redis
//! (`WARD_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`), one fresh key prefix per case,
//! deleted after it. An unreachable Redis fails every case, naming the address.

mod support;

use std::sync::Arc;

use ward_store::ManualClock;

ward_store::conformance_tests!(|clock: Arc<ManualClock>| support::standalone_store(clock));

/// The same suite through [`ward_store::CachedReads`] (`[store] cache_ttl`): one handle with
/// the cache keeps every guarantee of the Redis store behind it.
mod cached_reads {
    use std::sync::Arc;
    use std::time::Duration;

    use ward_store::{CachedReads, ManualClock};

    use super::support;

    ward_store::conformance_tests!(|clock: Arc<ManualClock>| async move {
        let store = Arc::new(support::standalone_store(clock.clone()).await);
        CachedReads::new(store, Duration::from_secs(1), clock)
    });
}

/// The same suite with the client cache on (`[store] client_cache`): one handle with the
/// cache keeps every guarantee of the Redis store.
mod client_cache {
    use std::sync::Arc;

    use ward_store::ManualClock;
    use ward_store::conformance::Guarded;
    use ward_store_redis::{Options, RedisStore};

    use super::support;

    ward_store::conformance_tests!(|clock: Arc<ManualClock>| async move {
        let (url, prefix) = (support::redis_url(), support::unique_prefix());
        let options = Options::default().client_cache(true);
        let store = RedisStore::connect_with(&url, &prefix, clock, None, options)
            .await
            .unwrap_or_else(|e| panic!("Redis is unreachable: {}", support::chain(&e)));
        Guarded::new(store, support::Cleanup { url, prefix })
    });
}
