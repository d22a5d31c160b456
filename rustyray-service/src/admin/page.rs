//! The admin pages' shell: the layout every page shares (header, sign-out,
//! stylesheet and script), the headers every page is sent with (a strict
//! Content-Security-Policy: no inline script, nothing from elsewhere), the
//! HTML error page, and small pieces several pages use (state badges).
//! Templates are maud's: checked at compile time, every value escaped.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use rustyray_queue::{AttemptState, JobState};

use super::session::{Flash, Viewer};
use crate::error::ServiceError;

/// What the page's script follows, as `data-` attributes of `<body>`.
#[derive(Default)]
pub(crate) struct Live {
    /// The event stream to open.
    pub(crate) events: Option<String>,
    /// The fragment to fetch again when an event arrives (a job page).
    pub(crate) refresh: Option<String>,
}

/// The whole document around `main`.
pub(crate) fn layout(title: &str, viewer: Option<&Viewer>, main: Markup) -> Markup {
    layout_live(title, viewer, &Live::default(), main)
}

/// The whole document around `main`, with live updates.
pub(crate) fn layout_live(title: &str, viewer: Option<&Viewer>, live: &Live, main: Markup) -> Markup {
    let prefix = super::PREFIX;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · RustyRay admin" }
                link rel="stylesheet" href={ (prefix) "/assets/admin.css?v=" (env!("CARGO_PKG_VERSION")) };
                script src={ (prefix) "/assets/admin.js?v=" (env!("CARGO_PKG_VERSION")) } defer {}
            }
            body data-events=[live.events.as_deref()] data-refresh=[live.refresh.as_deref()] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href=(prefix) { "RustyRay " span { "admin" } }
                    @if let Some(viewer) = viewer {
                        div.who {
                            span { "Signed in with a " strong.role { (viewer.role) } " token" }
                            form.inline method="post" action={ (prefix) "/logout" } {
                                input type="hidden" name="csrf" value=(viewer.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                div #main tabindex="-1" { (main) }
            }
        }
    }
}

/// A message left by the previous request.
pub(crate) fn flash(flash: Option<&Flash>) -> Markup {
    html! {
        @if let Some(flash) = flash {
            @if flash.ok {
                p.msg.ok role="status" #flash { (flash.text) }
            } @else {
                p.msg.error role="alert" #flash { (flash.text) }
            }
        }
    }
}

/// A job state as a coloured badge (colour is never the only cue: the
/// state's name is the badge's text).
pub(crate) fn job_badge(state: JobState) -> Markup {
    html! { span class={ "badge state-" (state.as_str().to_ascii_lowercase()) } { (state.as_str()) } }
}

/// An attempt state as a badge.
pub(crate) fn attempt_badge(state: AttemptState) -> Markup {
    html! { span class={ "badge state-" (state.as_str().to_ascii_lowercase()) } { (state.as_str()) } }
}

/// The headers of every admin page.
fn secure(response: &mut Response, content_type: &'static str) {
    let headers = response.headers_mut();
    let set = |headers: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_TYPE, content_type);
    set(headers, header::CACHE_CONTROL, "no-store");
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::REFERRER_POLICY, "same-origin");
}

/// A page as a response.
pub(crate) fn html(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    secure(&mut response, "text/html; charset=utf-8");
    response
}

/// A piece of a page, fetched again by the page's script.
pub(crate) fn fragment(markup: Markup) -> Response {
    html(StatusCode::OK, markup)
}

/// A failed admin request, shown as a page.
#[derive(Debug)]
pub(crate) struct ErrorPage {
    status: StatusCode,
    title: String,
    message: String,
}

impl ErrorPage {
    pub(crate) fn new(status: StatusCode, title: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorPage { status, title: title.into(), message: message.into() }
    }

    /// A 404 page.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        ErrorPage::new(StatusCode::NOT_FOUND, "Not found", message)
    }
}

impl From<ServiceError> for ErrorPage {
    fn from(error: ServiceError) -> Self {
        let title = match &error {
            ServiceError::NotFound(_) => "Not found",
            ServiceError::InvalidArgument(_) => "Not possible",
            ServiceError::PermissionDenied(_) => "Not allowed",
            ServiceError::Unavailable(_) => "The database is unavailable",
            ServiceError::DeadlineExceeded(_) => "Too slow",
            ServiceError::Overloaded(_) => "Too busy",
            _ => "Something went wrong",
        };
        if matches!(error, ServiceError::Internal(_)) {
            tracing::error!(%error, "an admin page failed");
        }
        ErrorPage::new(error.status(), title, error.to_string())
    }
}

impl IntoResponse for ErrorPage {
    fn into_response(self) -> Response {
        let body = html! {
            main.narrow {
                h1 { (self.title) }
                p.msg.error role="alert" { (self.message) }
                p { a href=(super::PREFIX) { "Back to the job list" } }
            }
        };
        html(self.status, layout(&self.title, None, body))
    }
}

/// The 404 page of a path under `/admin` that is no page.
pub(crate) fn no_such_page(path: &str) -> Response {
    let shown: String = path.chars().take(200).collect();
    ErrorPage::not_found(format!("There is no admin page at {shown}.")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_escape_what_they_show_and_forbid_inline_script() {
        let response = ErrorPage::not_found("<script>alert(1)</script>").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().to_string();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
        let page = layout("t", None, html! { p { ("<script>x</script>") } }).into_string();
        assert!(page.contains("&lt;script&gt;x&lt;/script&gt;") && !page.contains("<script>x"), "{page}");
    }
}
