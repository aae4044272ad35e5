//! RFC 2217 COM-PORT-OPTION (Telnet option 44): its commands as typed
//! values, decoded from and encoded to subnegotiation payloads.
//!
//! A message is `IAC SB 44 code value IAC SE`. Codes 0..=12 go from client
//! to access server; the server's answers and notifications use the same
//! command plus 100. [`Message::decode`] takes the payload after the option
//! byte (IAC doubling already undone by the parser) and never fails: a known
//! command with a value of the wrong length decodes to
//! [`Command::Malformed`], an unknown code to [`Command::Unknown`], and a
//! value byte RFC 2217 does not define to the `Unknown(u8)` variant of its
//! enum. [`Message::encode`] writes the whole subnegotiation, IAC doubled.
//!
//! Value 0 of SET-BAUDRATE, SET-DATASIZE, SET-PARITY and SET-STOPSIZE, and
//! the `Request*` forms of SET-CONTROL, ask for the value in force; the
//! server answers every request with the value in force.

use bytes::{Bytes, BytesMut};

use super::{IAC, SB, SE, escape_into};

/// The Telnet option number of COM-PORT-OPTION.
pub(crate) const COM_PORT_OPTION: u8 = 44;
/// Added to a command's code when the access server sends it.
pub(crate) const SERVER_OFFSET: u8 = 100;

/// Command codes, client to server (the server's are these plus 100).
pub(crate) mod code {
    /// SIGNATURE.
    pub(crate) const SIGNATURE: u8 = 0;
    /// SET-BAUDRATE.
    pub(crate) const SET_BAUDRATE: u8 = 1;
    /// SET-DATASIZE.
    pub(crate) const SET_DATASIZE: u8 = 2;
    /// SET-PARITY.
    pub(crate) const SET_PARITY: u8 = 3;
    /// SET-STOPSIZE.
    pub(crate) const SET_STOPSIZE: u8 = 4;
    /// SET-CONTROL.
    pub(crate) const SET_CONTROL: u8 = 5;
    /// NOTIFY-LINESTATE.
    pub(crate) const NOTIFY_LINESTATE: u8 = 6;
    /// NOTIFY-MODEMSTATE.
    pub(crate) const NOTIFY_MODEMSTATE: u8 = 7;
    /// FLOWCONTROL-SUSPEND.
    pub(crate) const FLOWCONTROL_SUSPEND: u8 = 8;
    /// FLOWCONTROL-RESUME.
    pub(crate) const FLOWCONTROL_RESUME: u8 = 9;
    /// SET-LINESTATE-MASK.
    pub(crate) const SET_LINESTATE_MASK: u8 = 10;
    /// SET-MODEMSTATE-MASK.
    pub(crate) const SET_MODEMSTATE_MASK: u8 = 11;
    /// PURGE-DATA.
    pub(crate) const PURGE_DATA: u8 = 12;
}

/// Who sends a message, from its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to access server: codes 0..=99.
    ToServer,
    /// Access server to client: codes 100..=255.
    ToClient,
}

/// One COM-PORT-OPTION message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who sent it (decoded) or sends it (encoded).
    pub direction: Direction,
    /// What it says.
    pub command: Command,
}

/// A COM-PORT-OPTION command and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// SIGNATURE: free text naming the sender; empty asks for the peer's.
    Signature(Bytes),
    /// SET-BAUDRATE, 4 bytes big-endian; 0 asks for the rate in force.
    SetBaudrate(u32),
    /// SET-DATASIZE.
    SetDatasize(DataSize),
    /// SET-PARITY.
    SetParity(Parity),
    /// SET-STOPSIZE.
    SetStopsize(StopSize),
    /// SET-CONTROL: flow control, BREAK, DTR, RTS.
    SetControl(Control),
    /// NOTIFY-LINESTATE: the server's line state (masked). `None` (no value)
    /// is a client's poll, as pyserial sends.
    NotifyLinestate(Option<LineState>),
    /// NOTIFY-MODEMSTATE: the server's modem lines (masked). `None` (no
    /// value) is a client's poll, as pyserial sends.
    NotifyModemstate(Option<ModemState>),
    /// FLOWCONTROL-SUSPEND: the sender asks the receiver to stop sending.
    FlowControlSuspend,
    /// FLOWCONTROL-RESUME: the sender asks the receiver to resume.
    FlowControlResume,
    /// SET-LINESTATE-MASK: which line-state bits the client wants notified.
    SetLinestateMask(LineState),
    /// SET-MODEMSTATE-MASK: which modem-state bits the client wants notified.
    SetModemstateMask(ModemState),
    /// PURGE-DATA.
    PurgeData(Purge),
    /// A known command (`code`, 0..=12, without the server offset) whose
    /// value has the wrong length; `value` is what came.
    Malformed {
        /// The command code, 0..=12.
        code: u8,
        /// The value bytes as received.
        value: Bytes,
    },
    /// A code RFC 2217 does not define (13..=99 or 113..=255), as on the
    /// wire (the direction does not change it when encoded).
    Unknown {
        /// The code byte as on the wire.
        code: u8,
        /// The value bytes as received.
        value: Bytes,
    },
}

/// Declares a one-byte value enum with an `Unknown(u8)` catch-all and its
/// conversions from and to `u8`.
macro_rules! byte_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:literal,)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var,)*
            /// A value RFC 2217 does not define.
            Unknown(u8),
        }

        impl From<u8> for $name {
            fn from(b: u8) -> Self {
                match b {
                    $($val => $name::$var,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(v: $name) -> u8 {
                match v {
                    $($name::$var => $val,)*
                    $name::Unknown(b) => b,
                }
            }
        }
    };
}

byte_enum! {
    /// SET-DATASIZE values.
    DataSize {
        /// Asks for the data size in force.
        Request = 0,
        /// 5 data bits.
        Five = 5,
        /// 6 data bits.
        Six = 6,
        /// 7 data bits.
        Seven = 7,
        /// 8 data bits.
        Eight = 8,
    }
}

byte_enum! {
    /// SET-PARITY values.
    Parity {
        /// Asks for the parity in force.
        Request = 0,
        /// No parity.
        None = 1,
        /// Odd parity.
        Odd = 2,
        /// Even parity.
        Even = 3,
        /// Mark parity.
        Mark = 4,
        /// Space parity.
        Space = 5,
    }
}

byte_enum! {
    /// SET-STOPSIZE values.
    StopSize {
        /// Asks for the stop size in force.
        Request = 0,
        /// 1 stop bit.
        One = 1,
        /// 2 stop bits.
        Two = 2,
        /// 1.5 stop bits.
        OnePointFive = 3,
    }
}

byte_enum! {
    /// SET-CONTROL values. "Outbound" flow control (or both directions when
    /// no inbound setting is made) is 0..=3 and 17..=19; inbound is 13..=16
    /// and 18.
    Control {
        /// Asks for the outbound/both flow control in force.
        RequestFlow = 0,
        /// No flow control (outbound/both).
        FlowNone = 1,
        /// XON/XOFF flow control (outbound/both).
        FlowXonXoff = 2,
        /// Hardware (RTS/CTS) flow control (outbound/both).
        FlowHardware = 3,
        /// Asks for the BREAK state.
        RequestBreak = 4,
        /// BREAK on.
        BreakOn = 5,
        /// BREAK off.
        BreakOff = 6,
        /// Asks for the DTR state.
        RequestDtr = 7,
        /// DTR on.
        DtrOn = 8,
        /// DTR off.
        DtrOff = 9,
        /// Asks for the RTS state.
        RequestRts = 10,
        /// RTS on.
        RtsOn = 11,
        /// RTS off.
        RtsOff = 12,
        /// Asks for the inbound flow control in force.
        RequestFlowInbound = 13,
        /// No inbound flow control.
        FlowInboundNone = 14,
        /// XON/XOFF inbound flow control.
        FlowInboundXonXoff = 15,
        /// Hardware inbound flow control.
        FlowInboundHardware = 16,
        /// DCD flow control (outbound/both).
        FlowDcd = 17,
        /// DTR flow control (inbound).
        FlowInboundDtr = 18,
        /// DSR flow control (outbound/both).
        FlowDsr = 19,
    }
}

byte_enum! {
    /// PURGE-DATA values.
    Purge {
        /// Purge the access server's receive buffer (data from the device).
        Receive = 1,
        /// Purge the access server's transmit buffer (data to the device).
        Transmit = 2,
        /// Purge both.
        Both = 3,
    }
}

/// NOTIFY-LINESTATE bits (and SET-LINESTATE-MASK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LineState(pub(crate) u8);

impl LineState {
    /// Data ready.
    #[cfg(test)]
    pub(crate) const DATA_READY: u8 = 1;
    /// Overrun error.
    pub(crate) const OVERRUN_ERROR: u8 = 2;
    /// Parity error.
    pub(crate) const PARITY_ERROR: u8 = 4;
    /// Framing error.
    pub(crate) const FRAMING_ERROR: u8 = 8;
    /// Break detected.
    pub(crate) const BREAK_DETECT: u8 = 16;
    // 32 and 64, transfer holding and shift register empty, are never
    // reported by serialhub.
    /// Time-out error.
    #[cfg(test)]
    pub(crate) const TIMEOUT_ERROR: u8 = 128;

    /// Whether every bit of `bits` is set.
    #[cfg(test)]
    pub(crate) const fn contains(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
}

/// NOTIFY-MODEMSTATE bits (and SET-MODEMSTATE-MASK).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ModemState(pub(crate) u8);

impl ModemState {
    /// CTS changed.
    pub(crate) const DELTA_CTS: u8 = 1;
    /// DSR changed.
    pub(crate) const DELTA_DSR: u8 = 2;
    /// Trailing edge of RI.
    pub(crate) const TRAILING_EDGE_RI: u8 = 4;
    /// CD changed.
    pub(crate) const DELTA_CD: u8 = 8;
    /// Clear To Send.
    pub(crate) const CTS: u8 = 16;
    /// Data Set Ready.
    pub(crate) const DSR: u8 = 32;
    /// Ring Indicator.
    pub(crate) const RI: u8 = 64;
    /// Carrier Detect (receive line signal detect).
    pub(crate) const CD: u8 = 128;

    /// Whether every bit of `bits` is set.
    pub(crate) const fn contains(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
}

impl Command {
    /// The code without the server offset (for [`Command::Unknown`], the
    /// code as on the wire).
    pub fn code(&self) -> u8 {
        match self {
            Command::Signature(_) => code::SIGNATURE,
            Command::SetBaudrate(_) => code::SET_BAUDRATE,
            Command::SetDatasize(_) => code::SET_DATASIZE,
            Command::SetParity(_) => code::SET_PARITY,
            Command::SetStopsize(_) => code::SET_STOPSIZE,
            Command::SetControl(_) => code::SET_CONTROL,
            Command::NotifyLinestate(_) => code::NOTIFY_LINESTATE,
            Command::NotifyModemstate(_) => code::NOTIFY_MODEMSTATE,
            Command::FlowControlSuspend => code::FLOWCONTROL_SUSPEND,
            Command::FlowControlResume => code::FLOWCONTROL_RESUME,
            Command::SetLinestateMask(_) => code::SET_LINESTATE_MASK,
            Command::SetModemstateMask(_) => code::SET_MODEMSTATE_MASK,
            Command::PurgeData(_) => code::PURGE_DATA,
            Command::Malformed { code, .. } | Command::Unknown { code, .. } => *code,
        }
    }

    /// Decodes the value of the command with `code` (0..=12, offset
    /// removed); `None` for any other code.
    fn decode(code: u8, value: &[u8]) -> Option<Command> {
        let malformed = || Command::Malformed {
            code,
            value: Bytes::copy_from_slice(value),
        };
        let byte = |make: fn(u8) -> Command| match value {
            [b] => make(*b),
            _ => malformed(),
        };
        let cmd = match code {
            code::SIGNATURE => Command::Signature(Bytes::copy_from_slice(value)),
            code::SET_BAUDRATE => match <[u8; 4]>::try_from(value) {
                Ok(b) => Command::SetBaudrate(u32::from_be_bytes(b)),
                Err(_) => malformed(),
            },
            code::SET_DATASIZE => byte(|b| Command::SetDatasize(b.into())),
            code::SET_PARITY => byte(|b| Command::SetParity(b.into())),
            code::SET_STOPSIZE => byte(|b| Command::SetStopsize(b.into())),
            code::SET_CONTROL => byte(|b| Command::SetControl(b.into())),
            code::NOTIFY_LINESTATE if value.is_empty() => Command::NotifyLinestate(None),
            code::NOTIFY_LINESTATE => byte(|b| Command::NotifyLinestate(Some(LineState(b)))),
            code::NOTIFY_MODEMSTATE if value.is_empty() => Command::NotifyModemstate(None),
            code::NOTIFY_MODEMSTATE => byte(|b| Command::NotifyModemstate(Some(ModemState(b)))),
            code::FLOWCONTROL_SUSPEND if value.is_empty() => Command::FlowControlSuspend,
            code::FLOWCONTROL_RESUME if value.is_empty() => Command::FlowControlResume,
            code::FLOWCONTROL_SUSPEND | code::FLOWCONTROL_RESUME => malformed(),
            code::SET_LINESTATE_MASK => byte(|b| Command::SetLinestateMask(LineState(b))),
            code::SET_MODEMSTATE_MASK => byte(|b| Command::SetModemstateMask(ModemState(b))),
            code::PURGE_DATA => byte(|b| Command::PurgeData(b.into())),
            _ => return None,
        };
        Some(cmd)
    }

    /// Appends the value bytes (not yet IAC-escaped) to `out`.
    fn value_into(&self, out: &mut Vec<u8>) {
        match self {
            Command::Signature(v) | Command::Malformed { value: v, .. } => out.extend_from_slice(v),
            Command::Unknown { value, .. } => out.extend_from_slice(value),
            Command::SetBaudrate(b) => out.extend_from_slice(&b.to_be_bytes()),
            Command::SetDatasize(v) => out.push((*v).into()),
            Command::SetParity(v) => out.push((*v).into()),
            Command::SetStopsize(v) => out.push((*v).into()),
            Command::SetControl(v) => out.push((*v).into()),
            Command::NotifyLinestate(v) => out.extend(v.map(|s| s.0)),
            Command::NotifyModemstate(v) => out.extend(v.map(|s| s.0)),
            Command::FlowControlSuspend | Command::FlowControlResume => {}
            Command::SetLinestateMask(v) => out.push(v.0),
            Command::SetModemstateMask(v) => out.push(v.0),
            Command::PurgeData(v) => out.push((*v).into()),
        }
    }
}

impl Message {
    /// A message from client to server.
    pub fn to_server(command: Command) -> Message {
        Message {
            direction: Direction::ToServer,
            command,
        }
    }

    /// A message from server to client (an answer or a notification).
    pub fn to_client(command: Command) -> Message {
        Message {
            direction: Direction::ToClient,
            command,
        }
    }

    /// Decodes a COM-PORT-OPTION subnegotiation payload (the bytes after
    /// the option byte, IAC doubling undone). `None` only if it is empty.
    pub(crate) fn decode(payload: &[u8]) -> Option<Message> {
        let (&wire, value) = payload.split_first()?;
        let (direction, base) = if wire >= SERVER_OFFSET {
            (Direction::ToClient, wire - SERVER_OFFSET)
        } else {
            (Direction::ToServer, wire)
        };
        let command = Command::decode(base, value).unwrap_or_else(|| Command::Unknown {
            code: wire,
            value: Bytes::copy_from_slice(value),
        });
        Some(Message { direction, command })
    }

    /// The code byte on the wire: the command's code, plus 100 from the
    /// server (except for [`Command::Unknown`], whose code is kept as is).
    pub(crate) fn wire_code(&self) -> u8 {
        let code = self.command.code();
        match (&self.command, self.direction) {
            (Command::Unknown { .. }, _) | (_, Direction::ToServer) => code,
            (_, Direction::ToClient) => code.wrapping_add(SERVER_OFFSET),
        }
    }

    /// Appends `IAC SB 44 code value IAC SE` to `out`, IAC doubled.
    pub fn encode(&self, out: &mut BytesMut) {
        let mut value = Vec::with_capacity(8);
        value.push(self.wire_code());
        self.command.value_into(&mut value);
        out.extend_from_slice(&[IAC, SB, COM_PORT_OPTION]);
        escape_into(&value, out);
        out.extend_from_slice(&[IAC, SE]);
    }
}
