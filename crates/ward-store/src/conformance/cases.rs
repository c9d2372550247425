//! The cases of the conformance suite, one public async function each.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{START, TTL};
use crate::{Clock, Indexes, ManualClock, Record, SessionStore, Sweep};

/// A record living [`TTL`] seconds from `clock`, carrying `indexes`.
pub(super) fn record(clock: &ManualClock, value: &[u8], indexes: &[&str]) -> Record {
    Record {
        value: value.to_vec(),
        expires_at: clock.now() + TTL,
        indexes: indexes.iter().map(|s| (*s).to_owned()).collect(),
        created_at: clock.now(),
        updated_at: clock.now(),
    }
}

/// The keys carrying `index`, order-free.
pub(super) async fn carriers<S: SessionStore>(store: &S, index: &str) -> BTreeSet<String> {
    let keys = indexes(store)
        .keys_by_index(index)
        .await
        .expect("keys_by_index");
    let set: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(set.len(), keys.len(), "keys_by_index returned a key twice");
    set
}

/// The index capability, which every backend running the suite has.
fn indexes<S: SessionStore>(store: &S) -> &dyn Indexes {
    store.indexes().expect("the store keeps indexes")
}

/// The sweeping capability, which every backend running the suite has.
fn sweeper<S: SessionStore>(store: &S) -> &dyn Sweep {
    store.sweeper().expect("the store sweeps")
}

pub(super) fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|s| (*s).to_owned()).collect()
}

/// What was put is what is read.
pub async fn put_then_get_returns_value<S: SessionStore>(store: Arc<S>, clock: Arc<ManualClock>) {
    store
        .put("s:a", record(&clock, b"one", &[]))
        .await
        .expect("put");
    assert_eq!(store.get("s:a").await.expect("get"), Some(b"one".to_vec()));
}

/// A key never written reads as absent, not as an error.
pub async fn get_of_missing_key_returns_none<S: SessionStore>(store: Arc<S>, _: Arc<ManualClock>) {
    assert_eq!(store.get("s:missing").await.expect("get"), None);
    assert_eq!(store.take("s:missing").await.expect("take"), None);
    assert!(!store.delete("s:missing").await.expect("delete"));
}

/// `put` over a live record replaces its value and its whole index set.
pub async fn put_replaces_value_and_indexes<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    store
        .put("s:a", record(&clock, b"old", &["i:old", "i:both"]))
        .await
        .expect("put");
    store
        .put("s:a", record(&clock, b"new", &["i:new", "i:both"]))
        .await
        .expect("put");
    assert_eq!(store.get("s:a").await.expect("get"), Some(b"new".to_vec()));
    assert!(
        carriers(&*store, "i:old").await.is_empty(),
        "stale index entry kept"
    );
    assert_eq!(carriers(&*store, "i:new").await, set(&["s:a"]));
    assert_eq!(carriers(&*store, "i:both").await, set(&["s:a"]));
}

/// A record is live strictly before `expires_at` and absent from that second on, before any
/// sweep.
pub async fn expired_record_reads_as_absent<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    store
        .put("s:a", record(&clock, b"v", &[]))
        .await
        .expect("put");
    clock.advance(TTL - 1);
    assert_eq!(store.get("s:a").await.expect("get"), Some(b"v".to_vec()));
    clock.advance(1);
    assert_eq!(store.get("s:a").await.expect("get"), None);
    assert!(
        !store.delete("s:a").await.expect("delete"),
        "expired record counted as live"
    );
}

/// A record whose expiry is already past is never readable.
pub async fn record_put_already_expired_reads_as_absent<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let mut past = record(&clock, b"v", &["i:x"]);
    past.expires_at = START - 1;
    store.put("s:a", past).await.expect("put");
    assert_eq!(store.get("s:a").await.expect("get"), None);
    assert!(carriers(&*store, "i:x").await.is_empty());
}

/// `put_new` on a free key inserts and reports it.
pub async fn put_new_inserts_when_absent<S: SessionStore>(store: Arc<S>, clock: Arc<ManualClock>) {
    assert!(
        store
            .put_new("t:a", record(&clock, b"v", &["i:x"]))
            .await
            .expect("put_new")
    );
    assert_eq!(store.get("t:a").await.expect("get"), Some(b"v".to_vec()));
    assert_eq!(carriers(&*store, "i:x").await, set(&["t:a"]));
}

/// `put_new` never overwrites a live record, but an expired one is as good as absent.
pub async fn put_new_refuses_live_record_but_accepts_expired_one<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    assert!(
        store
            .put_new("t:a", record(&clock, b"first", &["i:first"]))
            .await
            .expect("put_new")
    );
    assert!(
        !store
            .put_new("t:a", record(&clock, b"second", &[]))
            .await
            .expect("put_new")
    );
    assert_eq!(
        store.get("t:a").await.expect("get"),
        Some(b"first".to_vec())
    );

    clock.advance(TTL);
    assert!(
        store
            .put_new("t:a", record(&clock, b"third", &["i:third"]))
            .await
            .expect("put_new")
    );
    assert_eq!(
        store.get("t:a").await.expect("get"),
        Some(b"third".to_vec())
    );
    assert!(carriers(&*store, "i:first").await.is_empty());
    assert_eq!(carriers(&*store, "i:third").await, set(&["t:a"]));
}

/// Of many concurrent `put_new` calls on one key, exactly one wins and its value stays.
pub async fn put_new_admits_one_writer_under_concurrency<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let tasks: Vec<_> = (0..32u8)
        .map(|i| {
            let (store, rec) = (store.clone(), record(&clock, &[i], &[]));
            tokio::spawn(async move {
                store
                    .put_new("t:race", rec)
                    .await
                    .map(|won| won.then_some(i))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        if let Some(i) = task.await.expect("task").expect("put_new") {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        store.get("t:race").await.expect("get"),
        Some(vec![winners[0]])
    );
}

/// `take` hands the value out once and leaves nothing behind.
pub async fn take_returns_value_once<S: SessionStore>(store: Arc<S>, clock: Arc<ManualClock>) {
    store
        .put("t:a", record(&clock, b"v", &["i:x"]))
        .await
        .expect("put");
    assert_eq!(store.take("t:a").await.expect("take"), Some(b"v".to_vec()));
    assert_eq!(store.take("t:a").await.expect("take"), None);
    assert_eq!(store.get("t:a").await.expect("get"), None);
    assert!(carriers(&*store, "i:x").await.is_empty());
}

/// An expired single-use record cannot be redeemed.
pub async fn take_of_expired_record_returns_none<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    store
        .put("t:a", record(&clock, b"v", &[]))
        .await
        .expect("put");
    clock.advance(TTL);
    assert_eq!(store.take("t:a").await.expect("take"), None);
}

/// Of 32 concurrent `take`s of one record, exactly one receives it (replayed callbacks lose).
pub async fn take_is_single_use_under_concurrency<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    store
        .put("t:once", record(&clock, b"v", &[]))
        .await
        .expect("put");
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.take("t:once").await })
        })
        .collect();
    let mut got = 0;
    for task in tasks {
        if let Some(value) = task.await.expect("task").expect("take") {
            assert_eq!(value, b"v");
            got += 1;
        }
    }
    assert_eq!(got, 1, "{got} callers received the single-use record");
}

/// `delete` is `true` only for a live record, and the record is gone afterwards.
pub async fn delete_reports_whether_a_live_record_existed<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    store
        .put("s:a", record(&clock, b"v", &[]))
        .await
        .expect("put");
    store
        .put("s:b", record(&clock, b"w", &[]))
        .await
        .expect("put");
    assert!(store.delete("s:a").await.expect("delete"));
    assert!(!store.delete("s:a").await.expect("delete"));
    assert_eq!(store.get("s:a").await.expect("get"), None);
    assert_eq!(
        store.get("s:b").await.expect("get"),
        Some(b"w".to_vec()),
        "neighbour deleted"
    );
}

/// Deleting a record removes it from every index it carried, and only it.
pub async fn delete_removes_index_entries<S: SessionStore>(store: Arc<S>, clock: Arc<ManualClock>) {
    store
        .put("s:a", record(&clock, b"v", &["i:sub", "i:sid-a"]))
        .await
        .expect("put");
    store
        .put("s:b", record(&clock, b"w", &["i:sub"]))
        .await
        .expect("put");
    assert!(store.delete("s:a").await.expect("delete"));
    assert_eq!(carriers(&*store, "i:sub").await, set(&["s:b"]));
    assert!(carriers(&*store, "i:sid-a").await.is_empty());
}

/// An index finds every record carrying it, and a record is found under each of its indexes.
pub async fn keys_by_index_finds_every_carrier<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    store
        .put("s:a", record(&clock, b"1", &["i:sub:x", "i:sid:1"]))
        .await
        .expect("put");
    store
        .put("s:b", record(&clock, b"2", &["i:sub:x", "i:sid:2"]))
        .await
        .expect("put");
    store
        .put("s:c", record(&clock, b"3", &["i:sub:y"]))
        .await
        .expect("put");
    assert_eq!(carriers(&*store, "i:sub:x").await, set(&["s:a", "s:b"]));
    assert_eq!(carriers(&*store, "i:sid:2").await, set(&["s:b"]));
    assert!(
        carriers(&*store, "i:sub").await.is_empty(),
        "index matched by prefix"
    );
    assert!(carriers(&*store, "i:none").await.is_empty());
}

/// An expired record is not found through its indexes, even before a sweep.
pub async fn keys_by_index_skips_expired<S: SessionStore>(store: Arc<S>, clock: Arc<ManualClock>) {
    store
        .put("s:short", record(&clock, b"1", &["i:sub"]))
        .await
        .expect("put");
    clock.advance(10);
    store
        .put("s:long", record(&clock, b"2", &["i:sub"]))
        .await
        .expect("put");
    clock.advance(TTL - 10);
    assert_eq!(carriers(&*store, "i:sub").await, set(&["s:long"]));
}

/// `replace` updates a live record (value and indexes) but never brings back one that was
/// deleted, taken or has expired.
pub async fn replace_writes_only_over_a_live_record<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    assert!(
        !store
            .replace("s:a", record(&clock, b"new", &["i:sub"]))
            .await
            .expect("replace"),
        "nothing to replace"
    );
    assert_eq!(store.get("s:a").await.expect("get"), None);
    store
        .put("s:a", record(&clock, b"old", &["i:old"]))
        .await
        .expect("put");
    assert!(
        store
            .replace("s:a", record(&clock, b"new", &["i:new"]))
            .await
            .expect("replace")
    );
    assert_eq!(store.get("s:a").await.expect("get"), Some(b"new".to_vec()));
    assert!(carriers(&*store, "i:old").await.is_empty());
    assert_eq!(carriers(&*store, "i:new").await, set(&["s:a"]));
    store.delete("s:a").await.expect("delete");
    assert!(
        !store
            .replace("s:a", record(&clock, b"again", &["i:new"]))
            .await
            .expect("replace")
    );
    assert_eq!(
        store.get("s:a").await.expect("get"),
        None,
        "a deleted record came back"
    );
    assert!(carriers(&*store, "i:new").await.is_empty());
    store
        .put("s:b", record(&clock, b"short", &[]))
        .await
        .expect("put");
    clock.advance(TTL);
    assert!(
        !store
            .replace("s:b", record(&clock, b"late", &[]))
            .await
            .expect("replace")
    );
    assert_eq!(store.get("s:b").await.expect("get"), None);
}

/// Listing by index shows each live carrier's key and times, and nothing expired.
pub async fn list_by_index_shows_keys_and_times<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let created = clock.now();
    store
        .put("s:a", record(&clock, b"1", &["i:sub:x"]))
        .await
        .expect("put");
    clock.advance(10);
    let mut touched = record(&clock, b"1b", &["i:sub:x"]);
    touched.created_at = created;
    store.put("s:a", touched).await.expect("put");
    store
        .put("s:gone", record(&clock, b"2", &["i:sub:x"]))
        .await
        .expect("put");
    store.delete("s:gone").await.expect("delete");
    let listed = indexes(&*store)
        .list_by_index("i:sub:x")
        .await
        .expect("list_by_index");
    assert_eq!(listed.len(), 1, "only the live carrier is listed");
    let info = &listed[0];
    assert_eq!(info.key, "s:a");
    assert_eq!(info.created_at, created);
    assert_eq!(info.updated_at, created + 10);
    assert_eq!(info.expires_at, created + 10 + TTL);
    clock.advance(TTL);
    assert!(
        indexes(&*store)
            .list_by_index("i:sub:x")
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        indexes(&*store)
            .list_by_index("i:none")
            .await
            .expect("list")
            .is_empty()
    );
}

/// A sweep removes exactly the expired records (and counts them), with their index entries.
pub async fn sweep_removes_only_expired<S: SessionStore>(store: Arc<S>, clock: Arc<ManualClock>) {
    store
        .put("s:old1", record(&clock, b"1", &["i:sub"]))
        .await
        .expect("put");
    store
        .put("s:old2", record(&clock, b"2", &[]))
        .await
        .expect("put");
    clock.advance(TTL);
    store
        .put("s:new", record(&clock, b"3", &["i:sub"]))
        .await
        .expect("put");
    assert_eq!(sweeper(&*store).sweep_expired().await.expect("sweep"), 2);
    assert_eq!(sweeper(&*store).sweep_expired().await.expect("sweep"), 0);
    assert_eq!(store.get("s:new").await.expect("get"), Some(b"3".to_vec()));
    assert_eq!(carriers(&*store, "i:sub").await, set(&["s:new"]));
    // The swept key is free again.
    assert!(
        store
            .put_new("s:old1", record(&clock, b"4", &[]))
            .await
            .expect("put_new")
    );
}

/// Values of 64 KiB holding every byte value come back intact.
pub async fn large_values_round_trip<S: SessionStore>(store: Arc<S>, clock: Arc<ManualClock>) {
    let value: Vec<u8> = (0..64 * 1024).map(|i: u32| (i % 251) as u8).collect();
    store
        .put("s:big", record(&clock, &value, &["i:big"]))
        .await
        .expect("put");
    assert_eq!(store.get("s:big").await.expect("get"), Some(value.clone()));
    assert_eq!(store.take("s:big").await.expect("take"), Some(value));
}

/// Keys and indexes are opaque strings: separators, non-ASCII and NUL are not special.
pub async fn keys_with_unusual_characters_round_trip<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let keys = ["s:a/b?c=d&e", "s:ünï 🍪", "s:with\0nul", "s:-_~+=", "s:*"];
    for (i, key) in keys.iter().enumerate() {
        store
            .put(key, record(&clock, &[i as u8], &["i:a\0b", "i:ü"]))
            .await
            .expect("put");
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            store.get(key).await.expect("get"),
            Some(vec![i as u8]),
            "key {key:?}"
        );
    }
    assert_eq!(carriers(&*store, "i:a\0b").await, set(&keys));
    assert!(
        carriers(&*store, "i:a").await.is_empty(),
        "index matched by prefix"
    );
    assert_eq!(store.get("s:with").await.expect("get"), None);
}

/// A freshly made store answers `ping` and names its kind.
pub async fn ping_succeeds<S: SessionStore>(store: Arc<S>, _: Arc<ManualClock>) {
    store.ping().await.expect("ping");
    assert!(!store.kind().is_empty());
}
