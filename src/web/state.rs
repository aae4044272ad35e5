//! The state every route shares ([`WebState`]), and the principal of a
//! request ([`Caller`]), so that the route modules need not import each
//! other.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::auth::{Auth, Policies, Who};
use super::server::{Conn, Console};
use super::terminal::Attach;
use crate::config::http::HttpUser;
use crate::control::server::Asked;

/// What the routes share: cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct WebState(Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    /// The daemon task that owns the ports: status, kick.
    pub(crate) daemon: mpsc::Sender<Asked>,
    /// Where terminals are admitted as hub clients.
    pub(crate) attach: Attach,
    pub(crate) auth: Auth,
    pub(crate) console: Console,
    /// Ends WebSockets and streamed logs at shutdown.
    pub(crate) shutdown: CancellationToken,
}

impl std::ops::Deref for WebState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl WebState {
    pub(crate) fn new(
        daemon: mpsc::Sender<Asked>,
        attach: Attach,
        users: &[HttpUser],
        policies: Policies,
        console: Console,
        shutdown: CancellationToken,
    ) -> WebState {
        WebState(Arc::new(Inner {
            daemon,
            attach,
            auth: Auth::new(users, policies),
            console,
            shutdown,
        }))
    }
}

/// The principal of a request and its connection; extracting it fails
/// with 500 only if the server did not attach the connection (a bug).
/// `who` is `None` when a login is needed.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) conn: Conn,
    pub(crate) who: Option<Who>,
}

impl FromRequestParts<WebState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &WebState) -> Result<Self, Response> {
        let Some(conn) = parts.extensions.get::<Conn>().cloned() else {
            return Err((
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "no connection",
            )
                .into_response());
        };
        let who = state.auth.who(&parts.headers, conn.cert.as_ref());
        Ok(Caller { conn, who })
    }
}
