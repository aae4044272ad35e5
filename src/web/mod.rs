//! The web console (issue 23): one HTTP listener serves the Prometheus
//! metrics, the pages, their API and their WebSockets.
//!
//! - `server`: the listener: admission, connections, limits, TLS, and the
//!   secure-by-default check of who could reach it;
//! - `routes`: the axum router; `state`: what its routes share, and who
//!   calls;
//! - `api`: `/api/status`, `/api/whoami`, a port's traffic log, kick;
//!   `ask`: a request to the daemon task and its answer;
//! - `status_feed`: `/ws/status`, the status document pushed on change;
//! - `assets`: the embedded front-end files of `web/` (gzip, ETag);
//! - `auth`: password users, sessions, login, the Origin check, roles;
//! - `terminal`: the terminal WebSocket that makes a browser a hub client.
//!
//! The console never reads a port itself: what it shows comes from the
//! daemon task that owns the ports, asked by message, as the control socket
//! asks; a terminal is admitted by that task as one more hub client.

pub(crate) mod api;
pub(crate) mod ask;
pub(crate) mod assets;
pub(crate) mod auth;
pub(crate) mod routes;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod status_feed;
pub(crate) mod terminal;
