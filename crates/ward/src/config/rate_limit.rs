//! `[rate_limit]`: the four sliding-window limits of SPEC §7 and where they count.
//!
//! Each limit is `{ limit = <hits>, window = "<duration>" }`, or `"off"`. Defaults are on:
//! an install that never heard of rate limiting still refuses a login flood.

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration;
use super::errors::Problems;
use super::model::{StoreConfig, StoreKind};

/// `[rate_limit]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RateLimitConfig {
    /// Per client address: one budget for `/bff/login`, `/bff/callback`, `/bff/login/password`.
    #[serde(default = "defaults::login", with = "off_or_limit")]
    pub login: Option<Limit>,
    /// Per session: requests to proxy routes that ride a session.
    #[serde(default = "defaults::api", with = "off_or_limit")]
    pub api: Option<Limit>,
    /// Per client address: proxy-route requests without a session.
    #[serde(default = "defaults::anonymous", with = "off_or_limit")]
    pub anonymous: Option<Limit>,
    /// Per client address: requests whose session cookie names no live session.
    #[serde(default = "defaults::invalid_session", with = "off_or_limit")]
    pub invalid_session: Option<Limit>,
    /// Where the counts live.
    #[serde(default)]
    pub backend: RateLimitBackend,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            login: defaults::login(),
            api: defaults::api(),
            anonymous: defaults::anonymous(),
            invalid_session: defaults::invalid_session(),
            backend: RateLimitBackend::default(),
        }
    }
}

/// One limit: at most `limit` requests in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct Limit {
    /// Requests accepted in any window; at least 1.
    pub limit: u32,
    /// The sliding window; longer than zero.
    #[serde(with = "crate::config::duration")]
    pub window: Duration,
}

/// `rate_limit.backend`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitBackend {
    /// In this process: each instance counts on its own (N instances allow N × the limit).
    #[default]
    Local,
    /// In the configured store, shared by every instance (Redis, PostgreSQL; memory and
    /// embedded count in process, as they are one process's).
    Store,
}

mod defaults {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    pub fn login() -> Option<Limit> {
        Some(Limit {
            limit: 20,
            window: MINUTE,
        })
    }
    pub fn api() -> Option<Limit> {
        Some(Limit {
            limit: 600,
            window: MINUTE,
        })
    }
    pub fn anonymous() -> Option<Limit> {
        Some(Limit {
            limit: 300,
            window: MINUTE,
        })
    }
    pub fn invalid_session() -> Option<Limit> {
        Some(Limit {
            limit: 30,
            window: MINUTE,
        })
    }
}

/// Longest window accepted: a day. Longer ones would hold counts (and memory) for days and
/// are more likely a typo (`"1d"` meant as `"1m"`) than a policy.
const MAX_WINDOW: Duration = Duration::from_secs(86_400);

/// Every problem of `[rate_limit]`, with the store it needs.
pub(crate) fn check_rate_limit(
    config: &RateLimitConfig,
    store: Option<&StoreConfig>,
    out: &mut Problems,
) {
    let limits = [
        ("login", config.login),
        ("api", config.api),
        ("anonymous", config.anonymous),
        ("invalid_session", config.invalid_session),
    ];
    for (name, limit) in limits {
        let Some(limit) = limit else { continue };
        if limit.limit == 0 {
            out.push(
                format!("rate_limit.{name}.limit"),
                "at least 1 (to turn the limit off, write `off` instead of the table)",
            );
        }
        if limit.window.is_zero() {
            out.push(format!("rate_limit.{name}.window"), "longer than zero");
        } else if limit.window > MAX_WINDOW {
            out.push(format!("rate_limit.{name}.window"), "at most 1d");
        }
    }
    if config.backend == RateLimitBackend::Store
        && store.is_some_and(|store| store.kind == StoreKind::Cookie)
    {
        out.push(
            "rate_limit.backend",
            "\"store\" needs a store that keeps state (redis, postgres, embedded, memory); the \
             cookie store keeps none: use \"local\"",
        );
    }
}

/// `"off"` or `{ limit, window }`, as `Option<Limit>`.
mod off_or_limit {
    use super::*;

    const OFF: &str = "off";

    pub fn serialize<S: Serializer>(value: &Option<Limit>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            None => s.serialize_str(OFF),
            Some(limit) => limit.serialize(s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Limit>, D::Error> {
        d.deserialize_any(OffOrLimit)
    }

    struct OffOrLimit;

    impl<'de> Visitor<'de> for OffOrLimit {
        type Value = Option<Limit>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table { limit = 20, window = \"1m\" } or \"off\"")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            if text == OFF {
                Ok(None)
            } else {
                Err(E::invalid_value(de::Unexpected::Str(text), &self))
            }
        }

        fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
            Limit::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
}

/// The effective limits, one line each, for `ward check`.
pub fn describe(config: &RateLimitConfig) -> String {
    let line = |name: &str, per: &str, limit: Option<Limit>| match limit {
        Some(l) => format!(
            "rate limit {name}: {} per {} per {per}",
            l.limit,
            duration::format(l.window)
        ),
        None => format!("rate limit {name}: off"),
    };
    let backend = match config.backend {
        RateLimitBackend::Local => "local (each instance counts on its own)",
        RateLimitBackend::Store => "store (shared by every instance)",
    };
    [
        line("login", "client address", config.login),
        line("api", "session", config.api),
        line("anonymous", "client address", config.anonymous),
        line("invalid_session", "client address", config.invalid_session),
        format!("rate limit backend: {backend}"),
    ]
    .join("\n")
}
