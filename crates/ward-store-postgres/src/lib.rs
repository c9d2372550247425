//! Ward's PostgreSQL session store, `[store] kind = "postgres"`.
//!
//! What holds:
//! - **Durability** is PostgreSQL's: a call returns `Ok` after its transaction committed, so
//!   with the server's default `synchronous_commit` the change survives a crash of either side,
//!   and every Ward instance on the database sees it. Sessions survive restarts.
//! - **Revocation is immediate.** A delete commits before it returns; the next read on any
//!   instance finds nothing.
//! - **Atomicity per key.** `take` is one `DELETE … RETURNING` and `put_new` one
//!   `INSERT … ON CONFLICT DO UPDATE … WHERE expired`: of concurrent callers on one key exactly
//!   one wins, across instances; `replace_if`/`delete_if` are one conditional `UPDATE`/`DELETE`
//!   on the row's value. A record and its index rows change in one transaction.
//! - **Expiry** is judged by the injected [`Clock`], passed as a parameter to every statement,
//!   never by the database's clock: a record at or past `expires_at` reads as absent at once.
//!   PostgreSQL has no TTL, so expired rows stay until [`Sweep::sweep_expired`]
//!   deletes them (their index rows go by cascade); the server runs it periodically with
//!   [`ward_store::spawn_sweeper`]. Several instances may sweep at once.
//! - **Migrations.** [`PostgresStore::connect`] creates or checks its tables in one
//!   transaction under an advisory lock, so instances starting together do not race; a schema
//!   newer than this build is refused as [`StoreError::Corrupt`]. Tables are named from the key
//!   prefix (`"ward:"` → `ward_records`, `ward_record_index`, `ward_schema_version`).
//! - **Blind storage.** Rows hold the opaque keys, index strings and sealed bytes given, and
//!   times; nothing readable about a user. Errors name the server as `host:port/dbname`, never
//!   the URL, so its password stays out of logs.
//! - **Transport.** Verified TLS unless the URL says `sslmode=disable`; `sslrootcert` names
//!   a private CA (see [`PostgresStore::connect`]). A pool of at most 8 connections, with
//!   5-second limits on connecting and on waiting for a connection; each call is bounded by
//!   [`OPERATION_TIMEOUT`]. Failures are [`StoreError::Unavailable`].

#![warn(missing_docs)]

mod connect;
mod count;
mod error;
mod rate;
mod schema;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Client, Pool, Transaction};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use ward_store::{
    Clock, Count, Indexes, RateLimits, Record, RecordInfo, SessionStore, StoreError, Sweep,
    UnixTime,
};

pub use error::{ConnectError, CorruptRow};
pub use schema::NewerSchema;

use error::{unavailable, undecodable};
use schema::{SWEEP_BATCH, Sql, TablePrefix};

/// The longest a store call may take, connection included, before it fails as
/// [`StoreError::Unavailable`]: a hung server is an outage, not a hung request.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`SessionStore`] in PostgreSQL tables; clones share the connection pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    sql: Arc<Sql>,
    clock: Arc<dyn Clock>,
    /// `host:port/dbname`, for errors.
    target: Arc<str>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// A call exceeded [`OPERATION_TIMEOUT`].
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL did not answer within {OPERATION_TIMEOUT:?}")]
pub struct TimedOut;

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/dbname?sslmode=…`) and creates
    /// or checks the tables for `key_prefix`.
    ///
    /// TLS: any `sslmode` but `disable` (including none, `prefer` and `verify-ca`) means TLS
    /// with the server's certificate and host name verified, never a fallback to plaintext.
    /// The trusted roots are the PEM file named by `sslrootcert`, else the system's
    /// (`SSL_CERT_FILE` / `SSL_CERT_DIR` point elsewhere). Use `sslmode=disable` only over
    /// loopback or an otherwise trusted network.
    ///
    /// Tables are named from `key_prefix` mapped to `[a-z0-9_]` (a prefix longer than 40
    /// bytes is shortened with a hash); prefixes that differ only in other characters share
    /// tables.
    ///
    /// Fails with [`StoreError::Unavailable`] (cause [`ConnectError`]) when the URL is
    /// invalid or the server cannot be reached, and with [`StoreError::Corrupt`] (cause
    /// [`NewerSchema`]) when the tables were made by a newer build.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        let prefix = TablePrefix::from_key_prefix(key_prefix);
        let (pool, target) = connect::pool(url)?;
        let store = Self {
            pool,
            sql: Arc::new(Sql::new(&prefix)),
            clock,
            target: target.into(),
        };
        store
            .bounded(async {
                let mut client = store.client().await?;
                schema::migrate(&mut client, &prefix, &store.sql).await
            })
            .await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|e| connect::unreachable(&self.target, e).into())
    }

    /// Runs `work` under [`OPERATION_TIMEOUT`]. A transaction cut short is rolled back when
    /// its connection next speaks to the server.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(OPERATION_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| Err(StoreError::Unavailable(Box::new(TimedOut))))
    }

    /// The clock's now, as the `bigint` the tables hold.
    fn now(&self) -> i64 {
        sql_time(self.clock.now())
    }

    /// Writes `record` under `key` in `txn`: the row via `statement`, then the record's index
    /// rows in place of any old ones. With `condition` (`$6` onwards: now, and maybe the
    /// expected value), the statement may decline by returning no row; then nothing else is
    /// written and the result is `false`.
    async fn write_record(
        &self,
        txn: &Transaction<'_>,
        statement: &str,
        key: &str,
        record: &Record,
        condition: &[&(dyn ToSql + Sync)],
    ) -> Result<bool, StoreError> {
        let key = key.as_bytes();
        let expires_at = sql_time(record.expires_at);
        let (created_at, updated_at) = (sql_time(record.created_at), sql_time(record.updated_at));
        let statement = txn.prepare_cached(statement).await.map_err(unavailable)?;
        let mut params: Vec<&(dyn ToSql + Sync)> =
            vec![&key, &record.value, &expires_at, &created_at, &updated_at];
        params.extend_from_slice(condition);
        let written = if condition.is_empty() {
            txn.execute(&statement, &params)
                .await
                .map_err(unavailable)?;
            true
        } else {
            txn.query_opt(&statement, &params)
                .await
                .map_err(unavailable)?
                .is_some()
        };
        if !written {
            return Ok(false);
        }
        let clear = txn
            .prepare_cached(&self.sql.clear_indexes)
            .await
            .map_err(unavailable)?;
        txn.execute(&clear, &[&key]).await.map_err(unavailable)?;
        if !record.indexes.is_empty() {
            let indexes: Vec<&[u8]> = record.indexes.iter().map(|i| i.as_bytes()).collect();
            let add = txn
                .prepare_cached(&self.sql.add_indexes)
                .await
                .map_err(unavailable)?;
            txn.execute(&add, &[&indexes, &key, &expires_at])
                .await
                .map_err(unavailable)?;
        }
        Ok(true)
    }

    /// Writes `record` with a `statement` that may decline (returning no row) depending on
    /// the live record under `key` (and, with `expected`, its value), in one transaction;
    /// `true` when written.
    async fn write_if(
        &self,
        statement: &str,
        key: &str,
        record: Record,
        expected: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let now = self.now();
        self.bounded(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(unavailable)?;
            let condition: Vec<&(dyn ToSql + Sync)> = match &expected {
                Some(expected) => vec![&now, expected],
                None => vec![&now],
            };
            if self
                .write_record(&txn, statement, key, &record, &condition)
                .await?
            {
                txn.commit().await.map_err(unavailable)?;
                Ok(true)
            } else {
                txn.rollback().await.map_err(unavailable)?;
                Ok(false)
            }
        })
        .await
    }

    /// Runs one statement taking `(key or index, now)` and returns its rows.
    async fn query_at_now(&self, statement: &str, subject: &str) -> Result<Vec<Row>, StoreError> {
        let now = self.now();
        self.bounded(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(statement)
                .await
                .map_err(unavailable)?;
            client
                .query(&statement, &[&subject.as_bytes(), &now])
                .await
                .map_err(unavailable)
        })
        .await
    }
}

/// Times are unsigned in Ward and `bigint` in the tables; a time past `i64::MAX` (never
/// reached by a real clock) is stored as `i64::MAX`, still "far future".
fn sql_time(time: UnixTime) -> i64 {
    i64::try_from(time).unwrap_or(i64::MAX)
}

fn column_time(row: &Row, column: usize) -> Result<UnixTime, StoreError> {
    let time: i64 = row.try_get(column).map_err(undecodable)?;
    UnixTime::try_from(time).map_err(|_| CorruptRow::NegativeTime.into())
}

fn column_bytes(row: &Row, column: usize) -> Result<Vec<u8>, StoreError> {
    row.try_get(column).map_err(undecodable)
}

fn column_key(row: &Row, column: usize) -> Result<String, StoreError> {
    String::from_utf8(column_bytes(row, column)?).map_err(|e| CorruptRow::NotUtf8(e).into())
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        self.bounded(async {
            let mut client = self.client().await?;
            let txn = client.transaction().await.map_err(unavailable)?;
            self.write_record(&txn, &self.sql.upsert, key, &record, &[])
                .await?;
            txn.commit().await.map_err(unavailable)
        })
        .await
    }

    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.write_if(&self.sql.insert_or_replace_expired, key, record, None)
            .await
    }

    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.write_if(&self.sql.replace_live, key, record, None)
            .await
    }

    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        self.write_if(&self.sql.replace_version, key, record, Some(expected))
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query_at_now(&self.sql.get, key).await?;
        rows.first().map(|row| column_bytes(row, 0)).transpose()
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query_at_now(&self.sql.take, key).await?;
        rows.first().map(|row| column_bytes(row, 0)).transpose()
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let rows = self.query_at_now(&self.sql.delete, key).await?;
        match rows.first() {
            Some(row) => row.try_get::<_, bool>(0).map_err(undecodable),
            None => Ok(false),
        }
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let now = self.now();
        self.bounded(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&self.sql.delete_version)
                .await
                .map_err(unavailable)?;
            let deleted = client
                .query_opt(&statement, &[&key.as_bytes(), &now, &expected])
                .await
                .map_err(unavailable)?;
            Ok(deleted.is_some())
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(async {
            let client = self.client().await?;
            client.execute("SELECT 1", &[]).await.map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn indexes(&self) -> Option<&dyn Indexes> {
        Some(self)
    }

    fn sweeper(&self) -> Option<&dyn Sweep> {
        Some(self)
    }

    fn rate_limits(&self) -> Option<&dyn RateLimits> {
        Some(self)
    }

    fn counter(&self) -> Option<&dyn Count> {
        Some(self)
    }
}

#[async_trait]
impl Indexes for PostgresStore {
    async fn keys_by_index(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let rows = self.query_at_now(&self.sql.keys_by_index, index).await?;
        rows.iter().map(|row| column_key(row, 0)).collect()
    }

    async fn list_by_index(&self, index: &str) -> Result<Vec<RecordInfo>, StoreError> {
        let rows = self.query_at_now(&self.sql.list_by_index, index).await?;
        rows.iter()
            .map(|row| {
                Ok(RecordInfo {
                    key: column_key(row, 0)?,
                    created_at: column_time(row, 1)?,
                    updated_at: column_time(row, 2)?,
                    expires_at: column_time(row, 3)?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Sweep for PostgresStore {
    async fn sweep_expired(&self) -> Result<u64, StoreError> {
        let now = self.now();
        self.bounded(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&self.sql.sweep)
                .await
                .map_err(unavailable)?;
            let mut removed = 0;
            loop {
                let batch = client
                    .execute(&statement, &[&now])
                    .await
                    .map_err(unavailable)?;
                removed += batch;
                if batch < SWEEP_BATCH as u64 {
                    break;
                }
            }
            // Rate-limit windows that count nothing any more (not records: not in the count).
            let rates = client
                .prepare_cached(&self.sql.rate_sweep)
                .await
                .map_err(unavailable)?;
            let now_ms = i64::try_from(self.clock.now_millis()).unwrap_or(i64::MAX);
            while client
                .execute(&rates, &[&now_ms])
                .await
                .map_err(unavailable)?
                >= SWEEP_BATCH as u64
            {}
            Ok(removed)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_beyond_bigint_are_stored_as_far_future() {
        assert_eq!(sql_time(u64::MAX), i64::MAX);
        assert_eq!(sql_time(1_700_000_000), 1_700_000_000);
    }
}
