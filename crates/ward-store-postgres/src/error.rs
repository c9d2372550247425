//! The causes this crate puts under a [`StoreError`], and the mapping of driver failures.
//!
//! None of them carries the connection URL: the database is named by host, port and database
//! only, so the password never reaches a log line.

use ward_store::{BoxError, StoreError};

/// Why the store could not be set up or reach PostgreSQL (under [`StoreError::Unavailable`]).
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse (the driver's message names the option, never its value).
    #[error("invalid PostgreSQL URL")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// `sslmode` is none of libpq's values.
    #[error(
        "invalid sslmode in the PostgreSQL URL (disable, allow, prefer, require, verify-ca or verify-full)"
    )]
    InvalidSslMode,
    /// The `sslrootcert` file could not be read or holds no certificate.
    #[error("cannot read trusted certificates from {}", path.display())]
    RootCertFile {
        /// The `sslrootcert` path.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// TLS was asked for (any `sslmode` but `disable`) and no usable root certificate exists.
    #[error(
        "no trusted root certificate for TLS to PostgreSQL (set SSL_CERT_FILE, or use sslmode=disable on a trusted network)"
    )]
    NoTrustRoots(#[source] Option<BoxError>),
    /// The TLS configuration could not be built.
    #[error("cannot configure TLS to PostgreSQL")]
    Tls(#[source] rustls::Error),
    /// The connection pool could not be built.
    #[error("cannot build the PostgreSQL connection pool")]
    Pool(#[source] BoxError),
    /// No connection to the server could be had (refused, timed out, TLS or authentication
    /// failed). `target` is `host:port/dbname`.
    #[error("cannot reach PostgreSQL at {target}")]
    Unreachable {
        /// Where the store connects, without user or password.
        target: String,
        /// The pool's or driver's error.
        #[source]
        source: BoxError,
    },
}

/// Why a row read back could not be turned into a record (under [`StoreError::Corrupt`]).
#[derive(Debug, thiserror::Error)]
pub enum CorruptRow {
    /// A column did not have the type this build wrote.
    #[error("a column of the session tables has an unexpected type")]
    Decode(#[source] tokio_postgres::Error),
    /// A key was not UTF-8; the store writes only UTF-8 keys.
    #[error("a stored key is not UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    /// A time column was negative; the store writes only times from 1970 on.
    #[error("a stored time is negative")]
    NegativeTime,
}

/// A failed query or transaction: the server or the connection did not do what was asked.
pub(crate) fn unavailable(error: tokio_postgres::Error) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

/// A column that did not decode.
pub(crate) fn undecodable(error: tokio_postgres::Error) -> StoreError {
    StoreError::Corrupt(Box::new(CorruptRow::Decode(error)))
}

impl From<ConnectError> for StoreError {
    fn from(error: ConnectError) -> Self {
        StoreError::Unavailable(Box::new(error))
    }
}

impl From<CorruptRow> for StoreError {
    fn from(error: CorruptRow) -> Self {
        StoreError::Corrupt(Box::new(error))
    }
}
