//! The rate limits of SPEC §7 (SECURITY-CASES RL-01, RL-02): which request counts against
//! which limit under which key, and what a refusal or a failing counter means.
//!
//! The algorithm (a sliding window of sub-window counts: never more than `limit` in any
//! `window`) lives in [`ward_store::rate`], so the store backends share it.
//!
//! | limit | key | counted |
//! | --- | --- | --- |
//! | `login` | client address | `/bff/login`, `/bff/callback`, `/bff/login/password`, before the endpoint (`app.rs`) |
//! | `api` | the session's store key | proxy-route requests once their session is loaded (`gateway`) |
//! | `anonymous` | client address | proxy-route requests that go on without a session (`gateway`) |
//! | `invalid_session` | client address | requests whose session cookie named no live session |
//!
//! **Client address** is [`client_ip`]'s answer (`trusted_proxy_hops`), so an untrusted peer's
//! `X-Forwarded-For` never changes it; IPv6 clients count by their `/64`, the least a host is
//! routed (one host rotating through its own /64 would otherwise get 2^64 budgets).
//!
//! **Keys in a shared store** are a keyed hash (HMAC-SHA256 under the primary server key's
//! index key) of the limit and the address: the store never holds an address in plain text;
//! a session is named by its store key, itself a hash. Nothing here logs a key.
//!
//! **When the counter fails** (`backend = "store"` and the store cannot answer): `login` fails
//! closed (`503`, as the login itself would on that store); the others fail open with a
//! `rate_limit_unavailable` warning, since refusing every API call would turn a counter
//! outage into a full outage, while sessions themselves stay fail-closed (SPEC §2).

use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::hmac;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ward_store::{Clock, LocalRateLimits, RateDecision, RateRule, SessionStore, StoreError};

use crate::config::{Limit, RateLimitBackend, RateLimitConfig};
use crate::error::ApiError;
use crate::security::client_ip;

/// Keys an instance-local limit holds: about 200 bytes each, so a limit costs at most some
/// 25 MB whatever an attacker rotates through; past it the stalest key is forgotten.
pub const LOCAL_MAX_KEYS: usize = 131_072;

/// The limits of SPEC §7, by their configuration names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitName {
    /// `rate_limit.login`
    Login,
    /// `rate_limit.api`
    Api,
    /// `rate_limit.anonymous`
    Anonymous,
    /// `rate_limit.invalid_session`
    InvalidSession,
}

impl LimitName {
    /// The configuration name, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Api => "api",
            Self::Anonymous => "anonymous",
            Self::InvalidSession => "invalid_session",
        }
    }
}

/// What a limit counts per.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A client address (already resolved through `trusted_proxy_hops`).
    Client(IpAddr),
    /// A session, by its store key (a hash; never the cookie).
    Session(&'a str),
}

/// Why the rate limits cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum RateLimitSetupError {
    /// `backend = "store"` on a store without the capability (validation catches the cookie
    /// store; this guards a store built in code).
    #[error("rate_limit.backend = \"store\": the {0} store cannot count rate limits")]
    StoreCannotCount(&'static str),
}

/// Where one limit counts.
enum Counts {
    Local(LocalRateLimits),
    Store(Arc<dyn SessionStore>),
}

struct Limiter {
    name: LimitName,
    rule: RateRule,
    counts: Counts,
}

/// Every configured limit, ready to count. A limit that is `off` is absent: it costs nothing.
pub struct RateLimiting {
    login: Option<Limiter>,
    api: Option<Limiter>,
    anonymous: Option<Limiter>,
    invalid_session: Option<Limiter>,
    trusted_proxy_hops: u8,
    /// Turns addresses into store keys (HMAC-SHA256).
    key: hmac::Key,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for RateLimiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiting").finish_non_exhaustive()
    }
}

impl RateLimiting {
    /// The limits of `config`, counting in process or in `store` (`backend`), with store keys
    /// hashed under `key`.
    pub fn new(
        config: &RateLimitConfig,
        trusted_proxy_hops: u8,
        store: &Arc<dyn SessionStore>,
        key: hmac::Key,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RateLimitSetupError> {
        if config.backend == RateLimitBackend::Store && store.rate_limits().is_none() {
            return Err(RateLimitSetupError::StoreCannotCount(store.kind()));
        }
        let limiter = |name: LimitName, limit: Option<Limit>| {
            limit.map(|limit| Limiter {
                name,
                rule: RateRule {
                    limit: limit.limit,
                    window_ms: u64::try_from(limit.window.as_millis()).unwrap_or(u64::MAX),
                },
                counts: match config.backend {
                    RateLimitBackend::Local => Counts::Local(LocalRateLimits::new(LOCAL_MAX_KEYS)),
                    RateLimitBackend::Store => Counts::Store(store.clone()),
                },
            })
        };
        Ok(Self {
            login: limiter(LimitName::Login, config.login),
            api: limiter(LimitName::Api, config.api),
            anonymous: limiter(LimitName::Anonymous, config.anonymous),
            invalid_session: limiter(LimitName::InvalidSession, config.invalid_session),
            trusted_proxy_hops,
            key,
            clock,
        })
    }

    /// Whether `name` is configured (not `off`).
    pub fn is_on(&self, name: LimitName) -> bool {
        self.limiter(name).is_some()
    }

    /// The address a request counts under: see the module doc.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        client_ip::client_ip(peer, headers, self.trusted_proxy_hops)
    }

    /// Counts one request against `name` for `subject`: `Ok` when within the limit (or the
    /// limit is off, or its counter failed open), `429 rate_limited` past it, `503` when the
    /// `login` counter cannot answer.
    pub async fn check(&self, name: LimitName, subject: Subject<'_>) -> Result<(), ApiError> {
        let Some(limiter) = self.limiter(name) else {
            return Ok(());
        };
        let now = self.clock.now_millis();
        let decision = match &limiter.counts {
            Counts::Local(local) => Ok(match subject {
                Subject::Client(ip) => {
                    local.hit_now(address_bytes(ip).as_slice(), limiter.rule, now)
                }
                Subject::Session(key) => local.hit_now(key.as_bytes(), limiter.rule, now),
            }),
            Counts::Store(store) => {
                let key = self.store_key(name, subject);
                match store.rate_limits() {
                    Some(counts) => counts.hit(&key, limiter.rule, now).await,
                    None => Ok(RateDecision::Allowed), // refused at construction
                }
            }
        };
        match decision {
            Ok(RateDecision::Allowed) => Ok(()),
            Ok(RateDecision::Limited { retry_after_ms }) => {
                tracing::warn!(event = "rate_limited", limit = name.as_str());
                crate::telemetry::metrics::rate_limited(name.as_str());
                Err(ApiError::RateLimited {
                    retry_after: retry_after_secs(retry_after_ms),
                })
            }
            Err(err) => match counter_failed(limiter.name, &err) {
                Failure::Open => Ok(()),
                Failure::Closed => Err(ApiError::StoreUnavailable),
            },
        }
    }

    /// A request whose session cookie named no live session (a stale cookie, or guessing):
    /// counts against `invalid_session` for its client, `429` past the limit.
    pub async fn cookie_named_no_session(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<(), ApiError> {
        if !self.is_on(LimitName::InvalidSession) {
            return Ok(());
        }
        let client = Subject::Client(self.client(peer, headers));
        self.check(LimitName::InvalidSession, client).await
    }

    fn limiter(&self, name: LimitName) -> Option<&Limiter> {
        match name {
            LimitName::Login => self.login.as_ref(),
            LimitName::Api => self.api.as_ref(),
            LimitName::Anonymous => self.anonymous.as_ref(),
            LimitName::InvalidSession => self.invalid_session.as_ref(),
        }
    }

    /// `q:<limit>:<hash>`: per limit, so two limits never share a window; an address hashed
    /// under the key, a session's store key as it is (already a hash).
    fn store_key(&self, name: LimitName, subject: Subject<'_>) -> String {
        match subject {
            Subject::Client(ip) => {
                let mut ctx = hmac::Context::with_key(&self.key);
                ctx.update(b"ward rate limit\0");
                ctx.update(name.as_str().as_bytes());
                ctx.update(b"\0");
                ctx.update(address_bytes(ip).as_slice());
                let tag = ctx.sign();
                // 128 bits of the tag: ample against collisions between addresses.
                let hashed = URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16]);
                format!("{}:ip:{hashed}", name.as_str())
            }
            Subject::Session(key) => format!("{}:{key}", name.as_str()),
        }
    }
}

/// What a failed counter means for the request.
enum Failure {
    /// The request goes on, unlimited.
    Open,
    /// The request is refused (`503`).
    Closed,
}

/// The policy of the module doc, logged: the error's cause chain, never the key.
fn counter_failed(name: LimitName, err: &StoreError) -> Failure {
    let cause = std::error::Error::source(err).map(ToString::to_string);
    match name {
        LimitName::Login => {
            tracing::error!(
                event = "rate_limit_unavailable",
                limit = name.as_str(),
                outcome = "refused",
                error = %err,
                cause,
                "rate limit store failed: login refused (fail closed)"
            );
            Failure::Closed
        }
        _ => {
            tracing::warn!(
                event = "rate_limit_unavailable",
                limit = name.as_str(),
                outcome = "allowed",
                error = %err,
                cause,
                "rate limit store failed: request allowed unlimited (fail open)"
            );
            Failure::Open
        }
    }
}

/// An address as counted: IPv4 (also when mapped into IPv6) whole, IPv6 by its `/64`.
fn address_bytes(ip: IpAddr) -> AddressBytes {
    match ip.to_canonical() {
        IpAddr::V4(v4) => AddressBytes::V4(v4.octets()),
        IpAddr::V6(v6) => {
            let mut prefix = [0; 8];
            prefix.copy_from_slice(&v6.octets()[..8]);
            AddressBytes::V6(prefix)
        }
    }
}

/// The bytes of [`address_bytes`], on the stack: the local path allocates nothing for them.
enum AddressBytes {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl AddressBytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Self::V4(b) => b,
            Self::V6(b) => b,
        }
    }
}

/// `Retry-After` seconds: rounded up (never tell a client to come back too early), ≥ 1.
fn retry_after_secs(retry_after_ms: u64) -> u32 {
    u32::try_from(retry_after_ms.div_ceil(1000).max(1)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
