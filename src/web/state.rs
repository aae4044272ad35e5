//! The state every route shares ([`WebState`]), the connection a request
//! came on ([`Conn`]) and its principal ([`Caller`]): what the listener
//! and the routes both know, so that neither imports the other's module.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::auth::{Auth, Who, loopback_host};
use super::status_feed::Feed;
use super::terminal::Attach;
use crate::control::admit::Ticket;
use crate::control::server::Asked;
use crate::tls::Identity;

/// What the routes share: cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct WebState(Arc<Inner>);

#[derive(Debug)]
pub(crate) struct Inner {
    /// The daemon task that owns the ports: status, kick.
    pub(crate) daemon: mpsc::Sender<Asked>,
    /// Where terminals are admitted as hub clients.
    pub(crate) attach: Attach,
    pub(crate) auth: Arc<Auth>,
    pub(crate) console: Console,
    /// The status document for `/ws/status`, polled while anyone listens.
    pub(crate) feed: Arc<Feed>,
    /// Ends WebSockets and streamed logs at shutdown.
    pub(crate) shutdown: CancellationToken,
    /// Places for WebSockets ([`MAX_WEBSOCKETS`]): a socket holds one for
    /// its life.
    pub(crate) websockets: Arc<Semaphore>,
}

/// WebSockets at once, of the listener's
/// [`MAX_CONNECTIONS`](super::server::MAX_CONNECTIONS) (256): a WebSocket
/// is never shed as idle, so without this bound a flood of them would hold
/// every connection and keep `/metrics` and `/api/status` out. 192 is a
/// tab's two sockets for 96 viewers, and leaves 64 connections for
/// ordinary requests, which end by their own deadlines.
pub(crate) const MAX_WEBSOCKETS: usize = 192;

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
        auth: Arc<Auth>,
        console: Console,
        shutdown: CancellationToken,
    ) -> WebState {
        WebState(Arc::new(Inner {
            feed: Feed::new(daemon.clone(), shutdown.clone()),
            daemon,
            attach,
            auth,
            console,
            shutdown,
            websockets: Arc::new(Semaphore::new(MAX_WEBSOCKETS)),
        }))
    }
}

/// What the console may serve, decided at bind time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Console {
    /// Pages, API and WebSockets, behind [`super::auth`].
    On,
    /// `/metrics` only: the old `--metrics` on a network address, with no
    /// authentication configured.
    MetricsOnly,
}

/// One connection, as its requests see it (a request extension).
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    pub(crate) peer: SocketAddr,
    /// Over TLS: cookies get `Secure`, and the Origin is `https://`.
    pub(crate) https: bool,
    /// The verified client certificate's identity, with mutual TLS.
    pub(crate) cert: Option<Arc<Identity>>,
    /// Its place among [`MAX_CONNECTIONS`](super::server::MAX_CONNECTIONS): a WebSocket keeps it.
    ticket: Arc<Ticket>,
    /// Set by a request that owns the connection past
    /// [`CONNECTION_TIMEOUT`](super::server::CONNECTION_TIMEOUT).
    long: Arc<AtomicBool>,
    /// Cancelled by such a request when its peer stopped reading: the
    /// connection is closed, whatever hyper was waiting to write.
    cut: CancellationToken,
}

impl Conn {
    /// A new connection from `peer`, holding `ticket`.
    pub(crate) fn new(peer: SocketAddr, https: bool, ticket: Arc<Ticket>) -> Conn {
        Conn {
            peer,
            https,
            cert: None,
            ticket,
            long: Arc::new(AtomicBool::new(false)),
            cut: CancellationToken::new(),
        }
    }

    /// Cancel it to close the connection ([`Self::cut`]).
    pub(crate) fn cut_token(&self) -> CancellationToken {
        self.cut.clone()
    }

    /// Resolves when a request asked to close the connection.
    pub(crate) async fn cut(&self) {
        self.cut.cancelled().await
    }

    /// Whether a request took the connection over ([`Self::long_lived`]).
    pub(crate) fn is_long(&self) -> bool {
        self.long.load(Ordering::Relaxed)
    }

    /// A whole request head came: the connection may not be shed now.
    pub(crate) fn busy(&self) {
        self.ticket.busy();
    }

    /// Its request is answered: unless it took the connection over, the
    /// connection may be shed again while it waits for the next one.
    pub(crate) fn answered(&self) {
        if !self.is_long() {
            self.ticket.idle();
        }
    }

    /// This request owns the connection from now on (a WebSocket, a
    /// streamed log): [`CONNECTION_TIMEOUT`](super::server::CONNECTION_TIMEOUT) no longer applies, and it is
    /// never shed as idle. Its own task must bound its life.
    pub(crate) fn long_lived(&self) {
        self.long.store(true, Ordering::Relaxed);
    }

    /// The connection's place, for a WebSocket task to hold.
    pub(crate) fn ticket(&self) -> Arc<Ticket> {
        self.ticket.clone()
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
        if conn.cert.is_none() && state.auth.open() && !loopback_host(&parts.headers) {
            return Err((
                axum::http::StatusCode::FORBIDDEN,
                "this console trusts loopback without a login: it answers only to a loopback \
                 Host (localhost, 127.0.0.1, [::1])\n",
            )
                .into_response());
        }
        let who = state.auth.who(&parts.headers, conn.cert.as_ref());
        Ok(Caller { conn, who })
    }
}
