//! [`RateLimits`] on PostgreSQL: one sliding window per key, shared by every Ward instance,
//! in one statement (`Sql::rate_hit`: `INSERT … ON CONFLICT … DO UPDATE … RETURNING`).

use async_trait::async_trait;
use ward_store::StoreError;
use ward_store::rate::{RateDecision, RateLimits, RateRule, SUB_WINDOWS, SlidingWindow};

use crate::PostgresStore;
use crate::error::{unavailable, undecodable};

/// Bigint parameters: times in milliseconds stay far below `i64::MAX` for millennia.
fn bigint(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[async_trait]
impl RateLimits for PostgresStore {
    async fn hit(
        &self,
        key: &str,
        rule: RateRule,
        now_ms: u64,
    ) -> Result<RateDecision, StoreError> {
        let now = bigint(rule.sub_window(now_ms));
        let limit = i64::from(rule.limit);
        let reach = bigint(SUB_WINDOWS);
        // Swept once the newest sub-window no longer counts (one sub-window of margin).
        let expires = bigint(now_ms.saturating_add((SUB_WINDOWS + 2) * rule.sub_window_ms()));
        let row = self
            .bounded(async {
                let client = self.client().await?;
                let statement = client
                    .prepare_cached(&self.sql.rate_hit)
                    .await
                    .map_err(unavailable)?;
                client
                    .query_one(
                        &statement,
                        &[&key.as_bytes(), &now, &limit, &reach, &expires],
                    )
                    .await
                    .map_err(unavailable)
            })
            .await?;
        let allowed: bool = row.try_get(0).map_err(undecodable)?;
        if allowed {
            return Ok(RateDecision::Allowed);
        }
        let sub_windows: Vec<i64> = row.try_get(1).map_err(undecodable)?;
        let counts: Vec<i32> = row.try_get(2).map_err(undecodable)?;
        let pairs: Vec<(u64, u32)> = sub_windows
            .iter()
            .zip(&counts)
            .map(|(&s, &c)| (u64::try_from(s).unwrap_or(0), u32::try_from(c).unwrap_or(0)))
            .collect();
        let window = SlidingWindow::from_pairs(pairs);
        Ok(RateDecision::Limited {
            retry_after_ms: window.retry_after_ms(rule, now_ms),
        })
    }
}
