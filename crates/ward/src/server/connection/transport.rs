//! The byte stream under hyper: the accepted socket, plain or inside TLS, together with its
//! `max_connections` permit; and the TLS handshake, held to the connection's head deadline.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, watch};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;

use super::signalled;

/// TLS termination as the connections see it: the acceptor and the HSTS value.
#[derive(Clone)]
pub(in crate::server) struct TlsLayer {
    pub(in crate::server) acceptor: tokio_rustls::TlsAcceptor,
    pub(in crate::server) hsts: axum::http::HeaderValue,
}

impl From<&crate::tls::Termination> for TlsLayer {
    fn from(termination: &crate::tls::Termination) -> Self {
        Self {
            acceptor: termination.acceptor(),
            hsts: termination.hsts().clone(),
        }
    }
}

/// The socket, plain or inside TLS.
pub(super) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// Runs the TLS handshake on `stream` until `deadline` (the head deadline: the handshake is
/// part of the time a client has to send its first request) or until Ward stops. `None`: the
/// connection is dropped (a failed handshake is the client's fault, logged at debug).
pub(super) async fn handshake(
    tls: &TlsLayer,
    stream: TcpStream,
    deadline: Instant,
    closing: &mut watch::Receiver<bool>,
) -> Option<Transport> {
    tokio::select! {
        done = tokio::time::timeout_at(deadline, tls.acceptor.accept(stream)) => match done {
            Ok(Ok(stream)) => Some(Transport::Tls(Box::new(stream))),
            Ok(Err(err)) => {
                tracing::debug!(
                    event = "tls_handshake_failed",
                    error = %err,
                    "TLS handshake failed"
                );
                None
            }
            Err(_) => {
                tracing::debug!(
                    event = "connection_closed",
                    reason = "header_read_timeout",
                    "connection closed by Ward"
                );
                None
            }
        },
        () = signalled(closing) => None,
    }
}

/// The socket together with its `max_connections` permit: the permit returns when the socket
/// closes, also after an upgrade has moved it out of hyper.
pub(in crate::server) struct Permitted {
    pub(super) stream: Transport,
    pub(super) _permit: OwnedSemaphorePermit,
}

/// `$call` on the plain or the TLS stream of a [`Permitted`].
macro_rules! on_stream {
    ($self:ident, $stream:ident => $call:expr) => {
        match &mut $self.get_mut().stream {
            Transport::Plain($stream) => {
                let $stream = Pin::new($stream);
                $call
            }
            Transport::Tls($stream) => {
                let $stream = Pin::new($stream.as_mut());
                $call
            }
        }
    };
}

impl AsyncRead for Permitted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        on_stream!(self, s => s.poll_read(cx, buf))
    }
}

impl AsyncWrite for Permitted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        on_stream!(self, s => s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        on_stream!(self, s => s.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Transport::Plain(stream) => stream.is_write_vectored(),
            Transport::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        on_stream!(self, s => s.poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        on_stream!(self, s => s.poll_shutdown(cx))
    }
}
