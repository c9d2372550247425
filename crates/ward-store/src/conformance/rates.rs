//! Cases of the shared rate limit ([`RateLimits`]): the sliding-window property of
//! SECURITY-CASES RL-02 and atomic counting, on whatever the backend stores.

use std::sync::Arc;

use crate::rate::{RateDecision, RateLimits, RateRule};
use crate::{Clock, ManualClock, SessionStore};

const MINUTE_MS: u64 = 60_000;

fn limits<S: SessionStore>(store: &S) -> &dyn RateLimits {
    store
        .rate_limits()
        .expect("every session-keeping backend shares rate limits")
}

async fn hit(limits: &dyn RateLimits, key: &str, rule: RateRule, now: u64) -> RateDecision {
    limits.hit(key, rule, now).await.expect("rate limit hit")
}

/// `L` hits just before a window edge and `L` just after: the second burst is refused whole
/// (at most `L` in any window), and a hit is accepted again once the first burst has left.
pub async fn rate_limit_accepts_at_most_the_limit_in_any_window<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let limits = limits(&*store);
    let rule = RateRule {
        limit: 5,
        window_ms: MINUTE_MS,
    };
    // To the next minute, less 100 ms: the end of a fixed window.
    clock.advance_millis(MINUTE_MS - clock.now_millis() % MINUTE_MS - 100);
    for _ in 0..5 {
        assert_eq!(
            hit(limits, "q:a", rule, clock.now_millis()).await,
            RateDecision::Allowed
        );
    }
    clock.advance_millis(200);
    let mut retry = 0;
    for _ in 0..5 {
        match hit(limits, "q:a", rule, clock.now_millis()).await {
            RateDecision::Limited { retry_after_ms } => retry = retry_after_ms,
            RateDecision::Allowed => panic!("a second burst across the window edge"),
        }
    }
    assert!(
        retry >= MINUTE_MS - 200,
        "refused until the first burst left: {retry}"
    );
    clock.advance_millis(retry - 1);
    assert!(matches!(
        hit(limits, "q:a", rule, clock.now_millis()).await,
        RateDecision::Limited { .. }
    ));
    clock.advance_millis(1);
    assert_eq!(
        hit(limits, "q:a", rule, clock.now_millis()).await,
        RateDecision::Allowed
    );
}

/// One key's budget is not another's; `Retry-After` is exact, then the key is open again.
pub async fn rate_limit_keys_are_independent_and_reopen_after_retry_after<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let limits = limits(&*store);
    let rule = RateRule {
        limit: 2,
        window_ms: 1_000,
    };
    let now = clock.now_millis();
    assert_eq!(hit(limits, "q:x", rule, now).await, RateDecision::Allowed);
    assert_eq!(hit(limits, "q:x", rule, now).await, RateDecision::Allowed);
    let RateDecision::Limited { retry_after_ms } = hit(limits, "q:x", rule, now).await else {
        panic!("third hit in a second accepted");
    };
    // A full second after the hits, at most the sub-window they fell in later.
    let most = (crate::rate::SUB_WINDOWS + 1) * rule.sub_window_ms();
    assert!((1_000..=most).contains(&retry_after_ms), "{retry_after_ms}");
    assert_eq!(hit(limits, "q:y", rule, now).await, RateDecision::Allowed);
    let later = now + retry_after_ms;
    assert_eq!(hit(limits, "q:x", rule, later).await, RateDecision::Allowed);
}

/// Concurrent hits on one key are each counted once: exactly the limit is accepted.
pub async fn rate_limit_counts_every_concurrent_hit_once<S: SessionStore>(
    store: Arc<S>,
    clock: Arc<ManualClock>,
) {
    let rule = RateRule {
        limit: 10,
        window_ms: MINUTE_MS,
    };
    let now = clock.now_millis();
    let tasks: Vec<_> = (0..25)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { hit(limits(&*store), "q:c", rule, now).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        if task.await.expect("task") == RateDecision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10);
}
