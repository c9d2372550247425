//! `[outbound]`: what Ward's own connections out trust (`ca_file`, beside the system roots),
//! and the egress proxy read from `HTTPS_PROXY` / `HTTP_PROXY` / `NO_PROXY` at load.
//!
//! The proxy variables are read from the same map as the `WARD_*` overrides (the binary passes
//! the process environment; tests pass their own), so what Ward does is decided here, once,
//! and printed by `ward check` and at start, never guessed by a client library.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use super::errors::Problems;

/// `[outbound]`: trust and egress for Ward's connections to the IdP, upstreams, the store and
/// the OTLP collector.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct OutboundConfig {
    /// PEM file of CA certificates trusted beside the system roots by every outbound TLS
    /// client (a private CA). Relative to the configuration file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The egress proxy, from the environment (not a key of the file).
    #[serde(skip)]
    pub proxy: EgressProxy,
}

/// The forward proxy for calls to the IdP and the OTLP collector, from `https_proxy` /
/// `HTTPS_PROXY`, `http_proxy` / `HTTP_PROXY` and `no_proxy` / `NO_PROXY` (lower case wins,
/// as in curl). Upstreams and the store are never proxied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressProxy {
    /// The proxy for `https://` destinations (tunnelled with `CONNECT`).
    pub https: Option<ProxyUrl>,
    /// The proxy for `http://` destinations.
    pub http: Option<ProxyUrl>,
    /// Destinations reached directly: comma-separated host names, domain suffixes, IP
    /// addresses or CIDR ranges (`*` for all), as in curl.
    pub no_proxy: Option<String>,
}

impl EgressProxy {
    /// Whether any proxy is set.
    pub fn is_set(&self) -> bool {
        self.https.is_some() || self.http.is_some()
    }
}

impl fmt::Display for EgressProxy {
    /// `https via http://***@proxy:3128, http via …, no_proxy …`: credentials masked.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_set() {
            return f.write_str("none (direct)");
        }
        let show = |proxy: &Option<ProxyUrl>| {
            proxy
                .as_ref()
                .map_or_else(|| "direct".to_owned(), ToString::to_string)
        };
        write!(
            f,
            "https via {}, http via {}",
            show(&self.https),
            show(&self.http)
        )?;
        match &self.no_proxy {
            Some(list) => write!(f, ", no_proxy {list}"),
            None => f.write_str(", no_proxy none"),
        }
    }
}

/// A proxy URL; `Debug` and `Display` mask its credentials (`http://***@proxy:3128`).
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl(Url);

impl ProxyUrl {
    /// `value` as a proxy URL (http or https, with a host); `host:port` without a scheme means
    /// `http://host:port`, as in curl.
    pub fn parse(value: &str) -> Option<Self> {
        parse_proxy_url(value)
    }

    /// The URL with its credentials, for the HTTP client only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = &self.0;
        let credentials = if url.username().is_empty() && url.password().is_none() {
            ""
        } else {
            "***@"
        };
        let host = url.host_str().unwrap_or_default();
        match url.port() {
            Some(port) => write!(f, "{}://{credentials}{host}:{port}", url.scheme()),
            None => write!(f, "{}://{credentials}{host}", url.scheme()),
        }
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// The proxy variables of `env`; a value that is no proxy URL is reported (by name, never
/// echoed: it may hold a password).
pub(crate) fn proxy_from_env(env: &BTreeMap<String, String>, out: &mut Problems) -> EgressProxy {
    let var = |name: &str| {
        [name.to_ascii_lowercase(), name.to_owned()]
            .into_iter()
            .find_map(|key| Some((key.clone(), env.get(&key)?.trim().to_owned())))
            .filter(|(_, value)| !value.is_empty())
    };
    let mut proxy_url = |name: &str| {
        let (key, value) = var(name)?;
        let parsed = parse_proxy_url(&value);
        if parsed.is_none() {
            out.push(
                key,
                "must be a proxy URL such as http://proxy.internal:3128 (http or https, with a host)",
            );
        }
        parsed
    };
    EgressProxy {
        https: proxy_url("HTTPS_PROXY"),
        http: proxy_url("HTTP_PROXY"),
        no_proxy: var("NO_PROXY").map(|(_, value)| value),
    }
}

/// `value` as a proxy URL; `host:port` without a scheme means `http://host:port`, as in curl.
fn parse_proxy_url(value: &str) -> Option<ProxyUrl> {
    let usable = |url: &Url| matches!(url.scheme(), "http" | "https") && url.host().is_some();
    let url = Url::parse(value).ok().filter(usable).or_else(|| {
        let bare = !value.contains("://");
        bare.then(|| Url::parse(&format!("http://{value}")).ok())
            .flatten()
            .filter(usable)
    })?;
    Some(ProxyUrl(url))
}

/// `[outbound]`: `ca_file` (already resolved against the configuration's directory) is
/// readable and holds CA certificates Ward can trust.
pub(crate) fn check_outbound(outbound: &OutboundConfig, out: &mut Problems) {
    if let Some(path) = &outbound.ca_file
        && let Err(problem) = crate::outbound::check_ca_file(path)
    {
        out.push("outbound.ca_file", problem);
    }
}

/// `ca_file` resolved against `base_dir`.
pub(crate) fn resolve(outbound: OutboundConfig, base_dir: &Path) -> OutboundConfig {
    OutboundConfig {
        ca_file: outbound.ca_file.map(|path| base_dir.join(path)),
        ..outbound
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxy(pairs: &[(&str, &str)]) -> (EgressProxy, Problems) {
        let env = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut problems = Problems::default();
        (proxy_from_env(&env, &mut problems), problems)
    }

    #[test]
    fn lower_case_wins_and_credentials_are_masked() {
        let (proxy, problems) = proxy(&[
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://user:hunter2@lower:3128"),
            ("NO_PROXY", "svc.cluster.local,10.0.0.0/8"),
        ]);
        assert!(problems.into_result(Some(())).is_ok());
        let shown = proxy.to_string();
        assert_eq!(
            shown,
            "https via http://***@lower:3128, http via direct, no_proxy svc.cluster.local,10.0.0.0/8"
        );
        assert!(!format!("{proxy:?}").contains("hunter2"));
        assert_eq!(
            proxy.https.unwrap().expose(),
            "http://user:hunter2@lower:3128/"
        );
    }

    #[test]
    fn host_and_port_alone_mean_http() {
        let (proxy, _) = proxy(&[("HTTP_PROXY", "proxy.internal:8080")]);
        assert_eq!(
            proxy.http.unwrap().to_string(),
            "http://proxy.internal:8080"
        );
    }

    #[test]
    fn an_unusable_proxy_is_reported_by_name_without_its_value() {
        let (_, problems) = proxy(&[("https_proxy", "socks5://user:hunter2@h:1080")]);
        let errors = problems.into_result(Some(())).unwrap_err().to_string();
        assert!(
            errors.starts_with("https_proxy: must be a proxy URL"),
            "{errors}"
        );
        assert!(!errors.contains("hunter2"), "{errors}");
    }

    #[test]
    fn no_variables_mean_no_proxy() {
        let (proxy, _) = proxy(&[("https_proxy", " ")]);
        assert!(!proxy.is_set());
        assert_eq!(proxy.to_string(), "none (direct)");
    }

    fn load(
        extra: &str,
        dir: &Path,
        vars: &[(&str, &str)],
    ) -> Result<super::super::Config, String> {
        let text = crate::config::tests::config_text(extra);
        crate::config::load_from_str(&text, &crate::config::tests::env(vars), dir)
            .map_err(|errors| errors.to_string())
    }

    #[test]
    fn a_relative_ca_file_is_read_beside_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ward_testkit::TestCa::new("config test CA").unwrap();
        let path = ca.write_cert(dir.path(), "private").unwrap();
        let config = load(
            "[outbound]\nca_file = \"private-ca.pem\"\n",
            dir.path(),
            &[],
        )
        .unwrap();
        assert_eq!(config.outbound.ca_file, Some(path));
        assert!(config.to_masked_toml().contains("[outbound]"));
    }

    #[test]
    fn a_missing_ca_file_or_an_unknown_key_is_a_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let errors = load(
            "[outbound]\nca_file = \"nowhere.pem\"\n",
            dir.path(),
            &[("HTTPS_PROXY", "ftp://proxy")],
        )
        .unwrap_err();
        let missing = format!(
            "outbound.ca_file: cannot read {}",
            dir.path().join("nowhere.pem").display()
        );
        assert!(errors.contains(&missing), "{errors}");
        assert!(
            errors.contains("HTTPS_PROXY: must be a proxy URL"),
            "{errors}"
        );
        let errors = load("[outbound]\nca_dir = \"x\"\n", dir.path(), &[]).unwrap_err();
        assert_eq!(
            errors,
            "outbound.ca_dir: unknown key; did you mean `ca_file`?"
        );
    }

    #[test]
    fn the_proxy_variables_reach_the_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let config = load("", dir.path(), &[("https_proxy", "127.0.0.1:3128")]).unwrap();
        assert_eq!(
            config
                .outbound
                .proxy
                .https
                .map(|p| p.to_string())
                .as_deref(),
            Some("http://127.0.0.1:3128")
        );
    }
}
