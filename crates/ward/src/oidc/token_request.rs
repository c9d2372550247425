//! The token endpoint calls' shared steps: the client assertion every request carries when
//! Ward authenticates with `private_key_jwt`, the DPoP proof when the tokens are to be bound
//! to a key (with the one retry a `use_dpop_nonce` refusal earns), and the checks and error
//! summaries of what comes back.

use openidconnect::OAuth2TokenResponse;

use super::dpop::{DpopKey, ProofHttp};
use super::endpoint::{self, EndpointError};
use super::id_token::IdTokenError;
use super::{OidcClient, OidcError};
use crate::secret::SecretString;

impl OidcClient {
    /// Runs `call` (one whole IdP request, built inside it) over a client that adds a proof of
    /// `dpop_key` when given (`access_token`: a userinfo call's bound token). When the IdP
    /// refuses for want of a nonce and names one (RFC 9449 §8), `call` runs once more: a new
    /// request with a new assertion and a new proof carrying the nonce.
    pub(crate) async fn with_dpop_retry<'a, T, E, F>(
        &'a self,
        dpop_key: Option<&'a DpopKey>,
        access_token: Option<&'a SecretString>,
        call: impl Fn(ProofHttp<'a>) -> F,
    ) -> Result<T, E>
    where
        F: Future<Output = Result<T, E>>,
    {
        let http = || {
            let now = self.clock.now();
            ProofHttp::new(&self.http, dpop_key, &self.dpop_nonces, now, access_token)
        };
        let first = http();
        let challenged = first.challenge_flag();
        let result = call(first).await;
        if !challenged.load(std::sync::atomic::Ordering::Relaxed) {
            return result;
        }
        tracing::debug!(event = "dpop_nonce_retry", server = "idp");
        call(http()).await
    }

    /// `request` (an openidconnect token request) with a fresh client assertion when Ward
    /// authenticates with `private_key_jwt`; `add` is the request's `add_extra_param`. Every
    /// token-endpoint call goes through here; the user's (code, refresh, password) from inside
    /// [`Self::with_dpop_retry`], so a retried request carries a new assertion too (the IdP has
    /// seen the first one's `jti`).
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

/// A token response Ward can use: a non-empty access token of the type Ward asked for
/// (case-insensitive, RFC 6749 §5.1): `DPoP` when the request carried a proof (`bound`), else
/// `Bearer`. A `Bearer` answer to a DPoP request means the IdP did not bind the token: refused,
/// as Ward would otherwise present an unbound token as a DPoP one (RFC 9449 §5).
pub(crate) fn check_token_type<R>(response: &R, bound: bool) -> Result<(), OidcError>
where
    R: OAuth2TokenResponse,
    R::TokenType: AsRef<str>,
{
    let (expected, missing) = if bound {
        ("dpop", "a DPoP token_type (the IdP did not bind the token)")
    } else {
        ("bearer", "a bearer token_type")
    };
    if !response
        .token_type()
        .as_ref()
        .eq_ignore_ascii_case(expected)
    {
        return Err(OidcError::IncompleteResponse(missing));
    }
    if response.access_token().secret().is_empty() {
        return Err(OidcError::IncompleteResponse("access_token"));
    }
    Ok(())
}
