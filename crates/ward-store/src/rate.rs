//! Sliding-window rate limiting: the algorithm, the store capability [`RateLimits`], and the
//! in-process implementation [`LocalRateLimits`].
//!
//! **Algorithm: a sliding log of sub-window counts.** A window `W` is cut into [`SUB_WINDOWS`]
//! sub-windows of `g = ceil(W / SUB_WINDOWS)` each; a key keeps one counter per sub-window for
//! the current one and the [`SUB_WINDOWS`] before it. A hit is accepted while the sum of those
//! counters is below the limit `L`, and then counted in the current sub-window; a refused hit
//! counts nothing. The oldest sub-window is counted whole, although part of it lies more than
//! `W` back, which makes the check conservative and gives the property SECURITY-CASES RL-02
//! asks for: **at most `L` hits are accepted in any interval of length `W`**, wherever it
//! starts (no `2L` burst across a window edge). Proof: let `t` be the last accepted hit of an
//! interval `(t - W, t]`, in sub-window `i` (`i·g ≤ t`); since `SUB_WINDOWS·g ≥ W`, every
//! earlier hit of the interval lies in sub-windows `i - SUB_WINDOWS ..= i`, all of which the
//! check at `t` summed (below `L`), so the interval holds at most `L`. The price: a refused
//! client may wait up to one sub-window (`W / 30`, 2 s of a minute) longer than an exact log
//! would make it. Memory per key is fixed (31 counters), whatever `L` is; an exact log would
//! keep `L` timestamps (600 for the default `api` limit).
//!
//! Not GCRA (the token-bucket family, e.g. the `governor` crate): with burst `L` and rate
//! `L / W` it accepts `L` at the end of a window and `L - 1` more during the next `W`, nearly
//! `2L` in one `W`, which RL-02 rules out.
//!
//! Times are milliseconds from the injected [`Clock`](crate::Clock)`::now_millis`.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::StoreError;

/// Sub-windows per window: the resolution of the slide (see the module doc).
pub const SUB_WINDOWS: u64 = 30;

/// Counters kept per key: the current sub-window and the [`SUB_WINDOWS`] before it.
const SLOTS: usize = SUB_WINDOWS as usize + 1;

/// One limit: at most `limit` hits in any `window_ms` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateRule {
    /// Hits accepted per window; at least 1.
    pub limit: u32,
    /// The window, in milliseconds; at least 1.
    pub window_ms: u64,
}

impl RateRule {
    /// The width of one sub-window in milliseconds: `ceil(window / SUB_WINDOWS)`, so that
    /// `SUB_WINDOWS` of them cover the window (the proof in the module doc needs it).
    pub fn sub_window_ms(self) -> u64 {
        self.window_ms.max(1).div_ceil(SUB_WINDOWS)
    }

    /// The sub-window `now_ms` falls in.
    pub fn sub_window(self, now_ms: u64) -> u64 {
        now_ms / self.sub_window_ms()
    }

    /// When a key last hit in sub-window `newest` holds no count any more (milliseconds): its
    /// state may be dropped from then on.
    pub fn idle_at(self, newest: u64) -> u64 {
        (newest + SUB_WINDOWS + 1).saturating_mul(self.sub_window_ms())
    }
}

/// The answer to one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateDecision {
    /// Accepted and counted.
    Allowed,
    /// Refused (and not counted): the limit is reached for at least `retry_after_ms` more.
    Limited {
        /// Milliseconds until a hit would be accepted (≥ 1).
        retry_after_ms: u64,
    },
}

/// Capability of a store: a rate limit shared by every instance using it. `key` is opaque
/// (already a keyed hash; never an address in plain text); the same key must always be used
/// with the same rule.
#[async_trait]
pub trait RateLimits: Send + Sync {
    /// Counts one hit against `key` at `now_ms` (the caller's injected clock), atomically
    /// with every other hit on that key, and says whether it is within `rule`.
    async fn hit(&self, key: &str, rule: RateRule, now_ms: u64)
    -> Result<RateDecision, StoreError>;
}

/// The counters of one key. `counts[s % SLOTS]` belongs to sub-window `s` for
/// `newest - SUB_WINDOWS <= s <= newest`; every other sub-window holds nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlidingWindow {
    newest: u64,
    counts: [u32; SLOTS],
}

impl SlidingWindow {
    /// A key with no hits yet.
    pub fn new(now_sub_window: u64) -> Self {
        Self {
            newest: now_sub_window,
            counts: [0; SLOTS],
        }
    }

    /// A window rebuilt from `(sub-window, count)` pairs as a shared store keeps them;
    /// pairs older than the newest one's reach are dropped.
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u64, u32)> + Clone) -> Self {
        let newest = pairs.clone().into_iter().map(|(s, _)| s).max().unwrap_or(0);
        let mut window = Self::new(newest);
        for (sub_window, count) in pairs {
            if sub_window + SUB_WINDOWS >= newest {
                let slot = &mut window.counts[slot(sub_window)];
                *slot = slot.saturating_add(count);
            }
        }
        window
    }

    /// The newest sub-window this key counted in (or was created at).
    pub fn newest(&self) -> u64 {
        self.newest
    }

    /// One hit at `now_ms`: counted and `Allowed` while the window holds fewer than
    /// `rule.limit`, otherwise `Limited` and not counted.
    pub fn hit(&mut self, rule: RateRule, now_ms: u64) -> RateDecision {
        self.advance(rule.sub_window(now_ms));
        if self.total() < u64::from(rule.limit) {
            let count = &mut self.counts[slot(self.newest)];
            *count = count.saturating_add(1);
            RateDecision::Allowed
        } else {
            RateDecision::Limited {
                retry_after_ms: self.retry_after_ms(rule, now_ms),
            }
        }
    }

    /// Moves the window so `now` is its newest sub-window, clearing the ones it passes.
    /// A `now` before the newest (a clock set back, or another instance's clock behind this
    /// key's last writer) counts in the newest: never less than was counted.
    fn advance(&mut self, now: u64) {
        if now <= self.newest {
            return;
        }
        if now - self.newest >= SLOTS as u64 {
            self.counts = [0; SLOTS];
        } else {
            for sub_window in self.newest + 1..=now {
                self.counts[slot(sub_window)] = 0;
            }
        }
        self.newest = now;
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// How long until the window holds fewer than `rule.limit` hits, were nothing else
    /// counted meanwhile: the oldest sub-windows leave it one by one, sub-window `s` once the
    /// current one is `s + SUB_WINDOWS + 1`.
    pub fn retry_after_ms(&self, rule: RateRule, now_ms: u64) -> u64 {
        let mut total = self.total();
        let oldest = self.newest.saturating_sub(SUB_WINDOWS);
        let mut leaving = oldest;
        for sub_window in oldest..=self.newest {
            total -= u64::from(self.counts[slot(sub_window)]);
            leaving = sub_window;
            if total < u64::from(rule.limit) {
                break;
            }
        }
        let free_at = (leaving + SUB_WINDOWS + 1).saturating_mul(rule.sub_window_ms());
        free_at.saturating_sub(now_ms).max(1)
    }

    /// The non-zero `(sub-window, count)` pairs, oldest first (for a store's encoding).
    pub fn pairs(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        let oldest = self.newest.saturating_sub(SUB_WINDOWS);
        (oldest..=self.newest)
            .map(|s| (s, self.counts[slot(s)]))
            .filter(|&(_, count)| count > 0)
    }
}

fn slot(sub_window: u64) -> usize {
    // The remainder is below SLOTS (31): it fits any usize.
    (sub_window % SLOTS as u64) as usize
}

/// Shards of a [`LocalRateLimits`]: concurrent hits on different keys rarely share a lock.
const SHARDS: usize = 32;

/// An in-process rate limit, for one instance (`backend = "local"`) or for a store that is
/// itself in process (memory, embedded). Memory is bounded: at most `max_keys` keys (spread
/// over [`SHARDS`] locks); a full shard first drops its idle keys, then the key idle longest,
/// so rotating keys (addresses) can cost a limit its memory cap, never more.
pub struct LocalRateLimits {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
}

/// Keys are the caller's bytes (an address's octets, a session's store key): looked up by
/// reference, so only a key's first hit allocates.
type Shard = HashMap<Box<[u8]>, Entry>;

struct Entry {
    window: SlidingWindow,
    /// `rule.idle_at(window.newest())`: from then on the entry counts nothing.
    idle_at: u64,
}

impl std::fmt::Debug for LocalRateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRateLimits")
            .field("keys", &self.len())
            .field("max_keys", &(self.per_shard * SHARDS))
            .finish()
    }
}

impl LocalRateLimits {
    /// Limits keeping at most `max_keys` keys (rounded up to a multiple of the shard count).
    pub fn new(max_keys: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    /// [`RateLimits::hit`] without the future: the hot path of the local backend.
    pub fn hit_now(&self, key: &[u8], rule: RateRule, now_ms: u64) -> RateDecision {
        // `usize` from a `u64` hash: any bits do to pick a shard.
        let shard = (self.hasher.hash_one(key) as usize) % SHARDS;
        let mut shard = self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = shard.get_mut(key) {
            let decision = entry.window.hit(rule, now_ms);
            entry.idle_at = rule.idle_at(entry.window.newest());
            return decision;
        }
        if shard.len() >= self.per_shard {
            make_room(&mut shard, now_ms, self.per_shard);
        }
        let mut window = SlidingWindow::new(rule.sub_window(now_ms));
        let decision = window.hit(rule, now_ms);
        let idle_at = rule.idle_at(window.newest());
        shard.insert(key.into(), Entry { window, idle_at });
        decision
    }

    /// Keys currently held (tests, `Debug`).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Frees one place in a full shard of capacity `cap`: every idle key, or else the one that
/// goes idle first (the least recently counted). Linear in the shard, and only when it is
/// full: idle keys go in bulk, so scans are rare unless every key is busy.
fn make_room(shard: &mut Shard, now_ms: u64, cap: usize) {
    shard.retain(|_, entry| entry.idle_at > now_ms);
    if shard.len() < cap {
        return;
    }
    let stalest = shard
        .iter()
        .min_by_key(|(_, entry)| entry.idle_at)
        .map(|(key, _)| key.clone());
    if let Some(key) = stalest {
        shard.remove(&key);
    }
}

#[async_trait]
impl RateLimits for LocalRateLimits {
    async fn hit(
        &self,
        key: &str,
        rule: RateRule,
        now_ms: u64,
    ) -> Result<RateDecision, StoreError> {
        Ok(self.hit_now(key.as_bytes(), rule, now_ms))
    }
}

#[cfg(test)]
mod tests;
