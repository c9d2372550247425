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
