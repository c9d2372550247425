//! What the embedded store promises about its file: restarts keep sessions, a foreign or
//! locked file is a clear error, and what it creates is private.

use std::error::Error as _;
use std::sync::Arc;

use ward_store::{Clock, Indexes, ManualClock, Record, SessionStore, StoreError, Sweep};
use ward_store_embedded::EmbeddedStore;

const NOW: u64 = 1_700_000_000;

fn record(value: &[u8], indexes: &[&str]) -> Record {
    Record {
        value: value.to_vec(),
        expires_at: NOW + 60,
        indexes: indexes.iter().map(|s| (*s).to_owned()).collect(),
        created_at: NOW,
        updated_at: NOW,
    }
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::new(NOW))
}

/// The error and its whole source chain, as an operator would read it.
fn chain(error: &StoreError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[tokio::test]
async fn records_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    {
        let store = EmbeddedStore::open(&path, clock()).unwrap();
        store.put("s:a", record(b"one", &["i:sub"])).await.unwrap();
        store.put("s:b", record(b"two", &["i:sub"])).await.unwrap();
        assert!(store.delete("s:b").await.unwrap());
    }
    let store = EmbeddedStore::open(&path, clock()).unwrap();
    assert_eq!(store.get("s:a").await.unwrap(), Some(b"one".to_vec()));
    assert_eq!(store.get("s:b").await.unwrap(), None);
    assert_eq!(
        store.keys_by_index("i:sub").await.unwrap(),
        vec!["s:a".to_owned()]
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    std::fs::write(&path, b"this is a text file, not a database\n".repeat(200)).unwrap();
    let error = EmbeddedStore::open(&path, clock()).expect_err("foreign file opened");
    let text = chain(&error);
    assert!(
        text.contains("ward.db"),
        "error does not name the file: {text}"
    );
    assert!(matches!(error, StoreError::Corrupt(_)), "{text}");
}

#[tokio::test]
async fn a_second_open_of_the_same_file_is_refused_while_the_first_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    let _first = EmbeddedStore::open(&path, clock()).unwrap();
    let error = EmbeddedStore::open(&path, clock()).expect_err("file shared");
    assert!(
        matches!(error, StoreError::Unavailable(_)),
        "{}",
        chain(&error)
    );
}

#[tokio::test]
async fn missing_parent_directories_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/ward.db");
    let store = EmbeddedStore::open(&path, clock()).unwrap();
    store.ping().await.unwrap();
    assert!(path.is_file());
}

#[cfg(unix)]
#[tokio::test]
async fn created_directories_and_file_are_private_to_the_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/ward.db");
    let _store = EmbeddedStore::open(&path, clock()).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("data")), 0o700);
    assert_eq!(mode(&path), 0o600);
}

#[tokio::test]
async fn sweep_is_a_range_scan_that_leaves_live_records_findable() {
    let clock = Arc::new(ManualClock::new(NOW));
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("ward.db"), clock.clone()).unwrap();
    for i in 0..50u64 {
        let mut r = record(&i.to_be_bytes(), &["i:sub"]);
        r.expires_at = NOW + 1 + i;
        store.put(&format!("s:{i}"), r).await.unwrap();
    }
    clock.advance(25);
    assert_eq!(store.sweep_expired().await.unwrap(), 25);
    assert_eq!(store.keys_by_index("i:sub").await.unwrap().len(), 25);
    assert_eq!(
        store.get("s:25").await.unwrap(),
        Some(25u64.to_be_bytes().to_vec())
    );
}

#[tokio::test]
async fn a_damaged_database_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ward.db");
    {
        let store = EmbeddedStore::open(&path, clock()).unwrap();
        for i in 0..20 {
            store
                .put(&format!("s:{i}"), record(&[7; 512], &["i:sub"]))
                .await
                .unwrap();
        }
    }
    let pristine = std::fs::read(&path).unwrap();
    let mut refused = 0;
    for offset in (0..pristine.len()).step_by(997) {
        let mut damaged = pristine.clone();
        damaged[offset] ^= 0xff;
        std::fs::write(&path, &damaged).unwrap();
        match EmbeddedStore::open(&path, clock()) {
            Ok(store) => {
                // Damage in unused space may go unnoticed; reads must still not panic.
                let _ = store.get("s:3").await;
                let _ = store.keys_by_index("i:sub").await;
            }
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0, "no damage was detected at all");
}

/// The in-memory read cache never answers with a value the file no longer holds: while one
/// task reads the key as fast as it can (filling the cache with whatever it sees), every write
/// is visible to the very next read, and a deleted record is gone at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_every_completed_write_while_others_read_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open(&dir.path().join("ward.db"), clock()).unwrap());
    store.put("s:k", record(b"0", &[])).await.unwrap();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut reads = 0u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                store.get("s:k").await.unwrap();
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    for i in 1..=200u32 {
        let value = i.to_string().into_bytes();
        store.put("s:k", record(&value, &[])).await.unwrap();
        assert_eq!(
            store.get("s:k").await.unwrap(),
            Some(value),
            "after write {i}"
        );
    }
    assert!(store.delete("s:k").await.unwrap());
    assert_eq!(store.get("s:k").await.unwrap(), None, "after delete");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0, "the reader ran alongside");
}
