use super::*;

const MINUTE: u64 = 60_000;

fn rule(limit: u32) -> RateRule {
    RateRule {
        limit,
        window_ms: MINUTE,
    }
}

/// Hits at `times` (ascending) on one key; the times that were accepted.
fn accepted(rule: RateRule, times: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let limits = LocalRateLimits::new(16);
    times
        .into_iter()
        .filter(|&t| limits.hit_now(b"k", rule, t) == RateDecision::Allowed)
        .collect()
}

/// The most accepted hits in any interval `(t - W, t]`.
fn busiest_window(accepted: &[u64], window_ms: u64) -> usize {
    accepted
        .iter()
        .enumerate()
        .map(|(end, &t)| {
            accepted[..=end]
                .iter()
                .filter(|&&s| s + window_ms > t)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn l_at_the_end_of_a_window_and_l_at_the_start_of_the_next_accept_at_most_l_in_any_w() {
    let l = 20;
    let start = 1_700_000_000_000 / MINUTE * MINUTE; // a window edge, as a fixed window has
    let end_of_k = (0..l).map(|i| start + MINUTE - 100 + u64::from(i));
    let start_of_next = (0..l).map(|i| start + MINUTE + 50 + u64::from(i));
    let ok = accepted(rule(l), end_of_k.chain(start_of_next));
    assert_eq!(
        ok.len(),
        l as usize,
        "the second burst is refused whole: {ok:?}"
    );
    assert!(ok.iter().all(|&t| t < start + MINUTE), "{ok:?}");
}

#[test]
fn no_interval_of_one_window_ever_holds_more_than_the_limit() {
    // Bursts, steady traffic and pauses over ten windows, at every offset of the sub-windows.
    for l in [1, 3, 20, 600] {
        let mut times = Vec::new();
        let mut t = 1_700_000_000_123;
        for step in 0..4000_u64 {
            t += match step % 7 {
                0 => 1,
                1 | 2 => 137,
                3 => 2_011,
                4 => 0,
                5 => 59_999 / u64::from(l).min(60),
                _ => 13,
            };
            times.push(t);
        }
        let ok = accepted(rule(l), times.clone());
        assert!(busiest_window(&ok, MINUTE) <= l as usize, "limit {l}");
        // And it is a limit, not a wall: over many windows, many budgets.
        assert!(ok.len() > l as usize, "limit {l}: {} accepted", ok.len());
    }
}

#[test]
fn retry_after_is_when_the_oldest_counted_hits_leave_the_window() {
    let rule = rule(3);
    let g = rule.sub_window_ms();
    assert_eq!(g, 2_000);
    let t0 = 1_700_000_000_000 / g * g;
    let limits = LocalRateLimits::new(16);
    for i in 0..3 {
        assert_eq!(limits.hit_now(b"k", rule, t0 + i), RateDecision::Allowed);
    }
    let now = t0 + 5_000;
    let RateDecision::Limited { retry_after_ms } = limits.hit_now(b"k", rule, now) else {
        panic!("the fourth hit in a minute is refused");
    };
    // The hits of sub-window t0/g leave when sub-window t0/g + 31 begins: 62 s after t0.
    assert_eq!(retry_after_ms, t0 + 31 * g - now);
    assert!(
        retry_after_ms >= MINUTE - 5_000,
        "no earlier than a full minute after them"
    );
    let before = limits.hit_now(b"k", rule, now + retry_after_ms - 1);
    assert!(matches!(
        before,
        RateDecision::Limited { retry_after_ms: 1 }
    ));
    assert_eq!(
        limits.hit_now(b"k", rule, now + retry_after_ms),
        RateDecision::Allowed
    );
}

#[test]
fn retry_after_waits_only_for_as_many_old_hits_as_must_leave() {
    let rule = rule(4);
    let g = rule.sub_window_ms();
    let t0 = 1_700_000_000_000 / g * g;
    let limits = LocalRateLimits::new(16);
    for at in [t0, t0 + 10 * g, t0 + 20 * g, t0 + 20 * g] {
        assert_eq!(limits.hit_now(b"k", rule, at), RateDecision::Allowed);
    }
    let now = t0 + 25 * g;
    // One hit must leave: the one of sub-window t0/g, at its 31st successor.
    assert_eq!(
        limits.hit_now(b"k", rule, now),
        RateDecision::Limited {
            retry_after_ms: t0 + 31 * g - now
        }
    );
}

#[test]
fn keys_are_independent() {
    let limits = LocalRateLimits::new(16);
    let rule = rule(1);
    assert_eq!(limits.hit_now(b"a", rule, 1_000), RateDecision::Allowed);
    assert!(matches!(
        limits.hit_now(b"a", rule, 1_001),
        RateDecision::Limited { .. }
    ));
    assert_eq!(limits.hit_now(b"b", rule, 1_002), RateDecision::Allowed);
}

#[test]
fn rotating_keys_never_hold_more_than_the_key_cap() {
    let limits = LocalRateLimits::new(64);
    let rule = rule(5);
    for i in 0_u32..20_000 {
        limits.hit_now(&i.to_be_bytes(), rule, 1_700_000_000_000 + u64::from(i));
    }
    assert!(limits.len() <= 64, "{} keys held", limits.len());
}

#[test]
fn a_full_shard_drops_its_idle_keys_first_then_the_stalest() {
    let rule = rule(5);
    let entry = |newest: u64| Entry {
        window: SlidingWindow::new(newest),
        idle_at: rule.idle_at(newest),
    };
    let now = 100 * rule.sub_window_ms();
    let mut shard = Shard::new();
    shard.insert(b"idle-1".as_slice().into(), entry(10));
    shard.insert(b"idle-2".as_slice().into(), entry(60));
    shard.insert(b"live".as_slice().into(), entry(99));
    make_room(&mut shard, now, 3);
    let kept: Vec<&[u8]> = shard.keys().map(|k| &**k).collect();
    assert_eq!(kept, [b"live".as_slice()], "idle keys go, a live one stays");

    shard.insert(b"older".as_slice().into(), entry(80));
    shard.insert(b"newer".as_slice().into(), entry(100));
    make_room(&mut shard, now, 3);
    assert_eq!(shard.len(), 2);
    assert!(
        !shard.contains_key(b"older".as_slice()),
        "the stalest live key goes"
    );
}

#[test]
fn pairs_round_trip_through_a_store_encoding() {
    let rule = rule(10);
    let mut window = SlidingWindow::new(rule.sub_window(0));
    for t in [0, 1, 2_500, 9_000, 62_000] {
        window.hit(rule, t);
    }
    let pairs: Vec<_> = window.pairs().collect();
    assert_eq!(SlidingWindow::from_pairs(pairs.clone()), window);
    assert_eq!(
        pairs.iter().map(|p| p.1).sum::<u32>(),
        3,
        "the hits at 0 and 1 left"
    );
}
