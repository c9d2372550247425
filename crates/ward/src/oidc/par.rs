//! Pushed authorization requests (RFC 9126): the authorization request's parameters go to the
//! IdP over the back channel, authenticated as the client is at the token endpoint, and the
//! browser carries only `client_id` and the returned `request_uri`. Nothing of the request
//! (PKCE challenge, `state`, `nonce`, scopes) is then exposed to or alterable by the browser.

use serde::Deserialize;
use tracing::Instrument as _;
use url::Url;
use url::form_urlencoded::Serializer;

use super::client_auth::ClientAuthenticator;
use super::endpoint::{EndpointError, form_post, oauth_error};
use super::http::IdpHttpClient;
use crate::config::ParMode;

/// Where authorization requests are pushed, decided at start from `[oidc] par` and discovery.
#[derive(Clone, Debug)]
pub(crate) enum Par {
    /// Sent in the redirect (no PAR).
    Off,
    /// Pushed to this endpoint.
    Push(Url),
}

/// Why the configured `par` does not fit the IdP (a start error).
#[derive(Debug, thiserror::Error)]
pub enum ParConfigError {
    /// `par = "always"` but the IdP has no `pushed_authorization_request_endpoint`.
    #[error("oidc.par = \"always\" but the IdP offers no pushed_authorization_request_endpoint")]
    NotOffered,
    /// `par = "never"` but the IdP requires PAR.
    #[error(
        "oidc.par = \"never\" but the IdP requires pushed authorization requests \
         (require_pushed_authorization_requests)"
    )]
    Required,
}

impl Par {
    /// The mode for `configured` given the IdP's endpoint and whether it requires PAR.
    pub(crate) fn decide(
        configured: ParMode,
        endpoint: Option<&Url>,
        required: bool,
    ) -> Result<Self, ParConfigError> {
        match (configured, endpoint) {
            (ParMode::Never, _) if required => Err(ParConfigError::Required),
            (ParMode::Never, _) => Ok(Self::Off),
            (ParMode::Always, None) => Err(ParConfigError::NotOffered),
            (ParMode::Auto, None) if required => Err(ParConfigError::NotOffered),
            (ParMode::Auto, None) => Ok(Self::Off),
            (_, Some(endpoint)) => Ok(Self::Push(endpoint.clone())),
        }
    }
}

/// Why a push failed. Never carries a request parameter or an IdP body.
#[derive(Debug, thiserror::Error)]
pub enum ParError {
    /// The client assertion could not be made.
    #[error("client authentication for the pushed request failed")]
    Auth(#[source] super::signing_key::SignError),
    /// The IdP did not accept the request.
    #[error("pushed authorization request failed: {0}")]
    Endpoint(#[source] EndpointError),
    /// Its answer lacks a usable `request_uri`.
    #[error("pushed authorization request answer has no request_uri")]
    NoRequestUri,
}

/// Pushes the parameters of `authorization_url` (as openidconnect built it) and returns the
/// URL the browser is sent to: the authorization endpoint with `client_id` and `request_uri`.
pub(crate) async fn push(
    http: &IdpHttpClient,
    endpoint: &Url,
    auth: &ClientAuthenticator,
    client_id: &str,
    authorization_url: &Url,
) -> Result<Url, ParError> {
    let _timer = crate::telemetry::metrics::idp_timer("par");
    let request = par_request(endpoint, auth, authorization_url)?;
    let response = http
        .execute(request)
        .instrument(crate::telemetry::spans::idp("idp par"))
        .await
        .map_err(|err| ParError::Endpoint(EndpointError::Http(err)))?;
    if !response.status().is_success() {
        return Err(ParError::Endpoint(oauth_error(&response)));
    }
    #[derive(Deserialize)]
    struct Pushed {
        request_uri: String,
    }
    let pushed: Pushed =
        serde_json::from_slice(response.body()).map_err(|_| ParError::NoRequestUri)?;
    if pushed.request_uri.is_empty() {
        return Err(ParError::NoRequestUri);
    }
    let mut url = authorization_url.clone();
    url.set_query(None);
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("request_uri", &pushed.request_uri);
    Ok(url)
}

/// The RFC 9126 §2.1 request: every authorization parameter plus client authentication.
fn par_request(
    endpoint: &Url,
    auth: &ClientAuthenticator,
    authorization_url: &Url,
) -> Result<http::Request<Vec<u8>>, ParError> {
    let credentials = auth.credentials().map_err(ParError::Auth)?;
    let mut form = Serializer::new(String::new());
    // The authorization parameters (`client_id` among them), then the credentials without a
    // second `client_id`.
    for (name, value) in authorization_url.query_pairs() {
        form.append_pair(&name, &value);
    }
    for (name, value) in credentials
        .form
        .iter()
        .filter(|(name, _)| *name != "client_id")
    {
        form.append_pair(name, value.expose());
    }
    form_post(endpoint, form.finish(), credentials.header.as_ref())
        .map_err(|err| ParError::Endpoint(EndpointError::Build(err)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn auto_pushes_when_offered_and_fails_when_required_but_missing() {
        let endpoint = url("https://idp.example/par");
        let decide = |mode, endpoint, required| Par::decide(mode, endpoint, required);
        assert!(matches!(
            decide(ParMode::Auto, Some(&endpoint), false),
            Ok(Par::Push(_))
        ));
        assert!(matches!(decide(ParMode::Auto, None, false), Ok(Par::Off)));
        assert!(matches!(
            decide(ParMode::Auto, None, true),
            Err(ParConfigError::NotOffered)
        ));
        assert!(matches!(
            decide(ParMode::Always, None, false),
            Err(ParConfigError::NotOffered)
        ));
        assert!(matches!(
            decide(ParMode::Never, Some(&endpoint), false),
            Ok(Par::Off)
        ));
        assert!(matches!(
            decide(ParMode::Never, Some(&endpoint), true),
            Err(ParConfigError::Required)
        ));
    }
}
