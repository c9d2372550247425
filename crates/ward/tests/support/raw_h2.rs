//! Raw HTTP/2 and socket helpers for the connection tests: a client that speaks the preface
//! and one request by hand, and a reader that waits for the peer to close.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
pub const H2_SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];

/// Reads (and discards) until the peer closes; the time that took, or `None` past `deadline`.
pub async fn closed_by_peer(
    mut stream: TcpStream,
    since: Instant,
    deadline: Instant,
) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await;
        match read {
            Err(_) => return None,
            // EOF, or a reset: closed either way.
            Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A `GET /bff/user` HTTP/2 HEADERS frame on stream 1 (HPACK: static-table `:method GET` and
/// `:scheme http`, literal `:path` and `:authority`), ending the stream.
pub fn h2_get_user() -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, 9];
    block.extend_from_slice(b"/bff/user");
    block.extend_from_slice(&[0x01, 9]);
    block.extend_from_slice(b"localhost");
    let len = u32::try_from(block.len()).expect("small");
    let mut frame = len.to_be_bytes()[1..].to_vec();
    // HEADERS, END_STREAM | END_HEADERS, stream 1.
    frame.extend_from_slice(&[0x01, 0x05, 0, 0, 0, 1]);
    frame.extend_from_slice(&block);
    frame
}

/// A raw HTTP/2 client that asks once and then answers nothing (no SETTINGS ack, no PING ack).
pub async fn raw_h2_after_one_request(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut hello = H2_PREFACE.to_vec();
    hello.extend_from_slice(H2_SETTINGS);
    hello.extend_from_slice(&h2_get_user());
    stream
        .write_all(&hello)
        .await
        .expect("send preface and request");
    stream
}
