//! `GET /login` (the form), `POST /login` (fields `username`, `password`,
//! `next`) and `POST /logout`.
//!
//! A right login answers 303 to `next` (a local path only) with the
//! session cookie: `HttpOnly; SameSite=Strict; Path=/`, and `Secure` over
//! HTTPS. A wrong one answers 401 with the form and "wrong user name or
//! password", the same for an unknown user, after as long.
//!
//! The form is `web/login.html`; the server fills in the error message
//! (the element `id="error"`) and the hidden `next` field (`name="next"
//! value=""`), so the page needs no script.

use axum::Form;
use axum::extract::{FromRequest, Query, Request, State};
use std::time::Duration;

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{COOKIE_NAME, cookie, same_origin};
use crate::web::assets;
use crate::web::state::{Caller, WebState};

/// The message of a failed login, whatever failed.
pub(crate) const WRONG: &str = "wrong user name or password";
/// Longest user name or password looked at: no honest one is longer.
const MAX_FIELD: usize = 4096;
/// Largest login form read (the route's body limit): two fields of
/// [`MAX_FIELD`], percent-encoded, and `next`.
pub(crate) const MAX_FORM: usize = 32 * 1024;
/// Time the login form's body has to arrive, once its head has (as the
/// head has [`HEADER_TIMEOUT`](crate::web::server::HEADER_TIMEOUT)).
const FORM_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    next: Option<String>,
}

/// `next` if it is a local path (`/ports/lab1`), else `/`: never another
/// site (`//host`, `https://host`, `/\host`).
pub(crate) fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && !p.starts_with("/\\")
                && !p.chars().any(|c| c.is_control()) =>
        {
            p
        }
        _ => "/",
    }
}

/// The login page, with `error` said and `next` kept.
pub(crate) fn page(status: StatusCode, error: &str, next: &str) -> Response {
    let html = assets::get("login.html")
        .map(|f| String::from_utf8_lossy(&f.data).into_owned())
        .unwrap_or_default();
    let html = html
        .replacen(
            "id=\"error\">",
            &format!("id=\"error\">{}", escape(error)),
            1,
        )
        .replacen(
            "name=\"next\" value=\"\"",
            &format!("name=\"next\" value=\"{}\"", escape(next)),
            1,
        );
    let mut r = (status, html).into_response();
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Text for HTML, attributes included.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /login`.
pub(crate) async fn form(Query(q): Query<Next>) -> Response {
    page(StatusCode::OK, "", local_path(q.next.as_deref()))
}

/// `POST /login`.
pub(crate) async fn login(
    State(state): State<WebState>,
    caller: Caller,
    headers: HeaderMap,
    request: Request,
) -> Response {
    if !same_origin(&headers, caller.conn.https, false) {
        return (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
    }
    // The form must come whole within FORM_TIMEOUT: a body trickled
    // slowly would hold a busy connection (never shed) to its deadline.
    let f = match tokio::time::timeout(
        FORM_TIMEOUT,
        Form::<LoginForm>::from_request(request, &state),
    )
    .await
    {
        Ok(Ok(Form(f))) => f,
        Ok(Err(rejection)) => return rejection.into_response(),
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                "the login form did not come in time\n",
            )
                .into_response();
        }
    };
    let next = local_path(f.next.as_deref()).to_owned();
    let auth = &state.auth;
    let ip = caller.conn.peer.ip();
    let wait = auth.failures.wait(ip);
    if !wait.is_zero() {
        return retry_later(wait, "too many failed logins from this address", &next);
    }
    let user = (f.username.len() <= MAX_FIELD && f.password.len() <= MAX_FIELD)
        .then(|| auth.user(&f.username))
        .flatten();
    // An unknown user is checked against a configured user's hash (and
    // fails whatever it gives), so that it costs what a known user's
    // wrong password does, with the same argon2 parameters.
    let decoy = auth.decoy_hash();
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.as_str())
        .or(decoy.as_deref());
    // An overlong password is not copied around: it fails all the same.
    let typed = if f.password.len() <= MAX_FIELD {
        f.password.as_str()
    } else {
        ""
    };
    let Ok(ok) = auth.verifier.verify(hash, typed).await else {
        return retry_later(Duration::from_secs(1), "too many logins at once", &next);
    };
    let (Some(user), true) = (user, ok) else {
        auth.failures.failed(ip);
        tracing::info!(peer = %caller.conn.peer, "web console: failed login");
        return page(StatusCode::UNAUTHORIZED, WRONG, &next);
    };
    auth.failures.succeeded(ip);
    // A session the browser had is never carried into the new login (it
    // may have been planted, or be another user's): it ends.
    if let Some(old) = cookie(&headers, COOKIE_NAME) {
        auth.sessions.remove(old);
    }
    let Some(token) = auth.sessions.create(&user.name, user.role) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no random numbers\n").into_response();
    };
    tracing::info!(peer = %caller.conn.peer, user = %user.name, role = %user.role, "web console: login");
    let secure = if caller.conn.https { "; Secure" } else { "" };
    let cookie = format!("{COOKIE_NAME}={token}; HttpOnly; SameSite=Strict; Path=/{secure}");
    let mut r = StatusCode::SEE_OTHER.into_response();
    let location = HeaderValue::from_str(&location(&next)).unwrap_or(HeaderValue::from_static("/"));
    r.headers_mut().insert(LOCATION, location);
    if let Ok(c) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(SET_COOKIE, c);
    }
    r
}

/// A local path as a `Location` value: bytes that are not printable ASCII
/// (a port named `café`, a space) percent-encoded.
fn location(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// 429 with the login form saying `why` and when to try again: a login
/// not checked (the password is not looked at).
fn retry_later(wait: Duration, why: &str, next: &str) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0);
    let mut r = page(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("{why}: try again in {secs} s"),
        next,
    );
    if let Ok(v) = HeaderValue::from_str(&format!("{secs}")) {
        r.headers_mut().insert(RETRY_AFTER, v);
    }
    r
}

/// `POST /logout`: ends the session, clears the cookie, back to the form.
pub(crate) async fn logout(
    State(state): State<WebState>,
    caller: Caller,
    headers: HeaderMap,
) -> Response {
    if !same_origin(&headers, caller.conn.https, false) {
        return (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
    }
    if let Some(token) = cookie(&headers, COOKIE_NAME) {
        state.auth.sessions.remove(token);
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(LOCATION, HeaderValue::from_static("/login"));
    r.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "serialhub_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_local_path_only() {
        assert_eq!(local_path(Some("/ports/lab1")), "/ports/lab1");
        for bad in ["//evil", "https://evil", "/\\evil", "evil", "/a\r\nb"] {
            assert_eq!(local_path(Some(bad)), "/", "{bad}");
        }
        assert_eq!(local_path(None), "/");
        assert_eq!(location("/ports/café 1"), "/ports/caf%C3%A9%201");
        assert!(HeaderValue::from_str(&location("/\u{7f}\u{0}x")).is_ok());
        assert_eq!(escape("<a href=\"x\">"), "&lt;a href=&quot;x&quot;&gt;");
    }
}
