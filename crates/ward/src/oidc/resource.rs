//! RFC 8707 resource indicators on the IdP side: the resources every authorization request
//! names (so the grant covers them), and the refresh-token grant that turns the session's
//! refresh token into an access token for one resource only.
//!
//! The grant goes through the same token-endpoint steps as every other (client
//! authentication, the Bearer check); an ID token in its answer is ignored (it would only
//! restate the login's identity; the session's own comes from login and the main refresh).
//! A rotated refresh token in the answer is returned, so the session layer can keep it.

use openidconnect::{OAuth2TokenResponse, RefreshToken};
use tracing::Instrument as _;

use super::endpoint::EndpointError;
use super::{OidcClient, OidcError};
use crate::secret::SecretString;

/// What a refresh grant with `resource` returned.
#[derive(Debug)]
pub struct ResourceTokens {
    /// The access token for the one resource.
    pub access_token: SecretString,
    /// The new refresh token when the IdP rotated it (it replaces the session's).
    pub refresh_token: Option<SecretString>,
    /// `expires_in` (seconds), when the IdP sent it.
    pub expires_in: Option<u64>,
}

impl OidcClient {
    /// The client with `resources` named in every authorization request (pushed or not), as
    /// repeated `resource` parameters (RFC 8707 §2.1), each once, in the order given.
    pub fn with_resources(mut self, resources: impl IntoIterator<Item = String>) -> Self {
        self.resources.clear();
        for resource in resources {
            if !self.resources.contains(&resource) {
                self.resources.push(resource);
            }
        }
        self
    }

    /// The resources every authorization request names.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// `grant_type=refresh_token` with `resource=<resource>` (RFC 8707 §2.2): an access token
    /// for that resource only. Only a non-empty Bearer token is accepted.
    pub async fn resource_token(
        &self,
        refresh_token: &SecretString,
        resource: &str,
    ) -> Result<ResourceTokens, OidcError> {
        let token = RefreshToken::new(refresh_token.expose().to_owned());
        let request = self
            .client
            .exchange_refresh_token(&token)
            .add_extra_param("resource", resource.to_owned());
        let request =
            self.with_assertion(request, |r, name, value| r.add_extra_param(name, value))?;
        let timer = crate::telemetry::metrics::idp_timer("resource_token");
        let response = request
            .request_async(&self.http)
            .instrument(crate::telemetry::spans::idp("idp resource_token"))
            .await
            .map_err(|err| OidcError::TokenRequest(Box::new(EndpointError::from_request(err))));
        drop(timer);
        let response = response?;
        super::check_token_type(&response, false)?;
        Ok(ResourceTokens {
            access_token: SecretString::new(response.access_token().secret().clone()),
            refresh_token: response
                .refresh_token()
                .map(|token| SecretString::new(token.secret().clone()))
                .filter(|token| !token.is_empty()),
            expires_in: response.expires_in().map(|ttl| ttl.as_secs()),
        })
    }
}

impl OidcError {
    /// Whether the IdP refused to issue a token for the requested resource (`invalid_target`,
    /// RFC 8707 §2; or `invalid_scope`: none of the granted scopes applies to it). The refresh
    /// token itself stays good; asking again cannot help until the grant changes.
    pub fn is_invalid_target(&self) -> bool {
        match self {
            Self::TokenRequest(err) => matches!(
                err.downcast_ref::<EndpointError>(),
                Some(EndpointError::Refused(code))
                    if code == "invalid_target" || code == "invalid_scope"
            ),
            _ => false,
        }
    }
}

/// RFC 8693 §3: the token type of an access token, as subject and as the requested result.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The RFC 8693 §2.2.1 answer, as far as Ward reads it.
#[derive(serde::Deserialize)]
struct Exchanged {
    access_token: String,
    issued_token_type: String,
    token_type: String,
    expires_in: Option<u64>,
}

impl OidcClient {
    /// RFC 8693 token exchange: the session's access token (`subject`) for an access token for
    /// `resource` only, at the token endpoint with Ward's client authentication. The answer
    /// must be a non-empty Bearer access token (`issued_token_type` access_token); a refresh
    /// token in it is ignored (the session's own stays the one it uses).
    pub async fn exchange_token(
        &self,
        subject: &SecretString,
        resource: &str,
    ) -> Result<ResourceTokens, OidcError> {
        let failed = |err: EndpointError| OidcError::TokenRequest(Box::new(err));
        let request = self.exchange_request(subject, resource).map_err(failed)?;
        let timer = crate::telemetry::metrics::idp_timer("token_exchange");
        let response = self
            .http
            .execute(request)
            .instrument(crate::telemetry::spans::idp("idp token_exchange"))
            .await
            .map_err(|err| failed(EndpointError::Http(err)));
        drop(timer);
        let response = response?;
        if !response.status().is_success() {
            return Err(failed(super::endpoint::oauth_error(&response)));
        }
        let exchanged: Exchanged = serde_json::from_slice(response.body()).map_err(|err| {
            failed(EndpointError::Malformed {
                path: format!("line {} column {}", err.line(), err.column()),
            })
        })?;
        if exchanged.issued_token_type != ACCESS_TOKEN_TYPE {
            return Err(OidcError::IncompleteResponse(
                "an access_token issued_token_type",
            ));
        }
        if !exchanged.token_type.eq_ignore_ascii_case("bearer") {
            return Err(OidcError::IncompleteResponse("a bearer token_type"));
        }
        if exchanged.access_token.is_empty() {
            return Err(OidcError::IncompleteResponse("access_token"));
        }
        Ok(ResourceTokens {
            access_token: SecretString::new(exchanged.access_token),
            refresh_token: None,
            expires_in: exchanged.expires_in,
        })
    }

    /// The RFC 8693 §2.1 request, built before any `.await` (the form serializer is not
    /// `Send`).
    fn exchange_request(
        &self,
        subject: &SecretString,
        resource: &str,
    ) -> Result<http::Request<Vec<u8>>, EndpointError> {
        let credentials = self
            .auth
            .credentials()
            .map_err(|_| EndpointError::Assertion)?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair("subject_token", subject.expose())
        .append_pair("subject_token_type", ACCESS_TOKEN_TYPE)
        .append_pair("requested_token_type", ACCESS_TOKEN_TYPE)
        .append_pair("resource", resource);
        for (name, value) in &credentials.form {
            form.append_pair(name, value.expose());
        }
        let endpoint = self.client.token_uri().url();
        super::endpoint::form_post(endpoint, form.finish(), credentials.header.as_ref())
            .map_err(EndpointError::Build)
    }
}
