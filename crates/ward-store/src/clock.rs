//! Injected time: expiry, token `exp`/`iat` and windows read a [`Clock`], so tests advance it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::UnixTime;

/// A source of the current time in unix seconds.
pub trait Clock: Send + Sync + 'static {
    /// Now, in seconds since the Unix epoch.
    fn now(&self) -> UnixTime;

    /// Now, in milliseconds since the Unix epoch: rate-limit windows need sub-second steps
    /// (a `1s` window has 33 ms sub-windows). A clock without a finer source reports the
    /// start of its current second.
    fn now_millis(&self) -> u64 {
        self.now().saturating_mul(1000)
    }
}

/// The operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to (tests). It counts milliseconds, so tests can step
/// through rate-limit sub-windows; [`now`](Clock::now) is the whole seconds of that.
#[derive(Debug)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `start` (unix seconds).
    pub fn new(start: UnixTime) -> Self {
        Self(AtomicU64::new(start.saturating_mul(1000)))
    }

    /// Moves the clock forward by `secs`.
    pub fn advance(&self, secs: u64) {
        self.advance_millis(secs.saturating_mul(1000));
    }

    /// Moves the clock forward by `millis`.
    pub fn advance_millis(&self, millis: u64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.0.load(Ordering::SeqCst) / 1000
    }

    fn now_millis(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
