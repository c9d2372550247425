//! The Redis backend against a real 3-master Redis Cluster: child `redis-server` processes on
//! free loopback ports, started once (about 2 s) for the whole conformance suite, which runs
//! case by case, each with a fresh store, clock and key prefix. Needs `redis-server` and
//! `redis-cli` installed.

mod support;

use std::sync::Arc;

use ward_store::conformance::START;
use ward_store::{Indexes, ManualClock, Record, SessionStore};

use support::{Cluster, connect, unique_prefix};

/// Runs each named case of `ward_store::conformance` against a fresh store on `$url`.
/// Keep in step with the list in `ward_store::conformance_tests!`.
macro_rules! run_cases {
    ($url:expr; $($case:ident),* $(,)?) => {{
        let mut ran = 0;
        $(
            println!("cluster conformance case: {}", stringify!($case));
            let clock = Arc::new(ManualClock::new(START));
            let store = connect($url, &unique_prefix(), clock.clone()).await;
            ward_store::conformance::$case(Arc::new(store), clock).await;
            ran += 1;
        )*
        ran
    }};
}

#[test]
fn conformance_suite_passes_on_a_three_master_cluster() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ran = runtime.block_on(async { ward_store::for_each_conformance_case!(run_cases!(&url;)) });
    assert_eq!(ran, 35);

    // Records spread over the masters: no hash tag pins them to one slot.
    let prefix = unique_prefix();
    runtime.block_on(async {
        let clock = Arc::new(ManualClock::new(START));
        let store = connect(&url, &prefix, clock).await;
        for i in 0..64 {
            let record = Record {
                value: vec![1],
                expires_at: START + 600,
                indexes: vec!["i:sub:shared".to_owned()],
                created_at: START,
                updated_at: START,
            };
            store.put(&format!("s:{i}"), record).await.expect("put");
        }
        let found = store.keys_by_index("i:sub:shared").await.expect("index");
        assert_eq!(found.len(), 64, "an index finds records on every node");
    });
    let holding = cluster
        .nodes
        .iter()
        .filter(|node| {
            let mut conn = node.connection().expect("node connection");
            !support::keys_under(&mut conn, &format!("{prefix}r:")).is_empty()
        })
        .count();
    assert_eq!(holding, 3, "records are on every master");
}
