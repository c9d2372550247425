//! [`RateLimits`] on Redis: one sliding window per key, shared by every Ward instance, in one
//! round trip (the [`RATE_HIT`](crate::scripts::RATE_HIT) script on the key's one HASH, so
//! one cluster slot and no hash tag).

use async_trait::async_trait;
use ward_store::StoreError;
use ward_store::rate::{RateDecision, RateLimits, RateRule, SUB_WINDOWS, SlidingWindow};

use crate::RedisStore;
use crate::error::{corrupt, from_redis};
use crate::layout::{self, FormatError};
use crate::scripts;

#[async_trait]
impl RateLimits for RedisStore {
    async fn hit(
        &self,
        key: &str,
        rule: RateRule,
        now_ms: u64,
    ) -> Result<RateDecision, StoreError> {
        let now = rule.sub_window(now_ms);
        // Until the newest sub-window no longer counts (a sub-window of margin for clocks).
        let ttl_ms = (SUB_WINDOWS + 2) * rule.sub_window_ms();
        let mut call = scripts::RATE_HIT.key(self.keys.rate(key));
        call.arg(now).arg(SUB_WINDOWS).arg(rule.limit).arg(ttl_ms);
        let reply = self.eval(&call).await.map_err(from_redis)?;
        let (accepted, window) = decode(&reply).map_err(corrupt)?;
        Ok(if accepted {
            RateDecision::Allowed
        } else {
            RateDecision::Limited {
                retry_after_ms: window.retry_after_ms(rule, now_ms),
            }
        })
    }
}

/// `{accepted, sub-window, count, …}` as the script replies.
fn decode(reply: &redis::Value) -> Result<(bool, SlidingWindow), FormatError> {
    let [accepted, pairs @ ..] = layout::array(reply)? else {
        return Err(FormatError::UnexpectedReply);
    };
    let accepted = layout::int(accepted)? == 1;
    let pairs = pairs
        .chunks(2)
        .map(|pair| match pair {
            [sub_window, count] => Ok((
                layout::seconds(sub_window)?,
                u32::try_from(layout::seconds(count)?).map_err(|_| FormatError::BadNumber)?,
            )),
            _ => Err(FormatError::UnexpectedReply),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((accepted, SlidingWindow::from_pairs(pairs)))
}
