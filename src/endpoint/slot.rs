//! A client's admission: its place among `--max-clients`, its right to
//! linger after closing its sending side, and whether its comings and
//! goings are logged at info (see [`super::chatter`]).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Logs at info for a loud client (see [`Slot::loud`]), else at debug.
macro_rules! chat {
    ($loud:expr, $($arg:tt)+) => {
        if $loud {
            tracing::info!($($arg)+)
        } else {
            tracing::debug!($($arg)+)
        }
    };
}
pub(crate) use chat;

/// The `output_error` field of a "client disconnected" line, in one form
/// for every endpoint: why writing to the client failed, or `-`.
pub(crate) fn output_error(out: Option<&std::io::Result<()>>) -> String {
    match out {
        Some(Err(e)) => e.to_string(),
        Some(Ok(())) | None => "-".to_owned(),
    }
}

/// A client's place among `--max-clients`, and its right to linger once it
/// has closed its sending side. Lingering clients are bounded apart (as
/// many again as `--max-clients`), so a loop that connects and closes
/// cannot pile up connections: past the bound, a half-closed client is
/// closed at once (issue 18).
///
/// It also says whether the client's connect and disconnect lines are
/// logged at info, decided when it was admitted (see [`super::chatter`]).
#[derive(Debug)]
pub(crate) struct Slot {
    place: Option<OwnedSemaphorePermit>,
    lingering: Arc<Semaphore>,
    linger: Option<OwnedSemaphorePermit>,
    loud: bool,
}

impl Slot {
    pub(crate) fn new(place: OwnedSemaphorePermit, lingering: Arc<Semaphore>, loud: bool) -> Self {
        Self {
            place: Some(place),
            lingering,
            linger: None,
            loud,
        }
    }

    /// Whether the client's comings and goings are logged at info.
    pub(crate) fn loud(&self) -> bool {
        self.loud
    }

    /// The client closed its sending side: its place is given up, and it
    /// may linger if a permit to is free (taken first, so the connection
    /// always counts against one bound). Drop the slot only once the
    /// connection is closed.
    pub(crate) fn half_closed(&mut self) -> bool {
        self.linger = self.lingering.clone().try_acquire_owned().ok();
        self.place = None;
        self.linger.is_some()
    }
}
