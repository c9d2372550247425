//! The authorization request: PKCE S256, `state` and `nonce`, and the pieces that come from
//! configuration (scopes, extra parameters, `prompt`), each limited so configuration cannot
//! override a protocol parameter Ward controls; pushed to the IdP first (RFC 9126) when PAR is
//! in use.

use std::collections::BTreeMap;

use openidconnect::core::{CoreAuthPrompt, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, CsrfToken, Nonce, PkceCodeChallenge, PkceCodeVerifier, Scope,
};
use url::Url;

use super::dpop::DpopKey;
use super::par::{self, Par};
use super::{OidcClient, OidcError};
use crate::random;
use crate::secret::SecretString;

/// What the browser is sent to the IdP with, and what Ward keeps to finish the login.
pub struct AuthorizationRequest {
    /// The IdP's authorization URL: every parameter, or with PAR only `client_id` and
    /// `request_uri`.
    pub url: Url,
    /// `state` (32 random bytes, base64url).
    pub state: SecretString,
    /// `nonce` (32 random bytes, base64url).
    pub nonce: SecretString,
    /// PKCE `code_verifier` (32 random bytes, base64url: 43 characters).
    pub pkce_verifier: SecretString,
    /// With `[oidc] dpop`: the login's key pair, named by `dpop_jkt` in the request (RFC 9449
    /// §10), so the code can be redeemed only with a proof of it.
    pub dpop_key: Option<DpopKey>,
}

impl OidcClient {
    /// A new authorization request; `prompt` is passed on when given. With PAR its parameters
    /// are pushed first; a failed push fails the login ([`OidcError::Par`]).
    ///
    /// A `prompt` outside [`PROMPTS`] is dropped with a warning (the login endpoint validates
    /// it first; this is the second line).
    pub async fn authorization_request(
        &self,
        prompt: Option<&str>,
    ) -> Result<AuthorizationRequest, OidcError> {
        let dpop_key = self.dpop.then(DpopKey::generate).transpose()?;
        let mut request = self.front_channel_request(prompt, dpop_key);
        if let Par::Push(endpoint) = &self.par {
            request.url = par::push(
                &self.http,
                endpoint,
                &self.auth,
                &self.client_id,
                &request.url,
            )
            .await
            .map_err(OidcError::Par)?;
        }
        Ok(request)
    }

    /// The request with every parameter in the URL (as sent without PAR).
    fn front_channel_request(
        &self,
        prompt: Option<&str>,
        dpop_key: Option<DpopKey>,
    ) -> AuthorizationRequest {
        let state = random::token();
        let nonce = random::token();
        let verifier = random::token();
        let challenge =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
        let (state_param, nonce_param) = (state.clone(), nonce.clone());
        let mut request = self
            .client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                move || CsrfToken::new(state_param),
                move || Nonce::new(nonce_param),
            )
            .set_pkce_challenge(challenge)
            .add_scopes(self.scopes.iter().cloned());
        for (name, value) in &self.extra_auth_params {
            request = request.add_extra_param(name.as_str(), value.as_str());
        }
        if let Some(key) = &dpop_key {
            request = request.add_extra_param("dpop_jkt", key.thumbprint().to_owned());
        }
        // RFC 8707 §2.1: one `resource` parameter per resource, so the grant (and the refresh
        // token) covers every route's audience; under PAR they are pushed with the rest.
        for resource in &self.resources {
            request = request.add_extra_param("resource", resource.as_str());
        }
        match prompt.map(auth_prompt) {
            None => {}
            Some(Some(prompt)) => request = request.add_prompt(prompt),
            Some(None) => {
                tracing::warn!(event = "login_prompt_dropped", "unsupported prompt value")
            }
        }
        let (url, _, _) = request.url();
        AuthorizationRequest {
            url,
            state: SecretString::new(state),
            nonce: SecretString::new(nonce),
            pkce_verifier: SecretString::new(verifier),
            dpop_key,
        }
    }
}

/// `prompt` values Ward passes on (SPEC §2).
pub const PROMPTS: &[&str] = &["login", "none", "consent", "select_account"];

/// Authorization parameters Ward sets itself; `extra_auth_params` may not override them.
const RESERVED_AUTH_PARAMS: &[&str] = &[
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "request",
    "request_uri",
    "dpop_jkt",
];

/// The openidconnect form of a [`PROMPTS`] value; `None` for anything else.
fn auth_prompt(prompt: &str) -> Option<CoreAuthPrompt> {
    Some(match prompt {
        "login" => CoreAuthPrompt::Login,
        "none" => CoreAuthPrompt::None,
        "consent" => CoreAuthPrompt::Consent,
        "select_account" => CoreAuthPrompt::SelectAccount,
        _ => return None,
    })
}

/// RFC 7636 §7.2 forbids downgrading to `plain`: S256 is sent regardless, but an IdP that
/// does not list it may reject the login, so operators get told.
pub(crate) fn warn_without_s256(methods: Option<&[String]>) {
    if !methods.is_some_and(|methods| methods.iter().any(|m| m == "S256")) {
        tracing::warn!(
            event = "pkce_s256_not_advertised",
            "IdP does not advertise PKCE S256; sending S256 anyway"
        );
    }
}

/// Configured scopes, deduplicated, without `openid` (openidconnect adds it first).
pub(crate) fn scopes(configured: &[String]) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = Vec::new();
    for scope in configured {
        if scope != "openid" && !scopes.iter().any(|s| s.as_str() == scope) {
            scopes.push(Scope::new(scope.clone()));
        }
    }
    scopes
}

/// Extra authorization parameters minus those Ward controls (warned about and dropped).
pub(crate) fn extra_auth_params(configured: &BTreeMap<String, String>) -> Vec<(String, String)> {
    configured
        .iter()
        .filter(|(name, _)| {
            let reserved = RESERVED_AUTH_PARAMS.contains(&name.as_str());
            if reserved {
                tracing::warn!(event = "auth_param_ignored", param = %name, "extra_auth_params may not set a protocol parameter");
            }
            !reserved
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_drop_openid_and_duplicates_in_order() {
        let configured: Vec<String> = ["email", "openid", "profile", "email"]
            .map(String::from)
            .into();
        let names: Vec<String> = scopes(&configured).iter().map(|s| s.to_string()).collect();
        assert_eq!(names, ["email", "profile"]);
    }

    #[test]
    fn extra_params_cannot_override_protocol_parameters() {
        let configured = BTreeMap::from(
            [
                ("audience", "api"),
                ("redirect_uri", "https://evil.example"),
                ("nonce", "x"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        assert_eq!(
            extra_auth_params(&configured),
            [("audience".to_owned(), "api".to_owned())]
        );
    }

    #[test]
    fn only_the_four_prompts_are_recognised() {
        for prompt in PROMPTS {
            assert!(auth_prompt(prompt).is_some(), "{prompt}");
        }
        for prompt in ["", "LOGIN", "login consent", "create"] {
            assert!(auth_prompt(prompt).is_none(), "{prompt}");
        }
    }
}
