//! Recently read live values, so a session read on every request does not open a read
//! transaction each time.
//!
//! Exact, not merely fresh: this process is the file's only writer (the lock), and every write
//! of a key goes through [`ReadCache::writing`], so the cache can never answer with a value the
//! file no longer holds:
//! - while a write of a key is under way (from before its transaction begins until after it
//!   committed or failed), reads of that key bypass the cache and nothing is cached for it;
//! - a read caches what it found only when no write began or ended anywhere since the read
//!   started (a generation counter), so a value read just before a commit is never cached
//!   after it;
//! - expiry is checked on every hit, against the same clock as the file's.
//!
//! Bounded: entries live [`TTL`] (then the file is read again), at most [`CAPACITY`] are kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ward_store::UnixTime;

/// How long a read value is reused.
pub const TTL: Duration = Duration::from_secs(1);
/// Most entries kept.
pub const CAPACITY: usize = 10_000;

#[derive(Default)]
pub(crate) struct ReadCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Keys with a write under way, and how many.
    writing: HashMap<String, usize>,
    /// Moves on every write's start and end.
    generation: u64,
    last_purge: Option<Instant>,
}

struct Entry {
    value: Vec<u8>,
    expires_at: UnixTime,
    at: Instant,
}

/// The outcome of [`ReadCache::lookup`].
pub(crate) enum Lookup {
    /// The live value.
    Hit(Vec<u8>),
    /// Read the file; pass the generation to [`ReadCache::insert`].
    Miss(u64),
}

impl ReadCache {
    pub(crate) fn lookup(&self, key: &str, now: UnixTime) -> Lookup {
        let inner = self.lock();
        if !inner.writing.contains_key(key)
            && let Some(entry) = inner.entries.get(key)
            && entry.at.elapsed() < TTL
            && now < entry.expires_at
        {
            return Lookup::Hit(entry.value.clone());
        }
        Lookup::Miss(inner.generation)
    }

    /// Caches what a read that began at `generation` found, unless any write began or ended
    /// since.
    pub(crate) fn insert(&self, generation: u64, key: &str, value: &[u8], expires_at: UnixTime) {
        let now = Instant::now();
        let mut inner = self.lock();
        if inner.generation != generation || inner.writing.contains_key(key) {
            return;
        }
        let purge_due = inner
            .last_purge
            .is_none_or(|at| now.duration_since(at) >= TTL);
        if purge_due || inner.entries.len() >= CAPACITY {
            inner.entries.retain(|_, e| now.duration_since(e.at) < TTL);
            inner.last_purge = Some(now);
        }
        if inner.entries.len() >= CAPACITY {
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
    pub(crate) fn writing(self: &Arc<Self>, key: &str) -> WriteGuard {
        let mut inner = self.lock();
        *inner.writing.entry(key.to_owned()).or_default() += 1;
        inner.entries.remove(key);
        inner.generation = inner.generation.wrapping_add(1);
        WriteGuard {
            cache: self.clone(),
            key: key.to_owned(),
        }
    }

    /// Forgets `keys` (removed by a sweep: expired, so never served anyway).
    pub(crate) fn forget(&self, keys: &[String]) {
        let mut inner = self.lock();
        for key in keys {
            inner.entries.remove(key);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The maps hold no invariant a panic elsewhere could break half-way.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A write of one key under way (see [`ReadCache::writing`]).
pub(crate) struct WriteGuard {
    cache: Arc<ReadCache>,
    key: String,
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
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

    fn hit(cache: &ReadCache, key: &str, now: UnixTime) -> Option<Vec<u8>> {
        match cache.lookup(key, now) {
            Lookup::Hit(value) => Some(value),
            Lookup::Miss(_) => None,
        }
    }

    fn generation(cache: &ReadCache, key: &str) -> u64 {
        match cache.lookup(key, 0) {
            Lookup::Hit(_) => panic!("expected a miss"),
            Lookup::Miss(generation) => generation,
        }
    }

    #[test]
    fn a_read_value_is_served_until_it_expires() {
        let cache = ReadCache::default();
        let g = generation(&cache, "k");
        cache.insert(g, "k", b"v", 100);
        assert_eq!(hit(&cache, "k", 99).as_deref(), Some(&b"v"[..]));
        assert_eq!(hit(&cache, "k", 100), None, "expired at its expiry");
    }

    #[test]
    fn a_write_under_way_bypasses_the_cache_and_drops_the_entry() {
        let cache = Arc::new(ReadCache::default());
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

    #[test]
    fn a_read_that_overlapped_a_write_is_not_cached() {
        let cache = Arc::new(ReadCache::default());
        let before = generation(&cache, "k");
        drop(cache.writing("other"));
        cache.insert(before, "k", b"maybe-stale", 100);
        assert_eq!(hit(&cache, "k", 1), None);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = ReadCache::default();
        for i in 0..CAPACITY + 10 {
            let key = format!("k{i}");
            let g = generation(&cache, &key);
            cache.insert(g, &key, b"v", 100);
        }
        assert_eq!(cache.lock().entries.len(), CAPACITY);
    }
}
