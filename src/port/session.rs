//! Clients that reach a running port through a fleet session rather than
//! one of its endpoints: the daemon hands them here (see
//! [`crate::endpoint::external`]).

use super::Port;
use crate::endpoint::accept::Protocol;
use crate::endpoint::external::{self, Admission, Joined};
use crate::endpoint::sink::SocketHalf;
use crate::endpoint::source::ClientSource;

impl Port {
    /// Serves a client connected elsewhere, named `peer` in status, as one
    /// of this port's clients speaking `protocol`; or says why not
    /// (`--max-clients` reached, shutting down).
    pub(crate) fn admit<S, W>(
        &self,
        source: S,
        sink: W,
        peer: &str,
        protocol: Protocol,
    ) -> Result<(), String>
    where
        S: ClientSource + Send + Sync + 'static,
        W: SocketHalf,
    {
        let _span = self.span.enter();
        external::admit(&self.cx, source, sink, peer, protocol)
    }

    /// [`admit`](Self::admit) with the client's role, options and
    /// scrollback (a browser's terminal).
    pub(crate) fn admit_as<S, W>(
        &self,
        source: S,
        sink: W,
        admission: Admission<'_>,
    ) -> Result<Joined, String>
    where
        S: ClientSource + Send + Sync + 'static,
        W: SocketHalf,
    {
        let _span = self.span.enter();
        external::admit_as(&self.cx, source, sink, admission)
    }
}
