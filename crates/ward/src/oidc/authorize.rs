//! Pieces of the authorization request that come from configuration: scopes, extra
//! parameters and `prompt`, each limited so configuration cannot override a protocol
//! parameter Ward controls.

use std::collections::BTreeMap;

use openidconnect::Scope;
use openidconnect::core::CoreAuthPrompt;

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
];

/// The openidconnect form of a [`PROMPTS`] value; `None` for anything else.
pub(crate) fn auth_prompt(prompt: &str) -> Option<CoreAuthPrompt> {
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
