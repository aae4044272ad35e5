//! Modem lines: the control outputs serialhub drives (DTR, RTS, break) and
//! the status inputs it reports (CTS, DSR, RI, CD). A leaf of shared
//! vocabulary: the device sets and reads them, the hub holds their state,
//! RFC 2217 endpoints carry them to clients, the traffic log records who
//! set them.

use serde::{Deserialize, Serialize};

/// The status inputs, as RFC 2217's NOTIFY-MODEMSTATE reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct ModemInputs {
    pub(crate) cts: bool,
    pub(crate) dsr: bool,
    pub(crate) ri: bool,
    pub(crate) cd: bool,
}

/// The control outputs as serialhub holds them. A device without modem
/// lines (a pty) keeps them too, so a client reads back what it set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct ModemOutputs {
    pub(crate) dtr: bool,
    pub(crate) rts: bool,
    /// The break condition is on.
    pub(crate) brk: bool,
}

impl Default for ModemOutputs {
    /// What opening a tty does: DTR and RTS raised, no break.
    fn default() -> Self {
        ModemOutputs {
            dtr: true,
            rts: true,
            brk: false,
        }
    }
}

/// Counts of line errors and breaks the device has received, as the driver
/// keeps them (`TIOCGICOUNT`). RFC 2217's NOTIFY-LINESTATE reports an
/// increase of any of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct LineErrors {
    pub(crate) breaks: u32,
    pub(crate) framing: u32,
    pub(crate) parity: u32,
    pub(crate) overrun: u32,
}

/// A modem control output, or the break condition: what a client may set.
/// Serialised by its [`name`](Signal::name), as the traffic log writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Signal {
    Dtr,
    Rts,
    Break,
}

impl Signal {
    /// The traffic log's word for it: `dtr`, `rts` or `break`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Signal::Dtr => "dtr",
            Signal::Rts => "rts",
            Signal::Break => "break",
        }
    }

    /// Undoes [`name`](Signal::name).
    pub(crate) fn from_name(s: &str) -> Option<Signal> {
        [Signal::Dtr, Signal::Rts, Signal::Break]
            .into_iter()
            .find(|sig| sig.name() == s)
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signal::Dtr => "DTR",
            Signal::Rts => "RTS",
            Signal::Break => "break",
        })
    }
}
