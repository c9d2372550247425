//! Pending logins (SPEC §1 step 2): the transaction between `/bff/login` and `/bff/callback`,
//! sealed under the browser's login binding, single use, for at most [`LOGIN_TTL`].
//!
//! Anyone can start a login without credentials, so what pending logins may take of the store
//! is bounded, where the store can find records by index:
//! - per browser (login binding) at most [`MAX_PENDING_PER_BROWSER`]: a browser's own tabs; a
//!   further login makes the oldest give way, so a user is never locked out of logging in;
//! - per client address at most [`MAX_PENDING_PER_CLIENT`]: a further login is refused
//!   ([`TooManyPendingLogins`], `429`) until some expire or finish; the login rate limit keeps
//!   well below it in normal use.
//!
//! Both are soft bounds under concurrency (two logins may both see room for one more). Expired
//! transactions are swept with the other records (`ward_store::spawn_sweeper`) or expire in the
//! backend (Redis TTL). The stateless cookie store keeps one pending login, in the browser.

use std::net::IpAddr;

use ward_store::{Record, StoreError};
use zeroize::Zeroizing;

use super::SessionManager;
use crate::session::cookie::{self, LoginBinding};
use crate::session::record::LoginTransaction;

/// Store namespace of pending logins.
const LOGIN_NS: &str = "t";
/// How long a login may take at the IdP (SPEC §1: at most 10 minutes).
pub const LOGIN_TTL: u64 = 600;
/// Pending logins one browser may hold (parallel tabs); the oldest gives way past it.
pub const MAX_PENDING_PER_BROWSER: usize = 8;
/// Pending logins one client address may hold; past it new logins are refused.
pub const MAX_PENDING_PER_CLIENT: usize = 256;
/// Index kinds of pending logins (keyed hashes of the binding and of the client address).
const BY_BROWSER: &str = "tx-browser";
const BY_CLIENT: &str = "tx-client";

/// The client address holds [`MAX_PENDING_PER_CLIENT`] pending logins already.
#[derive(Debug, thiserror::Error)]
pub enum TooManyPendingLogins {
    /// Refused: the client address has too many logins under way.
    #[error("too many pending logins from one client address")]
    Refused,
    /// The store failed (fail closed: 503).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SessionManager {
    /// The browser's login binding from its `Cookie` header, if well-formed.
    pub fn login_binding(&self, cookie_header: Option<&str>) -> Option<LoginBinding> {
        cookie::find(cookie_header?, &self.login_cookie_name).and_then(LoginBinding::parse)
    }

    /// `Set-Cookie` for the login binding (shared by parallel logins of one browser).
    pub fn set_login_cookie(&self, binding: &LoginBinding) -> String {
        cookie::set_cookie(
            &self.login_cookie_name,
            &binding.encode(),
            LOGIN_TTL,
            &self.login_cookie,
        )
    }

    /// Stores a pending login of the browser holding `binding`, from `client`, sealed under
    /// the binding and keyed by a hash of `state`, within the bounds of the module doc.
    pub async fn begin_login(
        &self,
        binding: &LoginBinding,
        client: IpAddr,
        tx: &LoginTransaction,
    ) -> Result<(), TooManyPendingLogins> {
        let by_browser = self.primary_index(BY_BROWSER, &binding.encode());
        let by_client = self.primary_index(BY_CLIENT, &client.to_string());
        self.make_room(&by_browser, &by_client).await?;
        let key = self
            .sealer
            .store_key(LOGIN_NS, tx.state.expose().as_bytes());
        let plaintext =
            Zeroizing::new(serde_json::to_vec(tx).map_err(|e| StoreError::Corrupt(Box::new(e)))?);
        let record = Record {
            value: self.sealer.seal(&key, binding.secret(), &plaintext),
            expires_at: self.clock.now().saturating_add(LOGIN_TTL),
            indexes: vec![by_browser, by_client],
            created_at: tx.created_at,
            updated_at: tx.created_at,
        };
        Ok(self.store.put(&key, record).await?)
    }

    /// Refuses a login past the client's bound; past the browser's, ends its oldest logins.
    async fn make_room(
        &self,
        by_browser: &str,
        by_client: &str,
    ) -> Result<(), TooManyPendingLogins> {
        let Some(indexes) = self.store.indexes() else {
            return Ok(());
        };
        if indexes.keys_by_index(by_client).await?.len() >= MAX_PENDING_PER_CLIENT {
            tracing::warn!(event = "login_rejected", reason = "too_many_pending_logins");
            return Err(TooManyPendingLogins::Refused);
        }
        let mut own = indexes.list_by_index(by_browser).await?;
        if own.len() < MAX_PENDING_PER_BROWSER {
            return Ok(());
        }
        own.sort_by_key(|info| info.created_at);
        let surplus = own.len() + 1 - MAX_PENDING_PER_BROWSER;
        for oldest in own.iter().take(surplus) {
            self.store.delete(&oldest.key).await?;
        }
        tracing::info!(event = "login_superseded", count = surplus);
        Ok(())
    }

    /// The index entry of `kind` = `value` under the primary server key (what new records
    /// carry; a record from before a key rotation expires within [`LOGIN_TTL`]).
    fn primary_index(&self, kind: &str, value: &str) -> String {
        self.sealer
            .index_keys(kind, value)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// Consumes the pending login named by `state` if, and only if, this browser started it:
    /// it must open under the browser's binding, and only one caller can take it.
    pub async fn finish_login(
        &self,
        binding: &LoginBinding,
        state: &str,
    ) -> Result<Option<LoginTransaction>, StoreError> {
        let key = self.sealer.store_key(LOGIN_NS, state.as_bytes());
        let Some(sealed) = self.store.get(&key).await? else {
            tracing::info!(event = "login_rejected", reason = "unknown_state");
            return Ok(None);
        };
        // Open before taking: a browser that does not hold the binding cannot burn the
        // transaction of the one that does.
        let Ok(opened) = self.sealer.open(&key, binding.secret(), &sealed) else {
            tracing::warn!(event = "login_rejected", reason = "foreign_browser");
            return Ok(None);
        };
        if self.store.take(&key).await?.is_none() {
            tracing::warn!(event = "login_rejected", reason = "replayed_state");
            return Ok(None);
        }
        let Ok(tx) = serde_json::from_slice::<LoginTransaction>(&opened.plaintext) else {
            return Ok(None);
        };
        if !tx.state.ct_eq(state) || tx.created_at.saturating_add(LOGIN_TTL) <= self.clock.now() {
            return Ok(None);
        }
        Ok(Some(tx))
    }
}
