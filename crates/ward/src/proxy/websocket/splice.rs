//! The byte copy between an upgraded browser connection and its upstream, frame-aware only so
//! far as to close cleanly when the session ends.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Check, Liveness};

/// The clocks of an open socket: [`SESSION_CHECK_EVERY`](super::SESSION_CHECK_EVERY) and
/// [`CLOSE_GRACE`](super::CLOSE_GRACE) in service.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub(super) every: Duration,
    pub(super) grace: Duration,
}
/// Bytes copied per read.
const BUFFER: usize = 16 * 1024;
/// Close status "policy violation" (RFC 6455 §7.4.1), big-endian.
const CLOSE_POLICY: [u8; 2] = 1008u16.to_be_bytes();
pub(super) const CLOSE_REASON: &[u8] = b"session ended";

/// Copies both ways; returns why it stopped.
pub(super) async fn splice<B, U, L>(
    browser: B,
    upstream: U,
    liveness: Option<L>,
    timing: Timing,
) -> &'static str
where
    B: AsyncRead + AsyncWrite + Send,
    U: AsyncRead + AsyncWrite + Send,
    L: Liveness,
{
    let (browser_in, browser_out) = tokio::io::split(browser);
    let (upstream_in, upstream_out) = tokio::io::split(upstream);
    let (end, ended) = watch::channel(false);
    let pumps = async {
        tokio::join!(
            pump(
                upstream_in,
                browser_out,
                Side::Browser,
                ended.clone(),
                timing.grace
            ),
            pump(
                browser_in,
                upstream_out,
                Side::Upstream,
                ended.clone(),
                timing.grace
            ),
        )
    };
    let Some(mut liveness) = liveness else {
        pumps.await;
        return "closed";
    };
    tokio::pin!(pumps);
    let watch_session = async {
        let mut ticks = tokio::time::interval_at(Instant::now() + timing.every, timing.every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Check::Ended(reason) = liveness.check().await {
                return reason;
            }
        }
    };
    tokio::select! {
        _ = &mut pumps => "closed",
        reason = watch_session => {
            // Receivers are held by the pumps until they return.
            let _ = end.send(true);
            pumps.await;
            reason
        }
    }
}

/// Which way a pump writes, for the shape of Ward's close frame.
#[derive(Debug, Clone, Copy)]
pub(super) enum Side {
    /// Server-to-client frames are not masked.
    Browser,
    /// Client-to-server frames must be masked (RFC 6455 §5.3).
    Upstream,
}

/// A close frame (1008, "session ended") for `side`.
pub(super) fn close_frame(side: Side) -> Vec<u8> {
    let mut payload = CLOSE_POLICY.to_vec();
    payload.extend_from_slice(CLOSE_REASON);
    // Always under 126 bytes: the length fits the first length field.
    let len = payload.len() as u8;
    match side {
        Side::Browser => [&[0x88, len][..], &payload].concat(),
        Side::Upstream => {
            let mask = crate::random::bytes::<4>();
            let mut frame = vec![0x88, 0x80 | len];
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
            frame
        }
    }
}

/// Copies `from` to `to` until `from` ends or a write fails; once `ended` changes, writes a
/// close frame at the next frame boundary (waiting at most `grace` for one) and stops.
async fn pump<R, W>(
    mut from: R,
    mut to: W,
    side: Side,
    mut ended: watch::Receiver<bool>,
    grace: Duration,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut frames = FrameTracker::default();
    let mut buf = vec![0u8; BUFFER];
    let mut closing_by: Option<Instant> = None;
    loop {
        if closing_by.is_some() && frames.at_boundary() {
            let _ = to.write_all(&close_frame(side)).await;
            let _ = to.shutdown().await;
            return;
        }
        let cut_off = closing_by.unwrap_or_else(Instant::now);
        tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    let _ = to.shutdown().await;
                    return;
                }
                Ok(n) => {
                    let chunk = &buf[..n];
                    if to.write_all(chunk).await.is_err() {
                        return;
                    }
                    frames.feed(chunk);
                }
            },
            // A closed channel also means "stop": the tunnel is going away.
            _ = ended.changed(), if closing_by.is_none() => {
                closing_by = Some(Instant::now() + grace);
            }
            () = tokio::time::sleep_until(cut_off), if closing_by.is_some() => return,
        }
    }
}

/// Follows WebSocket framing (RFC 6455 §5.2) over a byte stream, only far enough to know
/// whether the bytes seen so far end on a frame boundary. Control frames may be sent between
/// the fragments of a message, so a boundary is always a place for a close frame.
#[derive(Debug, Default)]
pub(super) struct FrameTracker {
    head: [u8; 14],
    /// Header bytes of the current frame seen so far.
    have: usize,
    /// Payload bytes of the current frame still to come.
    remaining: u64,
}

impl FrameTracker {
    pub(super) fn at_boundary(&self) -> bool {
        self.have == 0 && self.remaining == 0
    }

    pub(super) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.remaining -= take as u64;
                bytes = &bytes[take..];
                continue;
            }
            let take = (self.header_len() - self.have).min(bytes.len());
            self.head[self.have..self.have + take].copy_from_slice(&bytes[..take]);
            self.have += take;
            bytes = &bytes[take..];
            if self.have >= 2 && self.have == self.header_len() {
                self.remaining = self.payload_len();
                self.have = 0;
            }
        }
    }

    /// The header's full length as far as it is known (2 until the length byte is in).
    fn header_len(&self) -> usize {
        if self.have < 2 {
            return 2;
        }
        let b1 = self.head[1];
        let extended = match b1 & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask = if b1 & 0x80 != 0 { 4 } else { 0 };
        2 + extended + mask
    }

    fn payload_len(&self) -> u64 {
        match self.head[1] & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
            127 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&self.head[2..10]);
                u64::from_be_bytes(len)
            }
            short => u64::from(short),
        }
    }
}
