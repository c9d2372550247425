//! The token endpoint calls' shared steps: the client assertion every request carries when
//! Ward authenticates with `private_key_jwt` (where a DPoP proof will join it), and the checks
//! and error summaries of what comes back.

use openidconnect::OAuth2TokenResponse;

use super::endpoint::{self, EndpointError};
use super::id_token::IdTokenError;
use super::{OidcClient, OidcError};

impl OidcClient {
    /// `request` (an openidconnect token request) with a fresh client assertion when Ward
    /// authenticates with `private_key_jwt`; `add` is the request's `add_extra_param`. Every
    /// token-endpoint call goes through here (a DPoP proof would join it here too).
    pub(crate) fn with_assertion<R>(
        &self,
        request: R,
        add: impl Fn(R, &'static str, String) -> R,
    ) -> Result<R, OidcError> {
        let Some(signer) = self.auth.signer() else {
            return Ok(request);
        };
        let params = signer
            .params()
            .map_err(|_| OidcError::TokenRequest(Box::new(EndpointError::Assertion)))?;
        Ok(params.into_iter().fold(request, |r, (name, value)| {
            add(r, name, value.expose().to_owned())
        }))
    }
}

/// The error of a token endpoint call (code exchange or refresh): a response whose `id_token`
/// does not parse is an invalid ID token; anything else is a failed token request.
pub(crate) fn token_request_failed<T>(
    err: openidconnect::RequestTokenError<
        super::http::HttpError,
        openidconnect::StandardErrorResponse<T>,
    >,
) -> OidcError
where
    T: openidconnect::ErrorResponseType + AsRef<str> + std::fmt::Display + 'static,
{
    if endpoint::id_token_unparseable(&err) {
        OidcError::InvalidIdToken(Box::new(IdTokenError::Malformed))
    } else {
        OidcError::TokenRequest(Box::new(EndpointError::from_request(err)))
    }
}

/// A token response Ward can use: token type Bearer (case-insensitive, RFC 6749 §5.1; Ward only
/// speaks Bearer) and a non-empty access token.
pub(crate) fn check_bearer<R>(response: &R) -> Result<(), OidcError>
where
    R: OAuth2TokenResponse,
    R::TokenType: AsRef<str>,
{
    if !response
        .token_type()
        .as_ref()
        .eq_ignore_ascii_case("bearer")
    {
        return Err(OidcError::IncompleteResponse("a bearer token_type"));
    }
    if response.access_token().secret().is_empty() {
        return Err(OidcError::IncompleteResponse("access_token"));
    }
    Ok(())
}
