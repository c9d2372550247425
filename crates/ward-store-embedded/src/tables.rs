//! The three tables and the operations that keep them consistent.
//!
//! - `records`: key -> encoded record ([`crate::format`]).
//! - `index`: (index, key) -> expires_at, so `keys_by_index` is one range scan and skips
//!   expired carriers without reading their records.
//! - `expiry`: (expires_at, key) -> (), so a sweep is one range scan up to now.
//!
//! Invariant: a key has an `index` entry for each of its record's indexes and exactly one
//! `expiry` entry, both with the record's `expires_at`, and none once the record is gone. Only
//! [`Tables::insert`] and [`Tables::remove`] write, always in the same transaction.

use redb::{
    Database, ReadTransaction, ReadableTable, Table, TableDefinition, TableError, WriteTransaction,
};
use ward_store::{Record, RecordInfo, StoreError, UnixTime};

use crate::format;
use crate::store_error;

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const INDEX: TableDefinition<(&str, &str), u64> = TableDefinition::new("index");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");

/// A record at or past its expiry reads as absent.
pub fn is_live(expires_at: UnixTime, now: UnixTime) -> bool {
    expires_at > now
}

fn corrupt(error: format::FormatError) -> StoreError {
    StoreError::Corrupt(Box::new(error))
}

/// Creates the tables on first open, so read transactions always find them.
pub fn create_all(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(RECORDS)?;
    txn.open_table(INDEX)?;
    txn.open_table(EXPIRY)?;
    txn.commit()?;
    Ok(())
}

/// The tables, open in one write transaction.
pub struct Tables<'txn> {
    records: Table<'txn, &'static str, &'static [u8]>,
    index: Table<'txn, (&'static str, &'static str), u64>,
    expiry: Table<'txn, (u64, &'static str), ()>,
}

impl<'txn> Tables<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self, TableError> {
        Ok(Self {
            records: txn.open_table(RECORDS)?,
            index: txn.open_table(INDEX)?,
            expiry: txn.open_table(EXPIRY)?,
        })
    }

    /// The expiry of the record under `key`, live or not.
    pub fn expires_at(&self, key: &str) -> Result<Option<UnixTime>, StoreError> {
        match self.records.get(key).map_err(store_error)? {
            Some(bytes) => format::expires_at(bytes.value()).map(Some).map_err(corrupt),
            None => Ok(None),
        }
    }

    /// Whether the record under `key` is live and its value is exactly `expected`.
    pub fn holds(&self, key: &str, expected: &[u8], now: UnixTime) -> Result<bool, StoreError> {
        let Some(bytes) = self.records.get(key).map_err(store_error)? else {
            return Ok(false);
        };
        let record = format::decode(bytes.value()).map_err(corrupt)?;
        Ok(is_live(record.expires_at, now) && record.value == expected)
    }

    /// Writes `record` under a `key` that currently holds none.
    pub fn insert(&mut self, key: &str, record: &Record) -> Result<(), StoreError> {
        let bytes = format::encode(record);
        self.records
            .insert(key, bytes.as_slice())
            .map_err(store_error)?;
        for index in &record.indexes {
            self.index
                .insert((index.as_str(), key), record.expires_at)
                .map_err(store_error)?;
        }
        self.expiry
            .insert((record.expires_at, key), ())
            .map_err(store_error)?;
        Ok(())
    }

    /// Removes the record under `key` with its index and expiry entries, returning it.
    pub fn remove(&mut self, key: &str) -> Result<Option<Record>, StoreError> {
        let record = match self.records.remove(key).map_err(store_error)? {
            Some(bytes) => format::decode(bytes.value()).map_err(corrupt)?,
            None => return Ok(None),
        };
        for index in &record.indexes {
            self.index
                .remove((index.as_str(), key))
                .map_err(store_error)?;
        }
        self.expiry
            .remove((record.expires_at, key))
            .map_err(store_error)?;
        Ok(Some(record))
    }

    /// Keys of the records expired at `now`, oldest first.
    pub fn expired_keys(&self, now: UnixTime) -> Result<Vec<String>, StoreError> {
        // Expired means expires_at <= now: everything before (now + 1, "").
        let end = (now.saturating_add(1), "");
        let mut keys = Vec::new();
        for entry in self.expiry.range(..end).map_err(store_error)? {
            let (k, _) = entry.map_err(store_error)?;
            keys.push(k.value().1.to_owned());
        }
        Ok(keys)
    }
}

/// The value under `key` and its expiry, when live.
pub fn get_live(
    txn: &ReadTransaction,
    key: &str,
    now: UnixTime,
) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
    let records = txn.open_table(RECORDS).map_err(store_error)?;
    let Some(bytes) = records.get(key).map_err(store_error)? else {
        return Ok(None);
    };
    let record = format::decode(bytes.value()).map_err(corrupt)?;
    Ok(is_live(record.expires_at, now).then_some((record.value, record.expires_at)))
}

/// Keys of the live records carrying `index`.
pub fn live_keys_by_index(
    txn: &ReadTransaction,
    index: &str,
    now: UnixTime,
) -> Result<Vec<String>, StoreError> {
    let table = txn.open_table(INDEX).map_err(store_error)?;
    let mut keys = Vec::new();
    // Tuple keys compare element by element, so this scan holds exactly this index's entries
    // (no separator that a key or index could contain).
    for entry in table.range((index, "")..).map_err(store_error)? {
        let (k, expires_at) = entry.map_err(store_error)?;
        let (entry_index, key) = k.value();
        if entry_index != index {
            break;
        }
        if is_live(expires_at.value(), now) {
            keys.push(key.to_owned());
        }
    }
    Ok(keys)
}

/// Keys and times of the live records carrying `index`.
pub fn live_records_by_index(
    txn: &ReadTransaction,
    index: &str,
    now: UnixTime,
) -> Result<Vec<RecordInfo>, StoreError> {
    let records = txn.open_table(RECORDS).map_err(store_error)?;
    let mut out = Vec::new();
    for key in live_keys_by_index(txn, index, now)? {
        let Some(bytes) = records.get(key.as_str()).map_err(store_error)? else {
            continue;
        };
        let record = format::decode(bytes.value()).map_err(corrupt)?;
        out.push(RecordInfo {
            key,
            created_at: record.created_at,
            updated_at: record.updated_at,
            expires_at: record.expires_at,
        });
    }
    Ok(out)
}

/// How many live records have a key starting with `prefix`: one range scan of the records
/// from `prefix` on, reading only each record's expiry.
pub fn count_live(txn: &ReadTransaction, prefix: &str, now: UnixTime) -> Result<u64, StoreError> {
    let records = txn.open_table(RECORDS).map_err(store_error)?;
    let mut live = 0;
    for entry in records.range(prefix..).map_err(store_error)? {
        let (key, bytes) = entry.map_err(store_error)?;
        if !key.value().starts_with(prefix) {
            break;
        }
        let expires_at = format::expires_at(bytes.value()).map_err(corrupt)?;
        if is_live(expires_at, now) {
            live += 1;
        }
    }
    Ok(live)
}

/// Touches every table, so `ping` fails when the file cannot be read.
pub fn check_readable(txn: &ReadTransaction) -> Result<(), StoreError> {
    txn.open_table(RECORDS).map_err(store_error)?;
    txn.open_table(INDEX).map_err(store_error)?;
    txn.open_table(EXPIRY).map_err(store_error)?;
    Ok(())
}
