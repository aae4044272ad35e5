//! The metrics endpoint's HTTP server: serves [`super::metrics::render`]'s
//! text at `/metrics`.
//!
//! Like the control socket, the exporter never reads a port itself: each
//! scrape sends `status` to the daemon task that owns the ports, as a
//! message, and renders its answer. So a scrape sees one consistent
//! snapshot, and a port's counters live in one place (its hub).
//!
//! Hyper's HTTP/1 server with tight limits: connections are served at once,
//! at most [`MAX_CONNECTIONS`] of them; past that, the oldest that has not
//! yet sent a whole request head is closed to admit the new one
//! ([`super::admit`]), so no number of idle or slow peers keeps a scraper
//! waiting. Headers must come within [`MAX_REQUEST_BUF`] bytes and
//! [`HEADER_TIMEOUT`], one request per connection, and each connection ends
//! after [`CONNECTION_TIMEOUT`]. Malformed requests are hyper's to refuse;
//! nothing here panics on them. Failed accepts are logged once per episode.
//!
//! With `--metrics-tls` it serves HTTPS (tokio-rustls, with the ports' TLS
//! files; mutual TLS with a client CA): the handshake must end within
//! [`HEADER_TIMEOUT`], and the same bounds apply after it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request as HttpRequest, Response as HttpResponse, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::admit::{Admission, Ticket};
use super::metrics::{CONTENT_TYPE_OPENMETRICS, render};
use super::server::Asked;
use super::{PortStatus, Request, Response};
use crate::tls::{TlsAcceptor, TlsError, TlsFiles};

/// Connections served at once. Prometheus scrapes one at a time, with a
/// curl or two alongside; 256 is far more than honest scrapers need, so
/// they are seldom near it, and it bounds what a flood can cost (a
/// descriptor and a 16 KiB head buffer each, 4 MiB in all): past it, the
/// oldest idle connections are closed to admit new ones.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Buffer for a request's head; hyper refuses a longer one (431). 16 KiB
/// is twice the minimum hyper allows and ample for a scraper's headers.
pub(crate) const MAX_REQUEST_BUF: usize = 16 * 1024;
/// Time a client has to send its request head, from connecting. A scraper
/// sends it at once, in one packet; a peer that trickles it (slowloris)
/// holds its place no longer than this.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a connection may last in all, reading included: a client that
/// does not read its response is cut off then.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the daemon task has to answer a scrape's status request.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);

/// The metrics endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics: cannot listen on {addr}: {reason}{}", crate::endpoint::tcp::in_use_hint(.reason))]
    Bind {
        addr: String,
        reason: std::io::Error,
    },
    #[error("metrics: {0}")]
    Tls(#[from] TlsError),
}

/// Where and how to serve the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MetricsListen {
    /// `127.0.0.1:9108`, `[::1]:9108`, `localhost:9108`.
    pub addr: String,
    /// HTTPS with these files (`--metrics-tls`), mutual TLS if they name a
    /// client CA.
    pub tls: Option<TlsFiles>,
}

/// The bound metrics endpoint.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
    tls: Option<Arc<TlsAcceptor>>,
}

impl MetricsServer {
    /// Binds `listen.addr`, with its TLS configuration read.
    pub(crate) async fn bind(listen: &MetricsListen) -> Result<MetricsServer, MetricsError> {
        let tls = listen.tls.clone().map(TlsAcceptor::new).transpose()?;
        let fail = |reason| MetricsError::Bind {
            addr: listen.addr.clone(),
            reason,
        };
        let listener = TcpListener::bind(&listen.addr).await.map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        Ok(MetricsServer {
            listener,
            addr,
            tls: tls.map(Arc::new),
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

    /// Its TLS configuration, if it serves HTTPS: a handle to keep before
    /// [`serve`](Self::serve) takes the server, to re-read the files with
    /// ([`TlsAcceptor::reload`]) for new connections.
    pub(crate) fn tls(&self) -> Option<Arc<TlsAcceptor>> {
        self.tls.clone()
    }

    /// Serves scrapes until `shutdown`, asking `daemon` for each one's data.
    pub(crate) async fn serve(self, daemon: mpsc::Sender<Asked>, shutdown: CancellationToken) {
        let mut admission = Admission::new("metrics", MAX_CONNECTIONS, b"\r\n\r\n");
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
                daemon.clone(),
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
    daemon: mpsc::Sender<Asked>,
    ticket: Arc<Ticket>,
    shutdown: CancellationToken,
    tls: Option<Arc<TlsAcceptor>>,
) {
    let asked = ticket.clone();
    let service = service_fn(move |req| {
        // A whole request head: this connection is no longer idle. (Shed
        // already, it is dropped below before its answer is sent.)
        asked.busy();
        let daemon = daemon.clone();
        async move { Ok::<_, Infallible>(respond(&req, &daemon).await) }
    });
    let serve = async {
        match tls {
            None => http(stream, service).await,
            Some(tls) => {
                let accept = tokio_rustls::TlsAcceptor::from(tls.config()).accept(stream);
                match tokio::time::timeout(HEADER_TIMEOUT, accept).await {
                    Ok(Ok(stream)) => http(stream, service).await,
                    Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
                    Err(_) => Err(format!("no TLS handshake within {HEADER_TIMEOUT:?}")),
                }
            }
        }
    };
    tokio::select! {
        r = tokio::time::timeout(CONNECTION_TIMEOUT, serve) => match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => debug!(%peer, error = %e, "metrics: bad connection"),
            Err(_) => debug!(%peer, "metrics: connection timed out"),
        },
        () = ticket.shed() => debug!(%peer, "metrics: connection closed: idle, and others waiting"),
        () = shutdown.cancelled() => {}
    }
}

/// HTTP/1 on `io`, one request, with the header limits.
async fn http<I, S>(io: I, service: S) -> Result<(), String>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = Full<Bytes>>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_REQUEST_BUF)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service)
        .await
        .map_err(|e| e.to_string())
}

fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> HttpResponse<Full<Bytes>> {
    let mut r = HttpResponse::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

async fn respond(
    req: &HttpRequest<Incoming>,
    daemon: &mpsc::Sender<Asked>,
) -> HttpResponse<Full<Bytes>> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: metrics are at /metrics\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET and HEAD\n".into(),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match status(daemon).await {
        Ok(ports) => match render(&ports) {
            Ok(text) => reply(StatusCode::OK, CONTENT_TYPE_OPENMETRICS, text),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                format!("cannot encode metrics: {e}\n"),
            ),
        },
        Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
    }
}

/// Every port's status, from the daemon task.
async fn status(daemon: &mpsc::Sender<Asked>) -> Result<Vec<PortStatus>, String> {
    let (tx, rx) = oneshot::channel();
    let ask = async {
        daemon
            .send((Request::Status { port: None }, tx))
            .await
            .map_err(|_| "the daemon is shutting down".to_owned())?;
        rx.await
            .map_err(|_| "the daemon is shutting down".to_owned())
    };
    let answer: Response = tokio::time::timeout(STATUS_TIMEOUT, ask)
        .await
        .map_err(|_| format!("the daemon did not answer within {STATUS_TIMEOUT:?}"))??;
    match answer {
        Response {
            ok: true, ports, ..
        } => Ok(ports),
        Response { error, .. } => Err(error.unwrap_or_else(|| "status failed".into())),
    }
}
