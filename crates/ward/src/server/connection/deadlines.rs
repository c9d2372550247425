//! The deadlines of one connection (see the parent module): a pure state machine over its
//! request counts and the time, so its rules are tested without sockets or sleeping.

use tokio::time::Instant;

use super::{CLOSE_GRACE, ConnectionLimits, IDLE_TICKS, Snapshot};

/// Where a connection is in its life, as its task sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted; no request head complete yet.
    AwaitingHead,
    /// Serving; `quiet` checks in a row found nothing in flight and `started` unchanged.
    Serving { started: u64, quiet: u32 },
    /// Shut down gracefully: dropped once nothing is in flight after `grace_until`, and at
    /// `deadline` (when Ward stops) whatever is in flight.
    Closing {
        grace_until: Instant,
        deadline: Option<Instant>,
    },
}

/// What the task does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Check again then.
    Wait(Instant),
    /// Shut the connection down gracefully, check again then.
    ShutDown(Instant),
    /// Drop the socket.
    Drop(Reason),
}

/// Why Ward dropped a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    HeadTimeout,
    Idle,
    Stopping,
    ShutdownTimeout,
}

impl Reason {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::HeadTimeout => "header_read_timeout",
            Self::Idle => "idle_timeout",
            Self::Stopping => "shutdown",
            Self::ShutdownTimeout => "shutdown_timeout",
        }
    }
}

/// The deadlines of one connection.
#[derive(Debug)]
pub(super) struct Watch {
    limits: ConnectionLimits,
    head_deadline: Instant,
    phase: Phase,
}

impl Watch {
    pub(super) fn new(limits: ConnectionLimits, accepted_at: Instant) -> Self {
        Self {
            limits,
            head_deadline: accepted_at + limits.header_read_timeout,
            phase: Phase::AwaitingHead,
        }
    }

    pub(super) fn first_check(&self) -> Instant {
        let now = Instant::now();
        self.head_deadline.min(now + self.limits.tick())
    }

    /// The timer fired.
    pub(super) fn check(&mut self, seen: Snapshot, now: Instant) -> Step {
        let tick = self.limits.tick();
        match self.phase {
            Phase::AwaitingHead if seen.started > 0 => {
                self.phase = Phase::Serving {
                    started: seen.started,
                    quiet: 0,
                };
                Step::Wait(now + tick)
            }
            Phase::AwaitingHead if now >= self.head_deadline => Step::Drop(Reason::HeadTimeout),
            Phase::AwaitingHead => Step::Wait(self.head_deadline.min(now + tick)),
            Phase::Serving { started, quiet } => {
                if seen.started != started || seen.in_flight > 0 {
                    self.phase = Phase::Serving {
                        started: seen.started,
                        quiet: 0,
                    };
                    Step::Wait(now + tick)
                } else if quiet >= IDLE_TICKS {
                    self.phase = Phase::Closing {
                        grace_until: now + CLOSE_GRACE,
                        deadline: None,
                    };
                    Step::ShutDown(now + CLOSE_GRACE)
                } else {
                    self.phase = Phase::Serving {
                        started,
                        quiet: quiet + 1,
                    };
                    Step::Wait(now + tick)
                }
            }
            Phase::Closing {
                grace_until,
                deadline,
            } => {
                if deadline.is_some_and(|deadline| now >= deadline) {
                    Step::Drop(Reason::ShutdownTimeout)
                } else if seen.in_flight == 0 && now >= grace_until {
                    Step::Drop(if deadline.is_some() {
                        Reason::Stopping
                    } else {
                        Reason::Idle
                    })
                } else {
                    let next = grace_until.max(now + CLOSE_GRACE.min(tick));
                    Step::Wait(deadline.map_or(next, |deadline| next.min(deadline)))
                }
            }
        }
    }

    /// Ward is stopping: a connection that never asked has nothing to finish; the others shut
    /// down gracefully and get `shutdown_timeout`.
    pub(super) fn stop(&mut self, seen: Snapshot, now: Instant) -> Step {
        if seen.started == 0 {
            return Step::Drop(Reason::Stopping);
        }
        let deadline = now + self.limits.shutdown_timeout;
        let grace_until = (now + CLOSE_GRACE).min(deadline);
        self.phase = Phase::Closing {
            grace_until,
            deadline: Some(deadline),
        };
        Step::ShutDown(grace_until)
    }
}

#[cfg(test)]
mod tests;
