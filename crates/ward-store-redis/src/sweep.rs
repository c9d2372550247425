//! Sweeping: removing records that the clock has expired but Redis (whose native TTL runs on
//! its own time) has not yet. Candidates come from the expiry set `P x`, oldest first; each
//! is checked and removed by one script on its record, so a record re-written meanwhile stays.

use redis::cmd;
use ward_store::{StoreError, UnixTime};

use crate::RedisStore;
use crate::error::{corrupt, from_redis};
use crate::layout::{self, FormatError};
use crate::scripts;

/// How long after its expiry a sweep candidate is dropped by writers even if never swept: by
/// then Redis has expired the record itself (it got a native TTL of the same length).
pub(crate) const SWEEP_GRACE: u64 = 3600;

/// Records checked per sweep batch, and batches per sweep (the rest waits for the next one).
const SWEEP_BATCH: usize = 256;
const SWEEP_MAX_BATCHES: usize = 64;

impl RedisStore {
    /// Removes the expired records (up to the batch limit); how many.
    pub(crate) async fn sweep(&self, now: UnixTime) -> Result<u64, StoreError> {
        let mut removed = 0;
        for _ in 0..SWEEP_MAX_BATCHES {
            let (batch, more) = self.sweep_batch(now).await?;
            removed += batch;
            if !more {
                break;
            }
        }
        Ok(removed)
    }

    /// One sweep batch: how many expired records it removed, and whether more candidates
    /// may remain.
    async fn sweep_batch(&self, now: UnixTime) -> Result<(u64, bool), StoreError> {
        let listed = cmd("ZRANGEBYSCORE")
            .arg(self.keys.expiry())
            .arg("-inf")
            .arg(now)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(SWEEP_BATCH)
            .clone();
        let reply = self.query(&listed).await.map_err(from_redis)?;
        let items = layout::array(&reply).map_err(corrupt)?;
        let mut removed = 0;
        for pair in items.chunks(2) {
            let [key, score] = pair else {
                return Err(corrupt(FormatError::UnexpectedReply));
            };
            let key = std::str::from_utf8(layout::required(key).map_err(corrupt)?)
                .map_err(|_| corrupt(FormatError::BadIndex))?;
            let score = layout::required(score).map_err(corrupt)?;
            removed += self.sweep_one(key, score, now).await?;
        }
        Ok((removed, items.len() == 2 * SWEEP_BATCH))
    }

    /// Removes the record under `key` if expired; settles its sweep entry (scored `score`).
    async fn sweep_one(&self, key: &str, score: &[u8], now: UnixTime) -> Result<u64, StoreError> {
        let mut call = scripts::SWEEP_ONE.key(self.keys.record(key));
        call.arg(now);
        let reply = self.eval(&call).await.map_err(from_redis)?;
        let fields = layout::array(&reply).map_err(corrupt)?;
        let outcome = fields
            .first()
            .map(layout::int)
            .transpose()
            .map_err(corrupt)?;
        match (outcome, fields) {
            (Some(1), [_, generation, indexes]) => {
                self.forget_entries(key, generation, indexes).await;
                self.settle_sweep_entry(key, score).await?;
                Ok(1)
            }
            (Some(0), [_, exp]) => {
                // Live: its entry carried an older expiry; move it to the right one.
                let exp = layout::seconds(exp).map_err(corrupt)?;
                let moved = cmd("ZADD")
                    .arg(self.keys.expiry())
                    .arg(exp)
                    .arg(key)
                    .clone();
                self.query(&moved).await.map_err(from_redis)?;
                Ok(0)
            }
            (Some(-1 | -2), [_]) => {
                self.settle_sweep_entry(key, score).await?;
                Ok(0)
            }
            _ => Err(corrupt(FormatError::UnexpectedReply)),
        }
    }

    /// Drops `key`'s sweep entry unless a newer write re-scored it meanwhile.
    async fn settle_sweep_entry(&self, key: &str, score: &[u8]) -> Result<(), StoreError> {
        let mut call = scripts::ZSET_REMOVE_IF.key(self.keys.expiry());
        call.arg(key).arg(score);
        self.eval(&call).await.map_err(from_redis)?;
        Ok(())
    }
}
