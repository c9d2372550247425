//! Checks of `[static]`'s page policy: `trusted_types` names and the `csp` override.

use super::errors::Problems;
use super::model::StaticConfig;

/// The longest `csp` override accepted; a real policy is a few hundred bytes.
const MAX_CSP_LEN: usize = 4096;

/// Reports every problem of `trusted_types` and `csp`.
pub(crate) fn check(config: &StaticConfig, out: &mut Problems) {
    if let Some(names) = &config.trusted_types {
        for (index, name) in names.iter().enumerate() {
            if !is_trusted_types_expression(name) {
                out.push(
                    format!("static.trusted_types[{index}]"),
                    "must be a policy name (letters, digits and - # = _ / @ . %), \
                     \"'allow-duplicates'\" or \"*\"",
                );
            }
        }
    }
    if let Some(csp) = &config.csp {
        if let Err(problem) = check_csp(csp) {
            out.push("static.csp", problem);
        }
        if config.trusted_types.is_some() {
            out.push(
                "static.trusted_types",
                "has no effect with static.csp: put the trusted-types directive in the csp",
            );
        }
    }
}

/// A `tt-expression` of the `trusted-types` directive (Trusted Types, "trusted-types
/// directive"): a policy name, the `'allow-duplicates'` keyword, or `*`.
pub(crate) fn is_trusted_types_expression(value: &str) -> bool {
    value == "'allow-duplicates'"
        || value == "*"
        || (!value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-#=_/@.%".contains(&b)))
}

fn check_csp(csp: &str) -> Result<(), String> {
    if csp.trim().is_empty() {
        return Err("must not be empty (leave it out to use Ward's policy)".into());
    }
    if csp.len() > MAX_CSP_LEN {
        return Err(format!("is longer than {MAX_CSP_LEN} bytes"));
    }
    if let Some(c) = csp.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        return Err(format!(
            "may hold printable ASCII and spaces only, not {:?} (one header line)",
            c
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn problems_of(trusted_types: Option<&[&str]>, csp: Option<&str>) -> Vec<String> {
        let config = StaticConfig {
            dir: PathBuf::from("dist"),
            trusted_types: trusted_types.map(|n| n.iter().map(|s| (*s).to_owned()).collect()),
            csp: csp.map(str::to_owned),
        };
        let mut out = Problems::default();
        check(&config, &mut out);
        out.into_result(Some(()))
            .err()
            .map(|e| e.to_string().lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    #[test]
    fn policy_names_follow_the_trusted_types_grammar() {
        assert!(problems_of(Some(&["app", "dompurify", "'allow-duplicates'"]), None).is_empty());
        assert!(problems_of(Some(&[]), None).is_empty());
        let lines = problems_of(Some(&["ok", "two words", "x;script-src *", ""]), None);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("static.trusted_types[1]"), "{lines:?}");
        assert!(lines[1].contains("static.trusted_types[2]"), "{lines:?}");
        assert!(lines[2].contains("static.trusted_types[3]"), "{lines:?}");
    }

    #[test]
    fn a_csp_override_is_one_printable_header_line_without_trusted_types() {
        assert!(problems_of(None, Some("script-src 'nonce-{nonce}'")).is_empty());
        let newline = problems_of(None, Some("script-src 'self'\r\nX-Evil: 1"));
        assert!(newline[0].contains("static.csp") && newline[0].contains("'\\r'"));
        assert!(problems_of(None, Some("  "))[0].contains("must not be empty"));
        assert!(problems_of(None, Some(&"a".repeat(5000)))[0].contains("longer than"));
        let both = problems_of(Some(&["app"]), Some("script-src 'none'"));
        assert!(both[0].contains("static.trusted_types") && both[0].contains("no effect"));
    }
}
