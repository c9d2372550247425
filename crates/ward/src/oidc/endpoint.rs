//! Calls to the IdP's token-side endpoints and the summaries their failures become.
//!
//! openidconnect's errors keep the raw response body (which holds tokens on success-shaped
//! answers) in their `Debug`, and serde's messages can quote response values; so they are
//! reduced here to an [`EndpointError`] that carries only the OAuth error code, a field path or
//! the transport error.

use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use openidconnect::core::CoreIdToken;
use openidconnect::{ErrorResponseType, RequestTokenError, StandardErrorResponse};
use tracing::Instrument as _;
use url::Url;
use url::form_urlencoded::Serializer;

use super::client_auth::ClientAuthenticator;
use super::http::{HttpError, IdpHttpClient};
use crate::secret::SecretString;

/// An IdP endpoint call that failed, summarised.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// No usable HTTP answer (unreachable, timeout, 5xx, oversized).
    #[error("{0}")]
    Http(#[source] HttpError),
    /// The IdP answered with an OAuth error (`error` code only; descriptions are not kept).
    #[error("IdP refused the request: {0}")]
    Refused(String),
    /// The IdP answered with an unexpected status and no OAuth error.
    #[error("IdP answered HTTP {0}")]
    Status(http::StatusCode),
    /// The answer is not the expected JSON (`path`: where parsing stopped).
    #[error("IdP response is malformed at `{path}`")]
    Malformed {
        /// The JSON path, e.g. `expires_in`; `.` for the document itself.
        path: String,
    },
    /// Another protocol violation, as described by oauth2 (no response data).
    #[error("unexpected IdP response: {0}")]
    Unexpected(String),
    /// The request could not be built.
    #[error("IdP request could not be built")]
    Build(#[source] http::Error),
    /// The client assertion could not be signed.
    #[error("client assertion could not be signed")]
    Assertion,
}

impl EndpointError {
    /// Summarises an oauth2 request error without its body.
    pub(crate) fn from_request<T>(
        err: RequestTokenError<HttpError, StandardErrorResponse<T>>,
    ) -> Self
    where
        T: ErrorResponseType + AsRef<str> + std::fmt::Display + 'static,
    {
        match err {
            RequestTokenError::ServerResponse(response) => {
                Self::Refused(error_code(response.error().as_ref()))
            }
            RequestTokenError::Request(err) => Self::Http(err),
            RequestTokenError::Parse(err, _body) => Self::Malformed {
                path: err.path().to_string(),
            },
            RequestTokenError::Other(text) => Self::Unexpected(text),
        }
    }
}

/// Whether a token response that failed to parse did so because of its `id_token`: then the
/// failure is an invalid ID token rather than a broken token endpoint.
pub(crate) fn id_token_unparseable<T>(err: &RequestTokenError<HttpError, T>) -> bool
where
    T: openidconnect::ErrorResponse + 'static,
{
    let RequestTokenError::Parse(_, body) = err else {
        return false;
    };
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(body) else {
        return false;
    };
    match fields.get("id_token") {
        Some(serde_json::Value::String(jwt)) => jwt.parse::<CoreIdToken>().is_err(),
        Some(_) => true,
        None => false,
    }
}

/// An OAuth `error` code reduced to its defined character set (RFC 6749 §5.2), so an IdP
/// cannot smuggle arbitrary text into Ward's logs.
pub(super) fn error_code(code: &str) -> String {
    let code: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect();
    if code.is_empty() {
        "unknown_error".to_owned()
    } else {
        code
    }
}

/// RFC 7009 revocation of a refresh token.
///
/// Sent by hand rather than through oauth2, which refuses plain-http revocation endpoints even
/// for a local http test IdP; discovery already refuses an http endpoint of an https issuer.
pub(crate) async fn revoke_refresh_token(
    http: &IdpHttpClient,
    endpoint: &Url,
    auth: &ClientAuthenticator,
    token: &SecretString,
) -> Result<(), EndpointError> {
    let _timer = crate::telemetry::metrics::idp_timer("revocation");
    let request = revocation_request(endpoint, auth, token)?;
    let response = http
        .execute(request)
        .instrument(crate::telemetry::spans::idp("idp revocation"))
        .await
        .map_err(EndpointError::Http)?;
    if response.status().is_success() {
        return Ok(());
    }
    Err(oauth_error(&response))
}

/// A refusal's OAuth `error` code, or its status when the body is not an OAuth error.
pub(crate) fn oauth_error(response: &http::Response<Vec<u8>>) -> EndpointError {
    #[derive(serde::Deserialize)]
    struct OAuthError {
        error: String,
    }
    match serde_json::from_slice::<OAuthError>(response.body()) {
        Ok(body) => EndpointError::Refused(error_code(&body.error)),
        Err(_) => EndpointError::Status(response.status()),
    }
}

/// The RFC 7009 request, built before any `.await` (the form serializer is not `Send`).
fn revocation_request(
    endpoint: &Url,
    auth: &ClientAuthenticator,
    token: &SecretString,
) -> Result<http::Request<Vec<u8>>, EndpointError> {
    let credentials = auth.credentials().map_err(|_| EndpointError::Assertion)?;
    let mut form = Serializer::new(String::new());
    form.append_pair("token", token.expose())
        .append_pair("token_type_hint", "refresh_token");
    for (name, value) in &credentials.form {
        form.append_pair(name, value.expose());
    }
    form_post(endpoint, form.finish(), credentials.header.as_ref()).map_err(EndpointError::Build)
}

/// A client-authenticated form POST to `endpoint` (revocation, PAR): `form` already holds the
/// credentials' form fields; `authorization` is their `Authorization` header, if any.
pub(super) fn form_post(
    endpoint: &Url,
    form: String,
    authorization: Option<&SecretString>,
) -> Result<http::Request<Vec<u8>>, http::Error> {
    let mut request = http::Request::builder()
        .method(http::Method::POST)
        .uri(endpoint.as_str())
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(ACCEPT, "application/json");
    if let Some(header) = authorization {
        request = request.header(AUTHORIZATION, header.expose());
    }
    request.body(form.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_reduced_to_their_character_set() {
        assert_eq!(error_code("invalid_grant"), "invalid_grant");
        assert_eq!(error_code("bad\r\nSet-Cookie: x=<y>"), "badSet-Cookiexy");
        assert_eq!(error_code("\u{1F600}"), "unknown_error");
    }
}
