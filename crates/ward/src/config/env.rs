//! `WARD_<SECTION>__<KEY>` environment overrides, merged over the file's table.
//!
//! Only variables of that shape are read (`WARD_CONFIG` and the like are someone else's).
//! A value is a string, except for keys of [`Shape::Structured`] where a TOML array, integer,
//! float, boolean or inline table is parsed as such (`WARD_CRYPTO__KEYS='["k1:…"]'`). An override of a
//! secret replaces both of its forms from the file: `WARD_OIDC__CLIENT_SECRET` wins over the
//! file's `client_secret_file`, so a deployment can override without editing the file.

use std::collections::BTreeMap;

use toml::{Table, Value};

use super::errors::Problems;
use super::schema::{self, Shape};

/// A secret and its `*_file` form: setting one from the environment drops the other from the file.
const SECRET_PAIRS: &[(&str, &str, &str)] = &[
    ("oidc", "client_secret", "client_secret_file"),
    ("crypto", "keys", "keys_file"),
    ("store", "url", "url_file"),
    ("admin", "token", "token_file"),
];

/// One override read from the environment.
struct Override<'a> {
    variable: &'a str,
    section: String,
    key: String,
    value: &'a str,
}

/// Merges every `WARD_<SECTION>__<KEY>` of `env` into `table`; reports malformed variables.
pub(crate) fn apply(table: &mut Table, env: &BTreeMap<String, String>, problems: &mut Problems) {
    let overrides: Vec<Override<'_>> = env
        .iter()
        .filter_map(|(variable, value)| parse_name(variable, value, problems))
        .collect();
    for o in &overrides {
        drop_file_sibling(table, o, &overrides);
    }
    for o in overrides {
        let Some(section) = table
            .entry(o.section.clone())
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
        else {
            // The file's `[section]` is not a table: the section check reports it.
            continue;
        };
        let value = typed_value(&o.section, &o.key, o.value);
        problems.note_env_origin(format!("{}.{}", o.section, o.key), o.variable.to_owned());
        section.insert(o.key, value);
    }
}

/// `WARD_OIDC__CLIENT_SECRET` -> (`oidc`, `client_secret`); `None` for other variables.
fn parse_name<'a>(
    variable: &'a str,
    value: &'a str,
    problems: &mut Problems,
) -> Option<Override<'a>> {
    let (section, key) = variable.strip_prefix("WARD_")?.split_once("__")?;
    let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
    if section.is_empty() || key.is_empty() {
        problems.push(variable, "expected the form WARD_<SECTION>__<KEY>");
        return None;
    }
    if section == "routes" {
        problems.push(
            variable,
            "[[routes]] cannot be set from the environment; use the file",
        );
        return None;
    }
    if !schema::SECTIONS.contains(&section.as_str()) {
        let what = format!("unknown section [{section}]");
        problems.push(variable, super::suggest::unknown(&section, &what));
        return None;
    }
    Some(Override {
        variable,
        section,
        key,
        value,
    })
}

fn drop_file_sibling(table: &mut Table, o: &Override<'_>, all: &[Override<'_>]) {
    for (section, plain, file) in SECRET_PAIRS {
        let sibling = match o.key.as_str() {
            k if k == *plain => *file,
            k if k == *file => *plain,
            _ => continue,
        };
        let sibling_from_env = all
            .iter()
            .any(|other| other.section == *section && other.key == sibling);
        if o.section == *section
            && !sibling_from_env
            && let Some(Value::Table(t)) = table.get_mut(*section)
        {
            t.remove(sibling);
        }
    }
}

/// The TOML value an environment string stands for (see the module doc).
fn typed_value(section: &str, key: &str, text: &str) -> Value {
    if schema::shape_of(section, key) == Some(Shape::Text) {
        return Value::String(text.to_owned());
    }
    match text.parse::<Value>() {
        Ok(
            value @ (Value::Array(_)
            | Value::Integer(_)
            | Value::Float(_)
            | Value::Boolean(_)
            | Value::Table(_)),
        ) => value,
        _ => Value::String(text.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn merged(file: &str, vars: &[(&str, &str)]) -> (Table, Problems) {
        let mut table: Table = file.parse().expect("test TOML parses");
        let mut problems = Problems::default();
        apply(&mut table, &env(vars), &mut problems);
        (table, problems)
    }

    #[test]
    fn structured_keys_parse_arrays_integers_booleans_and_tables() {
        let (table, problems) = merged(
            "",
            &[
                ("WARD_CRYPTO__KEYS", r#"["k1:abc"]"#),
                ("WARD_SERVER__TRUSTED_PROXY_HOPS", "1"),
                ("WARD_SERVER__INSECURE_DEV", "true"),
                ("WARD_OIDC__EXTRA_AUTH_PARAMS", r#"{ audience = "api" }"#),
            ],
        );
        assert!(problems.is_empty());
        let expected: Table = r#"
            crypto = { keys = ["k1:abc"] }
            server = { trusted_proxy_hops = 1, insecure_dev = true }
            oidc = { extra_auth_params = { audience = "api" } }
        "#
        .parse()
        .expect("parses");
        assert_eq!(table, expected);
    }

    #[test]
    fn text_keys_stay_strings_even_when_numeric() {
        let (table, _) = merged(
            "",
            &[
                ("WARD_OIDC__CLIENT_SECRET", "123456"),
                ("WARD_OIDC__CLIENT_ID", "true"),
            ],
        );
        assert_eq!(table["oidc"]["client_secret"].as_str(), Some("123456"));
        assert_eq!(table["oidc"]["client_id"].as_str(), Some("true"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let (table, _) = merged(
            "[server]\nlisten = \"0.0.0.0:1\"\npublic_url = \"https://a.example\"",
            &[("WARD_SERVER__LISTEN", "127.0.0.1:9")],
        );
        assert_eq!(table["server"]["listen"].as_str(), Some("127.0.0.1:9"));
        assert_eq!(
            table["server"]["public_url"].as_str(),
            Some("https://a.example")
        );
    }

    #[test]
    fn a_secret_from_the_environment_replaces_the_files_file_form() {
        let (table, _) = merged(
            "[oidc]\nclient_secret_file = \"secret.txt\"",
            &[("WARD_OIDC__CLIENT_SECRET", "s")],
        );
        assert_eq!(table["oidc"].as_table().map(Table::len), Some(1));
        assert_eq!(table["oidc"]["client_secret"].as_str(), Some("s"));
    }

    #[test]
    fn other_variables_are_ignored_and_malformed_ones_reported() {
        let (table, problems) = merged(
            "",
            &[
                ("WARD_CONFIG", "x"),
                ("HOME", "/root"),
                ("WARD_ROUTES__PREFIX", "/api"),
                ("WARD_NOPE__KEY", "1"),
                ("WARD___KEY", "1"),
            ],
        );
        assert!(table.is_empty());
        let text = problems.into_errors().to_string();
        assert!(text.contains("WARD_ROUTES__PREFIX: [[routes]] cannot be set"));
        assert!(text.contains("WARD_NOPE__KEY: unknown section [nope]"));
        assert!(text.contains("WARD___KEY: expected the form"));
    }
}
