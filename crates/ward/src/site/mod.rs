//! `[static]`: serving the SPA under a hardened runtime.
//!
//! `index.html` goes out with a fresh CSP nonce on its `<script>` and `<style>` tags and in its
//! CSP ([`policy::CspTemplate`]: `'strict-dynamic'`, Trusted Types, no framing), never cached.
//! Other files are served as they are: cacheable for a year when their name carries a content
//! hash, revalidated otherwise; any other HTML file gets the document headers too (with a
//! nonce none of its scripts carry: an SPA has one document). Every response is isolated from
//! other origins (COOP, CORP).

pub mod policy;

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::config::StaticConfig;
use crate::error::ApiError;
use crate::random;
use policy::CspTemplate;

/// The SPA's directory, its `index.html` (read once at start) and its CSP template.
pub struct StaticSite {
    dir: PathBuf,
    index_html: Option<String>,
    csp: CspTemplate,
}

impl StaticSite {
    /// Serves `config.dir`; `index.html` is read now (a missing one means no SPA fallback).
    pub fn new(config: &StaticConfig) -> Self {
        Self {
            dir: config.dir.clone(),
            index_html: std::fs::read_to_string(config.dir.join("index.html")).ok(),
            csp: CspTemplate::new(config.csp.as_deref(), config.trusted_types.as_deref()),
        }
    }

    /// Answers a GET/HEAD for `req`: a file, `index.html` for `/` and extension-less paths
    /// (client-side routes), or `404 not_found`.
    pub async fn serve(&self, req: Request<Body>) -> Response {
        let path = req.uri().path().to_owned();
        if path == "/" || path == "/index.html" {
            return self.index();
        }
        let served = ServeDir::new(&self.dir)
            .append_index_html_on_directories(false)
            .oneshot(req)
            .await;
        match served {
            Ok(response) if response.status() != StatusCode::NOT_FOUND => {
                self.asset(response.map(Body::new), last_segment(&path))
            }
            _ if !last_segment(&path).contains('.') => self.index(),
            _ => ApiError::NotFound.into_response(),
        }
    }

    fn index(&self) -> Response {
        let Some(html) = &self.index_html else {
            return ApiError::NotFound.into_response();
        };
        let nonce = random::token();
        let body = html
            .replace("<script", &format!("<script nonce=\"{nonce}\""))
            .replace("<style", &format!("<style nonce=\"{nonce}\""));
        let mut response = (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        crate::security::headers::apply(headers);
        policy::apply_isolation(headers);
        policy::apply_document(headers, &self.csp.render(&nonce));
        response
    }

    /// A file from `dir`, with the isolation headers and its caching rule.
    fn asset(&self, mut response: Response, file_name: &str) -> Response {
        let is_html = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"));
        let cacheable =
            response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED;
        let headers = response.headers_mut();
        policy::apply_isolation(headers);
        if is_html {
            policy::apply_document(headers, &self.csp.render(&random::token()));
        } else if cacheable {
            let rule = policy::asset_cache_control(file_name);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(rule));
        }
        response
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}
