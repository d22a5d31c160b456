//! Cross-site request forgery: every admin POST must come from a page of
//! this site and carry its session's form token.
//!
//! Two checks, both required. The browser's `Origin` (or, lacking it,
//! `Referer`) must name the host the request was sent to, and
//! `Sec-Fetch-Site` must not say `cross-site`; clients that send none of
//! these (scripts, curl) pass this check and still need the token. The form
//! token is a random value kept with the session on the server (a
//! synchronizer token), put in every form the session is shown, and
//! compared in constant time. The session cookie is also `SameSite=Strict`,
//! so another site's form does not even carry it.

use axum::http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

use super::page::ErrorPage;
use super::session::Viewer;

fn refused(why: &str) -> ErrorPage {
    ErrorPage::new(
        StatusCode::FORBIDDEN,
        "Request refused",
        format!("The form was refused: {why}. Go back, reload the page and try again."),
    )
}

/// The host part of `http(s)://host[:port][/...]`.
fn authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// Refuses a request that a browser says came from another site.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), ErrorPage> {
    let text = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if text("sec-fetch-site").is_some_and(|site| site.eq_ignore_ascii_case("cross-site")) {
        return Err(refused("it came from another site"));
    }
    let Some(from) = text(header::ORIGIN.as_str()).or_else(|| text(header::REFERER.as_str())) else {
        return Ok(());
    };
    let hosts: Vec<&str> = [text("x-forwarded-host"), text(header::HOST.as_str())].into_iter().flatten().collect();
    match authority(from) {
        Some(origin) if hosts.iter().any(|host| host.eq_ignore_ascii_case(origin)) => Ok(()),
        _ => Err(refused("it came from another site")),
    }
}

/// Checks the origin and the session's form token.
pub(crate) fn check(viewer: &Viewer, headers: &HeaderMap, token: Option<&str>) -> Result<(), ErrorPage> {
    same_origin(headers)?;
    let Some(token) = token.filter(|token| !token.is_empty()) else {
        return Err(refused("it carries no form token"));
    };
    if bool::from(token.as_bytes().ct_eq(viewer.csrf.as_bytes())) {
        Ok(())
    } else {
        Err(refused("its form token is not this session's"))
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::auth::Role;

    fn viewer() -> Viewer {
        Viewer { id: "s".into(), role: Role::Admin, csrf: "form-token".into() }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn the_origin_must_be_this_host() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(same_origin(&headers(&[("host", "a.example"), ("origin", "https://evil.example")])).is_err());
        assert!(same_origin(&headers(&[("host", "a.example"), ("origin", "null")])).is_err());
        assert!(same_origin(&headers(&[("host", "a.example"), ("referer", "https://a.example/admin")])).is_ok());
        assert!(same_origin(&headers(&[("host", "a.example"), ("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&headers(&[("host", "a.example")])).is_ok(), "scripts send no origin");
    }

    #[test]
    fn the_form_token_must_be_the_sessions() {
        let h = headers(&[("host", "a.example")]);
        assert!(check(&viewer(), &h, Some("form-token")).is_ok());
        assert!(check(&viewer(), &h, Some("form-tokeN")).is_err());
        assert!(check(&viewer(), &h, Some("")).is_err());
        assert!(check(&viewer(), &h, None).is_err());
    }
}
