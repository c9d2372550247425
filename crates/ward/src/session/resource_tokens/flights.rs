//! The in-process part of resource tokens: a flight per session and resource, and the
//! back-off after failures.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::Failure;
use crate::session::refresh::BACKOFF;

type Flight = tokio::sync::Mutex<()>;

/// Per-process state of resource tokens: one flight per session and resource being fetched
/// (dropped with its last request) and the back-off after failures.
#[derive(Default)]
pub struct ResourceFlights {
    flights: Mutex<HashMap<String, Weak<Flight>>>,
    /// Session store key and resource → until when, and which failure.
    backoff: Mutex<HashMap<String, (u64, Failure)>>,
}

impl ResourceFlights {
    pub(super) fn join(&self, key: &str) -> Arc<Flight> {
        crate::session::refresh::join_flight(&self.flights, key)
    }

    pub(super) fn backing_off(&self, key: &str, now: u64) -> Option<Failure> {
        let backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff
            .get(key)
            .filter(|(until, _)| now < *until)
            .map(|(_, failure)| *failure)
    }

    pub(super) fn back_off(&self, key: &str, now: u64, failure: Failure) {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.retain(|_, (until, _)| now < *until);
        backoff.insert(key.to_owned(), (now.saturating_add(BACKOFF), failure));
    }

    pub(super) fn clear_backoff(&self, key: &str) {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        backoff.remove(key);
    }
}
