//! `ward check`'s test of the client credentials: one authorization-code token request with a
//! code Ward made up, sent with the configured client authentication. It cannot succeed; what
//! matters is why the IdP refuses it. RFC 6749 §4.1.3 has the server authenticate the client
//! before it looks at the code, so `invalid_client` (§5.2, usually HTTP 401) means the client
//! id, secret or authentication method is wrong, and `invalid_grant` means the client passed
//! and only the code was refused. IdPs that answer in other words (`access_denied`, a bare 401)
//! are reported as unverified rather than guessed at.
//!
//! Only the `error` code of the answer is kept, reduced to its character set; never its
//! `error_description` or body, which an IdP may fill with what it was sent.

use http::StatusCode;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use url::form_urlencoded::Serializer;

use super::endpoint::{EndpointError, error_code};
use super::http::HttpError;
use super::{OidcClient, spans};
use crate::random;
use tracing::Instrument as _;

/// What the token endpoint's refusal of a made-up code says about Ward's client credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsVerdict {
    /// `invalid_grant`: the client authenticated; only the code was refused.
    Accepted,
    /// `invalid_client`: the IdP refused the client id, secret or authentication method.
    Rejected,
    /// `unauthorized_client`: the client authenticated but may not use the authorization-code
    /// grant, so no login can finish.
    GrantNotAllowed,
    /// The answer does not tell: what it was (a status and the error code, never the body).
    Unverified(String),
}

impl OidcClient {
    /// Sends the made-up code to the token endpoint (see the module doc). `Err` only when the
    /// token endpoint could not be reached at all; an IdP failure (5xx) is
    /// [`CredentialsVerdict::Unverified`].
    pub async fn probe_client_credentials(&self) -> Result<CredentialsVerdict, EndpointError> {
        let request = self.probe_request()?;
        let answer = self
            .http
            .execute(request)
            .instrument(spans::idp("idp token"))
            .await;
        match answer {
            Ok(response) => Ok(verdict(response.status(), response.body())),
            Err(HttpError::ServerError(status)) => Ok(CredentialsVerdict::Unverified(format!(
                "the token endpoint answered HTTP {status}"
            ))),
            Err(err) => Err(EndpointError::Http(err)),
        }
    }

    /// The token request: built before any `.await` (the form serializer is not `Send`), with
    /// the configured client authentication (a fresh assertion for `private_key_jwt`).
    fn probe_request(&self) -> Result<http::Request<Vec<u8>>, EndpointError> {
        let credentials = self
            .auth
            .credentials()
            .map_err(|_| EndpointError::Assertion)?;
        let mut form = Serializer::new(String::new());
        // Recognisable in the IdP's log, and 43 random characters no IdP has issued.
        let code = format!("ward-check-{}", random::token());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", &code)
            .append_pair("code_verifier", &random::token());
        if let Some(redirect_uri) = self.client.redirect_uri() {
            form.append_pair("redirect_uri", redirect_uri.as_str());
        }
        for (name, value) in &credentials.form {
            form.append_pair(name, value.expose());
        }
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(self.client.token_uri().as_str())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json");
        if let Some(header) = &credentials.header {
            request = request.header(AUTHORIZATION, header.expose());
        }
        request
            .body(form.finish().into_bytes())
            .map_err(EndpointError::Build)
    }
}

/// The verdict of a token-endpoint answer below 500.
fn verdict(status: StatusCode, body: &[u8]) -> CredentialsVerdict {
    #[derive(serde::Deserialize)]
    struct OAuthError {
        error: String,
    }
    if status.is_success() {
        return CredentialsVerdict::Unverified(format!(
            "the token endpoint answered HTTP {status} to a made-up code"
        ));
    }
    let code = serde_json::from_slice::<OAuthError>(body)
        .ok()
        .map(|body| error_code(&body.error));
    match code.as_deref() {
        Some("invalid_client") => CredentialsVerdict::Rejected,
        Some("invalid_grant") => CredentialsVerdict::Accepted,
        Some("unauthorized_client") => CredentialsVerdict::GrantNotAllowed,
        Some(other) => CredentialsVerdict::Unverified(format!(
            "the token endpoint answered HTTP {status} with error `{other}`"
        )),
        None => CredentialsVerdict::Unverified(format!(
            "the token endpoint answered HTTP {status} without an OAuth error code"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(status: u16, body: &str) -> CredentialsVerdict {
        verdict(StatusCode::from_u16(status).unwrap(), body.as_bytes())
    }

    #[test]
    fn the_error_code_decides_not_the_status() {
        assert_eq!(
            judge(401, r#"{"error":"invalid_client"}"#),
            CredentialsVerdict::Rejected
        );
        assert_eq!(
            judge(400, r#"{"error":"invalid_client"}"#),
            CredentialsVerdict::Rejected
        );
        assert_eq!(
            judge(400, r#"{"error":"invalid_grant"}"#),
            CredentialsVerdict::Accepted
        );
        assert_eq!(
            judge(400, r#"{"error":"unauthorized_client"}"#),
            CredentialsVerdict::GrantNotAllowed
        );
    }

    #[test]
    fn other_answers_are_unverified_and_never_quote_the_body() {
        let echoed = r#"{"error":"access_denied","error_description":"secret s3cr3t is wrong"}"#;
        let CredentialsVerdict::Unverified(reason) = judge(401, echoed) else {
            panic!("a 401 without invalid_client is not a verdict");
        };
        assert!(
            reason.contains("401") && reason.contains("`access_denied`"),
            "{reason}"
        );
        assert!(!reason.contains("s3cr3t"));
        for (status, body) in [
            (401, "Unauthorized s3cr3t"),
            (200, r#"{"access_token":"s3cr3t"}"#),
        ] {
            let CredentialsVerdict::Unverified(reason) = judge(status, body) else {
                panic!("HTTP {status} {body} is not a verdict");
            };
            assert!(!reason.contains("s3cr3t"), "{reason}");
        }
    }

    #[test]
    fn a_hostile_error_code_is_reduced_to_its_character_set() {
        let CredentialsVerdict::Unverified(reason) =
            judge(400, r#"{"error":"x\r\nSet-Cookie: a=b"}"#)
        else {
            panic!("an unknown code is not a verdict");
        };
        assert!(reason.ends_with("`xSet-Cookieab`"), "{reason}");
    }
}
