//! Mutual TLS (RFC 8705) on the IdP side: with `client_auth = "tls_client_auth"` Ward's HTTP
//! client presents its certificate (`outbound::identity`), and here the provider metadata is
//! turned into what such a client must use.
//!
//! - Endpoint aliases (§5): an IdP may serve mutual TLS on other URLs than its plain ones and
//!   name them in `mtls_endpoint_aliases`. A client using mTLS must use those, so the token,
//!   revocation, PAR and userinfo endpoints (all Ward calls; it does not introspect) are
//!   replaced by their aliases before any of them is used. Aliases are https (a certificate
//!   needs TLS).
//! - Certificate-bound access tokens (§3): the IdP binds its tokens to the certificate
//!   (`cnf.x5t#S256`) and says so with `tls_client_certificate_bound_access_tokens`; the
//!   start log says which mode is in effect, and the proxy presents the certificate to https
//!   upstreams of token-carrying routes (`proxy::forward`).

use openidconnect::{TokenUrl, UserInfoUrl};
use serde::{Deserialize, Serialize};
use url::Url;

use super::discovery::{DiscoveryError, ProviderMetadata};
use crate::outbound::ClientIdentity;

/// RFC 8705 §5 `mtls_endpoint_aliases`: the endpoints Ward calls, as the IdP names them for
/// mutual TLS.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct MtlsEndpointAliases {
    #[serde(default)]
    pub token_endpoint: Option<Url>,
    #[serde(default)]
    pub revocation_endpoint: Option<Url>,
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    #[serde(default)]
    pub pushed_authorization_request_endpoint: Option<Url>,
}

/// Whether the IdP's tokens are bound to Ward's certificate, from discovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BoundTokens {
    /// `tls_client_certificate_bound_access_tokens: true`.
    Advertised,
    /// The IdP says `false`: its tokens are plain bearer tokens.
    NotOffered,
    /// The IdP says nothing: its tokens may be bound (per client registration) or not.
    Unstated,
}

impl BoundTokens {
    fn of(metadata: &ProviderMetadata) -> Self {
        match metadata
            .additional_metadata()
            .tls_client_certificate_bound_access_tokens
        {
            Some(true) => Self::Advertised,
            Some(false) => Self::NotOffered,
            None => Self::Unstated,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Advertised => "advertised",
            Self::NotOffered => "not_offered",
            Self::Unstated => "unstated",
        }
    }
}

/// `metadata` with every endpoint that has an RFC 8705 alias replaced by it; the names of the
/// replaced ones. An alias that is not https is refused.
pub(crate) fn use_endpoint_aliases(
    metadata: ProviderMetadata,
) -> Result<(ProviderMetadata, Vec<&'static str>), DiscoveryError> {
    let Some(aliases) = metadata.additional_metadata().mtls_endpoint_aliases.clone() else {
        return Ok((metadata, Vec::new()));
    };
    let named: [(&'static str, Option<&Url>); 4] = [
        ("token_endpoint", aliases.token_endpoint.as_ref()),
        ("revocation_endpoint", aliases.revocation_endpoint.as_ref()),
        ("userinfo_endpoint", aliases.userinfo_endpoint.as_ref()),
        (
            "pushed_authorization_request_endpoint",
            aliases.pushed_authorization_request_endpoint.as_ref(),
        ),
    ];
    let mut used = Vec::new();
    for (name, url) in named {
        if let Some(url) = url {
            if url.scheme() != "https" {
                return Err(DiscoveryError::InsecureEndpoint(alias_name(name)));
            }
            used.push(name);
        }
    }
    let mut metadata = metadata;
    if let Some(url) = aliases.token_endpoint {
        metadata = metadata.set_token_endpoint(Some(TokenUrl::from_url(url)));
    }
    if let Some(url) = aliases.userinfo_endpoint {
        metadata = metadata.set_userinfo_endpoint(Some(UserInfoUrl::from_url(url)));
    }
    let extra = metadata.additional_metadata_mut();
    if let Some(url) = aliases.revocation_endpoint {
        extra.revocation_endpoint = Some(url);
    }
    if let Some(url) = aliases.pushed_authorization_request_endpoint {
        extra.pushed_authorization_request_endpoint = Some(url);
    }
    Ok((metadata, used))
}

fn alias_name(name: &'static str) -> &'static str {
    match name {
        "token_endpoint" => "mtls_endpoint_aliases.token_endpoint",
        "revocation_endpoint" => "mtls_endpoint_aliases.revocation_endpoint",
        "userinfo_endpoint" => "mtls_endpoint_aliases.userinfo_endpoint",
        _ => "mtls_endpoint_aliases.pushed_authorization_request_endpoint",
    }
}

/// Logs the mutual-TLS mode in effect (`mtls_configured`): the certificate (subject, expiry,
/// thumbprint — public facts, never the key), the aliases used, and whether the IdP binds its
/// tokens to the certificate.
pub(crate) fn log_mode(metadata: &ProviderMetadata, identity: &ClientIdentity, aliases: &[&str]) {
    let bound = BoundTokens::of(metadata);
    let info = identity.info();
    if info.out_of_validity {
        tracing::warn!(
            event = "mtls_configured",
            subject = %info.subject,
            not_before = %info.not_before,
            not_after = %info.not_after,
            "oidc.client_cert is not valid now: the IdP will refuse it"
        );
    }
    tracing::info!(
        event = "mtls_configured",
        subject = %info.subject,
        not_after = %info.not_after,
        x5t_s256 = identity.thumbprint(),
        endpoint_aliases = %aliases.join(","),
        certificate_bound_tokens = bound.as_str(),
        "mutual-TLS client authentication (RFC 8705); the certificate is presented to the IdP \
         and to https upstreams of token-carrying routes"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(extra: serde_json::Value) -> ProviderMetadata {
        let mut document = serde_json::json!({
            "issuer": "https://idp.example",
            "authorization_endpoint": "https://idp.example/auth",
            "token_endpoint": "https://idp.example/token",
            "userinfo_endpoint": "https://idp.example/me",
            "revocation_endpoint": "https://idp.example/revoke",
            "pushed_authorization_request_endpoint": "https://idp.example/par",
            "jwks_uri": "https://idp.example/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        if let (Some(document), Some(extra)) = (document.as_object_mut(), extra.as_object()) {
            document.extend(extra.clone());
        }
        serde_json::from_value(document).unwrap()
    }

    #[test]
    fn aliases_replace_the_endpoints_they_name_and_only_those() {
        let (metadata, used) = use_endpoint_aliases(metadata(serde_json::json!({
            "mtls_endpoint_aliases": {
                "token_endpoint": "https://mtls.idp.example/token",
                "revocation_endpoint": "https://mtls.idp.example/revoke",
                "userinfo_endpoint": "https://mtls.idp.example/me",
            }
        })))
        .unwrap();
        assert_eq!(
            used,
            ["token_endpoint", "revocation_endpoint", "userinfo_endpoint"]
        );
        assert_eq!(
            metadata.token_endpoint().unwrap().as_str(),
            "https://mtls.idp.example/token"
        );
        assert_eq!(
            metadata.userinfo_endpoint().unwrap().as_str(),
            "https://mtls.idp.example/me"
        );
        let extra = metadata.additional_metadata();
        assert_eq!(
            extra.revocation_endpoint.as_ref().unwrap().as_str(),
            "https://mtls.idp.example/revoke"
        );
        assert_eq!(
            extra
                .pushed_authorization_request_endpoint
                .as_ref()
                .unwrap()
                .as_str(),
            "https://idp.example/par",
            "no alias: the plain endpoint stays"
        );
    }

    #[test]
    fn without_aliases_the_endpoints_stay_and_a_plain_http_alias_is_refused() {
        let (metadata, used) = use_endpoint_aliases(metadata(serde_json::json!({}))).unwrap();
        assert!(used.is_empty());
        assert_eq!(
            metadata.token_endpoint().unwrap().as_str(),
            "https://idp.example/token"
        );
        let err = use_endpoint_aliases(metadata_with_http_alias()).unwrap_err();
        assert!(
            err.to_string()
                .contains("mtls_endpoint_aliases.token_endpoint"),
            "{err}"
        );
        assert!(err.is_permanent());
    }

    fn metadata_with_http_alias() -> ProviderMetadata {
        metadata(serde_json::json!({
            "mtls_endpoint_aliases": { "token_endpoint": "http://mtls.idp.example/token" }
        }))
    }

    #[test]
    fn the_bound_token_mode_follows_discovery() {
        let of = |value: serde_json::Value| {
            BoundTokens::of(&metadata(serde_json::json!({
                "tls_client_certificate_bound_access_tokens": value
            })))
        };
        assert_eq!(of(serde_json::json!(true)), BoundTokens::Advertised);
        assert_eq!(of(serde_json::json!(false)), BoundTokens::NotOffered);
        assert_eq!(
            BoundTokens::of(&metadata(serde_json::json!({}))),
            BoundTokens::Unstated
        );
    }
}
