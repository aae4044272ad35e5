//! The router: which path is served by what, and who may have it.
//!
//! | path | what |
//! |---|---|
//! | `GET /metrics` | Prometheus text (no login: scrapers have no cookies) |
//! | `GET /` | the dashboard (`web/index.html`) |
//! | `GET /ports/{name}` | a port's terminal page (`web/port.html`); 404 page if no such port |
//! | `GET/POST /login`, `POST /logout` | [`super::auth::login`] |
//! | `GET /assets/{*path}` | the files of `web/` ([`super::assets`]) |
//! | `/api/…` | [`super::api`] |
//! | `GET /ws/status` | [`super::status_feed`] |
//! | `GET /ws/ports/{name}?since=OFFSET` | the terminal ([`super::terminal`]) |
//!
//! Without a session (when users are configured): pages answer 303 to
//! `/login?next=PATH`, the API 401 JSON, WebSockets 401 before the upgrade.
//! Every WebSocket upgrade needs the request's own Origin (else 403). Every
//! answer carries a strict Content-Security-Policy (`default-src 'self'`):
//! the pages have no inline script.

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY, RETRY_AFTER,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::OwnedSemaphorePermit;

use super::auth::{login, same_origin};
use super::state::{Caller, Console, MAX_WEBSOCKETS, WebState};
use super::terminal::{self, TerminalRequest};
use super::{api, ask, assets, status_feed};

/// The router over `state`.
pub(crate) fn router(state: WebState) -> Router {
    let metrics = Router::new().route("/metrics", get(api::metrics));
    let r = if state.console == Console::MetricsOnly {
        metrics.fallback(metrics_only)
    } else {
        metrics
            .route("/", get(index))
            .route("/ports/{name}", get(port_page))
            .route(
                "/login",
                get(login::form)
                    .post(login::login)
                    .layer(DefaultBodyLimit::max(login::MAX_FORM)),
            )
            .route("/logout", post(login::logout))
            .route("/assets/{*path}", get(asset))
            .route("/api/status", get(api::status))
            .route("/api/whoami", get(api::whoami))
            .route("/api/ports/{name}/log", get(api::log))
            .route("/api/ports/{name}/clients/{id}/kick", post(api::kick))
            .route("/ws/status", get(ws_status))
            .route("/ws/ports/{name}", get(ws_port))
            .fallback(not_found)
    };
    r.layer(axum::middleware::map_response(headers))
        .with_state(state)
}

/// Headers every answer carries.
async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    r
}

async fn metrics_only() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found: metrics are at /metrics; the web console needs --http with authentication on a network address (see docs/web.md)\n",
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// 303 to the login form, back to `path` after.
fn to_login(path: &str) -> Response {
    let next: String = url_encode(path);
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/login?next={next}")) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// `path` percent-encoded for a query value.
fn url_encode(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An HTML page of `web/`, no-cache.
fn page(file: &str, status: StatusCode) -> Response {
    let mut r = assets::serve(file, &HeaderMap::new());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn index(caller: Caller) -> Response {
    match caller.who {
        None => to_login("/"),
        Some(_) => page("index.html", StatusCode::OK),
    }
}

async fn port_page(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Response {
    if caller.who.is_none() {
        return to_login(&format!("/ports/{name}"));
    }
    match ask::ports(&state.daemon).await {
        Ok(ports) if ports.iter().any(|p| p.name == name) => page("port.html", StatusCode::OK),
        Ok(_) => {
            let body = format!(
                "<!doctype html><title>no such port</title><p>serialhub has no port {}. <a href=\"/\">All ports</a></p>\n",
                login::escape(&name)
            );
            (
                StatusCode::NOT_FOUND,
                [(CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response()
        }
        Err(why) => api::error(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn asset(caller: Caller, Path(path): Path<String>, headers: HeaderMap) -> Response {
    // The login page's own files are served without a session.
    if caller.who.is_none() && !path.ends_with(".css") && path != "common.js" && path != "login.js"
    {
        return api::login_required();
    }
    assets::serve(&path, &headers)
}

/// The checks before any WebSocket upgrade: a session, the same origin, a
/// place among [`MAX_WEBSOCKETS`]; the place, or the refusal.
fn ws_admit(
    state: &WebState,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<OwnedSemaphorePermit, Box<Response>> {
    if caller.who.is_none() {
        return Err(Box::new(api::login_required()));
    }
    if !same_origin(headers, caller.conn.https, true) {
        return Err(Box::new(api::error(
            StatusCode::FORBIDDEN,
            "cross-origin WebSocket refused: the Origin must be this server's",
        )));
    }
    state.websockets.clone().try_acquire_owned().map_err(|_| {
        let mut r = api::error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_WEBSOCKETS} WebSockets are open already: try again later"),
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        Box::new(r)
    })
}

async fn ws_status(
    State(state): State<WebState>,
    caller: Caller,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let place = match ws_admit(&state, &caller, &headers) {
        Ok(place) => place,
        Err(r) => return *r,
    };
    caller.conn.long_lived();
    let ticket = caller.conn.ticket();
    lean(ws)
        .max_message_size(status_feed::MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _held = (ticket, place);
            status_feed::serve(socket, state.feed.clone()).await;
        })
}

/// A browser sends keystrokes and acknowledgements, a few bytes each: a
/// read buffer of [`WS_READ_BUFFER`] takes them (a larger message still
/// comes, in several reads), where tungstenite's default allocates 128 KiB
/// per socket up front. Messages are written as they are sent (the
/// terminal's own window bounds what is outstanding), not gathered in a
/// second buffer of up to 128 KiB.
fn lean(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(WS_READ_BUFFER).write_buffer_size(0)
}

/// See [`lean`].
const WS_READ_BUFFER: usize = 4096;

#[derive(Debug, Deserialize)]
struct Since {
    since: Option<u64>,
}

async fn ws_port(
    State(state): State<WebState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<Since>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(who) = caller.who.clone() else {
        return api::login_required();
    };
    let Some(role) = who.role_on(&name, &state.auth.policies) else {
        return api::error(StatusCode::FORBIDDEN, format!("no role on port {name}"));
    };
    let place = match ws_admit(&state, &caller, &headers) {
        Ok(place) => place,
        Err(r) => return *r,
    };
    caller.conn.long_lived();
    let ticket = caller.conn.ticket();
    let req = TerminalRequest {
        port: name,
        peer: caller.conn.peer,
        role,
        user: who.user,
        since: q.since,
    };
    let attach = state.attach.clone();
    // The session ends when the browser goes or the port stops (it tells
    // the browser why); a message past the limit closes it with 1009.
    lean(ws)
        .max_message_size(terminal::MAX_MESSAGE)
        .max_frame_size(terminal::MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _held = (ticket, place);
            terminal::serve(socket, attach, req).await
        })
}
