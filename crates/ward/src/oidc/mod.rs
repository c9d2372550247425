//! The OpenID Connect client: discovery and JWKS cache, the authorization request (PKCE S256,
//! `state`, `nonce`), the RFC 9207 `iss` check, code exchange, ID-token validation, token
//! revocation and the end-session URL.
//!
//! Protocol work is openidconnect's; this module decides policy. `http` is the only way out
//! to the IdP (no redirects, bounded time and size); `discovery` verifies the metadata before
//! any endpoint in it is used; `authorize` limits what configuration adds to the login
//! redirect; `jwks` keeps the keys and rate-limits refetches; `id_token` adds the checks
//! openidconnect leaves to clients; `userinfo` fetches the claims to merge; `endpoint`
//! revokes tokens and reduces IdP failures to summaries that cannot leak a token;
//! `credentials_probe` lets `ward check` tell a wrong client secret from a right one;
//! `password` runs the resource-owner password grant of `POST /bff/login/password`; `mtls`
//! turns the metadata into what a `tls_client_auth` client uses (RFC 8705 endpoint aliases) and
//! logs the bound-token mode.

mod authorize;
mod client_auth;
mod client_credentials;
mod credentials_probe;
mod discovery;
pub mod dpop;
mod endpoint;
pub(crate) mod http;
mod id_token;
mod jwks;
mod jws;
mod logout_token;
mod mtls;
mod par;
mod password;
mod refresh;
mod resource;
mod signing_key;
#[cfg(test)]
mod tests;
mod token_request;
mod userinfo;

use crate::telemetry::spans;
use std::error::Error as StdError;
use std::sync::Arc;
use tracing::Instrument as _;

use openidconnect::core::{CoreClient, CoreIdToken, CoreJsonWebKeySet};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, OAuth2TokenResponse, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde_json::{Map, Value};
use url::Url;
use ward_store::Clock;

pub use self::authorize::{AuthorizationRequest, PROMPTS};
use self::authorize::{extra_auth_params, scopes, warn_without_s256};
pub use self::client_auth::ClientAuthError;
use self::client_auth::ClientAuthenticator;
pub use self::client_credentials::{ClientTokenError, ClientTokens};
pub use self::credentials_probe::CredentialsVerdict;
pub use self::discovery::DiscoveryError;
use self::discovery::ProviderMetadata;
pub use self::dpop::DpopError;
use self::dpop::{DpopKey, DpopNonces};
pub use self::endpoint::EndpointError;
pub use self::http::HttpError;
use self::http::IdpHttpClient;
pub use self::id_token::IdTokenError;
use self::id_token::{IdTokenValidator, VerifiedIdToken, user_claims};
use self::jwks::KeyCache;
pub use self::jws::JwsError;
use self::jws::JwsPolicy;
use self::logout_token::LogoutTokenValidator;
pub use self::logout_token::{LogoutToken, LogoutTokenError, MAX_LOGOUT_TOKEN_LEN};
use self::par::Par;
pub use self::par::{ParConfigError, ParError};
pub use self::password::PasswordGrantNotAdvertised;
pub use self::refresh::{RefreshedIdTokenError, RefreshedTokens};
pub use self::resource::ResourceTokens;
pub use self::signing_key::KeyError;
use self::token_request::{check_token_type, token_request_failed};
use crate::config::{ClientAuth, OidcConfig};
use crate::secret::SecretString;

/// The openidconnect client with the endpoints Ward requires set.
type IdpClient<HasTokenUrl = EndpointSet> = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
    EndpointMaybeSet,
>;

/// Why an OIDC operation failed. The text never carries a token, code or secret.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// Discovery or JWKS could not be fetched or parsed.
    #[error("provider metadata unavailable")]
    Discovery(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The `iss` callback parameter did not match (RFC 9207).
    #[error("issuer mismatch in authorization response")]
    IssuerMismatch,
    /// The token endpoint refused or failed.
    #[error("token request failed")]
    TokenRequest(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The ID token failed validation.
    #[error("invalid ID token")]
    InvalidIdToken(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The token response lacked something required (e.g. the ID token).
    #[error("incomplete token response: {0}")]
    IncompleteResponse(&'static str),
    /// The login transaction lacks a value the exchange needs; nothing was sent.
    #[error("login transaction lacks {0}")]
    IncompleteLogin(&'static str),
    /// The revocation endpoint refused or failed.
    #[error("token revocation failed")]
    Revocation(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The configured client authentication does not work with this IdP (a start error).
    #[error("client authentication: {0}")]
    ClientAuth(#[from] ClientAuthError),
    /// The configured `par` does not fit this IdP (a start error).
    #[error("{0}")]
    ParConfig(#[from] ParConfigError),
    /// Pushing the authorization request failed (the login fails).
    #[error("{0}")]
    Par(#[source] ParError),
    /// `[oidc] dpop` does not fit this IdP (a start error), or a login's key could not be made.
    #[error("{0}")]
    Dpop(#[from] DpopError),
}

impl OidcError {
    /// The transport failure behind this error, if the IdP could not be reached or failed on
    /// its side (a 502/504 case rather than a refusal).
    pub fn idp_unavailable(&self) -> Option<&HttpError> {
        let mut cause = StdError::source(self);
        while let Some(err) = cause {
            if let Some(http) = err.downcast_ref::<HttpError>() {
                return http.is_unavailable().then_some(http);
            }
            cause = err.source();
        }
        None
    }

    /// Whether Ward's own configuration does not fit the IdP (client authentication, `par`,
    /// the issuer, an untrusted certificate): retrying cannot help.
    pub fn is_misconfiguration(&self) -> bool {
        match self {
            Self::ClientAuth(_) | Self::ParConfig(_) => true,
            Self::Dpop(err) => matches!(err, DpopError::Es256NotOffered(_)),
            Self::Discovery(err) => err
                .downcast_ref::<discovery::DiscoveryError>()
                .is_some_and(discovery::DiscoveryError::is_permanent),
            _ => false,
        }
    }

    /// Whether the IdP did not answer in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self.idp_unavailable(), Some(HttpError::Timeout(_)))
    }
}

/// Tokens and validated identity from a code exchange.
#[derive(Debug)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// The refresh token, when issued.
    pub refresh_token: Option<SecretString>,
    /// The raw ID token (kept for `id_token_hint`).
    pub id_token: SecretString,
    /// Access-token expiry (unix seconds), from `expires_in`; `None` when the IdP sent none
    /// (the session layer then applies its own default).
    pub access_expires_at: Option<u64>,
    /// `sub` of the validated ID token.
    pub sub: String,
    /// `sid` of the ID token, when present.
    pub sid: Option<String>,
    /// Claims of the ID token (merged with userinfo), minus protocol claims.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The DPoP key the tokens are bound to (`[oidc] dpop`), kept with the session.
    pub dpop_key: Option<DpopKey>,
}

/// Ward's client at one IdP.
pub struct OidcClient {
    client: IdpClient,
    /// Kept to build a client with the current keys for signed userinfo answers.
    metadata: ProviderMetadata,
    /// The issuer exactly as the discovery document states it.
    issuer: String,
    /// RFC 9207 advertised: every authorization response must carry `iss`.
    iss_parameter_required: bool,
    revocation_endpoint: Option<Url>,
    end_session_endpoint: Option<Url>,
    client_id: String,
    /// The one way every authenticated call proves it is Ward.
    auth: ClientAuthenticator,
    /// Whether (and where) authorization requests are pushed.
    par: Par,
    /// Configured scopes without `openid`, which openidconnect always sends first.
    scopes: Vec<Scope>,
    extra_auth_params: Vec<(String, String)>,
    /// RFC 8707 resources of the `user` routes, named in every authorization request.
    resources: Vec<String>,
    keys: KeyCache,
    /// Algorithms and key selection for ID and logout tokens alike.
    policy: JwsPolicy,
    validator: IdTokenValidator,
    http: IdpHttpClient,
    clock: Arc<dyn Clock>,
    /// `[oidc] dpop`: every login makes a key and binds its tokens to it.
    dpop: bool,
    /// The IdP's latest `DPoP-Nonce` (RFC 9449 §8), per origin.
    dpop_nonces: DpopNonces,
}

impl OidcClient {
    /// Discovers the provider at `config.issuer` and loads its JWKS, over a client with the
    /// trust and egress proxy of `outbound`.
    pub async fn discover(
        config: &OidcConfig,
        redirect_uri: Url,
        clock: Arc<dyn Clock>,
        outbound: &crate::outbound::Outbound,
    ) -> Result<Self, OidcError> {
        let discovery_error = |err: DiscoveryError| OidcError::Discovery(Box::new(err));
        let http = IdpHttpClient::new(outbound)
            .map_err(|err| discovery_error(DiscoveryError::Client(err)))?;
        let mut metadata = discovery::discover(&config.issuer, &http)
            .await
            .map_err(discovery_error)?;
        if config.client_auth == ClientAuth::TlsClientAuth {
            let identity = outbound
                .client_identity()
                .ok_or(ClientAuthError::NoClientCertificate)?;
            let (aliased, aliases) =
                mtls::use_endpoint_aliases(metadata).map_err(discovery_error)?;
            metadata = aliased;
            mtls::log_mode(&metadata, identity, &aliases);
        }
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| discovery_error(DiscoveryError::NoTokenEndpoint))?;
        let extra = metadata.additional_metadata().clone();
        warn_without_s256(extra.code_challenge_methods_supported.as_deref());

        let auth = ClientAuthenticator::new(config, &metadata, Arc::clone(&clock))?;
        let par = Par::decide(
            config.par,
            extra.pushed_authorization_request_endpoint.as_ref(),
            extra.require_pushed_authorization_requests == Some(true),
        )?;
        if config.dpop {
            dpop::check_advertised(extra.dpop_signing_alg_values_supported.as_deref())?;
        }
        log_discovered(&metadata, &auth);
        let client = idp_client(config, &metadata, token_url, redirect_uri);
        let policy = JwsPolicy::new(metadata.id_token_signing_alg_values_supported());
        let validator = IdTokenValidator::new(
            client.client_id().clone(),
            metadata.issuer().clone(),
            policy.clone(),
            Arc::clone(&clock),
        );
        let keys = KeyCache::new(
            metadata.jwks_uri().clone(),
            metadata.jwks().clone(),
            clock.now(),
        );
        Ok(Self {
            client,
            issuer: metadata.issuer().as_str().to_owned(),
            iss_parameter_required: extra.authorization_response_iss_parameter_supported
                == Some(true),
            revocation_endpoint: extra.revocation_endpoint,
            end_session_endpoint: extra.end_session_endpoint,
            metadata,
            client_id: config.client_id.clone(),
            auth,
            par,
            scopes: scopes(&config.scopes),
            extra_auth_params: extra_auth_params(&config.extra_auth_params),
            resources: Vec::new(),
            keys,
            policy,
            validator,
            http,
            clock,
            dpop: config.dpop,
            dpop_nonces: DpopNonces::default(),
        })
    }

    /// RFC 9207: when the IdP advertises `authorization_response_iss_parameter_supported`,
    /// `iss` must be present and equal the issuer. A present `iss` must match in any case.
    /// The comparison is exact: a trailing slash or a case difference is a mismatch.
    pub fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), OidcError> {
        match iss {
            Some(iss) if iss == self.issuer => Ok(()),
            Some(_) => Err(OidcError::IssuerMismatch),
            None if self.iss_parameter_required => Err(OidcError::IssuerMismatch),
            None => Ok(()),
        }
    }

    /// Exchanges `code` with the client credentials and `pkce_verifier`, validates the ID token
    /// against `nonce`. With `dpop_key` (the login's, `[oidc] dpop`) the request carries a proof
    /// of it and the tokens must come back bound to it (`token_type` DPoP).
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &SecretString,
        nonce: &SecretString,
        dpop_key: Option<&DpopKey>,
    ) -> Result<TokenSet, OidcError> {
        // Fail closed before anything is sent: a login without verifier or nonce is broken.
        if pkce_verifier.is_empty() {
            return Err(OidcError::IncompleteLogin("a PKCE verifier"));
        }
        if nonce.is_empty() {
            return Err(OidcError::IncompleteLogin("a nonce"));
        }
        if self.dpop && dpop_key.is_none() {
            return Err(OidcError::IncompleteLogin("a DPoP key"));
        }
        let timer = crate::telemetry::metrics::idp_timer("token");
        let response = self
            .with_dpop_retry(dpop_key, None, |http| async move {
                let request = self
                    .client
                    .exchange_code(AuthorizationCode::new(code.to_owned()))
                    .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_owned()));
                let request =
                    self.with_assertion(request, |r, name, value| r.add_extra_param(name, value))?;
                request
                    .request_async(&http)
                    .instrument(spans::idp("idp token"))
                    .await
                    .map_err(token_request_failed)
            })
            .await;
        drop(timer);
        let response = response?;
        check_token_type(&response, dpop_key.is_some())?;
        let id_token = response
            .id_token()
            .ok_or(OidcError::IncompleteResponse("id_token"))?;
        let identity = self
            .validate_id_token(id_token, nonce)
            .await
            .map_err(|err| OidcError::InvalidIdToken(Box::new(err)))?;
        let access_token = SecretString::new(response.access_token().secret().clone());
        let claims = self
            .with_userinfo(&access_token, dpop_key, &identity.sub, identity.claims)
            .await?;
        Ok(TokenSet {
            access_expires_at: response
                .expires_in()
                .map(|ttl| self.clock.now().saturating_add(ttl.as_secs())),
            refresh_token: response
                .refresh_token()
                .map(|token| SecretString::new(token.secret().clone())),
            id_token: SecretString::new(id_token.to_string()),
            access_token,
            sub: identity.sub,
            sid: identity.sid,
            claims,
            dpop_key: dpop_key.cloned(),
        })
    }

    /// Revokes a refresh token (RFC 7009) when the IdP has a revocation endpoint.
    pub async fn revoke_refresh_token(&self, token: &SecretString) -> Result<(), OidcError> {
        let Some(endpoint) = &self.revocation_endpoint else {
            return Ok(());
        };
        endpoint::revoke_refresh_token(&self.http, endpoint, &self.auth, token)
            .await
            .map_err(|err| OidcError::Revocation(Box::new(err)))
    }

    /// The RP-initiated logout URL, or `None` without an `end_session_endpoint`.
    pub fn end_session_url(
        &self,
        id_token_hint: Option<&SecretString>,
        post_logout_redirect_uri: &Url,
        state: &str,
    ) -> Option<Url> {
        let mut url = self.end_session_endpoint.clone()?;
        {
            let mut query = url.query_pairs_mut();
            // A password-grant session may hold no ID token: then there is nothing to hint.
            if let Some(hint) = id_token_hint.filter(|hint| !hint.is_empty()) {
                query.append_pair("id_token_hint", hint.expose());
            }
            query
                .append_pair("client_id", &self.client_id)
                .append_pair(
                    "post_logout_redirect_uri",
                    post_logout_redirect_uri.as_str(),
                )
                .append_pair("state", state);
        }
        Some(url)
    }

    /// Validates a back-channel `logout_token` (Back-Channel Logout 1.0 §2.6; the checks are
    /// in the `logout_token` module); when no key fits, refetches the JWKS (rate-limited, as
    /// for ID tokens) and tries once more. Replay (`jti`) is the caller's check: it needs the
    /// store.
    pub async fn validate_logout_token(
        &self,
        token: &str,
    ) -> Result<LogoutToken, LogoutTokenError> {
        let validator = LogoutTokenValidator {
            client_id: self.client_id.as_str(),
            issuer: &self.issuer,
            policy: &self.policy,
            now: self.clock.now(),
        };
        self.with_keys(
            |keys| validator.validate(token, keys),
            |err| matches!(err, LogoutTokenError::UnknownKey),
        )
        .await
    }

    /// Validates `id_token`; when no key fits, refetches the JWKS (rate-limited) and tries once
    /// more, which is how a rotated-in signing key becomes known.
    async fn validate_id_token(
        &self,
        id_token: &CoreIdToken,
        nonce: &SecretString,
    ) -> Result<VerifiedIdToken, IdTokenError> {
        self.with_keys(
            |keys| self.validator.validate(id_token, nonce, keys),
            IdTokenError::is_unknown_key,
        )
        .await
    }

    /// `validate` with the fresh keys (refetched on schedule); when it fails for want of a
    /// key, with keys refetched once more (rate-limited): how a rotated-in key becomes known.
    async fn with_keys<T, E>(
        &self,
        validate: impl Fn(&CoreJsonWebKeySet) -> Result<T, E>,
        is_unknown_key: impl Fn(&E) -> bool,
    ) -> Result<T, E> {
        let keys = self.keys.fresh(&self.http, self.clock.now()).await;
        match validate(&keys) {
            Err(err) if is_unknown_key(&err) => {
                match self.keys.refresh(&keys, &self.http, self.clock.now()).await {
                    Some(fresh) => validate(&fresh),
                    None => Err(err),
                }
            }
            other => other,
        }
    }

    /// Whether the IdP is reachable for readiness (SPEC §7): its JWKS answered a fetch within
    /// the last [`jwks::PROBE_INTERVAL`] seconds; at most one probe per interval reaches it.
    pub async fn idp_ready(&self) -> bool {
        self.keys.probe(&self.http, self.clock.now()).await
    }

    /// `claims` merged with the userinfo claims when the IdP has a userinfo endpoint. A
    /// userinfo answer for another `sub` fails the login (OpenID Connect Core §5.3.2); any
    /// other userinfo failure keeps the ID token's claims.
    async fn with_userinfo(
        &self,
        access_token: &SecretString,
        dpop_key: Option<&DpopKey>,
        sub: &str,
        mut claims: Map<String, Value>,
    ) -> Result<Map<String, Value>, OidcError> {
        if self.metadata.userinfo_endpoint().is_none() {
            return Ok(claims);
        }
        let keys = &self.keys.current();
        let fetched = self
            .with_dpop_retry(dpop_key, Some(access_token), |http| async move {
                userinfo::fetch(
                    &self.metadata,
                    keys,
                    self.client.client_id(),
                    &http,
                    access_token,
                )
                .await
            })
            .await;
        match fetched {
            Ok(info) if info.get("sub").and_then(Value::as_str) == Some(sub) => {
                claims.extend(user_claims(info));
            }
            Ok(_) => {
                return Err(OidcError::InvalidIdToken(Box::new(
                    IdTokenError::UserinfoSubjectMismatch,
                )));
            }
            Err(reason) => {
                tracing::warn!(event = "userinfo_failed", reason = %reason, "keeping the ID token's claims");
            }
        }
        Ok(claims)
    }
}

/// openidconnect's client for the discovered endpoints, authenticating as configured.
fn idp_client(
    config: &OidcConfig,
    metadata: &ProviderMetadata,
    token_url: openidconnect::TokenUrl,
    redirect_uri: Url,
) -> IdpClient {
    // Secret methods are openidconnect's to send; for the others it sends `client_id` in the
    // body and `with_assertion` adds the assertion.
    let secret = config
        .client_auth
        .uses_secret()
        .then(|| ClientSecret::new(config.client_secret.expose().to_owned()));
    CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(config.client_id.clone()),
        secret,
    )
    .set_token_uri(token_url)
    .set_redirect_uri(RedirectUrl::from_url(redirect_uri))
    .set_auth_type(match config.client_auth {
        ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
        _ => AuthType::RequestBody,
    })
}

fn log_discovered(metadata: &ProviderMetadata, auth: &ClientAuthenticator) {
    let extra = metadata.additional_metadata();
    let signer = auth.signer();
    tracing::info!(
        event = "oidc_discovered",
        issuer = %metadata.issuer().as_str(),
        keys = metadata.jwks().keys().len(),
        iss_parameter = extra.authorization_response_iss_parameter_supported == Some(true),
        revocation = extra.revocation_endpoint.is_some(),
        end_session = extra.end_session_endpoint.is_some(),
        par = extra.pushed_authorization_request_endpoint.is_some(),
        par_required = extra.require_pushed_authorization_requests == Some(true),
        client_assertion_alg = signer.map(|s| s.alg()),
        client_assertion_kid = signer.map(|s| s.kid()),
    );
}
