//! The deadlines of one connection, driven by request counts and instants (no sockets, no
//! sleeping).

use std::time::Duration;

use super::*;

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        max_connections: 10,
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(80),
        shutdown_timeout: Duration::from_secs(30),
    }
}

fn seen(started: u64, in_flight: u64) -> Snapshot {
    Snapshot { started, in_flight }
}

/// Runs the watch's timer until it asks for something other than waiting; returns that and
/// when it happened.
fn run_until_action(watch: &mut Watch, counts: Snapshot, mut now: Instant) -> (Step, Instant) {
    for _ in 0..1000 {
        match watch.check(counts, now) {
            Step::Wait(until) => {
                assert!(until > now, "the timer moves forward");
                now = until;
            }
            other => return (other, now),
        }
    }
    panic!("the watch never acted");
}

#[test]
fn a_connection_that_never_asks_is_dropped_at_the_head_deadline() {
    let accepted = Instant::now();
    let mut watch = Watch::new(limits(), accepted);
    let (step, at) = run_until_action(&mut watch, seen(0, 0), accepted);
    assert_eq!(step, Step::Drop(Reason::HeadTimeout));
    assert_eq!(at, accepted + Duration::from_secs(10));
}

#[test]
fn a_connection_that_asked_in_time_is_not_held_to_the_head_deadline() {
    let accepted = Instant::now();
    let mut watch = Watch::new(limits(), accepted);
    let step = watch.check(seen(1, 1), accepted + Duration::from_secs(10));
    assert!(matches!(step, Step::Wait(_)), "{step:?}");
    // A request still in flight keeps the connection however long it takes.
    let (step, _) = {
        let mut now = accepted + Duration::from_secs(10);
        let mut last = Step::Wait(now);
        for _ in 0..100 {
            last = watch.check(seen(1, 1), now);
            let Step::Wait(until) = last else { break };
            now = until;
        }
        (last, now)
    };
    assert!(matches!(step, Step::Wait(_)), "{step:?}");
}

#[test]
fn an_idle_connection_shuts_down_between_one_and_a_quarter_more_idle_timeouts() {
    let accepted = Instant::now();
    let idle = limits().idle_timeout;
    let mut watch = Watch::new(limits(), accepted);
    // The request ended just after this check saw it in flight: the worst case for counting.
    let last_seen = accepted + Duration::from_secs(1);
    assert!(matches!(watch.check(seen(1, 1), last_seen), Step::Wait(_)));
    let ended = last_seen + Duration::from_millis(1);
    let (step, at) = run_until_action(&mut watch, seen(1, 0), last_seen + limits().tick());
    assert!(matches!(step, Step::ShutDown(_)), "{step:?}");
    assert!(
        at - ended >= idle,
        "shut down {:?} after the end",
        at - ended
    );
    assert!(
        at - ended <= idle + idle / 4,
        "shut down {:?} after",
        at - ended
    );
}

#[test]
fn a_new_request_restarts_the_idle_count() {
    let start = Instant::now();
    let tick = limits().tick();
    let mut watch = Watch::new(limits(), start);
    let mut now = start;
    for round in 1..=20u64 {
        now += tick;
        // Every few ticks a quick request comes and goes between two checks.
        let started = round / 4 + 1;
        assert!(
            matches!(watch.check(seen(started, 0), now), Step::Wait(_)),
            "round {round}"
        );
    }
}

#[test]
fn after_an_idle_shutdown_the_socket_is_dropped_once_nothing_is_in_flight() {
    let start = Instant::now();
    let mut watch = Watch::new(limits(), start);
    let (step, at) = run_until_action(&mut watch, seen(1, 0), start);
    let Step::ShutDown(grace) = step else {
        panic!("{step:?}")
    };
    assert_eq!(grace, at + CLOSE_GRACE);
    // A request that raced the GOAWAY keeps it open; once it is done, it goes.
    assert!(matches!(watch.check(seen(2, 1), grace), Step::Wait(_)));
    let (step, _) = run_until_action(&mut watch, seen(2, 0), grace + CLOSE_GRACE);
    assert_eq!(step, Step::Drop(Reason::Idle));
}

#[test]
fn stopping_drops_connections_that_never_asked_at_once() {
    let start = Instant::now();
    let mut watch = Watch::new(limits(), start);
    assert_eq!(watch.stop(seen(0, 0), start), Step::Drop(Reason::Stopping));
}

#[test]
fn stopping_shuts_down_gracefully_then_drops_at_the_shutdown_timeout() {
    let start = Instant::now();
    let mut watch = Watch::new(limits(), start);
    let step = watch.stop(seen(3, 1), start);
    assert_eq!(step, Step::ShutDown(start + CLOSE_GRACE));
    let (step, at) = run_until_action(&mut watch, seen(3, 1), start + CLOSE_GRACE);
    assert_eq!(step, Step::Drop(Reason::ShutdownTimeout));
    assert_eq!(at, start + limits().shutdown_timeout);

    let mut watch = Watch::new(limits(), start);
    watch.stop(seen(3, 0), start);
    let (step, at) = run_until_action(&mut watch, seen(3, 0), start + CLOSE_GRACE);
    assert_eq!(step, Step::Drop(Reason::Stopping));
    assert_eq!(at, start + CLOSE_GRACE);
}
