//! Reading and clearing a Redis store: every key under a prefix, its parts as dump entries.

use std::time::Duration;

use super::address;
use crate::common::redis_url;

async fn connect() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("Redis URL for {} is invalid: {e}", address(&url)));
    match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!(
            "Redis is unreachable at {} ({e}); start it or set WARD_TEST_REDIS_URL",
            address(&url)
        ),
        Err(_) => panic!("Redis at {} did not answer within 5 s", address(&url)),
    }
}

/// Fails loudly, naming the address, unless Redis answers `PING`.
pub(super) async fn ping() {
    let mut conn = connect().await;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("Redis at {} fails PING: {e}", address(&redis_url())));
    assert_eq!(pong, "PONG");
}

/// Every key under `prefix` (SCAN, never KEYS), sorted, without the duplicates SCAN may give.
async fn keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Every key under `prefix` with its value, each part of a value an entry of its own.
pub(super) async fn dump(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut conn = connect().await;
    let mut entries = Vec::new();
    for key in keys(&mut conn, prefix).await {
        let name = String::from_utf8_lossy(&key).into_owned();
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        let mut parts: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("GET"),
            ],
            "hash" => redis::cmd("HGETALL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("HGETALL"),
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .expect("ZRANGE"),
            "set" => redis::cmd("SMEMBERS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("SMEMBERS"),
            "list" => redis::cmd("LRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .expect("LRANGE"),
            // Expired between SCAN and TYPE.
            "none" => continue,
            other => panic!("key {name} has type {other}, which this dump does not read"),
        };
        // Hash and set order is Redis's business; a dump compares as a set of parts.
        if kind == "hash" {
            let mut pairs: Vec<Vec<u8>> = parts.chunks(2).map(|p| p.concat()).collect();
            pairs.sort();
            parts = pairs;
        } else if kind == "set" {
            parts.sort();
        }
        entries.push((format!("key {name}"), key.clone()));
        for (i, part) in parts.into_iter().enumerate() {
            entries.push((format!("{kind} {name} [{i}]"), part));
        }
    }
    entries
}

pub(super) fn cleanup(prefix: &str) {
    let Ok(client) = redis::Client::open(redis_url().as_str()) else {
        return;
    };
    let Ok(mut conn) = client.get_connection() else {
        return;
    };
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, batch)): redis::RedisResult<(u64, Vec<Vec<u8>>)> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)
        else {
            return;
        };
        for key in batch {
            let _: redis::RedisResult<i64> = redis::cmd("DEL").arg(key).query(&mut conn);
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}
