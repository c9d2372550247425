//! Size limits on requests (SPEC §2: 413 / 414 / 431; SECURITY-CASES P-09, D-02).
//!
//! Two rings. The outer one is the connection (`server.rs`): hyper reads a request head into
//! a buffer of at most [`HEAD_BUFFER_BYTES`] with at most [`MAX_HEADER_FIELDS`] fields (HTTP/1)
//! or a header list of at most [`MAX_HEADER_LIST_SIZE`] (HTTP/2), and answers `431` with an
//! empty body beyond, before a request exists. Inside it, [`check_head`] (the first check of
//! every request, `app.rs`) applies the limits Ward promises, with its JSON errors: a request
//! target over [`MAX_URI_BYTES`] is `414 uri_too_long`, header fields over
//! [`MAX_HEADER_BYTES`] in total are `431 headers_too_large`.
//!
//! Bodies are never buffered to be measured. A declared `Content-Length` over the limit is
//! `413 payload_too_large` before a byte of the body is read (so an `Expect: 100-continue`
//! client is never told to send it); a body without one (chunked, or HTTP/2 DATA frames) is
//! counted as it streams by [`LimitedBody`], which fails the moment it passes the limit.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Uri, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::watch;

use crate::error::ApiError;

/// Longest request target (path and query, plus the authority of an absolute-form target)
/// Ward serves. Browsers and servers commonly stop at 8 KiB; a longer URI is more likely an
/// attack on a parser or a log than a real request.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest total of header names and values Ward serves: room for a `Cookie` header carrying
/// a chunked stateless session beside the SPA's own cookies.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields in an HTTP/1 request (hyper's default, made explicit); more is `431`.
pub const MAX_HEADER_FIELDS: usize = 100;
/// hyper's HTTP/1 read buffer: a request head that does not fit is `431` with no body. Large
/// enough for a 64 KiB request target, so that one is `414` (the precise answer) rather
/// than `431`; it also bounds each read of a body.
pub const HEAD_BUFFER_BYTES: usize = 96 * 1024;
/// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE` (each field counts its name, its value and 32,
/// RFC 9113 §6.5.2): above [`MAX_HEADER_BYTES`] so that [`check_head`] gives the
/// JSON answer for most oversized heads; the `h2` crate answers `431` beyond it.
pub const MAX_HEADER_LIST_SIZE: u32 = 48 * 1024;
/// Largest body any `/bff` endpoint reads: they take small forms and JSON documents only.
pub const MAX_BFF_BODY: u64 = 16 * 1024;

/// `Err(UriTooLong)` for a target over [`MAX_URI_BYTES`], `Err(HeadersTooLarge)` for header
/// fields over [`MAX_HEADER_BYTES`] in total.
pub fn check_head(uri: &Uri, headers: &HeaderMap) -> Result<(), ApiError> {
    let uri_bytes = uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(0, |p| p.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        tracing::info!(
            event = "request_too_large",
            part = "uri",
            size = uri_bytes,
            limit = MAX_URI_BYTES,
            "request target too long"
        );
        return Err(ApiError::UriTooLong);
    }
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        tracing::info!(
            event = "request_too_large",
            part = "headers",
            size = header_bytes,
            limit = MAX_HEADER_BYTES,
            "request header fields too large"
        );
        return Err(ApiError::HeadersTooLarge);
    }
    Ok(())
}

/// `Err(BadRequest)` unless the request names its host once: RFC 9112 §3.2 requires a server
/// to answer `400` to an HTTP/1.1 request without `Host` or with more than one, and no version
/// may carry two (which one would the upstream believe?). HTTP/1.0 and HTTP/2 (`:authority`)
/// may go without.
pub fn check_host(version: Version, headers: &HeaderMap) -> Result<(), ApiError> {
    let hosts = headers.get_all(header::HOST).iter().count();
    let required = version == Version::HTTP_11;
    if hosts > 1 || (required && hosts == 0) {
        tracing::info!(
            event = "request_malformed",
            part = "host",
            hosts,
            "request must name its host exactly once"
        );
        return Err(ApiError::BadRequest);
    }
    Ok(())
}

/// Bounds the body of every `/bff` request to [`MAX_BFF_BODY`]: a larger declared length is
/// refused here, a longer streamed body fails with `http_body_util::LengthLimitError` when an
/// endpoint reads it (the endpoints answer `413` to that error).
pub async fn limit_bff_body(req: Request, next: Next) -> Response {
    if let Err(err) = refuse_declared_length(req.headers(), MAX_BFF_BODY) {
        return err.into_response();
    }
    // The limit is a small constant: it fits any usize.
    let limit = usize::try_from(MAX_BFF_BODY).unwrap_or(usize::MAX);
    let req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    next.run(req).await
}

/// The request's declared `Content-Length`, when it has a valid one (hyper has already
/// refused conflicting duplicates and checks the body against it).
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// `Err(PayloadTooLarge)` when the declared `Content-Length` exceeds `limit`; nothing of the
/// body has been read then.
pub fn refuse_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    match declared_length(headers) {
        Some(declared) if declared > limit => {
            tracing::info!(
                event = "request_too_large",
                part = "body",
                declared,
                limit,
                "declared request body too large"
            );
            Err(ApiError::PayloadTooLarge)
        }
        _ => Ok(()),
    }
}

/// The body grew past its limit while streaming.
#[derive(Debug, thiserror::Error)]
#[error("request body exceeds its limit")]
pub struct BodyTooLarge;

/// A request body counted as it streams: once more than `limit` bytes have passed, it fails
/// (every later poll too) instead of yielding the chunk that crossed the limit, so a consumer
/// such as hyper's client aborts the exchange rather than ending the request cleanly, and
/// the paired [`BodyOverflow`] learns of it.
pub struct LimitedBody {
    inner: Body,
    remaining: u64,
    state: watch::Sender<BodyState>,
}

/// How a [`LimitedBody`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// Within its limit so far.
    Flowing,
    /// It passed its limit.
    TooLarge,
    /// Reading it failed: the browser's framing was malformed (a bad chunk size or chunk line)
    /// or the connection broke mid-body. The browser's fault, never the upstream's.
    Broken,
}

/// The other side of a [`LimitedBody`]: whether, and when, it passed its limit, and whether
/// reading it failed.
pub struct BodyOverflow {
    state: watch::Receiver<BodyState>,
}

impl LimitedBody {
    /// `body` limited to `limit` bytes, and the handle that reports an overflow.
    pub fn new(body: Body, limit: u64) -> (Self, BodyOverflow) {
        let (state, watched) = watch::channel(BodyState::Flowing);
        let limited = Self {
            inner: body,
            remaining: limit,
            state,
        };
        (limited, BodyOverflow { state: watched })
    }

    fn overflowed(&self) -> bool {
        *self.state.borrow() == BodyState::TooLarge
    }
}

impl hyper::body::Body for LimitedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.overflowed() {
            return Poll::Ready(Some(Err(BodyTooLarge.into())));
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(err)) => {
                self.state.send_replace(BodyState::Broken);
                return Poll::Ready(Some(Err(err.into())));
            }
            None => return Poll::Ready(None),
        };
        if let Some(data) = frame.data_ref() {
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            if len > self.remaining {
                self.remaining = 0;
                self.state.send_replace(BodyState::TooLarge);
                return Poll::Ready(Some(Err(BodyTooLarge.into())));
            }
            self.remaining -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        !self.overflowed() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl BodyOverflow {
    /// Resolves once the body has passed its limit; never when it ends within it.
    pub async fn occurred(&mut self) {
        let too_large = |state: &BodyState| *state == BodyState::TooLarge;
        if self.state.wait_for(too_large).await.is_err() {
            // The body ended (or was dropped) within its limit.
            std::future::pending::<()>().await;
        }
    }

    /// Whether the body has passed its limit.
    pub fn has_occurred(&self) -> bool {
        *self.state.borrow() == BodyState::TooLarge
    }

    /// Whether reading the body failed (malformed framing from the browser, or its connection
    /// broke mid-body): a failed exchange is then the browser's fault, not the upstream's.
    pub fn broke(&self) -> bool {
        *self.state.borrow() == BodyState::Broken
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use http_body_util::BodyExt;

    use super::*;

    fn chunked(chunks: usize, size: usize) -> Body {
        let chunk = Bytes::from(vec![b'x'; size]);
        Body::from_stream(stream::iter(
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
        ))
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[tokio::test]
    async fn a_body_within_its_limit_passes_whole_and_reports_no_overflow() {
        let (body, mut overflow) = LimitedBody::new(chunked(4, 1024), 4096);
        let bytes = body.collect().await.expect("within the limit").to_bytes();
        assert_eq!(bytes.len(), 4096);
        assert!(!overflow.has_occurred());
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(20), overflow.occurred()).await;
        assert!(waited.is_err(), "no overflow to report");
    }

    #[tokio::test]
    async fn a_body_one_byte_over_fails_and_reports_the_overflow() {
        let (body, mut overflow) = LimitedBody::new(chunked(4, 1024), 4095);
        let err = body.collect().await.expect_err("over the limit");
        assert!(err.is::<BodyTooLarge>(), "{err}");
        assert!(overflow.has_occurred());
        overflow.occurred().await;
    }

    #[tokio::test]
    async fn an_overflowed_body_keeps_failing_and_never_ends_cleanly() {
        let (mut body, _overflow) = LimitedBody::new(chunked(8, 1024), 1500);
        let first = body
            .frame()
            .await
            .expect("a frame")
            .expect("first chunk fits");
        assert_eq!(first.into_data().map(|d| d.len()).ok(), Some(1024));
        assert!(body.frame().await.expect("a frame").is_err());
        assert!(body.frame().await.expect("a frame").is_err());
        assert!(!hyper::body::Body::is_end_stream(&body));
    }

    #[test]
    fn a_declared_length_over_the_limit_is_payload_too_large() {
        let over = headers(&[("content-length", "4097")]);
        assert_eq!(
            refuse_declared_length(&over, 4096),
            Err(ApiError::PayloadTooLarge)
        );
        let at = headers(&[("content-length", "4096")]);
        assert_eq!(refuse_declared_length(&at, 4096), Ok(()));
        assert_eq!(refuse_declared_length(&HeaderMap::new(), 0), Ok(()));
    }

    #[test]
    fn a_long_target_is_uri_too_long() {
        let path = format!("/{}", "a".repeat(MAX_URI_BYTES));
        let uri: Uri = path.parse().unwrap();
        assert_eq!(
            check_head(&uri, &HeaderMap::new()),
            Err(ApiError::UriTooLong)
        );
        let fits: Uri = path[..MAX_URI_BYTES].parse().unwrap();
        assert_eq!(check_head(&fits, &HeaderMap::new()), Ok(()));
    }

    #[test]
    fn header_fields_over_the_total_are_too_large_however_they_are_split() {
        let uri = Uri::from_static("/");
        let half = "v".repeat(MAX_HEADER_BYTES / 2);
        let two = headers(&[("x-a", &half), ("x-b", &half)]);
        assert_eq!(check_head(&uri, &two), Err(ApiError::HeadersTooLarge));
        let one = headers(&[("x-a", &half)]);
        assert_eq!(check_head(&uri, &one), Ok(()));
    }
}
