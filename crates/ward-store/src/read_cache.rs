//! Recently read values of a store, kept in process so that a record read on every request is
//! not fetched each time. Used two ways:
//! - **exact**, by the embedded store (`ward-store-embedded`): its process is the file's only
//!   writer, and every write of a key goes through [`ReadCache::writing`], so the cache never
//!   answers with a value the file no longer holds;
//! - **bounded**, by [`CachedReads`](crate::CachedReads) in front of a shared store (Redis,
//!   PostgreSQL): writes through this process are seen at once, writes by other processes
//!   after at most the cache's time to live.
//!
//! What holds in both:
//! - while a write of a key through this cache is under way (from before it is sent until
//!   after it ended), reads of that key bypass the cache and nothing is cached for it;
//! - a read caches what it found only when no write of a key in its shard began or ended
//!   since the read started (a generation counter per shard), so a value read just before a
//!   write is never cached after it;
//! - the record's own expiry, when known, is checked on every hit.
//!
//! Bounded: entries live the time to live given to [`ReadCache::new`], at most [`CAPACITY`]
//! are kept. Time is the store's injected [`Clock`] (in milliseconds), so tests advance it.
//!
//! Sharded: keys spread over [`SHARDS`] maps by a hash of the key, each with its own lock,
//! generation and share of the capacity, so serving threads reading different keys do not
//! wait for one lock, and a write stops the caching of reads in its shard only.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::{Clock, UnixTime};

/// Most entries kept.
pub const CAPACITY: usize = 10_000;
/// Independent maps (each with its own lock) the keys spread over.
pub const SHARDS: usize = 16;
/// Most entries kept by one shard.
const SHARD_CAPACITY: usize = CAPACITY / SHARDS;

/// See the module docs.
pub struct ReadCache {
    /// Time to live in milliseconds.
    ttl: u64,
    clock: Arc<dyn Clock>,
    shards: [Mutex<Inner>; SHARDS],
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Keys with a write under way, and how many.
    writing: HashMap<String, usize>,
    /// Moves on every write's start and end.
    generation: u64,
    /// When expired entries were last dropped (milliseconds).
    last_purge: Option<u64>,
}

struct Entry {
    value: Vec<u8>,
    expires_at: UnixTime,
    /// When it was read (milliseconds).
    at: u64,
}

/// The outcome of [`ReadCache::lookup`].
pub enum Lookup {
    /// The live value and its expiry.
    Hit(Vec<u8>, UnixTime),
    /// Read the file; pass the generation to [`ReadCache::insert`].
    Miss(u64),
}

impl ReadCache {
    /// A cache whose entries live `ttl` on `clock`.
    pub fn new(ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            ttl: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            clock,
            shards: Default::default(),
        }
    }

    fn fresh(&self, entry: &Entry, now_ms: u64) -> bool {
        now_ms.saturating_sub(entry.at) < self.ttl
    }

    /// The cached value of `key` while fresh, live at `now` and not being written.
    pub fn lookup(&self, key: &str, now: UnixTime) -> Lookup {
        let now_ms = self.clock.now_millis();
        let inner = self.lock(key);
        if !inner.writing.contains_key(key)
            && let Some(entry) = inner.entries.get(key)
            && self.fresh(entry, now_ms)
            && now < entry.expires_at
        {
            return Lookup::Hit(entry.value.clone(), entry.expires_at);
        }
        Lookup::Miss(inner.generation)
    }

    /// Caches what a read that began at `generation` found, unless any write began or ended
    /// since.
    pub fn insert(&self, generation: u64, key: &str, value: &[u8], expires_at: UnixTime) {
        let now = self.clock.now_millis();
        let mut inner = self.lock(key);
        if inner.generation != generation || inner.writing.contains_key(key) {
            return;
        }
        // Expired entries go at most once per time to live: a full cache is not scanned on
        // every insert (the lock is held meanwhile); until the next purge, it takes no more.
        let purge_due = inner
            .last_purge
            .is_none_or(|at| now.saturating_sub(at) >= self.ttl);
        if purge_due {
            inner
                .entries
                .retain(|_, e| now.saturating_sub(e.at) < self.ttl);
            inner.last_purge = Some(now);
        }
        if inner.entries.len() >= SHARD_CAPACITY {
            return;
        }
        inner.entries.insert(
            key.to_owned(),
            Entry {
                value: value.to_vec(),
                expires_at,
                at: now,
            },
        );
    }

    /// Marks `key` as being written until the returned guard drops: drop it after the
    /// transaction committed or failed.
    pub fn writing(self: &Arc<Self>, key: &str) -> WriteGuard {
        let mut inner = self.lock(key);
        *inner.writing.entry(key.to_owned()).or_default() += 1;
        inner.entries.remove(key);
        inner.generation = inner.generation.wrapping_add(1);
        WriteGuard {
            cache: self.clone(),
            key: key.to_owned(),
        }
    }

    /// Forgets `keys` (e.g. removed by a sweep: expired, so never served anyway).
    pub fn forget(&self, keys: &[String]) {
        for key in keys {
            self.lock(key).entries.remove(key);
        }
    }

    /// The shard of `key`, locked.
    fn lock(&self, key: &str) -> MutexGuard<'_, Inner> {
        // The maps hold no invariant a panic elsewhere could break half-way.
        self.shards[shard_of(key)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The shard `key` lands in, by FNV-1a: the shard only spreads load; a key's reads and writes
/// all meet in its one shard.
fn shard_of(key: &str) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    // The remainder is below SHARDS, so it fits in usize.
    #[allow(clippy::cast_possible_truncation)]
    let shard = (hash % SHARDS as u64) as usize;
    shard
}

/// A write of one key under way (see [`ReadCache::writing`]).
pub struct WriteGuard {
    cache: Arc<ReadCache>,
    key: String,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut inner = self.cache.lock(&self.key);
        if let Some(count) = inner.writing.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                inner.writing.remove(&self.key);
            }
        }
        inner.entries.remove(&self.key);
        inner.generation = inner.generation.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    fn cache() -> ReadCache {
        ReadCache::new(Duration::from_secs(1), Arc::new(ManualClock::new(0)))
    }

    fn hit(cache: &ReadCache, key: &str, now: UnixTime) -> Option<Vec<u8>> {
        match cache.lookup(key, now) {
            Lookup::Hit(value, _) => Some(value),
            Lookup::Miss(_) => None,
        }
    }

    fn generation(cache: &ReadCache, key: &str) -> u64 {
        match cache.lookup(key, 0) {
            Lookup::Hit(..) => panic!("expected a miss"),
            Lookup::Miss(generation) => generation,
        }
    }

    #[test]
    fn a_read_value_is_served_until_it_expires() {
        let cache = cache();
        let g = generation(&cache, "k");
        cache.insert(g, "k", b"v", 100);
        assert_eq!(hit(&cache, "k", 99).as_deref(), Some(&b"v"[..]));
        assert_eq!(hit(&cache, "k", 100), None, "expired at its expiry");
    }

    #[test]
    fn a_write_under_way_bypasses_the_cache_and_drops_the_entry() {
        let cache = Arc::new(cache());
        let g = generation(&cache, "k");
        cache.insert(g, "k", b"old", 100);
        let guard = cache.writing("k");
        assert_eq!(hit(&cache, "k", 1), None, "bypassed while writing");
        let during = generation(&cache, "k");
        cache.insert(during, "k", b"old", 100);
        assert_eq!(hit(&cache, "k", 1), None, "nothing cached while writing");
        drop(guard);
        assert_eq!(hit(&cache, "k", 1), None, "the old value is gone");
    }

    /// Entries of every shard.
    fn entries(cache: &ReadCache) -> Vec<usize> {
        cache
            .shards
            .iter()
            .map(|shard| shard.lock().expect("unpoisoned").entries.len())
            .collect()
    }

    fn fill(cache: &ReadCache, keys: usize) {
        for i in 0..keys {
            let key = format!("k{i}");
            let g = generation(cache, &key);
            cache.insert(g, &key, b"v", 100);
        }
    }

    #[test]
    fn a_read_that_overlapped_a_write_is_not_cached() {
        let cache = Arc::new(cache());
        let before = generation(&cache, "k");
        drop(cache.writing("k"));
        cache.insert(before, "k", b"maybe-stale", 100);
        assert_eq!(hit(&cache, "k", 1), None);
    }

    #[test]
    fn a_write_stops_caching_only_in_its_own_shard() {
        let cache = Arc::new(cache());
        // A key of another shard than "k" (FNV-1a spreads consecutive names).
        let other = (0..)
            .map(|i| format!("o{i}"))
            .find(|o| shard_of(o) != shard_of("k"))
            .expect("another shard");
        let before = generation(&cache, "k");
        drop(cache.writing(&other));
        cache.insert(before, "k", b"v", 100);
        assert_eq!(hit(&cache, "k", 1), Some(b"v".to_vec()));
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = cache();
        fill(&cache, 4 * CAPACITY);
        assert_eq!(
            entries(&cache),
            [SHARD_CAPACITY; SHARDS],
            "every shard full"
        );
        assert_eq!(entries(&cache).iter().sum::<usize>(), CAPACITY);
    }

    #[test]
    fn a_full_cache_takes_new_entries_once_the_old_ones_expired() {
        let clock = Arc::new(ManualClock::new(0));
        let cache = ReadCache::new(Duration::from_secs(1), clock.clone());
        fill(&cache, 4 * CAPACITY);
        let g = generation(&cache, "new");
        cache.insert(g, "new", b"v", 100);
        assert_eq!(hit(&cache, "new", 1), None, "full: nothing more is taken");
        clock.advance(1);
        let g = generation(&cache, "new");
        cache.insert(g, "new", b"v", 100);
        assert_eq!(hit(&cache, "new", 1), Some(b"v".to_vec()));
        assert_eq!(
            entries(&cache)[shard_of("new")],
            1,
            "the expired entries of its shard went (the others' go when their shard purges)"
        );
    }
}
