//! The router as one connection's hyper service, and the request counts the connection's
//! deadlines read (`Activity`): a request counts from the moment hyper hands it over until its
//! response body is sent or dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, header};
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};

/// Requests of one connection as counted by its service: `started` when hyper hands one over
/// (its head is complete), `finished` when its response body has been sent or dropped.
#[derive(Debug, Default)]
pub(super) struct Activity {
    started: AtomicU64,
    finished: AtomicU64,
}

/// [`Activity`] read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Snapshot {
    pub(super) started: u64,
    pub(super) in_flight: u64,
}

impl Activity {
    pub(super) fn snapshot(&self) -> Snapshot {
        // `finished` first: a request finishing between the two loads is then still in flight.
        let finished = self.finished.load(Ordering::Relaxed);
        let started = self.started.load(Ordering::Relaxed);
        Snapshot {
            started,
            in_flight: started.saturating_sub(finished),
        }
    }
}

/// The router as one connection's hyper service: each request gets the peer address and is
/// counted in [`Activity`] until its response body is done; on a TLS connection every response
/// gets `Strict-Transport-Security` (SPEC §2: Ward's own and proxied ones alike).
#[derive(Clone)]
pub(in crate::server) struct ConnectionService {
    pub(super) app: axum::Router,
    pub(super) peer: SocketAddr,
    pub(super) activity: Arc<Activity>,
    pub(super) hsts: Option<HeaderValue>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<CountedBody>;
    type Error = Infallible;
    type Future = Counted<axum::routing::future::RouteFuture<Infallible>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(self.peer));
        self.activity.started.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(self.activity.clone());
        // The router is always ready (axum), so it is called without `poll_ready`.
        let mut app = self.app.clone();
        Counted {
            inner: tower::Service::call(&mut app, req),
            in_flight: Some(in_flight),
            hsts: self.hsts.clone(),
        }
    }
}

/// One request in flight; counts it finished when dropped (with its response body, or with
/// the request when the client goes away first).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// The router's response future, handing the request's [`InFlight`] on to the body.
pub(in crate::server) struct Counted<F> {
    inner: F,
    in_flight: Option<InFlight>,
    hsts: Option<HeaderValue>,
}

impl<F> Future for Counted<F>
where
    F: Future<Output = Result<Response<Body>, Infallible>> + Unpin,
{
    type Output = Result<Response<CountedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut response = ready!(Pin::new(&mut this.inner).poll(cx))?;
        if let Some(hsts) = this.hsts.take() {
            // Replaces an upstream's own: the origin's policy is Ward's.
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts);
        }
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|body| CountedBody {
            body,
            _in_flight: in_flight,
        })))
    }
}

/// A response body that keeps its request counted in flight until it is sent or dropped.
pub(in crate::server) struct CountedBody {
    body: Body,
    _in_flight: Option<InFlight>,
}

impl hyper::body::Body for CountedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
