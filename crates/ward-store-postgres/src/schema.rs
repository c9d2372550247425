//! The tables a store owns, the SQL that reads and writes them, and the migration that
//! creates them.
//!
//! Table names come from the configured key prefix, mapped to `[a-z0-9_]` and always written
//! double-quoted, so no configured text ever reaches SQL unchecked; every other value travels
//! as a bind parameter.
//!
//! Keys and index strings are `bytea`, not `text`: they are opaque strings that may hold NUL,
//! which PostgreSQL's `text` cannot store. The store writes them as UTF-8 and reads back only
//! what it wrote, so a row that is not UTF-8 is corruption.

use deadpool_postgres::Client;
use ward_store::StoreError;

use crate::error::{unavailable, undecodable};

/// The schema this build writes. Raised by each migration added to [`migrate`].
pub(crate) const SCHEMA_VERSION: i32 = 2;

/// The longest identifier prefix used: PostgreSQL truncates identifiers at 63 bytes, and
/// the longest name this crate builds on the prefix adds 19 (`record_index_by_key`).
const MAX_PREFIX_LEN: usize = 40;

/// A key prefix mapped to a safe SQL identifier prefix: only `[a-z0-9_]`, at most
/// [`MAX_PREFIX_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TablePrefix(String);

impl TablePrefix {
    /// ASCII letters are lower-cased, digits and `_` kept, anything else becomes `_`:
    /// `"ward:"` → `ward_`. Two prefixes differing only in such characters share tables.
    /// A longer result keeps its first 31 bytes and ends in `_` and 8 hex digits of a hash of
    /// the whole prefix (FNV-1a, fixed here so names never change between builds).
    pub(crate) fn from_key_prefix(prefix: &str) -> Self {
        let mapped: String = prefix
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '_' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '_',
            })
            .collect();
        if mapped.len() <= MAX_PREFIX_LEN {
            return Self(mapped);
        }
        let hash = prefix.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
            (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
        });
        Self(format!("{}_{hash:08x}", &mapped[..MAX_PREFIX_LEN - 9]))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// `"<prefix><name>"`: quoting is enough because the prefix holds no `"`.
    fn table(&self, name: &str) -> String {
        format!("\"{}{name}\"", self.0)
    }
}

/// Every statement the store runs, built once from its [`TablePrefix`]. `$now` parameters
/// are the injected clock's time: PostgreSQL's own clock never decides expiry.
#[derive(Debug)]
pub(crate) struct Sql {
    pub upsert: String,
    pub insert_or_replace_expired: String,
    pub replace_live: String,
    pub replace_version: String,
    pub delete_version: String,
    pub clear_indexes: String,
    pub add_indexes: String,
    pub get: String,
    pub take: String,
    pub delete: String,
    pub keys_by_index: String,
    pub list_by_index: String,
    pub count_live: String,
    pub sweep: String,
    pub rate_hit: String,
    pub rate_sweep: String,
    pub create: Vec<String>,
    /// Version 2: the rate-limit windows.
    pub create_v2: Vec<String>,
    pub version_table: String,
    pub read_version: String,
    pub write_version: String,
}

/// How many expired records one sweep statement removes; a sweep repeats until done, so no
/// statement holds locks on an unbounded number of rows.
pub(crate) const SWEEP_BATCH: i64 = 1000;

impl Sql {
    pub(crate) fn new(prefix: &TablePrefix) -> Self {
        let records = prefix.table("records");
        let index = prefix.table("record_index");
        let version = prefix.table("schema_version");
        let (columns, replace) = (INSERT_COLUMNS, REPLACE_COLUMNS);
        let rates = prefix.table("rate_windows");
        Self {
            upsert: format!(
                "INSERT INTO {records} {columns} ON CONFLICT (key) DO UPDATE {replace}"
            ),
            // $6 = now. Returns a row only when the key was free or held an expired record.
            insert_or_replace_expired: format!(
                "INSERT INTO {records} {columns} ON CONFLICT (key) DO UPDATE {replace} \
                 WHERE {records}.expires_at <= $6 RETURNING 1"
            ),
            // $6 = now. Returns a row only when a live record was there to update.
            replace_live: format!(
                "UPDATE {records} SET value = $2, expires_at = $3, created_at = $4, \
                 updated_at = $5 WHERE key = $1 AND expires_at > $6 RETURNING 1"
            ),
            // $6 = now, $7 = the expected value. A row only when the live record holds it.
            replace_version: format!(
                "UPDATE {records} SET value = $2, expires_at = $3, created_at = $4, \
                 updated_at = $5 WHERE key = $1 AND expires_at > $6 AND value = $7 RETURNING 1"
            ),
            // $2 = now, $3 = the expected value; the cascade removes the index rows.
            delete_version: format!(
                "DELETE FROM {records} WHERE key = $1 AND expires_at > $2 AND value = $3 \
                 RETURNING 1"
            ),
            clear_indexes: format!("DELETE FROM {index} WHERE key = $1"),
            add_indexes: format!(
                "INSERT INTO {index} (\"index\", key, expires_at) \
                 SELECT DISTINCT unnest($1::bytea[]), $2::bytea, $3::bigint"
            ),
            get: format!("SELECT value FROM {records} WHERE key = $1 AND expires_at > $2"),
            // The cascade removes the index rows in the same statement.
            take: format!(
                "DELETE FROM {records} WHERE key = $1 AND expires_at > $2 RETURNING value"
            ),
            delete: format!(
                "DELETE FROM {records} WHERE key = $1 RETURNING expires_at > $2 AS live"
            ),
            keys_by_index: format!(
                "SELECT key FROM {index} WHERE \"index\" = $1 AND expires_at > $2"
            ),
            list_by_index: format!(
                "SELECT r.key, r.created_at, r.updated_at, r.expires_at \
                 FROM {index} i JOIN {records} r ON r.key = i.key \
                 WHERE i.\"index\" = $1 AND r.expires_at > $2 ORDER BY r.key"
            ),
            // $1 = the prefix, $2 = the first key past it (NULL: none), $3 = now: a range of
            // the primary key, which orders bytea byte by byte.
            count_live: format!(
                "SELECT count(*) FROM {records} WHERE key >= $1 \
                 AND ($2::bytea IS NULL OR key < $2) AND expires_at > $3"
            ),
            sweep: sweep_batch(&records, "expires_at"),
            rate_hit: rate_hit(&rates),
            rate_sweep: sweep_batch(&rates, "expires_at_ms"),
            create_v2: create_rate_tables(prefix, &rates),
            create: create_tables(prefix, &records, &index),
            version_table: format!(
                "CREATE TABLE IF NOT EXISTS {version} (version integer NOT NULL)"
            ),
            read_version: format!("SELECT max(version) FROM {version}"),
            write_version: format!("INSERT INTO {version} (version) VALUES ($1)"),
        }
    }
}

/// The column list and values of an insert of a whole record.
const INSERT_COLUMNS: &str =
    "(key, value, expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)";
/// What an insert that meets an existing key writes over it: every column but the key.
const REPLACE_COLUMNS: &str = "SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, \
                               created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at";

/// The tables and their indexes, in creation order (the index table references the records).
fn create_tables(prefix: &TablePrefix, records: &str, index: &str) -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {records} (\
             key bytea PRIMARY KEY, value bytea NOT NULL, expires_at bigint NOT NULL, \
             created_at bigint NOT NULL, updated_at bigint NOT NULL)"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {records} (expires_at)",
            prefix.table("records_expires_at")
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {index} (\
             \"index\" bytea NOT NULL, \
             key bytea NOT NULL REFERENCES {records} (key) ON DELETE CASCADE, \
             expires_at bigint NOT NULL, PRIMARY KEY (\"index\", key))"
        ),
        // Finds a record's index rows when it is deleted (the cascade) or replaced.
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {index} (key)",
            prefix.table("record_index_by_key")
        ),
    ]
}

/// One batch of a sweep of `table` by its expiry `column` ($1 = now). SKIP LOCKED: concurrent
/// sweepers (several Ward instances) split the work instead of queueing behind each other.
fn sweep_batch(table: &str, column: &str) -> String {
    format!(
        "DELETE FROM {table} WHERE key IN (SELECT key FROM {table} \
         WHERE {column} <= $1 LIMIT {SWEEP_BATCH} FOR UPDATE SKIP LOCKED)"
    )
}

/// The rate-limit table (schema version 2) and the index its sweep reads.
fn create_rate_tables(prefix: &TablePrefix, rates: &str) -> Vec<String> {
    vec![
        // One row per limited key: its sliding window as parallel arrays of
        // (sub-window, count) pairs (`ward_store::rate`), and the last hit's answer.
        format!(
            "CREATE TABLE IF NOT EXISTS {rates} (\
             key bytea PRIMARY KEY, sub_windows bigint[] NOT NULL, \
             counts integer[] NOT NULL, allowed boolean NOT NULL, \
             expires_at_ms bigint NOT NULL)"
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {rates} (expires_at_ms)",
            prefix.table("rate_windows_expiry")
        ),
    ]
}

/// One hit on a sliding window, in one statement: `$1` key, `$2` the current sub-window, `$3`
/// the limit, `$4` how many sub-windows before the newest still count, `$5` when the row
/// may be swept (milliseconds). `ON CONFLICT DO UPDATE` locks the key's row, so concurrent
/// hits on a key queue and each sees the last one's counts. In the update every expression
/// reads the row as it was: the newest sub-window is the later of the caller's and the
/// stored ones (an instance whose clock runs behind never counts less), older pairs are
/// dropped, and the hit is counted in the newest when the total is below the limit.
/// Returns `allowed` and the pairs that still count, for the caller's `Retry-After`.
fn rate_hit(rates: &str) -> String {
    format!(
        "INSERT INTO {rates} AS r (key, sub_windows, counts, allowed, expires_at_ms) \
         VALUES ($1, ARRAY[$2::bigint], ARRAY[1], $3::bigint >= 1, $5::bigint) \
         ON CONFLICT (key) DO UPDATE SET (sub_windows, counts, allowed, expires_at_ms) = ( \
           SELECT array_agg(k.s ORDER BY k.s), \
                  array_agg(k.c + CASE WHEN k.s = w.newest AND w.total < $3::bigint \
                                  THEN 1 ELSE 0 END ORDER BY k.s), \
                  w.total < $3::bigint, \
                  greatest(r.expires_at_ms, $5::bigint) \
           FROM ( \
             SELECT n.newest, \
                    (SELECT coalesce(sum(u.c), 0) FROM unnest(r.sub_windows, r.counts) \
                     AS u(s, c) WHERE u.s >= n.newest - $4::bigint) AS total \
             FROM (SELECT greatest($2::bigint, (SELECT max(m) FROM unnest(r.sub_windows) \
                   AS m)) AS newest) AS n \
           ) AS w \
           CROSS JOIN LATERAL ( \
             SELECT u.s, u.c FROM unnest(r.sub_windows, r.counts) AS u(s, c) \
             WHERE u.s >= w.newest - $4::bigint AND u.s <> w.newest \
             UNION ALL \
             SELECT w.newest, coalesce((SELECT sum(u.c) FROM unnest(r.sub_windows, r.counts) \
                    AS u(s, c) WHERE u.s = w.newest), 0)::integer \
           ) AS k \
           GROUP BY w.newest, w.total) \
         RETURNING allowed, sub_windows, counts"
    )
}

/// The schema in the database is newer than this build understands.
#[derive(Debug, thiserror::Error)]
#[error("the session tables have schema version {found}; this build knows up to {SCHEMA_VERSION}")]
pub struct NewerSchema {
    found: i32,
}

/// Brings the tables to [`SCHEMA_VERSION`] in one transaction, holding a transaction-scoped
/// advisory lock keyed by the prefix so instances starting together migrate one at a time
/// (concurrent `CREATE TABLE IF NOT EXISTS` can otherwise fail on PostgreSQL's catalogs).
pub(crate) async fn migrate(
    client: &mut Client,
    prefix: &TablePrefix,
    sql: &Sql,
) -> Result<(), StoreError> {
    let txn = client.transaction().await.map_err(unavailable)?;
    let lock_name = format!("ward-store-postgres:{}", prefix.as_str());
    txn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        &[&lock_name],
    )
    .await
    .map_err(unavailable)?;
    txn.batch_execute(&sql.version_table)
        .await
        .map_err(unavailable)?;
    let row = txn
        .query_one(&sql.read_version, &[])
        .await
        .map_err(unavailable)?;
    let found: Option<i32> = row.try_get(0).map_err(undecodable)?;
    match found.unwrap_or(0) {
        found @ (0 | 1) => {
            let fresh = if found == 0 { &sql.create[..] } else { &[] };
            for statement in fresh.iter().chain(&sql.create_v2) {
                txn.batch_execute(statement).await.map_err(unavailable)?;
            }
            txn.execute(&sql.write_version, &[&SCHEMA_VERSION])
                .await
                .map_err(unavailable)?;
        }
        SCHEMA_VERSION => {}
        found => {
            // Ends the transaction (and its lock) now rather than when the connection is
            // next used.
            txn.rollback().await.map_err(unavailable)?;
            return Err(StoreError::Corrupt(Box::new(NewerSchema { found })));
        }
    }
    txn.commit().await.map_err(unavailable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_separated_prefix_maps_to_underscores() {
        let prefix = TablePrefix::from_key_prefix("ward:");
        assert_eq!(prefix.as_str(), "ward_");
        assert_eq!(prefix.table("records"), "\"ward_records\"");
    }

    #[test]
    fn prefix_with_quotes_and_sql_cannot_escape_the_identifier() {
        let prefix = TablePrefix::from_key_prefix("x\"; DROP TABLE t; --");
        assert_eq!(prefix.as_str(), "x___drop_table_t____");
    }

    #[test]
    fn upper_case_and_non_ascii_letters_are_mapped() {
        let prefix = TablePrefix::from_key_prefix("Wärd-1");
        assert_eq!(prefix.as_str(), "w_rd_1");
    }

    #[test]
    fn empty_prefix_gives_plain_table_names() {
        let prefix = TablePrefix::from_key_prefix("");
        assert_eq!(prefix.table("records"), "\"records\"");
    }

    #[test]
    fn long_prefixes_are_shortened_to_distinct_stable_identifiers() {
        let at_limit = "p".repeat(MAX_PREFIX_LEN);
        assert_eq!(TablePrefix::from_key_prefix(&at_limit).as_str(), at_limit);
        let long = TablePrefix::from_key_prefix(&"p".repeat(64));
        let other = TablePrefix::from_key_prefix(&format!("{}q", "p".repeat(63)));
        assert_eq!(long.as_str().len(), MAX_PREFIX_LEN);
        assert_ne!(long, other);
        // Pinned: a change would orphan every deployed table set with a long prefix.
        assert_eq!(long.as_str(), format!("{}_{}", "p".repeat(31), "5fe86ac5"));
    }

    #[test]
    fn every_statement_names_only_quoted_prefixed_tables() {
        let sql = Sql::new(&TablePrefix::from_key_prefix("t_"));
        for statement in sql
            .create
            .iter()
            .chain([&sql.upsert, &sql.sweep, &sql.take])
            .chain([&sql.replace_version, &sql.delete_version])
        {
            assert!(statement.contains("\"t_"), "{statement}");
        }
    }
}
