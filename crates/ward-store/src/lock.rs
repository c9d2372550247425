//! A lock with an owner, on any [`SessionStore`]: one record whose value is the holder's random
//! owner token, living a bounded time.
//!
//! - **Acquire** is [`SessionStore::put_new`]: of concurrent callers one wins; a lock whose
//!   time has passed is as good as absent, so a holder that died frees it by expiry.
//! - **Renew** is [`SessionStore::replace_if`] on the owner token: it extends the lock only
//!   while this owner still holds it. A live holder renews well within the lifetime, so a slow
//!   store or a slow IdP never lets the lock expire under it.
//! - **Release** is [`SessionStore::delete_if`] on the owner token: a holder that lost its lock
//!   (it expired, another took it) can never delete the next holder's lock.
//!
//! The owner token comes from the OS CSPRNG and never leaves this module in readable form: it
//! is not in `Debug` output, logs or errors.

use crate::{Record, SessionStore, StoreError, UnixTime};

/// Bytes of an owner token.
const OWNER_LEN: usize = 32;

/// Why a lock could not be attempted.
#[derive(Debug, thiserror::Error)]
#[error("the OS random number generator failed")]
pub struct RandomError(#[source] getrandom::Error);

/// A held lock: its key, its owner token and the expiry last written.
pub struct Lease {
    key: String,
    owner: [u8; OWNER_LEN],
    expires_at: UnixTime,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// Takes the lock under `key` for `ttl` seconds from `now`, unless another owner holds it
    /// (`None`).
    pub async fn acquire<S: SessionStore + ?Sized>(
        store: &S,
        key: &str,
        ttl: u64,
        now: UnixTime,
    ) -> Result<Option<Self>, StoreError> {
        let mut owner = [0u8; OWNER_LEN];
        getrandom::fill(&mut owner)
            .map_err(|e| StoreError::Unavailable(Box::new(RandomError(e))))?;
        let lease = Self {
            key: key.to_owned(),
            owner,
            expires_at: now.saturating_add(ttl),
        };
        let taken = store.put_new(key, lease.record(now)).await?;
        Ok(taken.then_some(lease))
    }

    /// Extends the lock to `ttl` seconds from `now` while this owner still holds it; `false`
    /// when it was lost (expired and possibly taken by another owner).
    pub async fn renew<S: SessionStore + ?Sized>(
        &mut self,
        store: &S,
        ttl: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let expires_at = now.saturating_add(ttl);
        let record = Record {
            expires_at,
            ..self.record(now)
        };
        let renewed = store.replace_if(&self.key, &self.owner, record).await?;
        if renewed {
            self.expires_at = expires_at;
        }
        Ok(renewed)
    }

    /// Releases the lock if this owner still holds it; `false` when it had been lost (and
    /// whoever holds it now keeps it).
    pub async fn release<S: SessionStore + ?Sized>(self, store: &S) -> Result<bool, StoreError> {
        store.delete_if(&self.key, &self.owner).await
    }

    /// When the lock expires unless renewed (unix seconds).
    pub fn expires_at(&self) -> UnixTime {
        self.expires_at
    }

    fn record(&self, now: UnixTime) -> Record {
        Record {
            value: self.owner.to_vec(),
            expires_at: self.expires_at,
            indexes: Vec::new(),
            created_at: now,
            updated_at: now,
        }
    }
}
