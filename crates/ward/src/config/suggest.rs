//! "did you mean `key`?" for an unknown key or section: the closest key this build knows in the
//! same place, when one is close enough to be the likely intent (a typo, a plural, a suffix).

use super::schema;

/// Least Jaro–Winkler similarity for a suggestion: it catches a dropped, doubled or swapped
/// letter and an added suffix (`listn`, `client_secrets`, `issuer_url`), not an unrelated word.
const MIN_SIMILARITY: f64 = 0.8;

/// Keys of each `[rate_limit]` limit (`login`, `api`, `anonymous`, `invalid_session`).
const LIMIT_KEYS: &[&str] = &["limit", "window"];

/// `what` (e.g. "unknown key") with the suggestion for `path` (`server.listn`,
/// `routes[1].upstrem`, `oidcc`) appended when there is one.
pub(crate) fn unknown(path: &str, what: &str) -> String {
    match suggestion(path) {
        Some(key) => format!("{what}; did you mean `{key}`?"),
        None => what.to_owned(),
    }
}

/// The known key closest to the last segment of `path`, among the keys of its parent.
fn suggestion(path: &str) -> Option<&'static str> {
    let (parent, key) = path.rsplit_once('.').unwrap_or(("", path));
    known_keys(parent)
        .into_iter()
        .map(|known| (strsim::jaro_winkler(key, known), known))
        .filter(|(similarity, _)| *similarity >= MIN_SIMILARITY)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, known)| known)
}

/// The keys that may appear under `parent`: the sections at the top, the keys of a section,
/// of a `[[routes]]` entry or of a rate limit; none elsewhere.
fn known_keys(parent: &str) -> Vec<&'static str> {
    if parent.is_empty() {
        return schema::SECTIONS.to_vec();
    }
    if parent.starts_with("routes[") && parent.ends_with(']') && !parent.contains('.') {
        return schema::ROUTE_KEYS.to_vec();
    }
    if parent.starts_with("rate_limit.") && parent.matches('.').count() == 1 {
        return LIMIT_KEYS.to_vec();
    }
    schema::KEYS
        .iter()
        .filter(|(section, _, _)| *section == parent)
        .map(|(_, key, _)| *key)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_gets_the_key_of_its_own_section() {
        assert_eq!(suggestion("server.listn"), Some("listen"));
        assert_eq!(suggestion("oidc.client_secrets"), Some("client_secret"));
        assert_eq!(suggestion("oidc.issuer_url"), Some("issuer"));
        assert_eq!(suggestion("routes[3].upstrem"), Some("upstream"));
        assert_eq!(suggestion("rate_limit.login.windw"), Some("window"));
        assert_eq!(suggestion("oidcc"), Some("oidc"));
    }

    #[test]
    fn an_unrelated_word_gets_no_suggestion() {
        assert_eq!(suggestion("store.colour"), None);
        assert_eq!(suggestion("server.zzz"), None);
        assert_eq!(suggestion("nothing"), None);
        assert_eq!(suggestion("routes[0].headers.x"), None);
    }

    #[test]
    fn the_message_carries_the_suggestion_only_when_there_is_one() {
        assert_eq!(
            unknown("server.listn", "unknown key"),
            "unknown key; did you mean `listen`?"
        );
        assert_eq!(unknown("store.colour", "unknown key"), "unknown key");
    }
}
