//! Where the device's output goes while transactions run: the client whose
//! request is on the wire, the watchers, or everyone.

use tokio::time::Instant;

use super::Unsolicited;
use crate::hub::ClientId;
use crate::hub::reply::ReplyDetector;

/// The device output's destination, as the hub's fan-out asks it.
#[derive(Debug, Default)]
pub(crate) struct Routing {
    current: Option<Route>,
    /// The client of the last transaction, for `unsolicited=last`.
    last: Option<ClientId>,
    /// When the device last sent anything, for the inter-frame silence.
    last_rx: Option<Instant>,
}

#[derive(Debug)]
struct Route {
    client: ClientId,
    detector: ReplyDetector,
    first_rx: Option<Instant>,
    last_rx: Option<Instant>,
}

/// Who gets a piece of device output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    All,
    /// This client, and clients that see all.
    Client(ClientId),
    /// Clients that see all only; the others' share is counted as dropped.
    Watchers,
    /// A request this client sent, shown to the clients that see all (but
    /// not back to it), as a bus monitor sees it.
    Request(ClientId),
}

impl Routing {
    pub(crate) fn begin(&mut self, client: ClientId, detector: ReplyDetector) {
        self.current = Some(Route {
            client,
            detector,
            first_rx: None,
            last_rx: None,
        });
        self.last = Some(client);
    }

    /// Ends the running transaction; returns the bytes routed to it.
    pub(crate) fn end(&mut self) -> usize {
        self.current.take().map_or(0, |r| r.detector.taken())
    }

    /// The running transaction's reply: (complete, bytes so far, when the
    /// last of them came, whether silence ends it).
    pub(crate) fn progress(&self) -> (bool, usize, Option<Instant>, bool) {
        match &self.current {
            Some(r) => (
                r.detector.is_complete(),
                r.detector.taken(),
                r.last_rx,
                r.detector.ends_by_silence(),
            ),
            None => (true, 0, None, false),
        }
    }

    pub(crate) fn last_rx(&self) -> Option<Instant> {
        self.last_rx
    }

    /// Splits device output into the part that answers the running
    /// transaction (for its client) and the unsolicited rest.
    pub(crate) fn split(&mut self, data: &[u8], unsolicited: Unsolicited) -> [(Target, usize); 2] {
        let now = Instant::now();
        self.last_rx = Some(now);
        let mut reply = (Target::Client(0), 0);
        if let Some(r) = self.current.as_mut()
            && !r.detector.is_complete()
        {
            let n = r.detector.feed(data);
            if n > 0 {
                r.first_rx.get_or_insert(now);
                r.last_rx = Some(now);
            }
            reply = (Target::Client(r.client), n);
        }
        let rest = match (unsolicited, self.last) {
            (Unsolicited::All, _) => Target::All,
            (Unsolicited::Last, Some(c)) => Target::Client(c),
            (Unsolicited::Drop | Unsolicited::Last, _) => Target::Watchers,
        };
        [reply, (rest, data.len() - reply.1)]
    }
}
