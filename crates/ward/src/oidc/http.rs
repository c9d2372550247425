//! The one HTTP client Ward uses to talk to the IdP, shaped as openidconnect's
//! [`AsyncHttpClient`] over reqwest.
//!
//! It never follows redirects (a redirect from an IdP endpoint could point Ward, and the client
//! credentials it sends, at any host: SSRF), bounds every exchange by a timeout, reads at most
//! [`MAX_RESPONSE_BYTES`] of a body, and turns a 5xx answer into an error before openidconnect
//! parses it, so "the IdP is down" stays distinguishable from "the IdP said no".

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};

/// Whole-exchange limit for one IdP request (connect, send, read the body).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Limit for establishing the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest IdP response body read: discovery documents, JWKS and token responses are a few KB.
pub(crate) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why an IdP request produced no usable HTTP response. Display texts carry at most the
/// endpoint URL and a status, never a body, header or token.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The request could not be built (a malformed endpoint URL or header).
    #[error("IdP request could not be built")]
    Build(#[source] reqwest::Error),
    /// Connecting, sending or reading failed.
    #[error("IdP request failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// The IdP's TLS certificate did not verify against the trusted roots.
    #[error(
        "IdP's TLS certificate is not trusted ({0}): if the IdP uses a private CA, put that CA's \
         certificate in [outbound] ca_file"
    )]
    Untrusted(String, #[source] reqwest::Error),
    /// The outbound HTTP client could not be built.
    #[error(transparent)]
    Outbound(#[from] crate::outbound::OutboundError),
    /// The IdP did not answer within [`REQUEST_TIMEOUT`].
    #[error("IdP did not answer within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout(#[source] reqwest::Error),
    /// The IdP answered with a server error.
    #[error("IdP answered HTTP {0}")]
    ServerError(http::StatusCode),
    /// The body exceeded [`MAX_RESPONSE_BYTES`].
    #[error("IdP response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    /// The response could not be rebuilt as an `http::Response`.
    #[error("IdP response could not be read")]
    Response(#[source] http::Error),
    /// The DPoP proof for the request could not be made (`oidc::dpop`).
    #[error("DPoP proof could not be made")]
    Proof,
}

impl HttpError {
    fn from_reqwest(err: reqwest::Error) -> Self {
        if let Some(reason) = certificate_error(&err) {
            Self::Untrusted(reason, err)
        } else if err.is_timeout() {
            Self::Timeout(err)
        } else if err.is_builder() {
            Self::Build(err)
        } else {
            Self::Transport(err)
        }
    }

    /// Whether the IdP could not be reached or failed on its side (a gateway error, not a
    /// refusal).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Transport(_) | Self::Untrusted(..) | Self::Timeout(_) | Self::ServerError(_)
        )
    }
}

/// The rustls certificate error somewhere in `err`'s causes, as rustls words it
/// (`invalid peer certificate: UnknownIssuer`). An `io::Error`'s `source()` skips the error it
/// wraps, so the walk steps into those with `get_ref` instead.
fn certificate_error(err: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(tls @ rustls::Error::InvalidCertificate(_)) =
            current.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        cause = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

/// reqwest configured for talking to the IdP.
#[derive(Clone, Debug)]
pub(crate) struct IdpHttpClient {
    inner: reqwest::Client,
}

impl IdpHttpClient {
    /// A client with the trust and egress proxy of `outbound`, presenting its client
    /// certificate when it has one.
    pub(crate) fn new(outbound: &crate::outbound::Outbound) -> Result<Self, HttpError> {
        let inner = outbound
            .idp_http_client()?
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("ward/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(HttpError::Build)?;
        Ok(Self { inner })
    }

    /// Sends `request` and reads the answer, bounded in time and size.
    pub(crate) async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let request = reqwest::Request::try_from(request).map_err(HttpError::Build)?;
        let mut response = self
            .inner
            .execute(request)
            .await
            .map_err(HttpError::from_reqwest)?;
        let status = response.status();
        // The IdP call's span (`telemetry::spans::idp`) when one is current.
        tracing::Span::current().record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            return Err(HttpError::ServerError(status));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
        {
            return Err(HttpError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(HttpError::from_reqwest)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut builder = http::Response::builder()
            .status(status)
            .version(response.version());
        if let Some(headers) = builder.headers_mut() {
            *headers = std::mem::take(response.headers_mut());
        }
        builder.body(body).map_err(HttpError::Response)
    }
}

type ResponseFuture<'c> =
    Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'c>>;

impl<'c> AsyncHttpClient<'c> for IdpHttpClient {
    type Error = HttpError;
    type Future = ResponseFuture<'c>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::response::Redirect;
    use axum::routing::get;

    use super::*;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    fn outbound() -> crate::outbound::Outbound {
        crate::outbound::Outbound::load(&crate::config::OutboundConfig::default()).unwrap()
    }

    fn get_request(url: &str) -> HttpRequest {
        http::Request::builder().uri(url).body(Vec::new()).unwrap()
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let base =
            serve(Router::new().route("/", get(|| async { Redirect::temporary("/x") }))).await;
        let response = IdpHttpClient::new(&outbound())
            .unwrap()
            .execute(get_request(&base))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused() {
        let body = "x".repeat(MAX_RESPONSE_BYTES + 1);
        let base = serve(Router::new().route("/", get(move || async move { body }))).await;
        let err = IdpHttpClient::new(&outbound())
            .unwrap()
            .execute(get_request(&base))
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::TooLarge), "{err:?}");
    }

    #[tokio::test]
    async fn server_errors_become_unavailable() {
        let base =
            serve(Router::new().route("/", get(|| async { (StatusCode::BAD_GATEWAY, "down") })))
                .await;
        let err = IdpHttpClient::new(&outbound())
            .unwrap()
            .execute(get_request(&base))
            .await
            .unwrap_err();
        assert!(err.is_unavailable());
        assert_eq!(err.to_string(), "IdP answered HTTP 502 Bad Gateway");
    }
}
