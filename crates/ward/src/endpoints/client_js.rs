//! `GET /bff/client.js`: the browser client (ES module) of SPEC §2.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const CLIENT_JS: &str = include_str!("client.js");

/// The browser client, as JavaScript.
pub async fn client_js() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        CLIENT_JS,
    )
        .into_response()
}
