//! The test IdP's resource-owner password grant (`PASSWORD_GRANT=1` in `idp/provider.mjs`),
//! for `POST /bff/login/password`: off unless a test asks for it.

use crate::idp::IdpOptions;

/// The one user the test IdP's password grant knows (it becomes `sub`).
pub const PASSWORD_USER: &str = "pat";
/// That user's password (a well-known test value, like the client secret).
pub const PASSWORD_SECRET: &str = "correct horse battery staple";

impl IdpOptions {
    /// Registers the password grant at the IdP: `password` joins the client's grant types and
    /// the discovery document's `grant_types_supported`; only [`PASSWORD_USER`] with
    /// [`PASSWORD_SECRET`] gets tokens, anything else `invalid_grant`.
    pub fn with_password_grant(mut self) -> Self {
        self.extra_env
            .push(("PASSWORD_GRANT".to_owned(), "1".to_owned()));
        self
    }
}
