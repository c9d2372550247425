//! Checks of `[[composites]]`: the path (plain segments, outside `/bff`, not a route's prefix
//! or another composite's path), 1 to 16 parts with plain names, each part's path (a valid
//! template under a configured route), its fields and its timeout.

use super::composites::CompositeConfig;
use super::errors::Problems;
use super::model::RouteConfig;
use super::routes::{check_fields, route_prefix};
use crate::proxy::{MAX_PARTS, PartTarget};

/// Longest part name: it becomes a member name of every answer.
const MAX_PART_NAME: usize = 64;

/// Checks every composite against the routes that deserialized.
pub(crate) fn check_composites(
    composites: &[(usize, &CompositeConfig)],
    routes: &[(usize, &RouteConfig)],
    out: &mut Problems,
) {
    for (position, (index, composite)) in composites.iter().enumerate() {
        let key = |field: &str| format!("composites[{index}].{field}");
        check_path(composite, &key("path"), routes, out);
        let earlier = composites[..position]
            .iter()
            .find(|(_, other)| other.path == composite.path);
        if let Some((first, _)) = earlier {
            out.push(
                key("path"),
                format!(
                    "{:?} is already the path of composites[{first}]",
                    composite.path
                ),
            );
        }
        if composite.timeout.is_zero() {
            out.push(key("timeout"), "must be greater than zero");
        }
        if composite.parts.is_empty() || composite.parts.len() > MAX_PARTS {
            out.push(
                key("parts"),
                format!("must name 1 to {MAX_PARTS} parts (each is a request per call)"),
            );
        }
        for (name, part) in &composite.parts {
            let key = |field: &str| key(&format!("parts.{name}{field}"));
            if !is_part_name(name) {
                out.push(
                    key(""),
                    format!("a part name is 1 to {MAX_PART_NAME} letters, digits, _ or -"),
                );
            }
            check_part_path(&part.path, &key(".path"), routes, out);
            if let Some(fields) = &part.fields {
                check_fields(&key(".fields"), fields, out);
            }
            match part.timeout {
                Some(timeout) if timeout.is_zero() => {
                    out.push(key(".timeout"), "must be greater than zero");
                }
                Some(timeout) if timeout > composite.timeout => out.push(
                    key(".timeout"),
                    "must not exceed the composite's timeout, which bounds every part",
                ),
                _ => {}
            }
        }
    }
}

fn check_path(
    composite: &CompositeConfig,
    key: &str,
    routes: &[(usize, &RouteConfig)],
    out: &mut Problems,
) {
    let path = &composite.path;
    if path == "/" {
        out.push(key, "must not be \"/\"");
    } else if let Err(reason) = route_prefix(path) {
        out.push(key, format!("{path:?} {reason}"));
    }
    if let Some((index, _)) = routes.iter().find(|(_, route)| route.prefix == *path) {
        out.push(
            key,
            format!("{path:?} is the prefix of routes[{index}]; a composite may only take a path under it"),
        );
    }
}

fn check_part_path(path: &str, key: &str, routes: &[(usize, &RouteConfig)], out: &mut Problems) {
    let target = match PartTarget::parse(path) {
        Ok(target) => target,
        Err(reason) => {
            out.push(key, format!("{path:?} {reason}"));
            return;
        }
    };
    let routed = routes
        .iter()
        .any(|(_, route)| under_prefix(target.path(), &route.prefix));
    if !routed {
        out.push(
            key,
            format!("{path:?} is under no [[routes]] prefix: a part goes through a route"),
        );
    }
}

/// Whether `path` lies under `prefix` on whole segments (as the route table matches).
fn under_prefix(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn is_part_name(name: &str) -> bool {
    (1..=MAX_PART_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}
