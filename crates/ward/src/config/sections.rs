//! Deserializes one section (or one `[[routes]]` entry) from the merged table, reporting as many
//! problems as it can: every unknown key, and one type error per bad key.
//!
//! serde stops at the first type error, so after each one the offending key is removed and the
//! section deserialized again; keys the model does not know are caught by `serde_ignored`, with
//! their full path, instead of `deny_unknown_fields`, which would stop at the first.

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_path_to_error::Segment;
use toml::{Table, Value};

use super::errors::Problems;

/// `table` as a `T` at `prefix` (`server`, `routes[1]`); `None` when anything was reported.
/// `required` keys that are absent are reported together, not just the first serde notices.
pub(crate) fn deserialize<T: DeserializeOwned>(
    prefix: &str,
    mut table: Table,
    required: &[&str],
    problems: &mut Problems,
) -> Option<T> {
    let mut failed = false;
    for key in required {
        if !table.contains_key(*key) {
            problems.push(join(prefix, key), "required key is missing");
            failed = true;
        }
    }
    let mut unknown = BTreeSet::new();
    // Keys removed after a type error: their "missing" is not news.
    let mut removed = BTreeSet::new();
    // Each round either succeeds, stops, or removes one key: at most `len + 1` rounds.
    let mut value = None;
    for _ in 0..=table.len() {
        let mut on_ignored = |path: serde_ignored::Path<'_>| {
            unknown.insert(join(prefix, &render_ignored(&path)));
        };
        let ignoring =
            serde_ignored::Deserializer::new(Value::Table(table.clone()), &mut on_ignored);
        match serde_path_to_error::deserialize::<_, T>(ignoring) {
            Ok(parsed) => {
                value = Some(parsed);
                break;
            }
            Err(error) => {
                failed = true;
                let message = error.inner().message();
                if let Some(field) = missing_field(message) {
                    if !removed.contains(field) {
                        problems.push(join(prefix, field), "required key is missing");
                    }
                    break;
                }
                problems.push(join(prefix, &render_path(error.path())), message);
                let Some(key) = first_key(error.path()).map(str::to_owned) else {
                    break;
                };
                if table.remove(&key).is_none() {
                    break;
                }
                removed.insert(key);
            }
        }
    }
    for path in unknown {
        let message = super::suggest::unknown(&path, "unknown key");
        problems.push(path, message);
        failed = true;
    }
    if failed { None } else { value }
}

/// `prefix` + `rest` as a key path: `server` + `listen`, `routes[1]` + `prefix`, `a` + `[0]`.
pub(crate) fn join(prefix: &str, rest: &str) -> String {
    match (prefix.is_empty(), rest.is_empty()) {
        (_, true) => prefix.to_owned(),
        (true, false) => rest.to_owned(),
        _ if rest.starts_with('[') => format!("{prefix}{rest}"),
        _ => format!("{prefix}.{rest}"),
    }
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

fn first_key(path: &serde_path_to_error::Path) -> Option<&str> {
    match path.iter().next()? {
        Segment::Map { key } => Some(key),
        _ => None,
    }
}

fn render_path(path: &serde_path_to_error::Path) -> String {
    path.iter()
        .fold(String::new(), |acc, segment| match segment {
            Segment::Seq { index } => format!("{acc}[{index}]"),
            Segment::Map { key } => join(&acc, key),
            Segment::Enum { .. } | Segment::Unknown => acc,
        })
}

fn render_ignored(path: &serde_ignored::Path<'_>) -> String {
    match path {
        serde_ignored::Path::Root => String::new(),
        serde_ignored::Path::Seq { parent, index } => {
            format!("{}[{index}]", render_ignored(parent))
        }
        serde_ignored::Path::Map { parent, key } => join(&render_ignored(parent), key),
        serde_ignored::Path::Some { parent }
        | serde_ignored::Path::NewtypeStruct { parent }
        | serde_ignored::Path::NewtypeVariant { parent } => render_ignored(parent),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Sample {
        name: String,
        #[serde(default)]
        count: u8,
        #[serde(default)]
        flag: bool,
    }

    fn run(text: &str, required: &[&str]) -> (Option<Sample>, String) {
        let mut problems = Problems::default();
        let table: Table = text.parse().expect("test TOML parses");
        let value = deserialize::<Sample>("sec", table, required, &mut problems);
        (value, problems.into_errors().to_string())
    }

    #[test]
    fn a_clean_section_deserializes() {
        let (value, errors) = run("name = \"a\"\ncount = 2", &[]);
        assert_eq!(
            value,
            Some(Sample {
                name: "a".into(),
                count: 2,
                flag: false
            })
        );
        assert_eq!(errors, "");
    }

    #[test]
    fn every_type_error_and_unknown_key_is_reported() {
        let (value, errors) = run(
            "name = \"a\"\ncount = \"two\"\nflag = 3\ntypo = 1\nother = 2",
            &[],
        );
        assert_eq!(value, None);
        let lines: Vec<&str> = errors.lines().collect();
        assert_eq!(lines.len(), 4, "{errors}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("sec.count: invalid type"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("sec.flag: invalid type"))
        );
        assert!(lines.contains(&"sec.typo: unknown key"));
        assert!(lines.contains(&"sec.other: unknown key"));
    }

    #[test]
    fn a_required_key_with_a_type_error_is_not_also_reported_missing() {
        let (value, errors) = run("name = 1", &["name"]);
        assert_eq!(value, None);
        assert_eq!(
            errors,
            "sec.name: invalid type: integer `1`, expected a string"
        );
    }

    #[test]
    fn missing_required_keys_are_reported_once_each() {
        let (value, errors) = run("count = 1", &["name"]);
        assert_eq!(value, None);
        assert_eq!(errors, "sec.name: required key is missing");
    }
}
