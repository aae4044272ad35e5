//! The console's JSON API and the metrics:
//! - `GET /metrics`: the Prometheus text, as before the console;
//! - `GET /api/status`: exactly what `serialhub status --json` prints;
//! - `GET /api/whoami`: `{"user":…,"role":…,"auth":…}`;
//! - `GET /api/ports/{name}/log?since=&until=&download=1`: the port's
//!   traffic log as `serialhub log` prints it, streamed;
//! - `POST /api/ports/{name}/clients/{id}/kick` (rw).
//!
//! Each asks the daemon task that owns the ports, as the control socket
//! does ([`super::ask`]).

use std::io::Write;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::ask::{ask, document, ports};
use super::auth::same_origin;
use super::state::{Caller, WebState};
use crate::access::Role;
use crate::control::metrics::{CONTENT_TYPE_OPENMETRICS, render};
use crate::control::{Request, Response as Answer};
use crate::hub::ClientId;
use crate::logcmd::{self, Filter};

/// Chunks of a streamed log in flight to the connection: the reading
/// thread waits while the client reads slowly, so memory stays bounded.
const LOG_CHUNKS: usize = 4;
/// Bytes per chunk of a streamed log.
const LOG_CHUNK: usize = 64 * 1024;
/// Logs streamed at once: each holds a thread of the blocking pool (which
/// also checks passwords) and a connection; more are answered 503.
const LOG_STREAMS: usize = 4;
/// A log stream whose peer takes nothing for this long (its chunks wait,
/// the connection's socket full) is cut, and its connection closed: a
/// download that is not read holds its place no longer than this.
const LOG_STALL: Duration = Duration::from_secs(20);

static STREAMING: Semaphore = Semaphore::const_new(LOG_STREAMS);

/// An error as JSON: `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, why: impl Into<String>) -> Response {
    (status, Json(json!({ "error": why.into() }))).into_response()
}

/// 401 for the API without a session.
pub(crate) fn login_required() -> Response {
    error(StatusCode::UNAUTHORIZED, "login required")
}

/// `GET /metrics` (and HEAD).
pub(crate) async fn metrics(State(state): State<WebState>) -> Response {
    const TEXT: &str = "text/plain; charset=utf-8";
    let text =
        |status: StatusCode, body: String| (status, [(CONTENT_TYPE, TEXT)], body).into_response();
    match ports(&state.daemon).await {
        Ok(ports) => match render(&ports) {
            Ok(t) => ([(CONTENT_TYPE, CONTENT_TYPE_OPENMETRICS)], t).into_response(),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode metrics: {e}\n"),
            ),
        },
        Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

/// `GET /api/status`.
pub(crate) async fn status(State(state): State<WebState>, caller: Caller) -> Response {
    if caller.who.is_none() {
        return login_required();
    }
    match ports(&state.daemon).await {
        Ok(p) => ([(CONTENT_TYPE, "application/json")], document(&p)).into_response(),
        Err(why) => error(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

/// `GET /api/whoami`.
pub(crate) async fn whoami(State(state): State<WebState>, caller: Caller) -> Response {
    let Some(who) = caller.who else {
        return login_required();
    };
    let role = who.role(&state.auth.policies).map(|r| r.to_string());
    Json(json!({ "user": who.user, "role": role, "auth": who.method.as_str() })).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogQuery {
    since: Option<String>,
    until: Option<String>,
    download: Option<String>,
}

/// `GET /api/ports/{name}/log`.
pub(crate) async fn log(
    State(state): State<WebState>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<LogQuery>,
) -> Response {
    let Some(who) = caller.who else {
        return login_required();
    };
    if who.role_on(&name, &state.auth.policies).is_none() {
        return error(StatusCode::FORBIDDEN, format!("no role on port {name}"));
    }
    let time = |t: Option<&String>, what: &str| {
        t.filter(|s| !s.is_empty())
            .map(|s| crate::cli::parse_time(s).map_err(|e| format!("{what}: {e}")))
            .transpose()
    };
    let (since, until) = match (
        time(q.since.as_ref(), "since"),
        time(q.until.as_ref(), "until"),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(e), _) | (_, Err(e)) => return error(StatusCode::BAD_REQUEST, e),
    };
    let ports = match ports(&state.daemon).await {
        Ok(p) => p,
        Err(why) => return error(StatusCode::SERVICE_UNAVAILABLE, why),
    };
    let Some(port) = ports.iter().find(|p| p.name == name) else {
        return error(StatusCode::NOT_FOUND, format!("no port {name:?}"));
    };
    let Some(dir) = port.traffic_log.clone() else {
        return error(
            StatusCode::NOT_FOUND,
            format!("port {name} keeps no traffic log (--log DIR)"),
        );
    };
    let filter = Filter {
        since,
        until,
        ..Filter::default()
    };
    let Ok(permit) = STREAMING.try_acquire() else {
        let mut r = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{LOG_STREAMS} logs are being downloaded already: try again later"),
        );
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("5"));
        return r;
    };
    // The files are read on a blocking thread, into a small bounded
    // channel the body drains: a slow reader slows the thread, one that
    // stops reading is cut after LOG_STALL, and a client gone ends it at
    // its next write.
    caller.conn.long_lived();
    let (tx, mut rx) = mpsc::channel::<Bytes>(LOG_CHUNKS);
    let writer = ChannelWriter {
        tx,
        runtime: tokio::runtime::Handle::current(),
        cut: caller.conn.cut_token(),
    };
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let out = std::io::BufWriter::with_capacity(LOG_CHUNK, writer);
        if let Err(e) = logcmd::write_dir(&dir, filter, out) {
            tracing::debug!(error = %e, "web console: log stream ended");
        }
    });
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::poll_fn(move |cx| {
        if shutdown.is_cancelled() {
            return std::task::Poll::Ready(None);
        }
        rx.poll_recv(cx).map(|c| c.map(Ok::<_, std::io::Error>))
    });
    let mut r = Body::from_stream(stream).into_response();
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if q.download.as_deref() == Some("1")
        && let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.log\""))
    {
        h.insert(CONTENT_DISPOSITION, v);
    }
    r
}

/// A blocking writer into a bounded channel of chunks; a chunk that waits
/// [`LOG_STALL`] for room cuts the connection.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    runtime: tokio::runtime::Handle,
    cut: CancellationToken,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let chunk = Bytes::copy_from_slice(buf);
        match self
            .runtime
            .block_on(tokio::time::timeout(LOG_STALL, self.tx.send(chunk)))
        {
            Ok(Ok(())) => Ok(buf.len()),
            Ok(Err(_)) => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
            Err(_) => {
                self.cut.cancel();
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the client read nothing for {LOG_STALL:?}"),
                ))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `POST /api/ports/{name}/clients/{id}/kick` (rw).
pub(crate) async fn kick(
    State(state): State<WebState>,
    caller: Caller,
    headers: HeaderMap,
    Path((name, id)): Path<(String, ClientId)>,
) -> Response {
    let Some(who) = caller.who else {
        return login_required();
    };
    if !same_origin(&headers, caller.conn.https, false) {
        return error(StatusCode::FORBIDDEN, "cross-site request refused");
    }
    if who.role_on(&name, &state.auth.policies) != Some(Role::Rw) {
        return error(StatusCode::FORBIDDEN, "kicking a client needs the rw role");
    }
    match ask(
        &state.daemon,
        Request::Kick {
            port: name,
            client: id,
        },
    )
    .await
    {
        Ok(Answer { ok: true, .. }) => Json(json!({ "ok": true })).into_response(),
        Ok(Answer { error: e, .. }) => {
            let why = e.unwrap_or_else(|| "kick failed".into());
            error(StatusCode::NOT_FOUND, why)
        }
        Err(why) => error(StatusCode::SERVICE_UNAVAILABLE, why),
    }
}
