//! The harness for the terminal WebSocket end to end: a real port (a `sim` device), the
//! daemon's attach channel served by a stand-in for the daemon task, the
//! real [`serve`] mounted on a tiny axum router on 127.0.0.1:0, and
//! tokio-tungstenite as the browser.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as M;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::super::session::Liveness;
use super::super::*;
use crate::config::ServeConfig;
use crate::fds::{self, FdReserve};
use crate::hub::Hub;

/// Long enough for a loaded 2-core machine; every wait is on a state.
const WAIT: Duration = Duration::from_secs(20);

pub(super) struct Harness {
    pub(super) addr: SocketAddr,
    pub(super) hub: Arc<Hub>,
    /// The port's TCP endpoint, if it has one.
    pub(super) tcp: Option<SocketAddr>,
    stop: CancellationToken,
}

impl Harness {
    /// Stops the port (and the little server).
    pub(super) fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn serve_args(extra: &[&str]) -> crate::cli::ServeArgs {
    use clap::Parser;
    let mut args = vec!["serialhub", "serve"];
    args.extend_from_slice(extra);
    match crate::cli::Cli::try_parse_from(args).unwrap().command {
        crate::cli::Command::Serve(a) => a,
        _ => panic!("not serve"),
    }
}

async fn ws_route(
    ws: WebSocketUpgrade,
    Path(port): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    State(attach): State<Attach>,
) -> Response {
    let role = match q.get("role").map(String::as_str) {
        Some("ro") => Role::Ro,
        _ => Role::Rw,
    };
    let since = q.get("since").and_then(|s| s.parse().ok());
    let req = TerminalRequest {
        port,
        peer,
        role,
        user: None,
        since,
    };
    // As the web listener upgrades it.
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(socket, attach, req))
}

/// A port named `lab1` from `serve` flags, and the terminal route.
pub(super) async fn start(flags: &[&str]) -> Harness {
    start_with(flags, Liveness::default()).await
}

/// [`start`] with sessions that ping and give up as `liveness` says.
pub(super) async fn start_with(flags: &[&str], liveness: Liveness) -> Harness {
    let cfg = ServeConfig::from_args(&serve_args(flags)).unwrap();
    let stop = CancellationToken::new();
    let fds = Arc::new(FdReserve::new(fds::RESERVE));
    let port = crate::port::Port::start("lab1", &cfg, false, fds, &stop)
        .await
        .unwrap();
    let hub = port.hub().clone();
    let tcp = port
        .status()
        .endpoints
        .iter()
        .find_map(|e| e.strip_prefix("tcp:").and_then(|a| a.parse().ok()));
    let control = control_of(&cfg.listen);
    let (attach, mut asked) = channel();
    let attach = attach.with_liveness(liveness);
    let stopped = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(r) = asked.recv() => {
                    if r.port() == port.name() {
                        r.attach(&port, control);
                    } else {
                        let why = format!("no port {:?} here", r.port());
                        r.refuse(why);
                    }
                }
                () = stopped.cancelled() => break,
            }
        }
        port.stop().await;
    });
    let app = Router::new()
        .route("/ws/ports/{name}", get(ws_route))
        .with_state(attach);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_stop = stop.clone();
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(server_stop.cancelled_owned())
            .await;
    });
    Harness {
        addr,
        hub,
        tcp,
        stop,
    }
}

/// A browser's view of one terminal WebSocket.
pub(super) struct Viewer {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub(super) hello: Value,
    /// Every binary byte received, history included.
    pub(super) received: Vec<u8>,
    /// Text messages other than hello, in order.
    pub(super) told: Vec<Value>,
    /// Whether to acknowledge binary bytes as they come.
    pub(super) acking: bool,
    pub(super) closed: bool,
    /// The close frame's code, if the server sent one.
    pub(super) close_code: Option<u16>,
}

impl Viewer {
    pub(super) async fn open(h: &Harness, query: &str) -> Viewer {
        let url = format!("ws://{}/ws/ports/lab1?{query}", h.addr);
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let mut v = Viewer {
            ws,
            hello: Value::Null,
            received: Vec::new(),
            told: Vec::new(),
            acking: true,
            closed: false,
            close_code: None,
        };
        v.until(|v| !v.hello.is_null() || v.closed).await;
        v
    }

    /// The offset after the last byte received, as a page keeps it.
    pub(super) fn offset(&self) -> u64 {
        let dropped: u64 = self
            .told
            .iter()
            .filter(|t| t["type"] == "dropped")
            .map(|t| t["bytes"].as_u64().unwrap())
            .sum();
        self.hello["from"].as_u64().unwrap() + self.received.len() as u64 + dropped
    }

    pub(super) async fn type_bytes(&mut self, data: &[u8]) {
        self.ws.send(M::Binary(data.to_vec().into())).await.unwrap();
    }

    /// Sends `m` as it is: pings, frames, odd text.
    pub(super) async fn send(&mut self, m: M) {
        self.ws.send(m).await.unwrap();
    }

    pub(super) async fn text(&mut self, v: Value) {
        self.ws.send(M::Text(v.to_string().into())).await.unwrap();
    }

    pub(super) async fn ack(&mut self) {
        let n = self.received.len();
        self.text(json!({"type": "ack", "bytes": n})).await;
    }

    /// Reads until `done` holds, or panics after [`WAIT`].
    pub(super) async fn until(&mut self, mut done: impl FnMut(&Viewer) -> bool) {
        tokio::time::timeout(WAIT, async {
            while !done(self) {
                if self.closed {
                    panic!("closed before the wait was over: {:?}", self.told);
                }
                self.step().await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out; received {} bytes, told {:?}",
                self.received.len(),
                self.told
            )
        });
    }

    /// Reads one message.
    pub(super) async fn step(&mut self) {
        match self.ws.next().await {
            Some(Ok(M::Binary(b))) => {
                self.received.extend_from_slice(&b);
                if self.acking {
                    self.ack().await;
                }
            }
            Some(Ok(M::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["type"] == "hello" {
                    self.hello = v;
                } else {
                    self.told.push(v);
                }
            }
            Some(Ok(M::Close(f))) => {
                self.closed = true;
                self.close_code = f.map(|f| u16::from(f.code));
            }
            None => self.closed = true,
            Some(Err(_)) => self.closed = true,
            Some(Ok(_)) => {}
        }
    }

    /// Waits for the answer to request `id`.
    pub(super) async fn answer(&mut self, id: u64) -> Value {
        self.until(|v| {
            v.told
                .iter()
                .any(|t| t["type"] == "answer" && t["id"] == id)
        })
        .await;
        self.told
            .iter()
            .find(|t| t["type"] == "answer" && t["id"] == id)
            .cloned()
            .unwrap()
    }

    pub(super) fn has(&self, needle: &[u8]) -> bool {
        self.received.windows(needle.len()).any(|w| w == needle)
    }

    /// Reads until the server closes.
    pub(super) async fn until_closed(&mut self) {
        tokio::time::timeout(WAIT, async {
            while !self.closed {
                self.step().await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("not closed; told {:?}", self.told));
    }

    pub(super) async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// Waits until `check` holds of the hub, or panics after [`WAIT`].
pub(super) async fn wait_hub(hub: &Hub, what: &str, check: impl Fn(&Hub) -> bool) {
    tokio::time::timeout(WAIT, async {
        while !check(hub) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// Web clients in the hub's status.
pub(super) fn web_clients(hub: &Hub) -> Vec<crate::hub::status::ClientStatus> {
    hub.status()
        .clients
        .into_iter()
        .filter(|c| c.peer.starts_with("web:"))
        .collect()
}
