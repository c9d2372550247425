//! The [`SessionStore`] operations, each as: index entries added, one script on the record,
//! then stale entries removed (see "Indexes" in the crate docs for the invariant kept).

use std::collections::HashSet;

use async_trait::async_trait;
use futures_util::future::{join_all, try_join_all};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use redis::{Cmd, RedisResult, ScriptInvocation, Value, cmd};
use ward_store::{
    Count, Indexes, RateLimits, Record, RecordInfo, SessionStore, StoreError, Sweep, UnixTime,
};

use crate::RedisStore;
use crate::client_cache::Lookup;
use crate::error::{corrupt, from_redis, is_dropped};
use crate::layout::{self, FormatError};
use crate::scripts;

/// The longest native TTL set (100 years): far beyond any session, and far from the limits of
/// Redis's millisecond arithmetic.
const MAX_TTL: u64 = 100 * 365 * 24 * 3600;

/// Record lookups kept in flight at once when reading an index.
const LOOKUPS_IN_FLIGHT: usize = 32;

/// The `N` fields of an array reply.
pub(crate) fn fields<const N: usize>(reply: &Value) -> Result<&[Value; N], StoreError> {
    layout::array(reply)
        .map_err(corrupt)?
        .try_into()
        .map_err(|_| corrupt(FormatError::UnexpectedReply))
}

/// The value and expiry in a reply to [`RedisStore::read_command`], when live at `now`.
fn record_of(reply: &Value, now: UnixTime) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
    let [format, exp, value] = fields(reply)?;
    if [format, exp, value].iter().all(|v| **v == Value::Nil) {
        return Ok(None);
    }
    layout::check_format(format).map_err(corrupt)?;
    let expires_at = layout::seconds(exp).map_err(corrupt)?;
    if expires_at <= now {
        return Ok(None);
    }
    let value = layout::required(value).map_err(corrupt)?.to_vec();
    Ok(Some((value, expires_at)))
}

/// Seconds of native TTL for a record expiring at `expires_at`; 0 when already expired.
fn ttl(expires_at: UnixTime, now: UnixTime) -> u64 {
    match expires_at.checked_sub(now) {
        Some(0) | None => 0,
        Some(left) => left.min(MAX_TTL),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WriteMode<'a> {
    /// Replace whatever is there.
    Put,
    /// Insert only when no live record is there.
    New,
    /// Replace only a live record.
    Replace,
    /// Replace only a live record holding exactly this value.
    ReplaceIf(&'a [u8]),
}

/// How [`RedisStore::remove`] removes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Removal<'a> {
    /// Remove and hand out the value.
    Take,
    /// Remove.
    Delete,
    /// Remove only when the value is exactly this.
    DeleteIf(&'a [u8]),
}

impl RedisStore {
    /// The calling thread's connection (see [`Lanes`](crate::Lanes)), else the one shared.
    async fn connection(&self) -> RedisResult<crate::conn::Connection> {
        if let Some(lanes) = &self.lanes
            && let Some(conn) = lanes.current()
        {
            return conn;
        }
        Ok(self.conn.clone())
    }

    /// Sends `cmd`, once more if the connection had dropped (the manager reconnects meanwhile).
    pub(crate) async fn query(&self, cmd: &Cmd) -> RedisResult<Value> {
        let mut conn = self.connection().await?;
        match cmd.query_async(&mut conn).await {
            Err(e) if is_dropped(&e) => cmd.query_async(&mut conn).await,
            done => done,
        }
    }

    /// Runs a script, once more if the connection had dropped; each script is replay-safe.
    pub(crate) async fn eval(&self, script: &ScriptInvocation<'_>) -> RedisResult<Value> {
        let mut conn = self.connection().await?;
        match script.invoke_async(&mut conn).await {
            Err(e) if is_dropped(&e) => script.invoke_async(&mut conn).await,
            done => done,
        }
    }

    /// Adds `member` with `score` to the ZSET `key`, dropping members scored at or below
    /// `trim` and extending the set's TTL to `ttl` seconds (0: unchanged).
    async fn zset_add(
        &self,
        key: Vec<u8>,
        member: &[u8],
        score: UnixTime,
        ttl: u64,
        trim: UnixTime,
    ) -> RedisResult<Value> {
        let mut call = scripts::ZSET_ADD.key(key);
        call.arg(member).arg(score).arg(ttl).arg(trim);
        self.eval(&call).await
    }

    /// Removes the index entries a record of `generation` under `key` had, given its encoded
    /// index list. Best effort: an entry left behind names a generation no record has any
    /// more, which readers skip, and it is dropped once its score (the old expiry) passes.
    pub(crate) async fn forget_entries(&self, key: &str, generation: &Value, index_list: &Value) {
        let (Ok(Some(generation)), Ok(Some(list))) =
            (layout::bytes(generation), layout::bytes(index_list))
        else {
            return;
        };
        let (Ok(generation), Ok(indexes)) = (
            std::str::from_utf8(generation),
            layout::decode_indexes(list),
        ) else {
            return;
        };
        let member = layout::member(generation, key);
        self.remove_members(&layout::distinct(&indexes), &member)
            .await;
    }

    /// ZREMs `member` from each index in `indexes`, concurrently, logging failures.
    async fn remove_members(&self, indexes: &[&str], member: &[u8]) {
        let removals = indexes.iter().map(|index| {
            let call = cmd("ZREM").arg(self.keys.index(index)).arg(member).clone();
            async move { self.query(&call).await }
        });
        for result in join_all(removals).await {
            if let Err(error) = result {
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "removing a stale session index entry from Redis failed; readers skip it \
                     and it expires with its record"
                );
            }
        }
    }

    async fn write(
        &self,
        key: &str,
        record: Record,
        mode: WriteMode<'_>,
    ) -> Result<bool, StoreError> {
        let _writing = self.writing(key);
        let now = self.clock.now();
        let ttl = ttl(record.expires_at, now);
        let generation = layout::new_generation();
        let member = layout::member(&generation, key);
        let indexes = layout::distinct(&record.indexes);

        // 1. Index entries first, so the record is findable from the moment it is live.
        if ttl > 0 {
            let adds = indexes.iter().map(|index| {
                // One second of margin: this set's TTL starts a moment before the record's.
                self.zset_add(
                    self.keys.index(index),
                    &member,
                    record.expires_at,
                    ttl + 1,
                    now,
                )
            });
            try_join_all(adds).await.map_err(from_redis)?;
        }

        // 2. The record itself, atomically.
        let mut call = scripts::WRITE.key(self.keys.record(key));
        call.arg(match mode {
            WriteMode::Put => "put",
            WriteMode::New => "new",
            WriteMode::Replace => "replace",
            WriteMode::ReplaceIf(_) => "replace_if",
        })
        .arg(now)
        .arg(ttl)
        .arg(record.expires_at)
        .arg(record.created_at)
        .arg(record.updated_at)
        .arg(&generation)
        .arg(layout::encode_indexes(&record.indexes))
        .arg(&record.value);
        if let WriteMode::ReplaceIf(expected) = mode {
            call.arg(expected);
        }
        let reply = self.eval(&call).await.map_err(from_redis)?;
        let [inserted, old_generation, old_indexes] = fields(&reply)?;
        if layout::int(inserted).map_err(corrupt)? == 0 {
            self.remove_members(&indexes, &member).await;
            return Ok(false);
        }

        // 3. What the replaced record left behind, and the sweep's candidate entry.
        self.forget_entries(key, old_generation, old_indexes).await;
        if ttl > 0 {
            self.add_sweep_candidate(key, record.expires_at, now).await;
        }
        Ok(true)
    }

    /// Records `key` in the sweep's expiry set; best effort, as Redis's own TTL expires the
    /// record anyway.
    async fn add_sweep_candidate(&self, key: &str, expires_at: UnixTime, now: UnixTime) {
        let trim = now.saturating_sub(crate::sweep::SWEEP_GRACE);
        let added = self
            .zset_add(self.keys.expiry(), key.as_bytes(), expires_at, 0, trim)
            .await;
        if let Err(error) = added {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "recording a session expiry in Redis failed; Redis's own TTL still expires it"
            );
        }
    }

    /// The read of a record's value and expiry.
    fn read_command(&self, key: &str) -> Cmd {
        cmd("HMGET")
            .arg(self.keys.record(key))
            .arg(&["f", "exp", "v"])
            .clone()
    }

    /// The record under `key` as Redis holds it now, over the main connection.
    async fn read_record(
        &self,
        key: &str,
        now: UnixTime,
    ) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        let reply = self
            .query(&self.read_command(key))
            .await
            .map_err(from_redis)?;
        record_of(&reply, now)
    }

    /// Marks `key` as written by this store while the guard lives (client cache only).
    fn writing<'a>(&'a self, key: &'a str) -> Option<crate::client_cache::Writing<'a>> {
        self.cache.as_ref().map(|cache| cache.writing(key))
    }

    /// Removes the record under `key`; its value (when taken) if it was live, and whether it
    /// was live.
    async fn remove(
        &self,
        key: &str,
        how: Removal<'_>,
    ) -> Result<(bool, Option<Vec<u8>>), StoreError> {
        let _writing = self.writing(key);
        let now = self.clock.now();
        let take = how == Removal::Take;
        let mut call = scripts::REMOVE.key(self.keys.record(key));
        match how {
            Removal::Take => call.arg("take"),
            Removal::Delete => call.arg("delete"),
            Removal::DeleteIf(expected) => call.arg("delete_if").arg(expected),
        };
        let reply = self.eval(&call).await.map_err(from_redis)?;
        if reply == Value::Nil {
            return Ok((false, None));
        }
        let [format, exp, generation, indexes, value] = fields(&reply)?;
        layout::check_format(format).map_err(corrupt)?;
        let live = layout::seconds(exp).map_err(corrupt)? > now;
        self.forget_entries(key, generation, indexes).await;
        if !(live && take) {
            return Ok((live, None));
        }
        let value = layout::required(value).map_err(corrupt)?.to_vec();
        Ok((true, Some(value)))
    }

    /// The live records carrying `index`, checked one by one against the record itself.
    async fn carriers(&self, index: &str) -> Result<Vec<RecordInfo>, StoreError> {
        let now = self.clock.now();
        let listed = cmd("ZRANGEBYSCORE")
            .arg(self.keys.index(index))
            .arg(format!("({now}"))
            .arg("+inf")
            .clone();
        let reply = self.query(&listed).await.map_err(from_redis)?;
        let mut seen = HashSet::new();
        let mut entries = Vec::new();
        for member in layout::array(&reply).map_err(corrupt)? {
            let member = layout::required(member).map_err(corrupt)?;
            let (generation, key) = layout::split_member(member).map_err(corrupt)?;
            if seen.insert(key) {
                entries.push((generation.to_owned(), key.to_owned()));
            }
        }
        let checked: Vec<Option<RecordInfo>> = stream::iter(entries)
            .map(
                |(generation, key)| async move { self.check_carrier(&key, &generation, now).await },
            )
            .buffered(LOOKUPS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(checked.into_iter().flatten().collect())
    }

    /// The record under `key` when it is live and still of `generation`.
    async fn check_carrier(
        &self,
        key: &str,
        generation: &str,
        now: UnixTime,
    ) -> Result<Option<RecordInfo>, StoreError> {
        let read = cmd("HMGET")
            .arg(self.keys.record(key))
            .arg(&["f", "exp", "c", "u", "g"])
            .clone();
        let reply = self.query(&read).await.map_err(from_redis)?;
        let [format, exp, created, updated, current] = fields(&reply)?;
        if *format == Value::Nil && *current == Value::Nil {
            return Ok(None);
        }
        layout::check_format(format).map_err(corrupt)?;
        let expires_at = layout::seconds(exp).map_err(corrupt)?;
        if layout::required(current).map_err(corrupt)? != generation.as_bytes() || expires_at <= now
        {
            return Ok(None);
        }
        Ok(Some(RecordInfo {
            key: key.to_owned(),
            created_at: layout::seconds(created).map_err(corrupt)?,
            updated_at: layout::seconds(updated).map_err(corrupt)?,
            expires_at,
        }))
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn put(&self, key: &str, record: Record) -> Result<(), StoreError> {
        self.write(key, record, WriteMode::Put).await.map(drop)
    }

    async fn put_new(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.write(key, record, WriteMode::New).await
    }

    async fn replace(&self, key: &str, record: Record) -> Result<bool, StoreError> {
        self.write(key, record, WriteMode::Replace).await
    }

    async fn replace_if(
        &self,
        key: &str,
        expected: &[u8],
        record: Record,
    ) -> Result<bool, StoreError> {
        self.write(key, record, WriteMode::ReplaceIf(expected))
            .await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_expiring(key).await?.map(|(value, _)| value))
    }

    async fn get_expiring(&self, key: &str) -> Result<Option<(Vec<u8>, UnixTime)>, StoreError> {
        let now = self.clock.now();
        let Some(cache) = &self.cache else {
            return self.read_record(key, now).await;
        };
        let ticket = match cache.lookup(key, now) {
            Lookup::Hit(value, expires_at) => return Ok(Some((value, expires_at))),
            Lookup::Bypass => return self.read_record(key, now).await,
            Lookup::Track(ticket) => ticket,
        };
        let read = self.read_command(key);
        let mut conn = ticket.conn.clone();
        // A failed tracked read goes to the main connection (which reconnects), uncached.
        let Ok(reply) = read.query_async(&mut conn).await else {
            return self.read_record(key, now).await;
        };
        let found = record_of(&reply, now)?;
        if let Some((value, expires_at)) = &found {
            cache.insert(&ticket, key, value, *expires_at);
        }
        Ok(found)
    }

    async fn get_current(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let now = self.clock.now();
        Ok(self.read_record(key, now).await?.map(|(value, _)| value))
    }

    async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.remove(key, Removal::Take).await?.1)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.remove(key, Removal::Delete).await?.0)
    }

    async fn delete_if(&self, key: &str, expected: &[u8]) -> Result<bool, StoreError> {
        Ok(self.remove(key, Removal::DeleteIf(expected)).await?.0)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query(&cmd("PING")).await.map_err(from_redis)?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn indexes(&self) -> Option<&dyn Indexes> {
        Some(self)
    }

    fn sweeper(&self) -> Option<&dyn Sweep> {
        Some(self)
    }

    fn counter(&self) -> Option<&dyn Count> {
        Some(self)
    }

    fn rate_limits(&self) -> Option<&dyn RateLimits> {
        Some(self)
    }
}

#[async_trait]
impl Indexes for RedisStore {
    async fn keys_by_index(&self, index: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .carriers(index)
            .await?
            .into_iter()
            .map(|info| info.key)
            .collect())
    }

    async fn list_by_index(&self, index: &str) -> Result<Vec<RecordInfo>, StoreError> {
        self.carriers(index).await
    }
}

#[async_trait]
impl Sweep for RedisStore {
    async fn sweep_expired(&self) -> Result<u64, StoreError> {
        self.sweep(self.clock.now()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_zero_for_expired_records_and_capped_for_far_ones() {
        assert_eq!(ttl(100, 100), 0);
        assert_eq!(ttl(99, 100), 0);
        assert_eq!(ttl(101, 100), 1);
        assert_eq!(ttl(u64::MAX, 0), MAX_TTL);
    }
}
