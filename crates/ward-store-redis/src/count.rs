//! [`Count`]: the live records under a key prefix, for `ward_sessions_active`.
//!
//! Every record's key is a member of the sweep's expiry set `P x` (one key, so one slot in a
//! cluster too), kept there until an hour past its expiry. A count walks that set with
//! `ZSCAN … MATCH <prefix>*` and checks each member against its record (as index readers do),
//! so a member left by a deleted or rewritten record is never counted and a score made stale
//! by racing writers never hides a live one. Cost: one `HMGET` per record written under the
//! prefix in the last expiry-plus-an-hour, so callers run it rarely. A record whose expiry
//! entry could not be written (a failed best-effort step of a write) is not counted.

use std::collections::HashSet;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use redis::{Value, cmd};
use ward_store::{Count, StoreError, UnixTime};

use crate::RedisStore;
use crate::error::{corrupt, from_redis};
use crate::layout::{self, FormatError};
use crate::store::fields;

/// Members asked for per `ZSCAN` step.
const SCAN_COUNT: usize = 1000;
/// Record checks kept in flight at once.
const CHECKS_IN_FLIGHT: usize = 32;

#[async_trait]
impl Count for RedisStore {
    async fn count_live(&self, prefix: &str) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let keys = self.expiry_members(prefix).await?;
        let live: Vec<bool> = stream::iter(keys)
            .map(|key| async move { self.is_live(&key, now).await })
            .buffer_unordered(CHECKS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(live.into_iter().filter(|live| *live).count() as u64)
    }
}

impl RedisStore {
    /// The distinct members of the expiry set that start with `prefix`.
    async fn expiry_members(&self, prefix: &str) -> Result<HashSet<String>, StoreError> {
        let pattern = format!("{}*", glob_escape(prefix));
        let mut members = HashSet::new();
        let mut cursor = 0_u64;
        loop {
            let step = cmd("ZSCAN")
                .arg(self.keys.expiry())
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(SCAN_COUNT)
                .clone();
            let reply = self.query(&step).await.map_err(from_redis)?;
            let [next, items] = fields(&reply)?;
            // Members and scores alternate; the scores are not needed (see the module docs).
            for member in layout::array(items).map_err(corrupt)?.iter().step_by(2) {
                let member = layout::required(member).map_err(corrupt)?;
                let key =
                    std::str::from_utf8(member).map_err(|_| corrupt(FormatError::BadIndex))?;
                members.insert(key.to_owned());
            }
            cursor = cursor_of(next)?;
            if cursor == 0 {
                return Ok(members);
            }
        }
    }

    /// Whether the record under `key` is live at `now`.
    async fn is_live(&self, key: &str, now: UnixTime) -> Result<bool, StoreError> {
        let read = cmd("HMGET")
            .arg(self.keys.record(key))
            .arg(&["f", "exp"])
            .clone();
        let reply = self.query(&read).await.map_err(from_redis)?;
        let [format, exp] = fields(&reply)?;
        if *format == Value::Nil {
            return Ok(false);
        }
        layout::check_format(format).map_err(corrupt)?;
        Ok(layout::seconds(exp).map_err(corrupt)? > now)
    }
}

/// The `ZSCAN` cursor of a reply (a decimal string).
fn cursor_of(value: &Value) -> Result<u64, StoreError> {
    std::str::from_utf8(layout::required(value).map_err(corrupt)?)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(corrupt(FormatError::UnexpectedReply))
}

/// `text` as a Redis glob pattern that matches only itself: `*?[]\` escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(glob_escape("s:"), "s:");
        assert_eq!(glob_escape("p*[x]?\\:"), "p\\*\\[x\\]\\?\\\\:");
    }
}
