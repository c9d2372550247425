//! Ward's embedded session store: one crash-safe [redb] file, `[store] kind = "embedded"`.
//!
//! What holds:
//! - **Durability.** Every write is one redb transaction committed with immediate durability
//!   (redb's default): when a call returns `Ok`, the change survives a crash or power loss, and
//!   a crash mid-write leaves the previous state. Sessions survive restarts.
//! - **Atomicity.** redb serialises write transactions, so `take`, `put_new` and the
//!   compare-and-swaps (`replace_if`, `delete_if`) are atomic across tasks; a record, its
//!   index entries and its expiry entry change together.
//! - **One process.** The file is locked for exclusive use on open: a second Ward on the same
//!   file gets [`StoreError::Unavailable`] instead of sharing it. Run one instance per file.
//! - **Expiry.** Expired records read as absent at once (through the injected [`Clock`]); they
//!   are removed by [`Sweep::sweep_expired`], which the server runs periodically with
//!   [`ward_store::spawn_sweeper`]. An expiry table ordered by time makes a sweep a range scan.
//! - **Integrity on open.** The file's checksums are verified when it is opened, so a damaged
//!   or foreign file is refused with [`StoreError::Corrupt`] rather than trusted.
//! - **Private on disk.** On unix, directories it creates are `0700` and the file `0600`.
//!   Values are sealed above this crate; the file holds no readable token or identifier.
//!
//! - **Bounded memory.** redb's page cache is capped at [`CACHE_SIZE`] (its default is 1 GiB,
//!   which a large file fills: ~325 MiB resident with 100 000 sessions).
//!
//! redb is blocking. Writes (which sync to disk) and index scans run on tokio's blocking pool;
//! a point lookup (`get`, `ping`) runs inline on the calling task: it is one read transaction
//! over a B-tree (MVCC: it never waits for a writer), and a hop to the blocking pool and back
//! costs more than the lookup itself. Values `get` found are kept up to a second in memory and
//! served from there while the file still holds them (`ward_store::read_cache`: exact, because
//! every write passes this process).

#![warn(missing_docs)]

mod format;
mod tables;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use redb::backends::FileBackend;
use redb::{Database, ReadableDatabase};
use ward_store::read_cache::{Lookup, ReadCache, WriteGuard};
use ward_store::{
    BoxError, Clock, Count, Indexes, LocalRateLimits, RateLimits, Record, RecordInfo, SessionStore,
    StoreError, Sweep, UnixTime,
};

pub use format::FormatError;
use tables::{Tables, is_live};

/// How long a value `get` found is served from memory (exactly: see the crate docs).
pub const READ_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// redb's page cache, in bytes: enough for the hot part of the tree, bounded for RSS.
pub const CACHE_SIZE: usize = 64 * 1024 * 1024;

/// The embedded [`SessionStore`] over one redb file.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    cache: Arc<ReadCache>,
    /// One process owns the database file (redb locks it), so the rate limits it shares
    /// between Ward's workers are that process's, in memory: counting hits is no reason
    /// to write to disk.
    rate: Arc<LocalRateLimits>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

/// The cause of a [`StoreError`] from [`EmbeddedStore::open`]: which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the session database {}", path.display())]
pub struct OpenError {
    path: PathBuf,
    #[source]
    source: BoxError,
}

impl EmbeddedStore {
    /// Opens the database at `path`, creating it and its parent directories when missing.
    ///
    /// Blocking (it verifies the file): call it at start-up, before serving.
    pub fn open(path: &Path, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        let at = |source: BoxError| OpenError {
            path: path.to_owned(),
            source,
        };
        let file = create_file(path).map_err(|e| StoreError::Unavailable(at(e.into()).into()))?;
        let backend = FileBackend::new(file).map_err(|e| classify(e, at))?;
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .set_cache_size(CACHE_SIZE)
            .create_with_backend(backend)
            .map_err(|e| classify(e, at))?;
        tables::create_all(&db).map_err(|e| classify(e, at))?;
        Ok(Self {
            db: Arc::new(db),
            cache: Arc::new(ReadCache::new(READ_CACHE_TTL, clock.clone())),
            clock,
            rate: Arc::new(LocalRateLimits::new(ward_store::memory::STORE_RATE_KEYS)),
        })
    }

    /// Runs `work` in one write transaction on the blocking pool; commits when it returns
    /// `Ok((_, true))`, aborts otherwise. `key`, when given, is marked as being written until
    /// the transaction has ended, even if the caller stops waiting (`ward_store::read_cache`).
    async fn write<T, F>(&self, key: Option<&str>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tables<'_>, UnixTime) -> Result<(T, bool), StoreError> + Send + 'static,
    {
        let guard: Option<WriteGuard> = key.map(|key| self.cache.writing(key));
        let (db, now) = (self.db.clone(), self.clock.now());
        blocking(move || {
            let _writing = guard;
            let txn = db.begin_write().map_err(store_error)?;
            let (out, commit) = {
                let mut tables = Tables::open(&txn).map_err(store_error)?;
                work(&mut tables, now)?
            };
            if commit {
                txn.commit().map_err(store_error)?;
            } else {
                txn.abort().map_err(store_error)?;
            }
            Ok(out)
        })
        .await
    }

    /// Runs `work` in one read transaction on the blocking pool.
    async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&redb::ReadTransaction, UnixTime) -> Result<T, StoreError> + Send + 'static,
    {
        let (db, now) = (self.db.clone(), self.clock.now());
        blocking(move || {
            let txn = db.begin_read().map_err(store_error)?;
            work(&txn, now)
        })
        .await
    }
}

impl EmbeddedStore {
    /// Runs `work` in one read transaction on the calling thread: only for point lookups,
    /// which are short (see the crate docs).
    fn read_inline<T>(
        &self,
        work: impl FnOnce(&redb::ReadTransaction, UnixTime) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_read().map_err(store_error)?;
        work(&txn, self.clock.now())
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?
}

/// Opens or creates the file, and any missing parent directory, private to this user.
fn create_file(path: &Path) -> std::io::Result<File> {
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        dirs.mode(0o700);
        options.mode(0o600);
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        dirs.create(parent)?;
    }
    options.open(path)
}

/// Data this build cannot read is `Corrupt` (redb reports a foreign file as `InvalidData`
/// I/O); everything else (I/O, lock held, closed) is
/// `Unavailable`. The redb error stays the source, wrapped by `wrap` for context.
fn classify<E, W>(error: E, wrap: impl FnOnce(BoxError) -> W) -> StoreError
where
    E: Into<redb::Error>,
    W: std::error::Error + Send + Sync + 'static,
{
    let error: redb::Error = error.into();
    let corrupt = matches!(
        error,
        redb::Error::Corrupted(_)
            | redb::Error::UpgradeRequired(_)
            | redb::Error::TableTypeMismatch { .. }
            | redb::Error::TypeDefinitionChanged { .. }
            | redb::Error::TableIsMultimap(_)
    ) || matches!(&error, redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData);
    let cause: BoxError = Box::new(wrap(Box::new(error)));
    if corrupt {
        StoreError::Corrupt(cause)
    } else {
        StoreError::Unavailable(cause)
    }
}

/// [`classify`] without added context, for operations on an open store.
fn store_error(error: impl Into<redb::Error>) -> StoreError {
    classify(error, Transparent)
}

/// Passes the redb error through as the direct source.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct Transparent(BoxError);

#[async_trait]
impl SessionStore for EmbeddedStore {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        let (key, writing) = (key.to_owned(), Some(key));
        self.write(writing, move |t, _| {
            t.remove(&key)?;
            t.insert(&key, &record)?;
            Ok(((), true))
        })
        .await
    }

    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        let (key, writing) = (key.to_owned(), Some(key));
        self.write(writing, move |t, now| {
            if t.expires_at(&key)?.is_some_and(|exp| is_live(exp, now)) {
                return Ok((false, false));
            }
            t.remove(&key)?;
            t.insert(&key, &record)?;
            Ok((true, true))
        })
        .await
    }

    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        let (key, writing) = (key.to_owned(), Some(key));
        self.write(writing, move |t, now| {
            if !t.expires_at(&key)?.is_some_and(|exp| is_live(exp, now)) {
                return Ok((false, false));
            }
            t.remove(&key)?;
            t.insert(&key, &record)?;
            Ok((true, true))
        })
        .await
    }

    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        let (key, writing, expected) = (key.to_owned(), Some(key), expected.to_vec());
        self.write(writing, move |t, now| {
            if !t.holds(&key, &expected, now)? {
                return Ok((false, false));
            }
            t.remove(&key)?;
            t.insert(&key, &record)?;
            Ok((true, true))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_expiring(key).await?.map(|(value, _)| value))
    }

    async fn get_expiring(&self, key: &str) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        let generation = match self.cache.lookup(key, self.clock.now()) {
            Lookup::Hit(value, expires_at) => return Ok(Some((value, expires_at))),
            Lookup::Miss(generation) => generation,
        };
        let found = self.read_inline(|txn, now| tables::get_live(txn, key, now))?;
        if let Some((value, expires_at)) = &found {
            self.cache.insert(generation, key, value, *expires_at);
        }
        Ok(found)
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (key, writing) = (key.to_owned(), Some(key));
        self.write(writing, move |t, now| {
            let removed = t.remove(&key)?;
            let changed = removed.is_some();
            let live = removed.filter(|r| is_live(r.expires_at, now));
            Ok((live.map(|r| r.value), changed))
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let (key, writing) = (key.to_owned(), Some(key));
        self.write(writing, move |t, now| {
            let removed = t.remove(&key)?;
            let changed = removed.is_some();
            Ok((removed.is_some_and(|r| is_live(r.expires_at, now)), changed))
        })
        .await
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        let (key, writing, expected) = (key.to_owned(), Some(key), expected.to_vec());
        self.write(writing, move |t, now| {
            if !t.holds(&key, &expected, now)? {
                return Ok((false, false));
            }
            t.remove(&key)?;
            Ok((true, true))
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read_inline(|txn, _| tables::check_readable(txn))
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    fn indexes(&self) -> Option<&dyn Indexes> {
        Some(self)
    }

    fn sweeper(&self) -> Option<&dyn Sweep> {
        Some(self)
    }

    fn rate_limits(&self) -> Option<&dyn RateLimits> {
        Some(&*self.rate)
    }

    fn counter(&self) -> Option<&dyn Count> {
        Some(self)
    }
}

#[async_trait]
impl Count for EmbeddedStore {
    async fn count_live(&self, prefix: &str) -> Result<u64, StoreError> {
        let prefix = prefix.to_owned();
        self.read(move |txn, now| tables::count_live(txn, &prefix, now))
            .await
    }
}

#[async_trait]
impl Indexes for EmbeddedStore {
    async fn list_by_index(&self, index: &str) -> Result<Vec<RecordInfo>, StoreError> {
        let index = index.to_owned();
        self.read(move |txn, now| tables::live_records_by_index(txn, &index, now))
            .await
    }

    async fn keys_by_index(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let index = index.to_owned();
        self.read(move |txn, now| tables::live_keys_by_index(txn, &index, now))
            .await
    }
}

#[async_trait]
impl Sweep for EmbeddedStore {
    async fn sweep_expired(&self) -> Result<u64, StoreError> {
        let expired = self
            .write(None, |t, now| {
                let expired = t.expired_keys(now)?;
                for key in &expired {
                    t.remove(key)?;
                }
                let changed = !expired.is_empty();
                Ok((expired, changed))
            })
            .await?;
        self.cache.forget(&expired);
        Ok(expired.len() as u64)
    }
}
