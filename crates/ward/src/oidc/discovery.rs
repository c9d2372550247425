//! OpenID Connect Discovery: the provider metadata, with the fields Core metadata lacks
//! (RFC 9207 `iss` support, RFC 7009 revocation, RP-initiated logout, PKCE methods), checked
//! before anything is sent to the endpoints it names.

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalProviderMetadata, IssuerUrl};
use serde::{Deserialize, Serialize};
use url::Url;

use super::http::{HttpError, IdpHttpClient};

/// Provider metadata with Ward's [`ExtraMetadata`]; `jwks()` holds the JWKS fetched with it.
pub(crate) type ProviderMetadata = openidconnect::ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Discovery fields outside OpenID Connect Discovery 1.0 that Ward acts on.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct ExtraMetadata {
    /// RFC 9207: the IdP adds `iss` to every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: Option<bool>,
    /// RFC 8414: PKCE methods; Ward sends S256 whatever this says.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    /// RFC 7009 token revocation.
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    /// OpenID Connect RP-Initiated Logout 1.0.
    #[serde(default)]
    pub end_session_endpoint: Option<Url>,
    /// RFC 9126 pushed authorization requests.
    #[serde(default)]
    pub pushed_authorization_request_endpoint: Option<Url>,
    /// RFC 9126 §5: the IdP accepts authorization requests only pushed.
    #[serde(default)]
    pub require_pushed_authorization_requests: Option<bool>,
    /// RFC 8705 §5: the endpoints to use with mutual TLS (`oidc::mtls`).
    #[serde(default)]
    pub mtls_endpoint_aliases: Option<super::mtls::MtlsEndpointAliases>,
    /// RFC 8705 §3.3: the IdP binds access tokens to the client certificate.
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// RFC 9449 §5.1: the JWS algorithms the IdP accepts in DPoP proofs.
    #[serde(default)]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

/// Why the provider metadata was refused.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Fetching or parsing the document or the JWKS failed.
    #[error("provider discovery failed: {0}")]
    Fetch(#[source] openidconnect::DiscoveryError<HttpError>),
    /// The document's `issuer` differs from the configured one (`reported` is the document's,
    /// a URL openidconnect parsed).
    #[error(
        "issuer mismatch: the IdP's discovery document names its issuer {reported:?}, which \
         must equal the configured one character for character; set issuer to exactly {reported:?}"
    )]
    IssuerMismatch {
        /// The `issuer` of the discovery document.
        reported: String,
    },
    /// Ward needs a token endpoint for the code flow.
    #[error("provider metadata has no token_endpoint")]
    NoTokenEndpoint,
    /// An https issuer named a plain-http endpoint.
    #[error("provider {0} is not https although the issuer is")]
    InsecureEndpoint(&'static str),
    /// The HTTP client could not be created.
    #[error("IdP HTTP client unavailable")]
    Client(#[source] HttpError),
}

impl DiscoveryError {
    /// Whether asking again cannot help: the IdP answered, and its answer does not fit the
    /// configuration (another issuer, no token endpoint, plain http under an https issuer), or
    /// its TLS certificate is not trusted.
    pub(crate) fn is_permanent(&self) -> bool {
        match self {
            Self::IssuerMismatch { .. } | Self::NoTokenEndpoint | Self::InsecureEndpoint(_) => true,
            Self::Fetch(openidconnect::DiscoveryError::Request(err)) => {
                matches!(err, HttpError::Untrusted(..))
            }
            Self::Fetch(_) | Self::Client(_) => false,
        }
    }
}

/// Fetches `<issuer>/.well-known/openid-configuration` and the JWKS it names.
///
/// The document's `issuer` must equal the configured issuer character for character
/// (OpenID Connect Discovery §4.3). One ambiguity is not the operator's: the configured issuer
/// is a parsed URL, and a URL with an empty path always gains a `/`, so `https://idp.example`
/// and `https://idp.example/` arrive here as the same value; for such root issuers both
/// spellings are tried (they name the same discovery document), and the one the document
/// states is kept for every later exact comparison. Any other difference is refused.
pub(crate) async fn discover(
    issuer: &Url,
    http: &IdpHttpClient,
) -> Result<ProviderMetadata, DiscoveryError> {
    let _timer = crate::telemetry::metrics::idp_timer("discovery");
    let mut mismatch = None;
    for candidate in issuer_spellings(issuer) {
        match ProviderMetadata::discover_async(candidate, http).await {
            Ok(metadata) => {
                check_endpoints(&metadata)?;
                return Ok(metadata);
            }
            Err(err @ openidconnect::DiscoveryError::Validation(_)) => mismatch = Some(err),
            Err(err) => return Err(DiscoveryError::Fetch(err)),
        }
    }
    Err(match mismatch {
        Some(err) => issuer_mismatch(err),
        None => DiscoveryError::Fetch(openidconnect::DiscoveryError::Other(
            "no issuer to discover".to_owned(),
        )),
    })
}

/// The issuer the document reported, out of openidconnect's validation message
/// ``unexpected issuer URI `<reported>` (expected `<configured>`)``; the message as it is when
/// it has another shape. A URL cannot hold the space of the separator.
fn issuer_mismatch(err: openidconnect::DiscoveryError<HttpError>) -> DiscoveryError {
    let reported = match &err {
        openidconnect::DiscoveryError::Validation(message) => message
            .strip_prefix("unexpected issuer URI `")
            .and_then(|rest| rest.split_once("` (expected `"))
            .map(|(reported, _)| reported.to_owned()),
        _ => None,
    };
    match reported {
        Some(reported) if Url::parse(&reported).is_ok() => {
            DiscoveryError::IssuerMismatch { reported }
        }
        _ => DiscoveryError::Fetch(err),
    }
}

/// The spellings of `issuer` the operator may have written (see [`discover`]).
fn issuer_spellings(issuer: &Url) -> Vec<IssuerUrl> {
    let text = issuer.as_str();
    let mut spellings = Vec::with_capacity(2);
    if issuer.path() == "/" && issuer.query().is_none() && issuer.fragment().is_none() {
        let bare = text.trim_end_matches('/');
        if let Ok(url) = IssuerUrl::new(bare.to_owned()) {
            spellings.push(url);
        }
    }
    spellings.push(IssuerUrl::from_url(issuer.clone()));
    spellings
}

/// Endpoints must not downgrade from the issuer's scheme; plain http is only for an http
/// issuer (a local test IdP), which configuration validation already restricts.
fn check_endpoints(metadata: &ProviderMetadata) -> Result<(), DiscoveryError> {
    let Some(token) = metadata.token_endpoint() else {
        return Err(DiscoveryError::NoTokenEndpoint);
    };
    if metadata.issuer().url().scheme() != "https" {
        return Ok(());
    }
    let extra = metadata.additional_metadata();
    let endpoints: [(&'static str, Option<&Url>); 7] = [
        (
            "authorization_endpoint",
            Some(metadata.authorization_endpoint().url()),
        ),
        ("token_endpoint", Some(token.url())),
        ("jwks_uri", Some(metadata.jwks_uri().url())),
        (
            "userinfo_endpoint",
            metadata.userinfo_endpoint().map(|u| u.url()),
        ),
        ("revocation_endpoint", extra.revocation_endpoint.as_ref()),
        ("end_session_endpoint", extra.end_session_endpoint.as_ref()),
        (
            "pushed_authorization_request_endpoint",
            extra.pushed_authorization_request_endpoint.as_ref(),
        ),
    ];
    for (name, url) in endpoints {
        if url.is_some_and(|url| url.scheme() != "https") {
            return Err(DiscoveryError::InsecureEndpoint(name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_answers_that_cannot_change_stop_the_retries() {
        let mismatch = DiscoveryError::IssuerMismatch {
            reported: "https://idp.example/".to_owned(),
        };
        assert!(mismatch.is_permanent());
        assert!(DiscoveryError::NoTokenEndpoint.is_permanent());
        assert!(DiscoveryError::InsecureEndpoint("jwks_uri").is_permanent());
        let unreachable = DiscoveryError::Fetch(openidconnect::DiscoveryError::Other(
            "connection refused".to_owned(),
        ));
        assert!(!unreachable.is_permanent(), "an IdP still starting");
    }

    fn spellings(issuer: &str) -> Vec<String> {
        issuer_spellings(&Url::parse(issuer).unwrap())
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect()
    }

    #[test]
    fn root_issuer_is_tried_without_and_with_its_slash() {
        assert_eq!(
            spellings("https://idp.example"),
            ["https://idp.example", "https://idp.example/"]
        );
    }

    #[test]
    fn a_mismatch_names_the_issuer_the_document_reports() {
        let err = issuer_mismatch(openidconnect::DiscoveryError::Validation(
            "unexpected issuer URI `https://idp.example/realms/x` (expected \
             `https://idp.example/realms/x/`)"
                .to_owned(),
        ));
        assert!(
            err.to_string()
                .ends_with(r#"set issuer to exactly "https://idp.example/realms/x""#),
            "{err}"
        );
        let other = issuer_mismatch(openidconnect::DiscoveryError::Validation("odd".to_owned()));
        assert!(matches!(other, DiscoveryError::Fetch(_)));
    }

    #[test]
    fn issuer_with_a_path_is_taken_exactly() {
        assert_eq!(
            spellings("https://idp.example/realms/x"),
            ["https://idp.example/realms/x"]
        );
        assert_eq!(
            spellings("https://idp.example/realms/x/"),
            ["https://idp.example/realms/x/"]
        );
    }
}
