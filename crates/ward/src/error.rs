//! The one place where failures become HTTP responses.
//!
//! Handlers return [`ApiError`]; its `IntoResponse` writes the SPEC's JSON shape
//! `{"error": "<code>", "message": "<text>"}` with the headers every Ward response carries.
//! Messages are fixed texts: a cause (IdP answer, store error, token) is logged by the caller
//! with its `#[source]` chain, never echoed to the browser.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::session::refresh::{self, RefreshError};
use crate::telemetry::Chain;

/// An error as the browser sees it: a status, a stable code, a fixed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 401: no valid session.
    #[error("not logged in")]
    Unauthenticated,
    /// 401: the IdP refused the username and password (`POST /bff/login/password`).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// 403: missing or wrong `X-CSRF-Token`, or a cross-site unsafe request.
    #[error("CSRF check failed")]
    CsrfFailed,
    /// 403: the session's grant yields no access token for the route's RFC 8707 resource
    /// (the IdP answered `invalid_target`, or there is no refresh token to ask with).
    #[error("no access token for this route's resource")]
    ResourceNotGranted,
    /// 400: `returnUrl` is not a local path.
    #[error("returnUrl must be a local path")]
    InvalidReturnUrl,
    /// 400: the login callback could not be completed.
    #[error("login failed")]
    LoginFailed,
    /// 400: the back-channel logout request carries no valid logout token.
    #[error("invalid logout token")]
    InvalidLogoutToken,
    /// 400: malformed request.
    #[error("bad request")]
    BadRequest,
    /// 404: no endpoint, route or file.
    #[error("not found")]
    NotFound,
    /// 405: the path exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 413: request body too large.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 414: the request target is longer than Ward reads.
    #[error("URI too long")]
    UriTooLong,
    /// 431: the request's header fields are larger than Ward reads.
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// 429: a rate limit is reached; `Retry-After` says for how many more seconds (≥ 1).
    #[error("too many requests")]
    RateLimited {
        /// Seconds until a request would be accepted, rounded up.
        retry_after: u32,
    },
    /// 502: the upstream or the IdP could not be reached or answered badly.
    #[error("upstream unavailable")]
    UpstreamUnavailable,
    /// 504: the upstream did not answer in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// 503: the session store cannot be read or written: fail closed.
    #[error("session store unavailable")]
    StoreUnavailable,
    /// 500: a fault of Ward's own.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// HTTP status of this error.
    pub fn status(self) -> StatusCode {
        match self {
            Self::Unauthenticated | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::CsrfFailed | Self::ResourceNotGranted => StatusCode::FORBIDDEN,
            Self::InvalidReturnUrl
            | Self::LoginFailed
            | Self::InvalidLogoutToken
            | Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UriTooLong => StatusCode::URI_TOO_LONG,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of SPEC §2.
    pub fn code(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::CsrfFailed => "csrf_failed",
            Self::ResourceNotGranted => "resource_not_granted",
            Self::InvalidReturnUrl => "invalid_return_url",
            Self::LoginFailed => "login_failed",
            Self::InvalidLogoutToken => "invalid_logout_token",
            Self::BadRequest => "bad_request",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::StoreUnavailable => "store_unavailable",
            Self::Internal => "internal_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.code(), "message": self.to_string() });
        let mut response = (self.status(), Json(body)).into_response();
        crate::security::headers::apply(response.headers_mut());
        match self {
            Self::StoreUnavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            Self::RateLimited { retry_after } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            }
            _ => {}
        }
        response
    }
}

/// The answer to a request whose access token could not be made fresh (`session::refresh`):
/// `401` with the session cookie cleared (`clear_session_cookie`) when the refresh ended the
/// session, `502` with `Retry-After` while the IdP cannot refresh, `503` when the store failed.
pub fn refresh_failed(err: RefreshError, clear_session_cookie: &str) -> Response {
    match err {
        RefreshError::Ended => {
            let mut response = ApiError::Unauthenticated.into_response();
            if let Ok(clear) = HeaderValue::try_from(clear_session_cookie) {
                response.headers_mut().append(header::SET_COOKIE, clear);
            }
            response
        }
        RefreshError::Unavailable => {
            let mut response = ApiError::UpstreamUnavailable.into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(refresh::BACKOFF));
            response
        }
        RefreshError::Store(err) => ApiError::from(err).into_response(),
    }
}

impl From<ward_store::StoreError> for ApiError {
    fn from(err: ward_store::StoreError) -> Self {
        tracing::error!(event = "store_error", error = %Chain(&err), "session store failed");
        Self::StoreUnavailable
    }
}
