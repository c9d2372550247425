//! RFC 8693 token exchange as the source of a resource token (`token_exchange = true`).

use super::{Failure, Request, ResourceGrant, ResourceTokenError};
use crate::secret::SecretString;
use crate::session::manager::{LoadedSession, SessionManager};
use crate::session::refresh::REFRESH_DEADLINE;

impl SessionManager {
    /// RFC 8693: the session's access token for one for the resource. No refresh token is
    /// presented, so a refused exchange (`invalid_grant`: the subject token) ends nothing.
    pub(super) async fn exchange_locked<G: ResourceGrant>(
        &self,
        current: LoadedSession,
        request: &Request<'_, G>,
    ) -> Result<SecretString, ResourceTokenError> {
        let now = self.refresh_parts().0.now();
        if current.data.access_expires_at.is_some_and(|at| at <= now) {
            // Its refresh failed: nothing valid to exchange.
            return self.failed(
                &current,
                request,
                Failure::Unavailable,
                "subject_expired",
                None,
            );
        }
        let subject = current.data.access_token.clone();
        let attempt = tokio::time::timeout(
            REFRESH_DEADLINE,
            request.grant.exchange_token(&subject, request.resource),
        )
        .await;
        match attempt {
            Ok(Ok(tokens)) => {
                let used = current.data.refresh_token.clone().unwrap_or_default();
                self.store_resource_token(current, used, request, tokens)
                    .await
            }
            Ok(Err(err)) if err.is_invalid_target() || err.is_invalid_grant() => {
                let reason = if err.is_invalid_grant() {
                    "invalid_grant"
                } else {
                    "invalid_target"
                };
                self.failed(&current, request, Failure::NotGranted, reason, Some(&err))
            }
            Ok(Err(err)) => {
                let reason = if err.idp_unavailable().is_some() {
                    "idp_unavailable"
                } else {
                    "idp_error"
                };
                self.failed(&current, request, Failure::Unavailable, reason, Some(&err))
            }
            Err(_) => self.failed(&current, request, Failure::Unavailable, "timeout", None),
        }
    }
}
