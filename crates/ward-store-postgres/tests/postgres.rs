//! What the PostgreSQL store promises beyond the conformance suite: concurrent start-up,
//! several instances on one database, what the tables hold, sweeping, and errors that name
//! the server but never the password.

#[allow(dead_code)]
mod scratch;

use std::collections::BTreeSet;
use std::sync::Arc;

use scratch::{Scratch, chain};
use tokio_postgres::types::Type;
use ward_store::{Clock, Indexes, ManualClock, Record, SessionStore, StoreError, Sweep};
use ward_store_postgres::PostgresStore;

const NOW: u64 = 1_700_000_000;

fn record(value: &[u8], expires_at: u64, indexes: &[&str]) -> Record {
    Record {
        value: value.to_vec(),
        expires_at,
        indexes: indexes.iter().map(|s| (*s).to_owned()).collect(),
        created_at: NOW,
        updated_at: NOW + 1,
    }
}

async fn count(scratch: &Scratch, table: &str) -> i64 {
    let client = scratch.client().await;
    let sql = format!("SELECT count(*) FROM {}", scratch.table(table));
    client.query_one(&sql, &[]).await.expect("count").get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_on_one_prefix_all_migrate() {
    let scratch = Arc::new(Scratch::new());
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let (url, prefix, clock) = (scratch.url.clone(), scratch.prefix.clone(), clock.clone());
            tokio::spawn(async move { PostgresStore::connect(&url, &prefix, clock).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        match start.await.expect("task") {
            Ok(store) => stores.push(store),
            Err(e) => panic!("a concurrent start failed: {}", chain(&e)),
        }
    }
    let versions = scratch
        .client()
        .await
        .query_one(
            &format!("SELECT count(*) FROM {}", scratch.table("schema_version")),
            &[],
        )
        .await
        .expect("versions")
        .get::<_, i64>(0);
    assert_eq!(versions, 1, "the schema was migrated more than once");
    // Starting again on existing tables is a no-op.
    scratch.store(clock).await.ping().await.expect("ping");
}

#[tokio::test]
async fn a_second_instance_sees_writes_and_revocations_at_once() {
    let scratch = Scratch::new();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    let (a, b) = (
        scratch.store(clock.clone()).await,
        scratch.store(clock).await,
    );
    a.put("s:a", record(b"v", NOW + 60, &["i:sub"]))
        .await
        .expect("put");
    assert_eq!(b.get("s:a").await.expect("get"), Some(b"v".to_vec()));
    assert!(b.delete("s:a").await.expect("delete"));
    assert_eq!(a.get("s:a").await.expect("get"), None);
    assert!(a.keys_by_index("i:sub").await.expect("keys").is_empty());
}

/// Every cell of every table: the bytes put, the times put, and the schema version; nothing
/// else, in no other column type.
#[tokio::test]
async fn a_dump_of_the_tables_holds_only_the_keys_indexes_and_sealed_bytes_put() {
    let scratch = Scratch::new();
    let store = scratch.store(Arc::new(ManualClock::new(NOW))).await;
    let sealed: [&[u8]; 2] = [b"\x01sealed-one\xff", b"\x02sealed-two\x00"];
    store
        .put("s:k1", record(sealed[0], NOW + 60, &["i:h1", "i:h2"]))
        .await
        .expect("put");
    assert!(
        store
            .put_new("t:k2", record(sealed[1], NOW + 90, &["i:h1"]))
            .await
            .expect("put_new")
    );
    let bytes: BTreeSet<Vec<u8>> = ["s:k1", "t:k2", "i:h1", "i:h2"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain(sealed.iter().map(|s| s.to_vec()))
        .collect();
    let times: BTreeSet<i64> = [NOW, NOW + 1, NOW + 60, NOW + 90]
        .iter()
        .map(|t| *t as i64)
        .collect();

    let client = scratch.client().await;
    let names = scratch::tables(&client, &scratch.prefix).await;
    let expected: Vec<String> = ["rate_windows", "record_index", "records", "schema_version"]
        .iter()
        .map(|t| format!("{}{t}", scratch.prefix))
        .collect();
    assert_eq!(names, expected);
    let mut seen = BTreeSet::new();
    // The rate-limit windows hold counts under keyed hashes, and none were counted here.
    for name in names.iter().filter(|name| !name.ends_with("rate_windows")) {
        let rows = client
            .query(&format!("SELECT * FROM \"{name}\""), &[])
            .await
            .expect("dump");
        assert!(!rows.is_empty(), "{name} is empty");
        for row in &rows {
            for i in 0..row.columns().len() {
                check_cell(name, row, i, (&bytes, &times), &mut seen);
            }
        }
    }
    assert_eq!(seen, bytes, "something put is missing from the dump");
}

/// One cell of a dump: bytes put, a time put, or the schema version, and no other type.
fn check_cell(
    name: &str,
    row: &tokio_postgres::Row,
    i: usize,
    (bytes, times): (&BTreeSet<Vec<u8>>, &BTreeSet<i64>),
    seen: &mut BTreeSet<Vec<u8>>,
) {
    let column = &row.columns()[i];
    let t = column.type_();
    if *t == Type::BYTEA {
        let cell: Vec<u8> = row.get(i);
        assert!(bytes.contains(&cell), "{name}.{}: {cell:?}", column.name());
        seen.insert(cell);
    } else if *t == Type::INT8 {
        let cell: i64 = row.get(i);
        assert!(times.contains(&cell), "{name}.{}: {cell}", column.name());
    } else if *t == Type::INT4 && name.ends_with("schema_version") {
        assert_eq!(
            row.get::<_, i32>(i),
            2,
            "schema version 2: with the rate windows"
        );
    } else {
        panic!("{name}.{} has unexpected type {t}", column.name());
    }
}

#[tokio::test]
async fn sweep_removes_expired_rows_and_their_index_rows() {
    let scratch = Scratch::new();
    let clock = Arc::new(ManualClock::new(NOW));
    let store = scratch.store(clock.clone()).await;
    for i in 0..3 {
        let key = format!("s:old{i}");
        store
            .put(&key, record(b"v", NOW + 10, &["i:sub", &key]))
            .await
            .expect("put");
    }
    store
        .put("s:new", record(b"v", NOW + 100, &["i:sub"]))
        .await
        .expect("put");
    assert_eq!(
        (
            count(&scratch, "records").await,
            count(&scratch, "record_index").await
        ),
        (4, 7)
    );
    clock.advance(10);
    assert_eq!(store.sweep_expired().await.expect("sweep"), 3);
    assert_eq!(count(&scratch, "records").await, 1);
    assert_eq!(count(&scratch, "record_index").await, 1);
}

#[tokio::test]
async fn sweep_removes_more_expired_records_than_one_batch() {
    let scratch = Scratch::new();
    let clock = Arc::new(ManualClock::new(NOW));
    let store = scratch.store(clock.clone()).await;
    let client = scratch.client().await;
    // Bulk rows behind the store's back: 2,500 expired at NOW + 1.
    client
        .execute(
            &format!(
                "INSERT INTO {} (key, value, expires_at, created_at, updated_at) \
                 SELECT convert_to('s:' || n, 'UTF8'), '\\x00', $1, $2, $2 \
                 FROM generate_series(1, 2500) AS n",
                scratch.table("records")
            ),
            &[&((NOW + 1) as i64), &(NOW as i64)],
        )
        .await
        .expect("bulk insert");
    assert_eq!(store.sweep_expired().await.expect("sweep"), 0);
    clock.advance(1);
    assert_eq!(store.sweep_expired().await.expect("sweep"), 2500);
    assert_eq!(count(&scratch, "records").await, 0);
}

#[tokio::test]
async fn tables_made_by_a_newer_build_are_refused_as_corrupt() {
    let scratch = Scratch::new();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    drop(scratch.store(clock.clone()).await);
    let client = scratch.client().await;
    client
        .execute(
            &format!(
                "INSERT INTO {} (version) VALUES (99)",
                scratch.table("schema_version")
            ),
            &[],
        )
        .await
        .expect("bump version");
    let error = PostgresStore::connect(&scratch.url, &scratch.prefix, clock)
        .await
        .expect_err("newer schema accepted");
    assert!(matches!(error, StoreError::Corrupt(_)), "{}", chain(&error));
    assert!(chain(&error).contains("99"), "{}", chain(&error));
}

#[tokio::test]
async fn unreachable_server_is_unavailable_naming_the_address_but_not_the_password() {
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    for url in [
        "postgres://ward:pw-8f3Kq@127.0.0.1:1/test?sslmode=disable",
        // An unescaped `@` in the password shifts the parse: still nothing of it is shown.
        "postgres://ward:pw-8f3Kq@zX9v@127.0.0.1:1/test?sslmode=disable",
    ] {
        let error = PostgresStore::connect(url, "ward:", clock.clone())
            .await
            .expect_err("connected to port 1");
        let text = format!("{} {error:?}", chain(&error));
        assert!(matches!(error, StoreError::Unavailable(_)), "{text}");
        assert!(!text.contains("8f3Kq") && !text.contains("zX9v"), "{text}");
        assert!(text.contains(":1/test"), "the address is not named: {text}");
    }
}

#[tokio::test]
async fn without_sslmode_disable_tls_is_required_and_verified() {
    let scratch = Scratch::new();
    assert!(
        scratch.url.contains("sslmode=disable"),
        "WARD_TEST_POSTGRES_URL must be a loopback URL with sslmode=disable"
    );
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(NOW));
    for mode in [
        "application_name=no_sslmode",
        "sslmode=prefer",
        "sslmode=require",
        "sslmode=verify-ca",
        "sslmode=verify-full",
    ] {
        let url = scratch.url.replace("sslmode=disable", mode);
        // The test server has either no TLS or a certificate no system root vouches for
        // 127.0.0.1 with; either way a verified connection is impossible.
        let error = PostgresStore::connect(&url, &scratch.prefix, clock.clone())
            .await
            .expect_err("connected without verified TLS");
        let text = chain(&error);
        assert!(matches!(error, StoreError::Unavailable(_)), "{text}");
        assert!(text.contains("TLS"), "{mode}: {text}");
    }
}
