//! Cases of the compare-and-swap core: `replace_if` and `delete_if` act only on the exact
//! value (the version) the caller read.

use std::sync::Arc;

use super::TTL;
use super::cases::{carriers, record, set};
use crate::{ManualClock, SessionStore};

/// `replace_if` with the live value replaces value and indexes; the old value is then stale.
pub async fn replace_if_replaces_only_the_expected_version<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    store
        .put("s:a", record(&clock, b"v1", &["i:old"]))
        .await
        .expect("put");
    let replaced = store
        .replace_if("s:a", b"v1", record(&clock, b"v2", &["i:new"]))
        .await
        .expect("replace_if");
    assert!(replaced, "the expected version was live");
    assert_eq!(store.get("s:a").await.expect("get"), Some(b"v2".to_vec()));
    assert!(
        carriers(&*store, "i:old").await.is_empty(),
        "stale index kept"
    );
    assert_eq!(carriers(&*store, "i:new").await, set(&["s:a"]));
    let again = store
        .replace_if("s:a", b"v1", record(&clock, b"v3", &[]))
        .await
        .expect("replace_if");
    assert!(!again, "v1 is no longer the live version");
    assert_eq!(store.get("s:a").await.expect("get"), Some(b"v2".to_vec()));
}

/// A writer holding a stale version loses against the one that wrote in between: the newer
/// value, and its indexes, stay (a slide never overwrites a refresh).
pub async fn replace_if_keeps_a_newer_value<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    store
        .put("s:a", record(&clock, b"loaded", &[]))
        .await
        .expect("put");
    assert!(
        store
            .replace_if("s:a", b"loaded", record(&clock, b"refreshed", &["i:r"]))
            .await
            .expect("replace_if")
    );
    let slide = store
        .replace_if("s:a", b"loaded", record(&clock, b"slid", &["i:s"]))
        .await
        .expect("replace_if");
    assert!(!slide);
    assert_eq!(
        store.get("s:a").await.expect("get"),
        Some(b"refreshed".to_vec())
    );
    assert_eq!(carriers(&*store, "i:r").await, set(&["s:a"]));
    assert!(carriers(&*store, "i:s").await.is_empty());
}

/// No record, or only an expired one: nothing to compare with, nothing written.
pub async fn replace_if_of_an_absent_or_expired_record_fails<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let absent = store
        .replace_if("s:a", b"v", record(&clock, b"w", &["i:x"]))
        .await
        .expect("replace_if");
    assert!(!absent);
    assert_eq!(store.get("s:a").await.expect("get"), None);
    store
        .put("s:b", record(&clock, b"v", &[]))
        .await
        .expect("put");
    clock.advance(TTL);
    let expired = store
        .replace_if("s:b", b"v", record(&clock, b"w", &["i:x"]))
        .await
        .expect("replace_if");
    assert!(!expired, "an expired record was revived");
    assert_eq!(store.get("s:b").await.expect("get"), None);
    assert!(carriers(&*store, "i:x").await.is_empty());
    assert!(
        store
            .put_new("s:b", record(&clock, b"fresh", &[]))
            .await
            .expect("put_new"),
        "the key is free"
    );
}

/// `delete_if` removes the record only when its live value is the expected one.
pub async fn delete_if_removes_only_the_expected_version<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    store
        .put("s:a", record(&clock, b"mine", &["i:x"]))
        .await
        .expect("put");
    assert!(!store.delete_if("s:a", b"theirs").await.expect("delete_if"));
    assert_eq!(store.get("s:a").await.expect("get"), Some(b"mine".to_vec()));
    assert!(store.delete_if("s:a", b"mine").await.expect("delete_if"));
    assert_eq!(store.get("s:a").await.expect("get"), None);
    assert!(carriers(&*store, "i:x").await.is_empty());
    assert!(!store.delete_if("s:a", b"mine").await.expect("delete_if"));
    store
        .put("s:b", record(&clock, b"v", &[]))
        .await
        .expect("put");
    clock.advance(TTL);
    assert!(
        !store.delete_if("s:b", b"v").await.expect("delete_if"),
        "an expired record counted as live"
    );
}
