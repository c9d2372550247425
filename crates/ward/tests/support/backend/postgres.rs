//! Reading and clearing a PostgreSQL store: the tables named from a prefix, every row as text
//! and every `bytea` column as raw bytes.

use std::time::Duration;

use super::address;
use crate::common::postgres_url;
use crate::session_probe::chain;

pub(super) async fn connect() -> tokio_postgres::Client {
    let url = postgres_url();
    let connected = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_postgres::connect(&url, tokio_postgres::NoTls),
    )
    .await;
    match connected {
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                let _ = connection.await;
            });
            client
        }
        Ok(Err(e)) => panic!(
            "PostgreSQL is unreachable at {} ({}); start it or set WARD_TEST_POSTGRES_URL",
            address(&url),
            chain(&e)
        ),
        Err(_) => panic!("PostgreSQL at {} did not answer within 5 s", address(&url)),
    }
}

/// The tables whose names start with `prefix` (the store names its tables from the key
/// prefix; ours is already in PostgreSQL's identifier charset).
async fn tables(client: &tokio_postgres::Client, prefix: &str) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema() \
             AND left(table_name::text, length($1::text)) = $1::text ORDER BY 1",
            &[&prefix],
        )
        .await
        .expect("list tables")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Every row of every table of the store: as PostgreSQL's text form of the row, and every
/// `bytea` column as raw bytes.
pub(super) async fn dump(prefix: &str) -> Vec<(String, Vec<u8>)> {
    let client = connect().await;
    let tables = tables(&client, prefix).await;
    assert!(
        tables.contains(&format!("{prefix}records")),
        "no records table under {prefix:?}: {tables:?}"
    );
    let mut entries = Vec::new();
    for table in tables {
        assert!(
            table
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "table name {table:?}"
        );
        let mut rows: Vec<String> = client
            .query(&format!("SELECT t::text FROM \"{table}\" t"), &[])
            .await
            .unwrap_or_else(|e| panic!("read {table}: {e}"))
            .iter()
            .map(|row| row.get(0))
            .collect();
        rows.sort();
        for (i, row) in rows.into_iter().enumerate() {
            entries.push((format!("{table} row {i} (text)"), row.into_bytes()));
        }
        let columns = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1 \
                 AND data_type = 'bytea' ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .expect("list columns");
        for column in columns.iter().map(|row| row.get::<_, String>(0)) {
            let mut values: Vec<Vec<u8>> = client
                .query(&format!("SELECT \"{column}\" FROM \"{table}\""), &[])
                .await
                .unwrap_or_else(|e| panic!("read {table}.{column}: {e}"))
                .iter()
                .filter_map(|row| row.get::<_, Option<Vec<u8>>>(0))
                .collect();
            values.sort();
            for (i, value) in values.into_iter().enumerate() {
                entries.push((format!("{table}.{column} value {i}"), value));
            }
        }
    }
    entries
}

pub(super) async fn cleanup(prefix: &str) {
    let Ok((client, connection)) =
        tokio_postgres::connect(&postgres_url(), tokio_postgres::NoTls).await
    else {
        return;
    };
    tokio::spawn(async move {
        let _ = connection.await;
    });
    for table in tables(&client, prefix).await {
        let _ = client
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{table}\" CASCADE"))
            .await;
    }
}
