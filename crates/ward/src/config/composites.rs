//! `[[composites]]`: one browser request that Ward answers by calling several routes at once
//! (`docs/aggregation.md`). The model here; the checks in `composite_checks.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// One `[[composites]]` entry.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CompositeConfig {
    /// The exact path the browser requests (no prefix matching); it may lie under a route's
    /// prefix, and then answers in that route's place for this one path.
    pub path: String,
    /// The parts by name: each name is a member of the answer.
    pub parts: BTreeMap<String, PartConfig>,
    /// How long the parts may take, all together, from the moment they are sent; a part still
    /// running then is `{"error": "upstream_timeout", "status": 504}`.
    #[serde(
        default = "default_composite_timeout",
        with = "crate::config::duration"
    )]
    pub timeout: Duration,
}

/// One part: written as its path (`"/api/orders?limit={limit}"`) or as a table with the
/// optional keys.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartConfig {
    /// Path and optional query, under a configured route. A query value written `{name}` is
    /// the browser's query parameter `name` (percent-encoded; the pair is left out when the
    /// browser sent none).
    pub path: String,
    /// The part's method: `GET` by default; an unsafe one makes the composite a `POST` (CSRF
    /// token required). Parts never receive a request body.
    pub method: PartMethod,
    /// Allow-list of the part's JSON fields, applied after its route's own `fields`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
    /// This part's own deadline, at most the composite's `timeout`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_optional_duration"
    )]
    pub timeout: Option<Duration>,
}

/// The method of a part's request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum PartMethod {
    /// A read (default).
    #[default]
    Get,
    /// Unsafe methods: only in a composite the browser `POST`s with its CSRF token.
    Post,
    /// See [`PartMethod::Post`].
    Put,
    /// See [`PartMethod::Post`].
    Patch,
    /// See [`PartMethod::Post`].
    Delete,
}

impl PartMethod {
    /// The HTTP method.
    pub fn as_method(self) -> axum::http::Method {
        use axum::http::Method;
        match self {
            Self::Get => Method::GET,
            Self::Post => Method::POST,
            Self::Put => Method::PUT,
            Self::Patch => Method::PATCH,
            Self::Delete => Method::DELETE,
        }
    }
}

/// The table form of a part.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PartTable {
    path: String,
    #[serde(default)]
    method: PartMethod,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default, deserialize_with = "deserialize_optional_duration")]
    timeout: Option<Duration>,
}

impl<'de> Deserialize<'de> for PartConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PartVisitor)
    }
}

struct PartVisitor;

impl<'de> Visitor<'de> for PartVisitor {
    type Value = PartConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a path string or a table { path, method, fields, timeout }")
    }

    fn visit_str<E: de::Error>(self, path: &str) -> Result<PartConfig, E> {
        Ok(PartConfig {
            path: path.to_owned(),
            method: PartMethod::Get,
            fields: None,
            timeout: None,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PartConfig, A::Error> {
        let table = PartTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(PartConfig {
            path: table.path,
            method: table.method,
            fields: table.fields,
            timeout: table.timeout,
        })
    }
}

fn deserialize_optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    crate::config::duration::deserialize(d).map(Some)
}

fn serialize_optional_duration<S: serde::Serializer>(
    value: &Option<Duration>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(duration) => crate::config::duration::serialize(duration, s),
        None => s.serialize_none(),
    }
}

fn default_composite_timeout() -> Duration {
    Duration::from_secs(10)
}
