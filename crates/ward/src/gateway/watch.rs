//! The liveness handle of a proxied WebSocket: the session it was opened with, re-checked
//! while the socket is open (`proxy::websocket` closes the socket when [`Liveness::check`]
//! says the session ended).

use axum::http::HeaderMap;

use crate::config::StoreKind;
use crate::cookie_header;
use crate::proxy::websocket::{Check, Liveness};
use crate::secret::SecretString;
use crate::session::LoadedSession;
use crate::state::SharedState;

/// The session a socket was opened with, re-read from the store by the browser's cookie.
/// With the stateless cookie store nothing server-side can end a session early, so the
/// socket lives until the session's expiry as it stood when the socket opened (requests made
/// since may have slid it; the SPA reconnects with its fresh cookie).
pub(crate) struct SessionWatch {
    state: SharedState,
    how: Watch,
    log_id: String,
}

enum Watch {
    /// The request's `Cookie` header, kept to re-load the session (a secret: never logged).
    Store(SecretString),
    /// Ward's clock time at which the session expires.
    Until(u64),
}

impl SessionWatch {
    /// A watch over `session` as loaded for the upgrade; `None` without one (nothing to end).
    pub(crate) fn new(
        state: &SharedState,
        session: Option<&LoadedSession>,
        headers: &HeaderMap,
    ) -> Option<Self> {
        let session = session?;
        let how = if state.config.store.kind == StoreKind::Cookie {
            Watch::Until(state.sessions.expires_at(&session.data))
        } else {
            Watch::Store(SecretString::new(cookie_header::joined(headers)?))
        };
        Some(Self {
            state: state.clone(),
            how,
            log_id: session.log_id().to_owned(),
        })
    }
}

impl Liveness for SessionWatch {
    fn log_id(&self) -> &str {
        &self.log_id
    }

    async fn check(&mut self) -> Check {
        match &self.how {
            Watch::Until(at) if self.state.clock.now() >= *at => Check::Ended("expired"),
            Watch::Until(_) => Check::Alive,
            Watch::Store(cookies) => match self.state.sessions.load(Some(cookies.expose())).await {
                Ok(Some(_)) => Check::Alive,
                Ok(None) => Check::Ended("session_ended"),
                Err(err) => {
                    tracing::warn!(
                        event = "websocket_session_check_failed",
                        session = self.log_id,
                        error = %err,
                        "store unavailable: closing the socket"
                    );
                    Check::Ended("store_unavailable")
                }
            },
        }
    }
}
