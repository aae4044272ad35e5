//! The HTTP listener: admission, connections, limits. It serves one axum
//! router ([`super::routes`]): the metrics at `/metrics`, the console's
//! pages, its API and its WebSockets.
//!
//! Like the control socket, the listener never reads a port itself: each
//! request that needs the ports' state sends a message to the daemon task
//! that owns them ([`super::ask`]).
//!
//! Hyper's HTTP/1 server with tight limits: connections are served at once,
//! at most [`MAX_CONNECTIONS`] of them; past that, the oldest that is idle
//! (has not sent a whole request head, or waits between keep-alive
//! requests) is closed to admit the new one ([`crate::control::admit`]), so
//! no number of idle or slow peers keeps a scraper or a browser waiting.
//! Headers must come within [`MAX_REQUEST_BUF`] bytes and
//! [`HEADER_TIMEOUT`], and an ordinary connection ends after
//! [`CONNECTION_TIMEOUT`]. Two kinds of request own their connection past
//! that deadline ([`Conn::long_lived`]): a WebSocket (its task has its own
//! ping and timeout; it still counts against [`MAX_CONNECTIONS`] and is
//! never shed) and a streamed traffic log (which closes the connection
//! when its peer stops reading, [`Conn::cut`]). Malformed requests are hyper's
//! to refuse; nothing here panics on them. Failed accepts are logged once
//! per episode.
//!
//! With TLS (`--http-tls`, `[http] tls`) it serves HTTPS (tokio-rustls,
//! with the ports' TLS files; mutual TLS with a client CA, whose verified
//! certificate is the request's identity): the handshake must end within
//! [`HEADER_TIMEOUT`], and the same bounds apply after it.
//!
//! Secure by default ([`check_exposure`]): a listener on an address other
//! than loopback needs authentication (password users, or TLS with a
//! client CA), and plain HTTP with passwords needs `insecure` as well.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::auth::{Auth, Policies};
use super::routes;
use super::state::{Conn, Console, WebState};
use super::terminal::Attach;
use crate::config::http::{HttpName, HttpUser};
use crate::control::admit::{Admission, Ticket};
use crate::control::server::Asked;
use crate::tls::{Identity, TlsAcceptor, TlsError, TlsFiles};

/// Connections served at once. Prometheus scrapes one at a time, a browser
/// opens six or so per page and one WebSocket per tab; 256 is far more
/// than honest clients need, and it bounds what a flood can cost (a
/// descriptor and a 16 KiB head buffer each, 4 MiB in all): past it, the
/// oldest idle connections are closed to admit new ones.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Buffer for a request's head; hyper refuses a longer one (431). 16 KiB
/// is twice the minimum hyper allows and ample for a browser's headers.
pub(crate) const MAX_REQUEST_BUF: usize = 16 * 1024;
/// Time a client has to send its request head, from connecting. A scraper
/// sends it at once, in one packet; a peer that trickles it (slowloris)
/// holds its place no longer than this.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time an ordinary connection may last in all, keep-alive requests and
/// reading included: a client that does not read its response is cut off
/// then. WebSockets and streamed logs are exempt ([`Conn::long_lived`]).
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The HTTP listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// `what`: the name it was asked for by (`metrics`, `http`).
    #[error("{what}: cannot listen on {addr}: {reason}{}", crate::endpoint::tcp::in_use_hint(.reason))]
    Bind {
        what: &'static str,
        addr: String,
        reason: std::io::Error,
    },
    #[error("http: {0}")]
    Tls(#[from] TlsError),
    /// The safe default: who could reach it, and what to give.
    #[error("http: {addr}: {why}")]
    Exposed { addr: SocketAddr, why: &'static str },
}

/// Where and how to serve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HttpListen {
    /// `127.0.0.1:9108`, `[::1]:9108`, `localhost:9108`.
    pub addr: String,
    /// HTTPS with these files (`--http-tls`), mutual TLS if they name a
    /// client CA.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP with password users on a network address, asked for.
    pub insecure: bool,
    /// `[[http.user]]`: with any, every page, API and WebSocket needs a
    /// login.
    pub users: Vec<HttpUser>,
    /// Which name asked for the listener: the old `--metrics` on a network
    /// address without authentication serves `/metrics` alone, as before.
    pub name: HttpName,
}

/// Whether a listener bound at `addr` may serve the console, or why it
/// must not start.
pub(crate) fn check_exposure(addr: SocketAddr, listen: &HttpListen) -> Result<Console, WebError> {
    let exposed = |why| Err(WebError::Exposed { addr, why });
    if addr.ip().is_loopback() {
        return Ok(Console::On);
    }
    let client_ca = listen.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    let users = !listen.users.is_empty();
    match (listen.tls.is_some(), users) {
        _ if client_ca => Ok(Console::On),
        (true, true) => Ok(Console::On),
        (false, true) if listen.insecure => Ok(Console::On),
        (false, true) => exposed(
            "plain HTTP on a network address would send the console's passwords and session cookies readable by anyone on the path; serve HTTPS (--http-tls, [http] tls = true), or accept it with --http-insecure ([http] insecure = true)",
        ),
        _ if listen.name == HttpName::Metrics => Ok(Console::MetricsOnly),
        _ => exposed(
            "a web console on a network address needs authentication: add [[http.user]] logins (with HTTPS, or --http-insecure), or serve HTTPS with a client CA (--http-tls with --tls-client-ca); or listen on loopback (127.0.0.1)",
        ),
    }
}

/// The bound listener.
#[derive(Debug)]
pub(crate) struct HttpServer {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<TlsAcceptor>>,
    auth: Arc<Auth>,
    console: Console,
}

impl HttpServer {
    /// Binds `listen.addr`, with its TLS configuration read, and checks
    /// who could reach it; `policies` give certificates their roles.
    pub(crate) async fn bind(
        listen: &HttpListen,
        policies: Policies,
    ) -> Result<HttpServer, WebError> {
        let tls = listen.tls.clone().map(TlsAcceptor::new).transpose()?;
        let fail = |reason| WebError::Bind {
            what: match listen.name {
                HttpName::Http => "http",
                HttpName::Metrics => "metrics",
            },
            addr: listen.addr.clone(),
            reason,
        };
        let listener = TcpListener::bind(&listen.addr).await.map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        let console = check_exposure(addr, listen)?;
        let client_ca = listen.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        let required = !addr.ip().is_loopback() && !client_ca;
        Ok(HttpServer {
            listener,
            addr,
            tls: tls.map(Arc::new),
            auth: Arc::new(Auth::new(&listen.users, required, policies)),
            console,
        })
    }

    /// The address as bound (its port chosen by the OS if it was 0).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` or `http`.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Whether the console is served, or `/metrics` alone.
    pub(crate) fn console(&self) -> Console {
        self.console
    }

    /// Its users and sessions: a handle to keep before
    /// [`serve`](Self::serve) takes the server, to give it the users a
    /// reload reads ([`Auth::set_users`]).
    pub(crate) fn auth(&self) -> Arc<Auth> {
        self.auth.clone()
    }

    /// Its TLS configuration, if it serves HTTPS: a handle to keep before
    /// [`serve`](Self::serve) takes the server, to re-read the files with
    /// ([`TlsAcceptor::reload`]) for new connections.
    pub(crate) fn tls(&self) -> Option<Arc<TlsAcceptor>> {
        self.tls.clone()
    }

    /// Serves until `shutdown`, asking `daemon` for the ports' state and
    /// `attach` for terminals.
    pub(crate) async fn serve(
        self,
        daemon: mpsc::Sender<Asked>,
        attach: Attach,
        shutdown: CancellationToken,
    ) {
        let state = WebState::new(daemon, attach, self.auth, self.console, shutdown.clone());
        let router = routes::router(state);
        let mut admission = Admission::new("http", MAX_CONNECTIONS, b"\r\n\r\n");
        fn fd(c: &(TcpStream, SocketAddr)) -> std::os::fd::BorrowedFd<'_> {
            c.0.as_fd()
        }
        while let Some(((stream, peer), ticket)) = admission
            .next(|| self.listener.accept(), fd, &shutdown)
            .await
        {
            tokio::spawn(connection(
                stream,
                peer,
                router.clone(),
                Arc::new(ticket),
                shutdown.clone(),
                self.tls.clone(),
            ));
        }
    }
}

/// Serves one connection until it ends, is shed, or `shutdown`; over TLS
/// if `tls`, whose handshake must be done within [`HEADER_TIMEOUT`].
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    ticket: Arc<Ticket>,
    shutdown: CancellationToken,
    tls: Option<Arc<TlsAcceptor>>,
) {
    // A terminal's keystroke echo is a frame of a few bytes: without this,
    // Nagle holds it behind any unacknowledged one until the browser's
    // delayed ACK (tens of ms), as for the TCP endpoints (endpoint::tcp).
    let _ = stream.set_nodelay(true);
    let conn = Conn::new(peer, tls.is_some(), ticket.clone());
    let conn_long = conn.clone();
    let serve = async {
        match tls {
            None => http(stream, service(router, conn)).await,
            Some(tls) => {
                let accept = tokio_rustls::TlsAcceptor::from(tls.config()).accept(stream);
                match tokio::time::timeout(HEADER_TIMEOUT, accept).await {
                    Ok(Ok(stream)) => {
                        let cert = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| Arc::new(Identity::from_der(c)));
                        let mut conn = conn;
                        conn.cert = cert;
                        http(stream, service(router, conn)).await
                    }
                    Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                    Err(_) => Err(format!("no TLS handshake within {HEADER_TIMEOUT:?}")),
                }
            }
        }
    };
    tokio::pin!(serve);
    let deadline = tokio::time::sleep(CONNECTION_TIMEOUT);
    tokio::pin!(deadline);
    let mut timed = false;
    loop {
        tokio::select! {
            r = &mut serve => {
                if let Err(e) = r {
                    debug!(%peer, error = %e, "http: bad connection");
                }
                break;
            }
            () = &mut deadline, if !timed => {
                if conn_long.is_long() {
                    timed = true;
                } else {
                    debug!(%peer, "http: connection timed out");
                    break;
                }
            }
            () = conn_long.cut() => {
                debug!(%peer, "http: connection closed: its peer stopped reading a stream");
                break;
            }
            () = ticket.shed() => {
                debug!(%peer, "http: connection closed: idle, and others waiting");
                break;
            }
            () = shutdown.cancelled() => break,
        }
    }
}

/// The router as a hyper service for one connection: each request marks
/// the connection busy and carries its [`Conn`]; after an ordinary answer
/// the connection may be shed again while it waits for the next one.
fn service(
    router: Router,
    conn: Conn,
) -> impl hyper::service::Service<
    hyper::Request<Incoming>,
    Response = hyper::Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<hyper::Response<Body>, Infallible>> + Send,
> + Clone {
    let router = TowerToHyperService::new(router);
    service_fn(move |mut req: hyper::Request<Incoming>| {
        // A whole request head: this connection is no longer idle. (Shed
        // already, it is dropped by its task before its answer is sent.)
        conn.busy();
        req.extensions_mut().insert(conn.clone());
        let answer = hyper::service::Service::call(&router, req);
        let conn = conn.clone();
        async move {
            let r = answer.await;
            conn.answered();
            r
        }
    })
}

/// HTTP/1 on `io`, keep-alive, with the header limits and upgrades.
async fn http<I, S>(io: I, service: S) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Body>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_REQUEST_BUF)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades()
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen(users: usize, tls: bool, ca: bool, insecure: bool, name: HttpName) -> HttpListen {
        let user = HttpUser {
            name: "alice".into(),
            password_hash: String::new(),
            role: crate::access::Role::Rw,
        };
        HttpListen {
            addr: String::new(),
            tls: tls.then(|| TlsFiles {
                cert: "c".into(),
                key: "k".into(),
                client_ca: ca.then(|| "ca".into()),
                crls: Vec::new(),
            }),
            insecure,
            users: vec![user; users],
            name,
        }
    }

    #[test]
    fn a_network_listener_needs_authentication() {
        let lo: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let net: SocketAddr = "0.0.0.0:1".parse().unwrap();
        let h = HttpName::Http;
        let on = |a, l: &HttpListen| matches!(check_exposure(a, l), Ok(Console::On));
        assert!(on(lo, &listen(0, false, false, false, h)));
        assert!(!on(net, &listen(0, false, false, false, h)));
        assert!(!on(net, &listen(1, false, false, false, h)));
        let e = check_exposure(net, &listen(1, false, false, false, h)).unwrap_err();
        assert!(e.to_string().contains("--http-insecure"), "{e}");
        assert!(on(net, &listen(1, false, false, true, h)));
        assert!(on(net, &listen(1, true, false, false, h)));
        assert!(on(net, &listen(0, true, true, false, h)));
        assert!(!on(net, &listen(0, true, false, false, h)));
        let old = listen(0, false, false, false, HttpName::Metrics);
        assert!(matches!(
            check_exposure(net, &old),
            Ok(Console::MetricsOnly)
        ));
    }
}
