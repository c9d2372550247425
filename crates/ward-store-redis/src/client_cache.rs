//! The opt-in client-side cache of record reads (`[store] client_cache`), kept correct across
//! instances by Redis's server-assisted client caching (RESP3 `CLIENT TRACKING`, default mode).
//!
//! How it stays correct:
//! - **Tracked reads.** A read that may be cached goes over a dedicated connection (RESP3, with
//!   `CLIENT TRACKING ON`), so Redis remembers that this connection read the key. Any later
//!   change of that key by anyone (another instance's logout, refresh, a delete, expiry,
//!   eviction, `FLUSHDB`) makes Redis push `invalidate` on that same connection. The driver
//!   hands the push to [`Shared::on_push`] synchronously, in wire order, and the entry is gone.
//! - **No read caches a value older than an invalidation it raced with.** Keys hash onto
//!   stripes, each with a version. An invalidation (and each local write's start and end)
//!   bumps the stripe's version *before* removing the entry; a read notes the version before it
//!   is sent and caches its answer only when the version is unchanged afterwards, re-checking
//!   after the insert (and removing its own entry when it lost the race). An entry keeps the
//!   version it was read at and is served only while the stripe is still at it, so nothing is
//!   served once an invalidation of its stripe has begun (another key's invalidation in the
//!   same stripe, 1 in 4096, costs a miss).
//! - **This instance's writes** are seen at once: a write marks its key's stripe as being
//!   written (reads bypass the cache meanwhile) and removes the entry at its start and end. (A
//!   write whose caller stops waiting may still reach Redis after the mark ended; a copy read
//!   meanwhile was read over the tracking connection, so that write's `invalidate` removes it,
//!   as for any other instance's write.)
//! - **Disconnected means uncached.** When the tracking connection drops, is killed or
//!   reconnects, invalidations may have been missed: the whole cache is flushed at once (from
//!   the driver's disconnection notice) and every entry of the old connection is dead (a
//!   generation number). Until a new connection has tracking on, reads go to Redis over the
//!   main connection, uncached, so an outage fails closed exactly as without the cache.
//! - **A silent connection is a lost one.** A half-open TCP connection would deliver no
//!   invalidation and no error. A heartbeat (`PING` every [`HEARTBEAT`]) renews a lease: a
//!   reply proves that every push Redis sent before the `PING` has been handled (one
//!   connection, in order), so hits are served only until [`LEASE`] after the last answered
//!   `PING` was sent. A `PING` unanswered for [`HEARTBEAT_TIMEOUT`] drops the connection.
//! - **Backstops.** Entries live at most [`MAX_AGE`], never past the record's own expiry, and
//!   the cache holds at most [`MAX_BYTES`] of values (quick_cache, S3-FIFO eviction).
//!
//! Why default mode and not `BCAST`: in default mode Redis tells an instance only about keys it
//! read (and only once per read), so the push traffic follows this instance's own cache; with
//! `BCAST PREFIX` every write of every record (logins, refreshes, idle timers, locks) would be
//! pushed to every instance. The price — Redis keeps a tracking table of keys read (bounded by
//! `tracking-table-max-keys`; when full it invalidates, which only costs misses) — is small.
//!
//! Redis Cluster is not supported: tracking is per node, and the cluster connection reconnects
//! nodes on its own without a hook to turn tracking back on; the store refuses the option.
//!
//! Nothing here logs or exposes a key or a value: events carry counts and times only.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, RedisResult, Value, cmd};
use tokio::sync::{broadcast, mpsc};
use ward_store::{Clock, UnixTime};

/// Longest an entry is served, however quiet Redis is about it (a backstop).
pub const MAX_AGE: Duration = Duration::from_secs(60);
/// Most bytes of cached values (and keys) kept.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// How often the tracking connection is checked with `PING`.
pub const HEARTBEAT: Duration = Duration::from_millis(500);
/// How long a `PING` may go unanswered before the connection counts as lost.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long after the last answered `PING` was sent hits are still served.
pub const LEASE: Duration = Duration::from_millis(1500);

/// Stripes of versions: two keys share one with probability 1/`STRIPES` (a spurious miss).
const STRIPES: usize = 4096;
/// Entries the cache expects to hold (sizing only; the bound is [`MAX_BYTES`]).
const ESTIMATED_ENTRIES: usize = 16_384;
/// How long one attempt to (re)open the tracking connection may take, and a request on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Backoff between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The name the tracking connection carries in `CLIENT LIST`.
const CONNECTION_NAME: &str = "ward-client-cache";

/// What the cache did, for tests, measurements and operators; no key, no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// A tracking connection is up (with `CLIENT TRACKING ON`).
    Connected,
    /// Redis invalidated this many keys; the entries are gone.
    Invalidated {
        /// How many keys the push named.
        keys: usize,
        /// When the entries were removed.
        at: Instant,
    },
    /// Everything was dropped: the connection was lost (or Redis flushed the database).
    Flushed {
        /// When.
        at: Instant,
    },
}

/// Counters of the cache since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads answered from the cache (round trips saved).
    pub hits: u64,
    /// Reads that went to Redis (tracked, or uncached while disconnected).
    pub misses: u64,
    /// Keys invalidated by Redis.
    pub invalidations: u64,
    /// Times the whole cache was dropped.
    pub flushes: u64,
    /// Whether a tracking connection is up now.
    pub connected: bool,
    /// `CLIENT ID` of the current tracking connection (for an operator's `CLIENT KILL ID`).
    pub connection_id: Option<i64>,
}

/// One cached record read.
struct Entry {
    value: Vec<u8>,
    expires_at: UnixTime,
    /// The cache generation it was read in; any other generation makes it dead.
    generation: u64,
    /// Its stripe's version when the read began; any later version makes it dead, so a value
    /// is never served once an invalidation of its stripe has begun.
    version: u64,
    /// When it was read, in the clock's milliseconds.
    read_at: u64,
}

#[derive(Clone)]
struct Weigh;

impl quick_cache::Weighter<String, Arc<Entry>> for Weigh {
    fn weight(&self, key: &String, entry: &Arc<Entry>) -> u64 {
        // Never zero (zero-weight entries are never evicted): 64 bytes of bookkeeping.
        (key.len() + entry.value.len() + 64) as u64
    }
}

/// The current tracking connection.
struct Current {
    id: u64,
    conn: MultiplexedConnection,
    client_id: Option<i64>,
}

/// State shared by the store's clones, the driver's push callback and the supervisor task.
pub(crate) struct Shared {
    entries: quick_cache::sync::Cache<String, Arc<Entry>, Weigh>,
    versions: Box<[AtomicU64]>,
    writing: Box<[AtomicUsize]>,
    hasher: RandomState,
    /// Moves on every (re)connection, loss and flush; entries of another generation are dead.
    generation: AtomicU64,
    /// Milliseconds since `base` until which hits may be served; 0 while disconnected.
    lease_until: AtomicU64,
    base: Instant,
    current: RwLock<Option<Current>>,
    /// `P r:`: pushed key names start with it; what follows is the store key.
    record_prefix: Vec<u8>,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<CacheEvent>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

/// What [`ClientCache::lookup`] found.
pub(crate) enum Lookup {
    /// The cached value and its expiry.
    Hit(Vec<u8>, UnixTime),
    /// Read over this tracking connection, then offer the answer to [`ClientCache::insert`].
    Track(Ticket),
    /// Read over the main connection and cache nothing (disconnected, or a write under way).
    Bypass,
}

/// A tracked read under way: the connection to read over, and what it must find unchanged.
pub(crate) struct Ticket {
    pub(crate) conn: MultiplexedConnection,
    stamp: Stamp,
}

/// The state a read began in: any change of it before the answer is cached voids the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    generation: u64,
    stripe: usize,
    version: u64,
}

/// What [`Shared::check`] found.
enum Found {
    Hit(Vec<u8>, UnixTime),
    Miss(Stamp),
    Bypass,
}

/// The cache of one store (shared by its clones); stops its supervisor when dropped.
pub(crate) struct ClientCache {
    shared: Arc<Shared>,
    task: tokio::task::AbortHandle,
}

impl Drop for ClientCache {
    fn drop(&mut self) {
        self.task.abort();
        // Closes the tracking connection (its driver ends with its last handle).
        self.shared.lease_until.store(0, Ordering::SeqCst);
        *self
            .shared
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// A write of one key under way through this store (see the module docs).
pub(crate) struct Writing<'a> {
    shared: &'a Shared,
    key: &'a str,
    stripe: usize,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.shared.versions[self.stripe].fetch_add(1, Ordering::SeqCst);
        self.shared.writing[self.stripe].fetch_sub(1, Ordering::SeqCst);
        self.shared.entries.remove(self.key);
    }
}

impl ClientCache {
    /// Opens the tracking connection through `client` (which must speak RESP3) and starts the
    /// task that keeps it up. Fails when Redis cannot be reached or refuses tracking.
    pub(crate) async fn start(
        client: Client,
        record_prefix: Vec<u8>,
        clock: Arc<dyn Clock>,
    ) -> RedisResult<Self> {
        let shared = Arc::new(Shared::new(record_prefix, clock));
        let (lost_tx, lost_rx) = mpsc::unbounded_channel();
        connect(&client, &shared, 1, &lost_tx).await?;
        let task = tokio::spawn(supervise(shared.clone(), client, lost_tx, lost_rx));
        Ok(Self {
            shared,
            task: task.abort_handle(),
        })
    }

    /// The cached value of `key` when it may be served now, else how to read it.
    pub(crate) fn lookup(&self, key: &str, now: UnixTime) -> Lookup {
        let stamp = match self.shared.check(key, now) {
            Found::Hit(value, expires_at) => return Lookup::Hit(value, expires_at),
            Found::Bypass => return Lookup::Bypass,
            Found::Miss(stamp) => stamp,
        };
        let current = self
            .shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        match &*current {
            Some(current) => Lookup::Track(Ticket {
                conn: current.conn.clone(),
                stamp,
            }),
            None => Lookup::Bypass,
        }
    }

    /// Caches what a tracked read found, unless anything that could make it stale happened
    /// since the read was sent.
    pub(crate) fn insert(&self, ticket: &Ticket, key: &str, value: &[u8], expires_at: UnixTime) {
        self.shared.offer(ticket.stamp, key, value, expires_at);
    }

    /// Marks `key` as being written by this store until the guard drops.
    pub(crate) fn writing<'a>(&'a self, key: &'a str) -> Writing<'a> {
        self.shared.writing(key)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        let shared = &*self.shared;
        let current = shared
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        CacheStats {
            hits: shared.hits.load(Ordering::Relaxed),
            misses: shared.misses.load(Ordering::Relaxed),
            invalidations: shared.invalidations.load(Ordering::Relaxed),
            flushes: shared.flushes.load(Ordering::Relaxed),
            connected: current.is_some() && shared.leased(),
            connection_id: current.as_ref().and_then(|c| c.client_id),
        }
    }

    pub(crate) fn events(&self) -> broadcast::Receiver<CacheEvent> {
        self.shared.events.subscribe()
    }
}

impl Shared {
    fn new(record_prefix: Vec<u8>, clock: Arc<dyn Clock>) -> Self {
        Self {
            entries: quick_cache::sync::Cache::with_weighter(ESTIMATED_ENTRIES, MAX_BYTES, Weigh),
            versions: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            writing: (0..STRIPES).map(|_| AtomicUsize::new(0)).collect(),
            hasher: RandomState::new(),
            generation: AtomicU64::new(0),
            lease_until: AtomicU64::new(0),
            base: Instant::now(),
            current: RwLock::new(None),
            record_prefix,
            clock,
            events: broadcast::channel(1024).0,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// A hit, or the stamp a read of `key` begins with, or `Bypass` (no lease, a write of the
    /// key under way).
    fn check(&self, key: &str, now: UnixTime) -> Found {
        if !self.leased() {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Found::Bypass;
        }
        let stripe = self.stripe(key);
        if self.writing[stripe].load(Ordering::SeqCst) > 0 {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Found::Bypass;
        }
        let version = self.versions[stripe].load(Ordering::SeqCst);
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(entry) = self.entries.get(key)
            && entry.generation == generation
            && entry.version == version
            && now < entry.expires_at
            && self.clock.now_millis().saturating_sub(entry.read_at) < MAX_AGE.as_millis() as u64
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Found::Hit(entry.value.clone(), entry.expires_at);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Found::Miss(Stamp {
            generation,
            stripe,
            version,
        })
    }

    fn unchanged(&self, stamp: Stamp) -> bool {
        self.generation.load(Ordering::SeqCst) == stamp.generation
            && self.writing[stamp.stripe].load(Ordering::SeqCst) == 0
            && self.versions[stamp.stripe].load(Ordering::SeqCst) == stamp.version
    }

    /// Caches what a read that began at `stamp` found, unless the stamp moved meanwhile.
    fn offer(&self, stamp: Stamp, key: &str, value: &[u8], expires_at: UnixTime) {
        if !self.unchanged(stamp) {
            return;
        }
        self.entries.insert(
            key.to_owned(),
            Arc::new(Entry {
                value: value.to_vec(),
                expires_at,
                generation: stamp.generation,
                version: stamp.version,
                read_at: self.clock.now_millis(),
            }),
        );
        // An invalidation that slipped in between the check and the insert bumped the version
        // before removing: seen here, or its removal came after the insert. (Either way the
        // entry's version is already behind, so it is never served; this keeps it from taking
        // room.)
        if !self.unchanged(stamp) {
            self.entries.remove(key);
        }
    }

    fn writing<'a>(&'a self, key: &'a str) -> Writing<'a> {
        let stripe = self.stripe(key);
        self.writing[stripe].fetch_add(1, Ordering::SeqCst);
        self.versions[stripe].fetch_add(1, Ordering::SeqCst);
        self.entries.remove(key);
        Writing {
            shared: self,
            key,
            stripe,
        }
    }

    fn stripe(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) as usize) % STRIPES
    }

    fn mono_millis(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn leased(&self) -> bool {
        self.mono_millis() < self.lease_until.load(Ordering::SeqCst)
    }

    /// Renews the lease from a `PING` sent at `sent` (monotonic milliseconds) and answered.
    fn renew(&self, sent: u64) {
        let until = sent + LEASE.as_millis() as u64;
        self.lease_until.fetch_max(until, Ordering::SeqCst);
    }

    /// A push from tracking connection `id`, handled inside the driver, in wire order.
    fn on_push(&self, id: u64, push: PushInfo, lost: &mpsc::UnboundedSender<u64>) {
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        self.invalidate(key);
                    }
                    self.invalidations
                        .fetch_add(keys.len() as u64, Ordering::Relaxed);
                    let _ = self.events.send(CacheEvent::Invalidated {
                        keys: keys.len(),
                        at: Instant::now(),
                    });
                }
                // A null list: Redis flushed the database (FLUSHALL/FLUSHDB).
                _ => self.flush(),
            },
            PushKind::Disconnection => {
                self.lose(id);
                let _ = lost.send(id);
            }
            _ => {}
        }
    }

    fn invalidate(&self, key: &Value) {
        let name = match key {
            Value::BulkString(name) => name.as_slice(),
            Value::SimpleString(name) => name.as_bytes(),
            _ => return,
        };
        if let Some(key) = name
            .strip_prefix(self.record_prefix.as_slice())
            .and_then(|key| std::str::from_utf8(key).ok())
        {
            self.invalidate_key(key);
        }
    }

    /// Voids reads of `key` under way (version first), then drops its entry.
    fn invalidate_key(&self, key: &str) {
        let stripe = self.stripe(key);
        self.versions[stripe].fetch_add(1, Ordering::SeqCst);
        self.entries.remove(key);
    }

    /// Drops every entry and makes every read under way uncachable.
    fn flush(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.clear();
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let _ = self.events.send(CacheEvent::Flushed { at: Instant::now() });
    }

    /// Tracking connection `id` is gone (or must go): serve nothing, drop everything.
    fn lose(&self, id: u64) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.as_ref().is_some_and(|c| c.id == id) {
            self.lease_until.store(0, Ordering::SeqCst);
            *current = None;
            drop(current);
            self.flush();
        }
    }

    /// Makes connection `id` the current one, with a fresh generation and lease.
    fn install(&self, id: u64, conn: MultiplexedConnection, client_id: Option<i64>, sent: u64) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        self.generation.fetch_add(1, Ordering::SeqCst);
        *current = Some(Current {
            id,
            conn,
            client_id,
        });
        drop(current);
        self.renew(sent);
        let _ = self.events.send(CacheEvent::Connected);
    }
}

/// Opens tracking connection `id` and makes it current.
async fn connect(
    client: &Client,
    shared: &Arc<Shared>,
    id: u64,
    lost: &mpsc::UnboundedSender<u64>,
) -> RedisResult<()> {
    // Weak: the connection is held by `shared`, and must not keep it alive in turn.
    let sender = {
        let (shared, lost) = (Arc::downgrade(shared), lost.clone());
        move |push: PushInfo| -> Result<(), std::convert::Infallible> {
            if let Some(shared) = shared.upgrade() {
                shared.on_push(id, push, &lost);
            }
            Ok(())
        }
    };
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_push_sender(sender);
    let sent = shared.mono_millis();
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let (client_id,): (i64,) = redis::pipe()
        .cmd("CLIENT")
        .arg("SETNAME")
        .arg(CONNECTION_NAME)
        .ignore()
        .cmd("CLIENT")
        .arg("TRACKING")
        .arg("ON")
        .ignore()
        .cmd("CLIENT")
        .arg("ID")
        .query_async(&mut conn)
        .await?;
    shared.install(id, conn, Some(client_id), sent);
    Ok(())
}

/// Keeps a tracking connection up: heartbeats the current one, replaces a lost one.
async fn supervise(
    shared: Arc<Shared>,
    client: Client,
    lost_tx: mpsc::UnboundedSender<u64>,
    mut lost_rx: mpsc::UnboundedReceiver<u64>,
) {
    let mut id = 1;
    loop {
        watch(&shared, id, &mut lost_rx).await;
        shared.lose(id);
        let mut backoff = BACKOFF_MIN;
        loop {
            id += 1;
            match connect(&client, &shared, id, &lost_tx).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(
                        error = &error as &dyn std::error::Error,
                        retry_in_ms = backoff.as_millis() as u64,
                        "the Redis client cache cannot reconnect its tracking connection; \
                         session reads go to Redis uncached meanwhile"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// Returns once connection `id` is lost: the driver said so, or a `PING` went unanswered.
async fn watch(shared: &Shared, id: u64, lost: &mut mpsc::UnboundedReceiver<u64>) {
    let mut ticks = tokio::time::interval(HEARTBEAT);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            gone = lost.recv() => match gone {
                Some(gone) if gone == id => return,
                Some(_) => {}
                None => return,
            },
            _ = ticks.tick() => {
                let conn = {
                    let current = shared.current.read().unwrap_or_else(PoisonError::into_inner);
                    match &*current {
                        Some(current) if current.id == id => current.conn.clone(),
                        _ => return,
                    }
                };
                if !heartbeat(shared, conn).await {
                    tracing::warn!(
                        "the Redis client cache's tracking connection did not answer PING in \
                         time; cache dropped, reconnecting"
                    );
                    return;
                }
            }
        }
    }
}

/// One `PING`; renews the lease when answered in time.
async fn heartbeat(shared: &Shared, mut conn: MultiplexedConnection) -> bool {
    let sent = shared.mono_millis();
    let ping = cmd("PING");
    let ping = ping.query_async::<()>(&mut conn);
    match tokio::time::timeout(HEARTBEAT_TIMEOUT, ping).await {
        Ok(Ok(())) => {
            shared.renew(sent);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use ward_store::ManualClock;

    use super::*;

    const NOW: UnixTime = 1_700_000_000;

    /// A cache as it is with a live tracking connection (the lease renewed now).
    fn shared() -> Shared {
        let shared = Shared::new(b"P r:".to_vec(), Arc::new(ManualClock::new(NOW)));
        shared.renew(shared.mono_millis());
        shared
    }

    fn stamp(shared: &Shared, key: &str) -> Stamp {
        match shared.check(key, NOW) {
            Found::Miss(stamp) => stamp,
            Found::Hit(..) => panic!("unexpected hit"),
            Found::Bypass => panic!("unexpected bypass"),
        }
    }

    fn hit(shared: &Shared, key: &str) -> Option<Vec<u8>> {
        match shared.check(key, NOW) {
            Found::Hit(value, _) => Some(value),
            Found::Miss(_) | Found::Bypass => None,
        }
    }

    #[test]
    fn a_read_is_cached_until_its_key_is_invalidated() {
        let shared = shared();
        let read = stamp(&shared, "s:k");
        shared.offer(read, "s:k", b"v1", NOW + 60);
        assert_eq!(hit(&shared, "s:k").as_deref(), Some(&b"v1"[..]));
        assert_eq!(hit(&shared, "s:other"), None);
        shared.invalidate(&Value::BulkString(b"P r:s:k".to_vec()));
        assert_eq!(hit(&shared, "s:k"), None);
        // Keys outside the record prefix are not ours.
        let read = stamp(&shared, "s:k");
        shared.offer(read, "s:k", b"v2", NOW + 60);
        shared.invalidate(&Value::BulkString(b"P i:s:k".to_vec()));
        assert_eq!(hit(&shared, "s:k").as_deref(), Some(&b"v2"[..]));
    }

    #[test]
    fn a_read_that_raced_an_invalidation_a_write_or_a_flush_is_not_cached() {
        let shared = shared();
        let read = stamp(&shared, "s:k");
        shared.invalidate_key("s:k");
        shared.offer(read, "s:k", b"stale", NOW + 60);
        assert_eq!(hit(&shared, "s:k"), None, "invalidated while in flight");

        let read = stamp(&shared, "s:k");
        drop(shared.writing("s:k"));
        shared.offer(read, "s:k", b"stale", NOW + 60);
        assert_eq!(hit(&shared, "s:k"), None, "written while in flight");

        let read = stamp(&shared, "s:k");
        shared.flush();
        shared.offer(read, "s:k", b"stale", NOW + 60);
        assert_eq!(hit(&shared, "s:k"), None, "flushed while in flight");
    }

    #[test]
    fn a_write_under_way_bypasses_the_cache_and_drops_the_entry() {
        let shared = shared();
        let read = stamp(&shared, "s:k");
        shared.offer(read, "s:k", b"v1", NOW + 60);
        let writing = shared.writing("s:k");
        assert!(matches!(shared.check("s:k", NOW), Found::Bypass));
        drop(writing);
        assert_eq!(hit(&shared, "s:k"), None, "the entry went with the write");
    }

    #[test]
    fn nothing_is_served_without_the_lease_nor_past_expiry_or_max_age() {
        let clock = Arc::new(ManualClock::new(NOW));
        let shared = Shared::new(b"P r:".to_vec(), clock.clone());
        assert!(
            matches!(shared.check("s:k", NOW), Found::Bypass),
            "no lease yet"
        );
        shared.renew(shared.mono_millis());
        let read = stamp(&shared, "s:k");
        shared.offer(read, "s:k", b"v1", NOW + 60);
        assert!(hit(&shared, "s:k").is_some());
        assert!(
            matches!(shared.check("s:k", NOW + 60), Found::Miss(_)),
            "expired record"
        );
        clock.advance_millis(MAX_AGE.as_millis() as u64);
        assert_eq!(hit(&shared, "s:k"), None, "older than the max age");
        shared.lease_until.store(0, Ordering::SeqCst);
        assert!(
            matches!(shared.check("s:k", NOW), Found::Bypass),
            "lease gone"
        );
    }

    #[test]
    fn a_lost_connection_flushes_and_dead_entries_are_never_served() {
        let shared = shared();
        let read = stamp(&shared, "s:k");
        shared.offer(read, "s:k", b"v1", NOW + 60);
        let before = shared.flushes.load(Ordering::Relaxed);
        shared.flush();
        assert_eq!(shared.flushes.load(Ordering::Relaxed), before + 1);
        assert_eq!(hit(&shared, "s:k"), None);
        // An entry of an older generation (inserted around a flush) is dead.
        shared.entries.insert(
            "s:k".to_owned(),
            Arc::new(Entry {
                value: b"old".to_vec(),
                expires_at: NOW + 60,
                generation: read.generation,
                version: read.version,
                read_at: 0,
            }),
        );
        assert_eq!(hit(&shared, "s:k"), None);
    }

    /// Readers cache what they read while a writer keeps changing the "truth" and invalidating
    /// after each change (as Redis pushes after each write). After each invalidation, and once
    /// all are done, a served value, if any, is the current truth.
    #[test]
    fn under_concurrent_reads_and_invalidations_no_stale_value_survives() {
        let shared = Arc::new(shared());
        let truth = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (shared, truth, done) = (shared.clone(), truth.clone(), done.clone());
                std::thread::spawn(move || {
                    while !done.load(Ordering::SeqCst) {
                        if let Found::Miss(read) = shared.check("s:k", NOW) {
                            // The read reaches "Redis" after its stamp was taken.
                            let value = truth.load(Ordering::SeqCst).to_be_bytes();
                            std::thread::yield_now();
                            shared.offer(read, "s:k", &value, NOW + 60);
                        }
                    }
                })
            })
            .collect();
        for _ in 0..20_000 {
            truth.fetch_add(1, Ordering::SeqCst);
            std::thread::yield_now();
            shared.invalidate_key("s:k");
            // From here on, only values read after this change may be served.
            if let Some(value) = hit(&shared, "s:k") {
                assert_eq!(value, truth.load(Ordering::SeqCst).to_be_bytes());
            }
        }
        done.store(true, Ordering::SeqCst);
        for reader in readers {
            reader.join().expect("reader");
        }
        if let Some(value) = hit(&shared, "s:k") {
            assert_eq!(value, truth.load(Ordering::SeqCst).to_be_bytes());
        }
    }
}
