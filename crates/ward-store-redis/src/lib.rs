//! Ward's Redis session store, `[store] kind = "redis"`: one server or a Redis Cluster.
//!
//! `[store] url` forms:
//! - `redis://[user:pass@]host:port[/db]`, or `rediss://…` for TLS (rustls with the
//!   aws-lc-rs provider, server verified against the system's root certificates);
//! - `redis+cluster://[user:pass@]host:port[,host:port…]`, or `rediss+cluster://…`: seed nodes
//!   of a cluster (the rest are discovered); credentials apply to every node; database 0 only.
//!
//! User name and password are percent-encoded as in any URL. No error, log line or `Debug`
//! output shows the password.
//!
//! What holds:
//! - **Durability** is Redis's: a write survives a Redis restart only as far as the server's
//!   persistence (RDB/AOF, `appendfsync`) keeps it, and a failover to a replica can lose the
//!   last acknowledged writes — deletes (revocations) included. Run Redis with
//!   `maxmemory-policy noeviction`: an evicted record logs a user out, an evicted index hides
//!   sessions from logout by `sub`/`sid`.
//! - **Expiry.** The injected [`Clock`] decides: each record keeps its `expires_at` and reads
//!   as absent from that second on. Each record also gets a native Redis TTL of the same
//!   length, so expired records disappear without a sweeper;
//!   [`sweep_expired`](ward_store::Sweep::sweep_expired) only removes records that the
//!   clock, but not yet Redis, has expired (with their index entries), and may run or not.
//! - **Atomicity per key.** Every change to a record is one Lua script on that record's one
//!   Redis key: `take` hands a record out at most once, `put_new` admits one writer, `replace`
//!   never revives a deleted record, `replace_if`/`delete_if` compare the stored value inside
//!   the script (one round trip, one key: no cross-slot step, no hash tag).
//! - **Indexes** (for logout by `sub`/`sid`) are sorted sets on other keys, hence other
//!   cluster slots, so they change in steps around the record's script rather than with it.
//!   Each write gets a random generation; its index entries name `(generation, key)`, are
//!   added *before* the record is written and removed only *after* it has been replaced,
//!   deleted or has expired. So **a live record is always found through each of its indexes**
//!   (revocation never misses it; Ward instances are assumed to agree on the time), while an
//!   index may briefly name a record that is gone or newer: readers check every entry against
//!   the record itself and return live, matching records only.
//! - **Cluster.** Each script touches one key, so none crosses slots and no hash tag is
//!   needed: records and indexes spread over the masters by their own keys. The one shared key
//!   is the sweep's expiry set (`P x`), which every write updates. A prefix containing `{…}`
//!   would pin all of Ward's keys to one slot: it works, without spreading load.
//! - **Rate limits** ([`RateLimits`](ward_store::RateLimits)): one HASH per limited key,
//!   `P q:<key>`, changed by one script per hit (one round trip, one slot); the key is a
//!   keyed hash (never an address). Its native TTL ends it once it counts nothing.
//! - **Counting** ([`Count`](ward_store::Count), for `ward_sessions_active`): the expiry set's
//!   members under the prefix, each checked against its record (module `count`).
//! - **Revocation** (`delete`, index lookups) takes effect for every Ward instance at once,
//!   since all read the same Redis (with the client cache: as soon as Redis's `invalidate`
//!   push has reached the instance, well under a millisecond on one host).
//! - **Connection.** One reconnecting connection (one cluster connection) shared by all calls
//!   (with the client cache, a second one carries the cached reads and Redis's invalidations);
//!   with [`Options::lanes`], one such connection per serving thread, each opened on first use
//!   by its own thread's runtime, so a call's I/O never crosses to another thread.
//!   A call that meets a dropped connection is sent once more on the new one; every step is
//!   written so that a replay is harmless (a replayed `take` finds nothing: fail closed).
//!   Requests time out after 5 s, then fail with [`StoreError::Unavailable`].
//!
//! - **Client cache** (opt-in, [`Options::client_cache`], `[store] client_cache`): record
//!   reads answered in process, kept correct across instances by RESP3 `CLIENT TRACKING` on a
//!   second connection: another instance's change of a record removes this instance's copy
//!   within milliseconds, and a lost or silent tracking connection empties the cache and
//!   serves nothing from it until tracking is back (module `client_cache`). One server only:
//!   refused on a cluster.
//!
//! Keys, under the configured prefix `P`: `P r:<key>` (a HASH per record, format-versioned
//! by its `f` field; data of another format is refused as [`StoreError::Corrupt`], never
//! guessed at), `P i:<index>` (a ZSET per index) and `P x` (the sweep's ZSET of expiries).
//! Keys and index strings arrive already hashed and values already sealed: a dump of Redis
//! shows no token, claim or identifier.

#![warn(missing_docs)]

mod address;
mod client_cache;
mod conn;
mod count;
mod error;
mod layout;
mod rate;
mod scripts;
mod store;
mod sweep;

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use ward_store::{Clock, StoreError};

pub use address::UrlError;
pub use client_cache::{
    CacheEvent, CacheStats, HEARTBEAT, HEARTBEAT_TIMEOUT, LEASE, MAX_AGE, MAX_BYTES,
};
pub use error::{ClientCacheError, ConnectError};
pub use layout::FormatError;

use client_cache::ClientCache;
use conn::Connection;
use layout::Keys;

/// Options of [`RedisStore::connect_with`]; the default is what [`RedisStore::connect`] does.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// Answer record reads from an in-process cache kept correct by RESP3 `CLIENT TRACKING`
    /// (see the crate docs). One server only: a cluster URL is refused.
    pub client_cache: bool,
    /// One connection per serving thread instead of one for all (see [`Lanes`]).
    pub lanes: Option<Lanes>,
}

impl Options {
    /// [`Options::client_cache`] set to `on`.
    pub fn client_cache(mut self, on: bool) -> Self {
        self.client_cache = on;
        self
    }

    /// [`Options::lanes`]: `count` connections, the one for a call chosen by `current`.
    pub fn lanes(mut self, count: usize, current: fn() -> usize) -> Self {
        self.lanes = Some(Lanes { count, current });
        self
    }
}

/// Connections per serving thread: a server that runs one single-threaded runtime per thread
/// (Ward's serving workers) gives each its own connection, so a call's request and reply are
/// written, read and woken on the calling thread instead of through a connection task that
/// runs on another thread's runtime.
///
/// `current()` names the calling thread's lane, `0..count`; lane 0 is the connection opened by
/// `connect` (and the one for any number out of range). Lane `n > 0` is made by the first call
/// on it, on that call's runtime, where its connection tasks then run: so a lane must only
/// ever be used from one runtime, as `current` (a thread-local worker index) ensures. It
/// connects with its first command; calls meanwhile share that attempt, and one that fails
/// fails them with [`StoreError::Unavailable`], as lane 0's reconnections do. One server only:
/// a cluster store keeps its one cluster connection.
#[derive(Debug, Clone, Copy)]
pub struct Lanes {
    count: usize,
    current: fn() -> usize,
}

/// The Redis [`SessionStore`](ward_store::SessionStore). Cheap to clone: clones share one
/// reconnecting connection (or one cluster connection); no call opens a connection of its own.
#[derive(Clone)]
pub struct RedisStore {
    conn: Connection,
    lanes: Option<Arc<conn::LaneSet>>,
    keys: Keys,
    clock: Arc<dyn Clock>,
    cache: Option<Arc<ClientCache>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.conn {
            Connection::Single(_) => "single",
            Connection::Cluster(_) => "cluster",
        };
        f.debug_struct("RedisStore")
            .field("mode", &mode)
            .field("client_cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to `url` (forms in the crate docs) and keeps every key under `key_prefix`.
    ///
    /// Fails with [`StoreError::Unavailable`] (cause: [`ConnectError`], wrapping a
    /// [`UrlError`] or the driver's error) when the URL is malformed or the server cannot be
    /// reached now. Later outages are retried by the connection, not by reconnecting here.
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StoreError> {
        Self::connect_with(url, key_prefix, clock, None, Options::default()).await
    }

    /// [`connect`](Self::connect) trusting exactly `roots` for `rediss://` (the gateway passes
    /// its one outbound trust: the system roots plus its private CA).
    pub async fn connect_with_roots(
        url: &str,
        key_prefix: &str,
        clock: Arc<dyn Clock>,
        roots: &[CertificateDer<'static>],
    ) -> Result<Self, StoreError> {
        Self::connect_with(url, key_prefix, clock, Some(roots), Options::default()).await
    }

    /// [`connect`](Self::connect) with `options`, trusting exactly `roots` when given (see
    /// [`connect_with_roots`](Self::connect_with_roots)). With [`Options::client_cache`], also
    /// opens the tracking connection; fails ([`StoreError::Unavailable`], cause
    /// [`ConnectError`] over a [`ClientCacheError`]) on a cluster URL or when the server
    /// refuses RESP3 or `CLIENT TRACKING`.
    pub async fn connect_with(
        url: &str,
        key_prefix: &str,
        clock: Arc<dyn Clock>,
        roots: Option<&[CertificateDer<'static>]>,
        options: Options,
    ) -> Result<Self, StoreError> {
        let failed = |source: ward_store::BoxError| {
            StoreError::Unavailable(Box::new(ConnectError {
                address: address::Redacted(url).to_string(),
                source,
            }))
        };
        let target = address::parse(url).map_err(|e| failed(Box::new(e)))?;
        // The cluster check first: a cluster URL with the cache is refused before connecting.
        let tracking = match options.client_cache {
            false => None,
            true => Some(
                conn::tracking_client(&target, roots)
                    .ok_or_else(|| failed(Box::new(ClientCacheError::Cluster)))?
                    .map_err(|e| failed(Box::new(e)))?,
            ),
        };
        let conn = Connection::open(&target, roots)
            .await
            .map_err(|e| failed(Box::new(e)))?;
        let lanes = options
            .lanes
            .filter(|lanes| lanes.count > 1)
            .and_then(|lanes| conn::LaneSet::new(&target, roots, lanes))
            .map(Arc::new);
        let keys = Keys::new(key_prefix);
        let cache = match tracking {
            None => None,
            Some(client) => Some(Arc::new(
                ClientCache::start(client, keys.record(""), clock.clone())
                    .await
                    .map_err(|e| failed(Box::new(ClientCacheError::Tracking(e))))?,
            )),
        };
        Ok(Self {
            conn,
            lanes,
            keys,
            clock,
            cache,
        })
    }

    /// The client cache's counters; `None` without [`Options::client_cache`].
    pub fn client_cache_stats(&self) -> Option<CacheStats> {
        self.cache.as_ref().map(|cache| cache.stats())
    }

    /// What the client cache does from now on (connections, invalidations, flushes; never a
    /// key or value); `None` without [`Options::client_cache`].
    pub fn client_cache_events(&self) -> Option<tokio::sync::broadcast::Receiver<CacheEvent>> {
        self.cache.as_ref().map(|cache| cache.events())
    }
}
