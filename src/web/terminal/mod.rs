//! The terminal WebSocket (`/ws/ports/NAME`). A stub until the terminal
//! lands: it closes the socket with a message. The interface is the one
//! the web console's routes call.

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use tokio::sync::mpsc;

/// What the routes know of a terminal request, after authentication.
#[derive(Debug)]
pub(crate) struct TerminalRequest {
    pub port: String,
    /// The browser's address: status shows `web:{peer}`.
    pub peer: std::net::SocketAddr,
    pub role: crate::access::Role,
    /// The login or certificate identity, for logs.
    pub user: Option<String>,
    /// `?since=OFFSET`.
    pub since: Option<u64>,
}

/// Attach requests, to the daemon task that owns the ports.
#[derive(Clone, Debug)]
pub(crate) struct Attach(#[allow(dead_code)] mpsc::Sender<()>);

/// The daemon's end of [`Attach`].
pub(crate) type AttachRx = mpsc::Receiver<()>;

/// An [`Attach`] and the daemon's end of it.
pub(crate) fn channel() -> (Attach, AttachRx) {
    let (tx, rx) = mpsc::channel(1);
    (Attach(tx), rx)
}

/// Serves one terminal WebSocket: not yet, so it says so and closes.
pub(crate) async fn serve(mut socket: WebSocket, _attach: Attach, req: TerminalRequest) {
    let _ = (req.port, req.peer, req.role, req.user, req.since);
    let _ = socket
        .send(Message::Text(
            r#"{"type":"closed","reason":"the terminal is not built yet"}"#.into(),
        ))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: 1011,
            reason: "the terminal is not built yet".into(),
        })))
        .await;
}
