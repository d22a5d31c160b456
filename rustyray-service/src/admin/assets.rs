//! The stylesheet and script of the admin pages, compiled into the binary:
//! nothing to build, nothing to install beside it.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::page;

const CSS: &str = include_str!("assets/admin.css");
const JS: &str = include_str!("assets/admin.js");

/// `GET /admin/assets/{name}`.
pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let (body, content_type) = match name.as_str() {
        "admin.css" => (CSS, "text/css; charset=utf-8"),
        "admin.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return page::no_such_page(&format!("{}/assets/{name}", super::PREFIX)),
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The pages name the assets with the crate's version: a new release is
    // a new URL, so browsers may keep these a day.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=86400"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
