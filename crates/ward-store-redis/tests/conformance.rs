//! The Redis backend against the shared conformance suite, on the machine's Redis
//! (`WARD_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`), one fresh key prefix per case,
//! deleted after it. An unreachable Redis fails every case, naming the address.

mod support;

use std::sync::Arc;

use ward_store::ManualClock;

ward_store::conformance_tests!(|clock: Arc<ManualClock>| support::standalone_store(clock));
