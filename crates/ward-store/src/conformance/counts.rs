//! Cases of counting live records ([`Count`]): what `ward_sessions_active` reads, so it must
//! agree with what [`SessionStore::get`] would find, for every instance's records.

use std::sync::Arc;

use super::cases::record;
use super::{START, TTL};
use crate::{Count, ManualClock, SessionStore};

/// How long the short-lived record of a case lives.
const TTL_SHORT: u64 = 10;

fn counter<S: SessionStore>(store: &S) -> &dyn Count {
    store
        .counter()
        .expect("every session-keeping backend counts its records")
}

async fn count<S: SessionStore>(store: &S, prefix: &str) -> u64 {
    counter(store).count_live(prefix).await.expect("count_live")
}

/// Records under the prefix are counted once each, however often rewritten; others are not.
pub async fn count_live_counts_live_records_under_the_prefix_once<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    assert_eq!(count(&*store, "s:").await, 0, "an empty store");
    for key in ["s:a", "s:b", "t:c", "sx"] {
        store
            .put(key, record(&clock, b"1", &["i:sub"]))
            .await
            .expect("put");
    }
    store
        .put("s:a", record(&clock, b"2", &["i:sub"]))
        .await
        .expect("put again");
    assert!(
        store
            .replace_if("s:a", b"2", record(&clock, b"3", &[]))
            .await
            .expect("replace_if")
    );
    assert!(
        !store
            .put_new("s:b", record(&clock, b"4", &[]))
            .await
            .expect("put_new")
    );
    assert_eq!(count(&*store, "s:").await, 2);
    assert_eq!(count(&*store, "t:").await, 1);
    assert_eq!(count(&*store, "s").await, 3, "`sx` starts with `s`");
    assert_eq!(
        count(&*store, "").await,
        4,
        "the empty prefix: every record"
    );
    assert_eq!(count(&*store, "z:").await, 0);
}

/// Expired records are not counted from their expiry on (before any sweep), nor deleted or
/// taken ones, nor one written already expired.
pub async fn count_live_skips_expired_and_deleted_records<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let mut short = record(&clock, b"short", &[]);
    short.expires_at = START + TTL_SHORT;
    store.put("s:short", short).await.expect("put");
    let mut past = record(&clock, b"past", &[]);
    past.expires_at = START - 1;
    store.put("s:past", past).await.expect("put");
    for key in ["s:long", "s:gone", "s:taken"] {
        store
            .put(key, record(&clock, b"v", &["i:x"]))
            .await
            .expect("put");
    }
    assert!(store.delete("s:gone").await.expect("delete"));
    assert!(store.take("s:taken").await.expect("take").is_some());
    assert_eq!(count(&*store, "s:").await, 2, "s:short and s:long");

    clock.advance(TTL_SHORT);
    assert_eq!(count(&*store, "s:").await, 1, "s:short expired, not swept");
    if let Some(sweep) = store.sweeper() {
        sweep.sweep_expired().await.expect("sweep");
    }
    assert_eq!(count(&*store, "s:").await, 1, "after a sweep");
    clock.advance(TTL);
    assert_eq!(count(&*store, "s:").await, 0, "everything expired");
}

/// The prefix is plain bytes: characters that are wildcards to some backend (`*?[]\` to a
/// Redis pattern, `%_` to SQL `LIKE`) match only themselves, and a prefix ending in the
/// highest code point has no shorter upper bound.
pub async fn count_live_takes_the_prefix_literally<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let keys = [
        "p*[x]?\\:1",
        "p*:2",
        "pa:3",
        "p%:4",
        "p_:5",
        "pb:6",
        "q\u{10FFFF}:7",
        "r:8",
        "ü:9",
    ];
    for key in keys {
        store
            .put(key, record(&clock, b"v", &[]))
            .await
            .expect("put");
    }
    for (prefix, expected) in [
        ("p*[x]?\\:", 1),
        ("p*", 2),
        ("p%", 1),
        ("p_", 1),
        ("p?", 0),
        ("p", 6),
        ("q\u{10FFFF}", 1),
        ("ü", 1),
        ("u", 0),
    ] {
        assert_eq!(count(&*store, prefix).await, expected, "prefix {prefix:?}");
    }
}
