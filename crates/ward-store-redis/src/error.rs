//! How driver errors become [`StoreError`]s: what this build cannot read is `Corrupt`,
//! everything else (refused, dropped, timed out, cluster down, auth) is `Unavailable`. The
//! driver's error stays the source; no key, value or password is put into a message.

use redis::{ErrorKind, RedisError};
use ward_store::{BoxError, StoreError};

use crate::layout::FormatError;

/// The cause of a [`StoreError`] from [`RedisStore::connect`](crate::RedisStore::connect):
/// which server (password shown as `***`), and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to Redis at {address}")]
pub struct ConnectError {
    pub(crate) address: String,
    #[source]
    pub(crate) source: BoxError,
}

/// Why the client cache (`Options::client_cache`) could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientCacheError {
    /// The URL names a cluster: tracking is per node, and the cluster connection cannot turn
    /// it back on when it reconnects a node, so the cache is refused there.
    #[error("the client cache is not supported on a Redis Cluster (redis+cluster://)")]
    Cluster,
    /// The server refused RESP3 (`HELLO 3`, Redis 6+) or `CLIENT TRACKING`, or is unreachable.
    #[error("the client cache's tracking connection (RESP3, CLIENT TRACKING ON) failed")]
    Tracking(#[source] RedisError),
}

/// Maps a driver error of an open store.
pub(crate) fn from_redis(error: RedisError) -> StoreError {
    if is_corrupt(&error) {
        StoreError::Corrupt(Box::new(error))
    } else {
        StoreError::Unavailable(Box::new(error))
    }
}

/// Data under our keys that this build did not write: a value of another Redis type, or a
/// record a script found unreadable (`WARDCORRUPT`).
fn is_corrupt(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType
    ) || matches!(error.code(), Some("WRONGTYPE" | "WARDCORRUPT"))
}

/// A reply or record this build cannot read.
pub(crate) fn corrupt(error: FormatError) -> StoreError {
    StoreError::Corrupt(Box::new(error))
}

/// A dropped connection may be retried once: the manager reconnects on the first failure.
pub(crate) fn is_dropped(error: &RedisError) -> bool {
    error.is_connection_dropped()
}
