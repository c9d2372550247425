//! What the conformance suite cannot see: reconnection, what lands in Redis, failures and how
//! they are reported.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ward_store::conformance::START;
use ward_store::{Indexes, ManualClock, Record, SessionStore, StoreError};
use ward_store_redis::RedisStore;

use support::{Cleanup, Server, chain, connect, redis_url, unique_prefix};

fn record(value: &[u8], indexes: &[&str]) -> Record {
    Record {
        value: value.to_vec(),
        expires_at: START + 600,
        indexes: indexes.iter().map(|s| (*s).to_owned()).collect(),
        created_at: START,
        updated_at: START + 5,
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(START))
}

#[tokio::test]
async fn records_survive_a_dropped_connection_and_the_next_call_works() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::spawn(dir.path(), &[]).await;
    let store = connect(&server.url(), "ward:", clock()).await;
    store
        .put("s:a", record(b"sealed", &["i:sub"]))
        .await
        .expect("put");

    let mut admin = server.connection().expect("admin connection");
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query(&mut admin)
        .expect("CLIENT KILL");
    assert!(killed >= 1, "the store's connection was not killed");

    assert_eq!(
        store.get("s:a").await.expect("get after reconnect"),
        Some(b"sealed".to_vec())
    );
    assert_eq!(
        store.keys_by_index("i:sub").await.expect("index"),
        vec!["s:a".to_owned()]
    );
    store.ping().await.expect("ping");
}

/// Everything under the prefix, as (key, type, contents) with contents flattened to byte
/// strings (hash: field, value, …; zset: member, score, …).
fn dump(url: &str, prefix: &str) -> BTreeMap<Vec<u8>, (String, Vec<Vec<u8>>)> {
    let mut conn = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("dump connection");
    let mut out = BTreeMap::new();
    for key in support::keys_under(&mut conn, prefix) {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut conn).expect("TYPE");
        let contents: Vec<Vec<u8>> = match kind.as_str() {
            "hash" => redis::cmd("HGETALL").arg(&key).query(&mut conn),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query(&mut conn),
            other => panic!("unexpected key type {other}"),
        }
        .expect("read key");
        out.insert(key, (kind, contents));
    }
    out
}

/// What the session layer hands down: hashed keys and indexes, sealed values.
type Put = (&'static str, Vec<u8>, Vec<&'static str>);

fn puts() -> [Put; 3] {
    [
        (
            "s:9f86d081884c7d65",
            b"\x01kid1\x8a\x17sealed-1".to_vec(),
            vec!["i:sub:2c26b46b"],
        ),
        (
            "s:60303ae22b998861",
            b"\x01kid1\x3c\xffsealed-2".to_vec(),
            vec!["i:sub:2c26b46b", "i:sid:fcde2b2e"],
        ),
        (
            "t:d4735e3a265e16ee",
            b"\x01kid1\x00sealed-3".to_vec(),
            vec![],
        ),
    ]
}

/// What a dump may hold, given what was put: only those keys, values and indexes, the
/// record times, and 16-hex-digit generations.
struct Allowed<'a> {
    puts: &'a [Put],
    numbers: BTreeSet<Vec<u8>>,
}

impl<'a> Allowed<'a> {
    fn new(puts: &'a [Put]) -> Self {
        let numbers = [START, START + 5, START + 600]
            .iter()
            .map(|n| n.to_string().into_bytes())
            .collect();
        Self { puts, numbers }
    }

    fn is_generation(b: &[u8]) -> bool {
        b.len() == 16 && b.iter().all(u8::is_ascii_hexdigit)
    }

    fn record_of(&self, k: &[u8]) -> Option<&'a Put> {
        self.puts.iter().find(|(key, ..)| key.as_bytes() == k)
    }

    /// A record hash `r:<key>`: its fields `c exp f g idx u v`, the sealed bytes put, the
    /// times, a generation and the length-prefixed index list.
    fn check_record(&self, key: &[u8], kind: &str, contents: &[Vec<u8>]) {
        let (_, value, indexes) = self.record_of(key).expect("a key that was put");
        assert_eq!(kind, "hash");
        let fields: BTreeMap<&[u8], &[u8]> = contents
            .chunks(2)
            .map(|p| (p[0].as_slice(), p[1].as_slice()))
            .collect();
        let names: Vec<&[u8]> = fields.keys().copied().collect();
        assert_eq!(names, [&b"c"[..], b"exp", b"f", b"g", b"idx", b"u", b"v"]);
        assert_eq!(fields[&b"f"[..]], b"1");
        assert_eq!(fields[&b"v"[..]], value.as_slice());
        assert!(Self::is_generation(fields[&b"g"[..]]));
        for time in ["c", "u", "exp"] {
            assert!(self.numbers.contains(fields[time.as_bytes()]), "{time}");
        }
        let mut idx = Vec::new();
        for index in indexes {
            idx.extend_from_slice(&(index.len() as u32).to_be_bytes());
            idx.extend_from_slice(index.as_bytes());
        }
        assert_eq!(fields[&b"idx"[..]], idx.as_slice());
    }

    /// An index `i:<index>`: a sorted set of generation-prefixed keys scored by expiry.
    fn check_index(&self, index: &[u8], kind: &str, contents: &[Vec<u8>]) {
        let all_indexes: BTreeSet<&str> = self
            .puts
            .iter()
            .flat_map(|(.., i)| i.iter().copied())
            .collect();
        assert_eq!(kind, "zset");
        let index = std::str::from_utf8(index).expect("utf-8");
        assert!(all_indexes.contains(index), "unknown index {index}");
        for pair in contents.chunks(2) {
            let (generation, key) = pair[0].split_at(16);
            assert!(Self::is_generation(generation));
            assert!(
                self.record_of(key).is_some(),
                "member names a key that was put"
            );
            assert!(self.numbers.contains(&pair[1]), "score is an expiry");
        }
    }

    /// The sweep set `x`: keys that were put, scored by expiry.
    fn check_sweep_set(&self, name: &[u8], kind: &str, contents: &[Vec<u8>]) {
        assert_eq!(name, b"x", "only records, indexes and the sweep set exist");
        assert_eq!(kind, "zset");
        for pair in contents.chunks(2) {
            assert!(self.record_of(&pair[0]).is_some());
            assert!(self.numbers.contains(&pair[1]));
        }
    }
}

#[tokio::test]
async fn a_dump_holds_only_the_opaque_keys_indexes_and_sealed_bytes_put() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let _cleanup = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let store = connect(&url, &prefix, clock()).await;
    let puts = puts();
    for (key, value, indexes) in &puts {
        store.put(key, record(value, indexes)).await.expect("put");
    }
    store.take("t:d4735e3a265e16ee").await.expect("take");
    store
        .put(puts[2].0, record(&puts[2].1, &[]))
        .await
        .expect("put again");

    let allowed = Allowed::new(&puts);
    let dumped = dump(&url, &prefix);
    let mut records = 0;
    for (name, (kind, contents)) in &dumped {
        let name = name
            .strip_prefix(prefix.as_bytes())
            .expect("under the prefix");
        if let Some(key) = name.strip_prefix(b"r:") {
            allowed.check_record(key, kind, contents);
            records += 1;
        } else if let Some(index) = name.strip_prefix(b"i:") {
            allowed.check_index(index, kind, contents);
        } else {
            allowed.check_sweep_set(name, kind, contents);
        }
    }
    assert_eq!(records, 3);
}

#[tokio::test]
async fn unreachable_server_is_unavailable_and_the_error_hides_the_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    }; // closed again: nothing listens there
    for url in [
        format!("redis://ward:hunter2@127.0.0.1:{port}/1"),
        format!("redis+cluster://ward:hunter2@127.0.0.1:{port}"),
    ] {
        let error = RedisStore::connect(&url, "ward:", clock())
            .await
            .expect_err("nothing listens there");
        let shown = format!("{} / {error:?}", chain(&error));
        assert!(matches!(error, StoreError::Unavailable(_)), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    }
}

#[tokio::test]
async fn malformed_url_is_refused_without_echoing_it() {
    let error = RedisStore::connect("http://ward:hunter2@127.0.0.1:6379", "ward:", clock())
        .await
        .expect_err("not a Redis URL");
    let shown = format!("{} / {error:?}", chain(&error));
    assert!(matches!(error, StoreError::Unavailable(_)), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[tokio::test]
async fn wrong_password_is_unavailable_and_right_one_connects() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::spawn(dir.path(), &["--requirepass", "right-horse"]).await;
    let wrong = format!("redis://:hunter2@127.0.0.1:{}", server.port);
    let error = RedisStore::connect(&wrong, "ward:", clock())
        .await
        .expect_err("wrong password");
    let shown = format!("{} / {error:?}", chain(&error));
    assert!(matches!(error, StoreError::Unavailable(_)), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");

    let right = format!("redis://:right-horse@127.0.0.1:{}", server.port);
    let store = RedisStore::connect(&right, "ward:", clock())
        .await
        .expect("right password");
    store.put("s:a", record(b"v", &[])).await.expect("put");
    assert_eq!(store.get("s:a").await.expect("get"), Some(b"v".to_vec()));
}

#[tokio::test]
async fn tls_handshake_failure_is_unavailable() {
    // A server that hangs up on every connection: the TLS handshake fails at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let url = format!("rediss://127.0.0.1:{port}");
    let error = RedisStore::connect(&url, "ward:", clock())
        .await
        .expect_err("no TLS server there");
    assert!(
        matches!(error, StoreError::Unavailable(_)),
        "{}",
        chain(&error)
    );
}

#[tokio::test]
async fn data_this_build_did_not_write_is_corrupt() {
    let (url, prefix) = (redis_url(), unique_prefix());
    let _cleanup = Cleanup {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let store = connect(&url, &prefix, clock()).await;
    let mut conn = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .expect("connection");
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}r:s:string"))
        .arg("x")
        .query(&mut conn)
        .expect("SET");
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}r:s:future"))
        .arg(&["f", "2", "exp", "9999999999", "v", "x"])
        .query(&mut conn)
        .expect("HSET");
    for key in ["s:string", "s:future"] {
        let corrupt = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Corrupt(_)));
        assert!(corrupt(store.get(key).await.map(drop)), "get {key}");
        assert!(corrupt(store.take(key).await.map(drop)), "take {key}");
        assert!(
            corrupt(store.put_new(key, record(b"v", &[])).await.map(drop)),
            "put_new {key}"
        );
        assert!(
            corrupt(store.get(key).await.map(drop)),
            "{key} was left in place"
        );
    }
}
