//! The composite table: `[[composites]]` compiled once at start-up against the route table.
//! Pure data; `gateway::composite` runs them.

use std::time::Duration;

use axum::http::Method;

use super::ProxyError;
use super::fields::FieldSet;
use super::part_target::PartTarget;
use super::routes::Route;
use crate::config::{CompositeConfig, TokenMode};
use crate::telemetry::metrics::RouteSeries;

/// Most parts of one composite: each is a concurrent upstream request per browser request.
pub const MAX_PARTS: usize = 16;

/// One compiled composite.
#[derive(Debug)]
pub struct Composite {
    path: String,
    method: Method,
    token: TokenMode,
    parts: Vec<Part>,
    /// Its metric series (`route` = the composite's path).
    metrics: &'static RouteSeries,
}

/// One part of a composite.
#[derive(Debug)]
pub struct Part {
    /// The member of the answer.
    pub name: String,
    /// Index of its route in the proxy's table.
    pub(crate) route: usize,
    /// Path and query template.
    pub target: PartTarget,
    /// The part's request method.
    pub method: Method,
    /// The part's own allow-list, after its route's.
    pub fields: Option<FieldSet>,
    /// Its deadline from the fan-out: its own `timeout`, else the composite's.
    pub timeout: Duration,
}

impl Composite {
    /// The exact path it answers.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The one method it answers: `POST` when a part is unsafe, else `GET`.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The strictest token mode of its parts' routes: what admission needs of the session
    /// (`user` if any part needs a user, else `user-optional` if any part uses one, else
    /// `none`).
    pub fn token(&self) -> TokenMode {
        self.token
    }

    /// The parts, in name order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// Its metric series.
    pub fn metrics(&self) -> &'static RouteSeries {
        self.metrics
    }
}

/// Compiles every composite against `routes` (the proxy's table, longest prefix first).
pub(crate) fn compile_all(
    configs: &[CompositeConfig],
    routes: &[Route],
) -> Result<Vec<Composite>, ProxyError> {
    let mut composites: Vec<Composite> = Vec::with_capacity(configs.len());
    for (index, config) in configs.iter().enumerate() {
        let invalid = |reason: String| ProxyError::InvalidComposite { index, reason };
        if routes.iter().any(|route| route.prefix() == config.path)
            || composites.iter().any(|c| c.path == config.path)
        {
            return Err(invalid(format!("path `{}` is taken", config.path)));
        }
        if config.parts.is_empty() || config.parts.len() > MAX_PARTS {
            return Err(invalid(format!("must have 1 to {MAX_PARTS} parts")));
        }
        let parts = config
            .parts
            .iter()
            .map(|(name, part)| compile_part(name, part, config.timeout, routes))
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        composites.push(Composite {
            path: config.path.clone(),
            method: if parts.iter().all(|p| p.method == Method::GET) {
                Method::GET
            } else {
                Method::POST
            },
            token: strictest(parts.iter().map(|p| routes[p.route].token)),
            metrics: crate::telemetry::metrics::route(&config.path),
            parts,
        });
    }
    Ok(composites)
}

fn compile_part(
    name: &str,
    config: &crate::config::PartConfig,
    composite_timeout: Duration,
    routes: &[Route],
) -> Result<Part, String> {
    let target =
        PartTarget::parse(&config.path).map_err(|reason| format!("parts.{name}: path {reason}"))?;
    let route = routes
        .iter()
        .position(|route| route.matches(target.path()))
        .ok_or_else(|| format!("parts.{name}: path is under no route"))?;
    let fields = config
        .fields
        .as_deref()
        .map(FieldSet::parse)
        .transpose()
        .map_err(|err| format!("parts.{name}.fields: {err}"))?;
    Ok(Part {
        name: name.to_owned(),
        route,
        target,
        method: config.method.as_method(),
        fields,
        timeout: config
            .timeout
            .unwrap_or(composite_timeout)
            .min(composite_timeout),
    })
}

fn strictest(modes: impl Iterator<Item = TokenMode>) -> TokenMode {
    modes.fold(TokenMode::None, |strictest, mode| match (strictest, mode) {
        (TokenMode::User, _) | (_, TokenMode::User) => TokenMode::User,
        (TokenMode::UserOptional, _) | (_, TokenMode::UserOptional) => TokenMode::UserOptional,
        _ => TokenMode::None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strictest_token_mode_decides_admission() {
        use TokenMode::*;
        assert_eq!(strictest([None, Client].into_iter()), None);
        assert_eq!(strictest([Client, UserOptional].into_iter()), UserOptional);
        assert_eq!(strictest([UserOptional, User, None].into_iter()), User);
    }
}
