//! Every configuration problem, collected before anything binds.
//!
//! Messages name the key path (`session.idle_timeout`, `routes[1].prefix`) and, when the value
//! came from the environment, the variable. They never contain a secret: the loader keeps
//! `client_secret`, `keys`, `store.url`, `admin.token` and the content of their `*_file`s away
//! from every message.

use std::collections::BTreeMap;
use std::fmt;

/// One problem: where (a key path such as `routes[1].prefix`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Key path, e.g. `session.idle_timeout`, possibly followed by `(from WARD_…)`.
    pub path: String,
    /// What is wrong, without any secret value.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All problems of one configuration, in the order found; `Display` prints one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", one_per_line(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The problems.
    pub fn errors(&self) -> &[ConfigError] {
        &self.0
    }
}

fn one_per_line(errors: &[ConfigError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Collects problems while loading; knows which keys came from which `WARD_*` variable so a
/// message about such a key names the variable too.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    list: Vec<ConfigError>,
    /// `section.key` -> the variable that set it.
    env_origins: BTreeMap<String, String>,
}

impl Problems {
    pub(crate) fn note_env_origin(&mut self, key_path: String, variable: String) {
        self.env_origins.insert(key_path, variable);
    }

    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        let mut path = path.into();
        if let Some(variable) = self.env_variable_for(&path) {
            path = format!("{path} (from {variable})");
        }
        let error = ConfigError {
            path,
            message: message.into(),
        };
        if !self.list.contains(&error) {
            self.list.push(error);
        }
    }

    /// The variable that set `path` or one of its parents (`section.key` of `section.key[0]`).
    fn env_variable_for(&self, path: &str) -> Option<&str> {
        self.env_origins
            .iter()
            .find(|(key, _)| {
                path.strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
            })
            .map(|(_, variable)| variable.as_str())
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `value` when nothing was reported; every `None` comes with a problem, but an error list
    /// is never returned empty.
    pub(crate) fn into_result<T>(mut self, value: Option<T>) -> Result<T, ConfigErrors> {
        match value {
            Some(value) if self.list.is_empty() => Ok(value),
            _ => {
                if self.list.is_empty() {
                    self.push(
                        "configuration",
                        "incomplete (no specific problem was found)",
                    );
                }
                Err(ConfigErrors(self.list))
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn into_errors(self) -> ConfigErrors {
        ConfigErrors(self.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_lists_one_problem_per_line() {
        let mut problems = Problems::default();
        problems.push("a.b", "first");
        problems.push("routes[1].prefix", "second");
        assert_eq!(
            problems.into_errors().to_string(),
            "a.b: first\nroutes[1].prefix: second"
        );
    }

    #[test]
    fn a_key_set_from_the_environment_names_its_variable() {
        let mut problems = Problems::default();
        problems.note_env_origin("server.listen".into(), "WARD_SERVER__LISTEN".into());
        problems.push("server.listen", "bad");
        problems.push("server.listen_other", "unrelated");
        let text = problems.into_errors().to_string();
        assert_eq!(
            text,
            "server.listen (from WARD_SERVER__LISTEN): bad\nserver.listen_other: unrelated"
        );
    }
}
