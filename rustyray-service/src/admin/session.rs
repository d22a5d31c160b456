//! Admin sessions: a token is presented once, on the sign-in form; the
//! browser then holds only a random session id in an `HttpOnly`,
//! `SameSite=Strict` cookie. The id maps, in this process's memory, to the
//! role the token granted, the session's form token (see `csrf`) and its
//! expiry. Nothing in the cookie can be turned back into the token, and a
//! restart or a sign-out ends every session it concerns.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::csrf;
use super::page::{self, ErrorPage};
use crate::auth::Role;
use crate::http::Shared;

/// The cookie holding the session id.
pub(crate) const COOKIE: &str = "rustyray_admin";
/// How long a sign-in lasts unless configured otherwise.
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(8 * 3600);
/// Sessions kept at most; past this the oldest of the new one's role or a
/// lower one are dropped.
const MAX_SESSIONS: usize = 10_000;

/// A message shown once, on the next page the session sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Flash {
    /// Whether it reports success.
    pub(crate) ok: bool,
    /// What happened.
    pub(crate) text: String,
}

#[derive(Debug)]
struct Session {
    role: Role,
    csrf: String,
    expires: Instant,
    flash: Option<Flash>,
}

/// The live sessions of one service.
#[derive(Debug)]
pub(crate) struct Sessions {
    ttl: Duration,
    live: Mutex<HashMap<String, Session>>,
}

/// Who is looking: a live session.
#[derive(Clone, Debug)]
pub(crate) struct Viewer {
    /// The session id.
    pub(crate) id: String,
    /// What the token that opened the session may do.
    pub(crate) role: Role,
    /// The form token every POST of this session must carry.
    pub(crate) csrf: String,
}

impl Viewer {
    pub(crate) fn is_admin(&self) -> bool {
        self.role >= Role::Admin
    }
}

impl Sessions {
    pub(crate) fn new(ttl: Duration) -> Self {
        Sessions { ttl, live: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session for `role`; returns its id.
    pub(crate) fn open(&self, role: Role) -> Result<String, ErrorPage> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let now = Instant::now();
        let mut live = self.lock();
        if live.len() >= MAX_SESSIONS {
            live.retain(|_, session| session.expires > now);
        }
        // Full: the oldest session of a role no higher than the new one's
        // makes room, so signing in with a read token again and again
        // cannot end the admins' sessions.
        while live.len() >= MAX_SESSIONS {
            let oldest = live
                .iter()
                .filter(|(_, session)| session.role <= role)
                .min_by_key(|(_, session)| session.expires)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(oldest) => live.remove(&oldest),
                None => {
                    return Err(ErrorPage::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Too many sessions",
                        format!(
                            "{MAX_SESSIONS} sessions of higher roles are open, the most this service keeps; \
                             sign out elsewhere or try again when one has expired"
                        ),
                    ));
                }
            };
        }
        live.insert(id.clone(), Session { role, csrf, expires: now + self.ttl, flash: None });
        Ok(id)
    }

    /// The live session `id`, if any; an expired one is forgotten.
    pub(crate) fn viewer(&self, id: &str) -> Option<Viewer> {
        let mut live = self.lock();
        let session = live.get(id)?;
        if session.expires <= Instant::now() {
            live.remove(id);
            return None;
        }
        Some(Viewer { id: id.to_string(), role: session.role, csrf: session.csrf.clone() })
    }

    /// Whether session `id` is still live.
    pub(crate) fn alive(&self, id: &str) -> bool {
        self.lock().get(id).is_some_and(|session| session.expires > Instant::now())
    }

    /// Ends session `id`.
    pub(crate) fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    /// Leaves a message for the session's next page.
    pub(crate) fn flash(&self, id: &str, ok: bool, text: impl Into<String>) {
        if let Some(session) = self.lock().get_mut(id) {
            session.flash = Some(Flash { ok, text: text.into() });
        }
    }

    /// Takes the message left for this page, if any.
    pub(crate) fn take_flash(&self, id: &str) -> Option<Flash> {
        self.lock().get_mut(id).and_then(|session| session.flash.take())
    }

    /// How long a session lasts.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// 32 random bytes from the operating system, as hex.
fn random_hex() -> Result<String, ErrorPage> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| {
        ErrorPage::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No randomness",
            format!("the system refused random bytes: {error}"),
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The session id the request's cookie names, if any.
pub(crate) fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_string())
        .filter(|value| value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Where to go to sign in, coming back to `here` afterwards.
pub(crate) fn to_sign_in(here: &str) -> Response {
    let next: String = form_urlencoded::byte_serialize(here.as_bytes()).collect();
    let mut response = Redirect::to(&format!("{}/login?next={next}", super::PREFIX)).into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = Response;

    /// A live session, or a redirect to the sign-in page.
    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, Self::Rejection> {
        let viewer = cookie_value(&parts.headers).and_then(|id| state.admin.viewer(&id));
        match viewer {
            Some(viewer) => Ok(viewer),
            None => {
                let here = parts.uri.path_and_query().map_or(super::PREFIX, |pq| pq.as_str());
                // After a POST, come back to the page, not to the action.
                let here = if parts.method == axum::http::Method::GET { here } else { super::PREFIX };
                Err(to_sign_in(here))
            }
        }
    }
}

/// A `next` that stays on the admin pages of this site.
pub(crate) fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if (next == super::PREFIX || next.starts_with("/admin/") || next.starts_with("/admin?"))
                && !next.contains("//")
                && !next.contains('\\')
                && !next.starts_with("/admin/login")
                && !next.chars().any(char::is_control) =>
        {
            next.to_string()
        }
        _ => super::PREFIX.to_string(),
    }
}

/// `GET /admin/login`: the sign-in form.
pub(crate) async fn form(axum::extract::RawQuery(query): axum::extract::RawQuery) -> Response {
    let next = super::query_pairs(query.as_deref()).into_iter().find(|(k, _)| k == "next").map(|(_, v)| v);
    sign_in_page(StatusCode::OK, &safe_next(next.as_deref()), None)
}

fn sign_in_page(status: StatusCode, next: &str, problem: Option<&str>) -> Response {
    let body = html! {
        main.narrow {
            h1 { "Sign in" }
            p { "Paste a token of this service (" code { "read" } " or " code { "admin" } "). "
                "It is checked once; the browser keeps only a session cookie." }
            @if let Some(problem) = problem {
                p.msg.error role="alert" { (problem) }
            }
            form method="post" action={ (super::PREFIX) "/login" } {
                input type="hidden" name="next" value=(next);
                label for="token" { "Token" }
                input #token type="password" name="token" required autocomplete="current-password"
                    autofocus spellcheck="false";
                button.primary type="submit" { "Sign in" }
            }
        }
    };
    page::html(status, page::layout("Sign in", None, body))
}

/// `POST /admin/login`: checks the token, opens a session, sets the cookie.
pub(crate) async fn sign_in(State(state): State<Shared>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let form = super::form_pairs(&body);
    let next = safe_next(super::first(&form, "next"));
    if let Err(refused) = csrf::same_origin(&headers) {
        return refused.into_response();
    }
    let token = super::first(&form, "token").unwrap_or_default().trim();
    let Some(role) = state.tokens.role_of(token.as_bytes()).filter(|_| !token.is_empty()) else {
        state.metrics.auth_failures.inc();
        return sign_in_page(StatusCode::UNAUTHORIZED, &next, Some("That token is not one this service knows."));
    };
    let id = match state.admin.open(role) {
        Ok(id) => id,
        Err(error) => return error.into_response(),
    };
    let secure = headers.get("x-forwarded-proto").is_some_and(|proto| proto.as_bytes() == b"https");
    let cookie = format!(
        "{COOKIE}={id}; Path={}; Max-Age={}; HttpOnly; SameSite=Strict{}",
        super::PREFIX,
        state.admin.ttl().as_secs().max(1),
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(&next).into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /admin/logout`: ends the session and clears the cookie.
pub(crate) async fn sign_out(
    State(state): State<Shared>,
    viewer: Viewer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let form = super::form_pairs(&body);
    if let Err(refused) = csrf::check(&viewer, &headers, super::first(&form, "csrf")) {
        return refused.into_response();
    }
    state.admin.close(&viewer.id);
    let mut response = Redirect::to(&format!("{}/login", super::PREFIX)).into_response();
    *response.status_mut() = StatusCode::SEE_OTHER;
    let clear = format!("{COOKIE}=; Path={}; Max-Age=0; HttpOnly; SameSite=Strict", super::PREFIX);
    if let Ok(value) = HeaderValue::from_str(&clear) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_sign_ins_past_the_limit_make_room_among_read_sessions_only() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let admin = sessions.open(Role::Admin).unwrap();
        let first_read = sessions.open(Role::Read).unwrap();
        for _ in 0..MAX_SESSIONS {
            sessions.open(Role::Read).unwrap();
        }
        assert!(sessions.alive(&admin), "the admin's session outlived the read sign-ins");
        assert!(!sessions.alive(&first_read), "the oldest read session made room");
        assert_eq!(sessions.lock().len(), MAX_SESSIONS);
        // With every place an admin's, a read sign-in is refused, not let in.
        sessions.lock().retain(|_, session| session.role == Role::Admin);
        for _ in 1..MAX_SESSIONS {
            sessions.open(Role::Admin).unwrap();
        }
        let refused = sessions.open(Role::Read).map(|_| ()).unwrap_err();
        assert_eq!(axum::response::IntoResponse::into_response(refused).status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(sessions.alive(&admin));
        sessions.open(Role::Admin).unwrap();
        assert!(!sessions.alive(&admin), "an admin sign-in makes room among admin sessions");
    }

    #[test]
    fn sessions_expire_and_close() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let id = sessions.open(Role::Read).unwrap();
        assert_eq!(id.len(), 64);
        let viewer = sessions.viewer(&id).unwrap();
        assert_eq!(viewer.role, Role::Read);
        assert_ne!(viewer.csrf, id);
        sessions.flash(&id, true, "done");
        assert_eq!(sessions.take_flash(&id).map(|f| f.text), Some("done".into()));
        assert_eq!(sessions.take_flash(&id), None);
        sessions.close(&id);
        assert!(sessions.viewer(&id).is_none());
        let gone = Sessions::new(Duration::ZERO);
        let id = gone.open(Role::Admin).unwrap();
        assert!(gone.viewer(&id).is_none());
    }

    #[test]
    fn next_stays_on_the_admin_pages() {
        assert_eq!(safe_next(Some("/admin/jobs/x")), "/admin/jobs/x");
        assert_eq!(safe_next(Some("/admin?state=FAILED")), "/admin?state=FAILED");
        for bad in
            ["https://evil.example", "//evil.example", "/admin//evil", "/api/jobs", "/administrator", "/admin/login"]
        {
            assert_eq!(safe_next(Some(bad)), "/admin", "{bad}");
        }
        assert_eq!(safe_next(None), "/admin");
    }

    #[test]
    fn the_cookie_is_read_only_when_well_formed() {
        let mut headers = HeaderMap::new();
        let id = "a".repeat(64);
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("x=1; {COOKIE}={id}")).unwrap());
        assert_eq!(cookie_value(&headers), Some(id));
        headers.insert(header::COOKIE, HeaderValue::from_static("rustyray_admin=<script>"));
        assert_eq!(cookie_value(&headers), None);
    }
}
