//! `[static]`: serving the SPA. `index.html` goes out with a per-response CSP nonce on its
//! `<script>` and `<style>` tags; other files are served as they are.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::error::ApiError;
use crate::random;

/// The SPA's directory and its `index.html`, read once at start.
pub struct StaticSite {
    dir: PathBuf,
    index_html: Option<String>,
}

impl StaticSite {
    /// Serves `dir`; `index.html` is read now (a missing one means no SPA fallback).
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            index_html: std::fs::read_to_string(dir.join("index.html")).ok(),
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
                let mut response = response.map(Body::new);
                let headers = response.headers_mut();
                headers.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                headers.insert(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                );
                response
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
        let csp = format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; \
             img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
             frame-ancestors 'none'; form-action 'self'"
        );
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
        if let Ok(csp) = HeaderValue::try_from(csp) {
            headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }
}

fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or("")
}
