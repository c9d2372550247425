//! The admin listener of an in-process Ward, its admin token and finished answers.

#![allow(dead_code)] // each test binary uses a different part

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use ward::config::AdminConfig;
use ward::secret::SecretString;
use ward_testkit::Browser;

use crate::common::Ward;

/// The admin token of these tests (test-only).
pub const ADMIN_TOKEN: &str = "admin-test-token-0123456789abcdef";

/// The admin listener of a running Ward, on a loopback port of its own.
pub struct Admin {
    base: String,
    pub http: reqwest::Client,
    _stop: oneshot::Sender<()>,
}

impl Admin {
    /// Serves `ward`'s admin routes with [`ADMIN_TOKEN`] until dropped.
    pub async fn start(ward: &Ward) -> Admin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let base = format!("http://{}", listener.local_addr().expect("admin address"));
        let config = AdminConfig {
            listen: listener.local_addr().expect("admin address"),
            token: SecretString::new(ADMIN_TOKEN),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(ward::server::run_admin(
            listener,
            ward.state.clone(),
            config,
            async {
                let _ = stopped.await;
            },
        ));
        Admin {
            base,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    /// `base + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET path`, without a token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("admin GET")
    }

    /// `method /admin/sessions?sub=<sub>`, with `token` as the bearer when given.
    pub async fn sessions(
        &self,
        method: reqwest::Method,
        sub: &str,
        token: Option<&str>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method, self.url("/admin/sessions"))
            .query(&[("sub", sub)]);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Answer::of(request.send().await.expect("admin request")).await
    }
}

/// A finished admin response.
pub struct Answer {
    pub status: u16,
    headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    /// Reads `response` to the end.
    pub async fn of(response: reqwest::Response) -> Answer {
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("admin body"),
        }
    }

    /// The header `name`, if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as JSON; fails showing the body.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// The status of `GET url` with `browser`'s cookies.
pub async fn status_of(browser: &Browser, url: String) -> u16 {
    browser.get(url).await.expect("GET").status.as_u16()
}
