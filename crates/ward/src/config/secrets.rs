//! The secrets (`oidc.client_secret`, `crypto.keys`, `store.url`, `admin.token`) and their
//! `*_file` forms.
//!
//! They are taken out of the merged table *before* serde sees it, because serde's type errors
//! quote the offending value. Every message here names a key or a file path, never content.
//! Relative `*_file` paths resolve against the configuration file's directory.

use std::path::Path;

use toml::{Table, Value};

use super::errors::Problems;
use crate::secret::SecretString;

/// One `[crypto]` key entry and where it came from, for messages that must not quote it.
#[derive(Clone)]
pub(crate) struct KeyEntry {
    /// `crypto.keys[0]` or `crypto.keys_file (line 3)`.
    pub(crate) label: String,
    pub(crate) value: SecretString,
}

/// Removes `client_secret` / `client_secret_file` from `oidc`; the secret (empty when neither is
/// set), or `None` when a problem was reported.
pub(crate) fn take_client_secret(
    oidc: &mut Table,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<SecretString> {
    take_secret(oidc, "oidc", "client_secret", base_dir, problems).map(Option::unwrap_or_default)
}

/// Removes the secret `key` and its `<key>_file` form from `table` (the section `section`):
/// `Some(None)` when neither is set, `None` when a problem was reported. A file's content loses
/// its trailing line break, nothing else.
pub(crate) fn take_secret(
    table: &mut Table,
    section: &str,
    key: &str,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<Option<SecretString>> {
    let file_key = format!("{key}_file");
    let plain = table.remove(key);
    let file = table.remove(&file_key);
    match (plain, file) {
        (Some(_), Some(_)) => {
            problems.push(
                format!("{section}.{file_key}"),
                format!("set either {key} or {file_key}, not both"),
            );
            None
        }
        (Some(Value::String(secret)), None) => Some(Some(SecretString::new(secret))),
        (Some(_), None) => {
            problems.push(format!("{section}.{key}"), "must be a string");
            None
        }
        (None, Some(path)) => {
            let label = format!("{section}.{file_key}");
            let text = read_secret_file(&label, &path, base_dir, problems)?;
            Some(Some(SecretString::new(text.trim_end_matches(['\r', '\n']))))
        }
        (None, None) => Some(None),
    }
}

/// Removes `keys` / `keys_file` from `crypto`; the entries (empty when neither is set), or
/// `None` when a problem was reported.
pub(crate) fn take_keys(
    crypto: &mut Table,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<Vec<KeyEntry>> {
    let plain = crypto.remove("keys");
    let file = crypto.remove("keys_file");
    match (plain, file) {
        (Some(_), Some(_)) => {
            problems.push("crypto.keys_file", "set either keys or keys_file, not both");
            None
        }
        (Some(value), None) => keys_from_array(value, problems),
        (None, Some(path)) => {
            let text = read_secret_file("crypto.keys_file", &path, base_dir, problems)?;
            Some(keys_from_lines(&text))
        }
        (None, None) => Some(Vec::new()),
    }
}

fn keys_from_array(value: Value, problems: &mut Problems) -> Option<Vec<KeyEntry>> {
    let Value::Array(items) = value else {
        problems.push(
            "crypto.keys",
            r#"expected an array of "<kid>:<base64>" strings, e.g. ["k1:…"]"#,
        );
        return None;
    };
    let mut entries = Vec::with_capacity(items.len());
    let mut all_strings = true;
    for (index, item) in items.into_iter().enumerate() {
        let label = format!("crypto.keys[{index}]");
        match item {
            Value::String(text) => entries.push(KeyEntry {
                label,
                value: SecretString::new(text),
            }),
            _ => {
                all_strings = false;
                problems.push(label, "must be a string");
            }
        }
    }
    all_strings.then_some(entries)
}

/// One entry per line; blank lines and `#` comments are skipped, surrounding spaces trimmed.
fn keys_from_lines(text: &str) -> Vec<KeyEntry> {
    text.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(line_no, line)| KeyEntry {
            label: format!("crypto.keys_file (line {line_no})"),
            value: SecretString::new(line),
        })
        .collect()
}

/// Reads a `*_file`; messages carry the path and the I/O error, never the content.
fn read_secret_file(
    key: &str,
    path: &Value,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<String> {
    let Value::String(path) = path else {
        problems.push(key, "must be a string (a file path)");
        return None;
    };
    let resolved = base_dir.join(path);
    match std::fs::read_to_string(&resolved) {
        Ok(text) => Some(text),
        Err(error) => {
            problems.push(key, format!("cannot read {}: {error}", resolved.display()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        text.parse().expect("test TOML parses")
    }

    #[test]
    fn client_secret_file_is_read_relative_to_the_base_dir_and_trimmed() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("secret.txt"), "s3cr3t\r\n").expect("write");
        let mut oidc = table(r#"client_secret_file = "secret.txt""#);
        let mut problems = Problems::default();
        let secret = take_client_secret(&mut oidc, dir.path(), &mut problems);
        assert!(problems.is_empty());
        assert_eq!(secret.map(|s| s.expose().to_owned()), Some("s3cr3t".into()));
        assert!(oidc.is_empty());
    }

    #[test]
    fn keys_file_skips_blank_lines_and_comments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys");
        std::fs::write(&path, "# rotated 2024\n\nk2:aaa\n  k1:bbb  \n").expect("write");
        let mut crypto = Table::new();
        crypto.insert(
            "keys_file".into(),
            Value::String(path.display().to_string()),
        );
        let mut problems = Problems::default();
        let keys =
            take_keys(&mut crypto, Path::new("/elsewhere"), &mut problems).expect("keys read");
        let got: Vec<(&str, &str)> = keys
            .iter()
            .map(|k| (k.label.as_str(), k.value.expose()))
            .collect();
        assert_eq!(
            got,
            [
                ("crypto.keys_file (line 3)", "k2:aaa"),
                ("crypto.keys_file (line 4)", "k1:bbb")
            ]
        );
    }

    #[test]
    fn both_forms_of_a_secret_is_an_error() {
        let mut problems = Problems::default();
        let mut oidc = table("client_secret = \"x\"\nclient_secret_file = \"f\"");
        assert!(take_client_secret(&mut oidc, Path::new("."), &mut problems).is_none());
        let mut crypto = table("keys = []\nkeys_file = \"f\"");
        assert!(take_keys(&mut crypto, Path::new("."), &mut problems).is_none());
        let text = problems.into_errors().to_string();
        assert!(text.contains("oidc.client_secret_file: set either"));
        assert!(text.contains("crypto.keys_file: set either"));
    }

    #[test]
    fn wrongly_typed_secrets_are_reported_without_their_value() {
        let mut problems = Problems::default();
        let mut oidc = table("client_secret = 987654321");
        assert!(take_client_secret(&mut oidc, Path::new("."), &mut problems).is_none());
        let mut crypto = table(r#"keys = "k1:TOPSECRETVALUE""#);
        assert!(take_keys(&mut crypto, Path::new("."), &mut problems).is_none());
        let mut crypto = table(r#"keys = ["k1:TOPSECRETVALUE", 42]"#);
        take_keys(&mut crypto, Path::new("."), &mut problems);
        let text = problems.into_errors().to_string();
        assert!(text.contains("oidc.client_secret: must be a string"));
        assert!(text.contains("crypto.keys[1]: must be a string"));
        assert!(!text.contains("987654321"));
        assert!(!text.contains("TOPSECRETVALUE"));
    }

    #[test]
    fn an_unreadable_secret_file_names_the_path() {
        let mut problems = Problems::default();
        let mut oidc = table(r#"client_secret_file = "missing.txt""#);
        assert!(take_client_secret(&mut oidc, Path::new("/nonexistent"), &mut problems).is_none());
        let text = problems.into_errors().to_string();
        assert!(text.starts_with("oidc.client_secret_file: cannot read /nonexistent/missing.txt"));
    }
}
