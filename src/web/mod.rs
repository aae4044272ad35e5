//! The web console (issue 23): the pages, the API and the WebSockets that
//! one HTTP listener serves.
//!
//! - `terminal`: the terminal WebSocket, a browser as one of a port's
//!   clients.

// Served once the HTTP listener routes `/ws/ports/{name}` to it.
#[cfg_attr(not(test), allow(dead_code, unused_imports))]
pub(crate) mod terminal;
