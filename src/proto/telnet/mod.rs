//! Telnet (RFC 854/855) framing, option negotiation (RFC 1143) and the
//! COM-PORT-OPTION (RFC 2217), sans-I/O: bytes in, events out; commands in,
//! bytes out. No socket, no timer, no tokio.
//!
//! The layers, each in its own file:
//! - [`parser`]: splits a byte stream into [`Token`](parser::Token)s (data, IAC commands,
//!   WILL/WONT/DO/DONT, subnegotiations). It keeps only a small state between
//!   calls, and one subnegotiation buffer capped at [`MAX_SUBNEG`].
//! - [`negotiation`]: the per-option state machine of RFC 1143 (the "Q
//!   method") and the [`Policy`](negotiation::Policy) saying which options each role accepts and
//!   offers. It answers a request only when the request changes the state,
//!   so two peers never loop, and it refuses every option the policy does
//!   not name.
//! - [`rfc2217`]: the COM-PORT-OPTION commands as typed values, decoded from
//!   and encoded to subnegotiation payloads.
//! - [`session`]: [`Telnet`], the one object an endpoint holds per
//!   connection. It ties the three together: `feed` gives [`Event`]s and
//!   writes the negotiation answers to a buffer for the caller to send.
//!
//! # Contract
//! - Any input is accepted. Bad but recoverable input comes out as an
//!   [`Event::Malformed`], never a panic or an error that ends the session.
//! - A stream split at any point across `feed` calls gives the same events,
//!   except that data may come out in differently sized [`Event::Data`]
//!   chunks: merge adjacent data events and the results are equal.
//! - Memory is bounded: a subnegotiation longer than [`MAX_SUBNEG`] is
//!   reported and skipped to its `IAC SE`, never buffered whole.
//!
//! # Line endings
//! Telnet's NVT rules (CR must be followed by LF or NUL when BINARY is off)
//! are not applied: data passes through unchanged in both directions, with
//! only IAC doubled and undoubled. Both roles negotiate BINARY both ways, as
//! pyserial's `rfc2217://` client and server do, and a serial port carries
//! bytes, not lines; a peer that refuses BINARY still gets its bytes as they
//! are.

pub(crate) mod line;
pub(crate) mod negotiation;
pub(crate) mod parser;
pub mod rfc2217;
pub(crate) mod session;

#[cfg(test)]
mod negotiation_tests;
#[cfg(test)]
mod rfc2217_tests;
#[cfg(test)]
mod tests;

use bytes::{BufMut, BytesMut};

#[cfg(test)]
pub(crate) use negotiation::{Negotiator, OptionChange, Policy, Side};
#[cfg(test)]
pub(crate) use parser::{Parser, Token};
pub use session::{Event, Telnet};

/// Longest subnegotiation payload kept, in bytes (after the option byte,
/// IAC doubling undone). RFC 2217's longest message is a SIGNATURE text;
/// 256 bytes holds any real one. A longer payload is reported as
/// [`Malformed::OversizedSubnegotiation`] and skipped.
pub(crate) const MAX_SUBNEG: usize = 256;

/// Interpret As Command: starts every Telnet command; doubled in data.
pub(crate) const IAC: u8 = 255;
/// Refuses or asks the peer to stop an option on its side.
pub(crate) const DONT: u8 = 254;
/// Asks or agrees that the peer enables an option on its side.
pub(crate) const DO: u8 = 253;
/// Refuses or stops an option on our side.
pub(crate) const WONT: u8 = 252;
/// Offers or agrees to enable an option on our side.
pub(crate) const WILL: u8 = 251;
/// Subnegotiation Begin.
pub(crate) const SB: u8 = 250;
/// Subnegotiation End.
pub(crate) const SE: u8 = 240;

/// Option: 8-bit data path (RFC 856).
pub(crate) const OPT_BINARY: u8 = 0;
/// Option: the sender echoes what it receives (RFC 857).
pub(crate) const OPT_ECHO: u8 = 1;
/// Option: suppress go-ahead (RFC 858).
pub(crate) const OPT_SGA: u8 = 3;
/// Option: COM-PORT-OPTION (RFC 2217).
pub(crate) const OPT_COM_PORT: u8 = rfc2217::COM_PORT_OPTION;

/// The four negotiation commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Verb {
    /// `IAC WILL opt`: the sender enables (or offers) `opt` on its side.
    Will,
    /// `IAC WONT opt`: the sender disables (or refuses) `opt` on its side.
    Wont,
    /// `IAC DO opt`: the sender wants the receiver to enable `opt`.
    Do,
    /// `IAC DONT opt`: the sender wants the receiver to disable `opt`.
    Dont,
}

impl Verb {
    /// The command byte on the wire.
    pub(crate) const fn byte(self) -> u8 {
        match self {
            Verb::Will => WILL,
            Verb::Wont => WONT,
            Verb::Do => DO,
            Verb::Dont => DONT,
        }
    }

    /// The verb for a command byte, if it is one of the four.
    pub(crate) const fn from_byte(b: u8) -> Option<Verb> {
        match b {
            WILL => Some(Verb::Will),
            WONT => Some(Verb::Wont),
            DO => Some(Verb::Do),
            DONT => Some(Verb::Dont),
            _ => None,
        }
    }
}

/// A Telnet command other than negotiation and subnegotiation: `IAC` and
/// one byte. RFC 2217 uses none of them; the session reports them and the
/// endpoint may ignore them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IacCommand {
    /// No operation (241).
    Nop,
    /// Data Mark (242), the end of a Synch.
    DataMark,
    /// Break (243). Not a serial break: RFC 2217 sends that as SET-CONTROL.
    Break,
    /// Interrupt Process (244).
    InterruptProcess,
    /// Abort Output (245).
    AbortOutput,
    /// Are You There (246).
    AreYouThere,
    /// Erase Character (247).
    EraseCharacter,
    /// Erase Line (248).
    EraseLine,
    /// Go Ahead (249).
    GoAhead,
    /// `IAC` followed by a byte that names no RFC 854 command (0..=239, such
    /// as 239, EOR from RFC 885). Both bytes are consumed.
    Other(u8),
}

impl IacCommand {
    /// The command for the byte after `IAC` (not IAC, SB, SE or a verb).
    pub(crate) const fn from_byte(b: u8) -> IacCommand {
        match b {
            241 => IacCommand::Nop,
            242 => IacCommand::DataMark,
            243 => IacCommand::Break,
            244 => IacCommand::InterruptProcess,
            245 => IacCommand::AbortOutput,
            246 => IacCommand::AreYouThere,
            247 => IacCommand::EraseCharacter,
            248 => IacCommand::EraseLine,
            249 => IacCommand::GoAhead,
            other => IacCommand::Other(other),
        }
    }

    /// The byte after `IAC` on the wire.
    #[cfg(test)]
    pub(crate) const fn byte(self) -> u8 {
        match self {
            IacCommand::Nop => 241,
            IacCommand::DataMark => 242,
            IacCommand::Break => 243,
            IacCommand::InterruptProcess => 244,
            IacCommand::AbortOutput => 245,
            IacCommand::AreYouThere => 246,
            IacCommand::EraseCharacter => 247,
            IacCommand::EraseLine => 248,
            IacCommand::GoAhead => 249,
            IacCommand::Other(b) => b,
        }
    }
}

/// Input that breaks the Telnet rules but that the parser recovers from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// `IAC SE` outside a subnegotiation; dropped.
    StraySubnegotiationEnd,
    /// `IAC SB IAC SE`: a subnegotiation with no option byte; dropped.
    EmptySubnegotiation,
    /// A subnegotiation of `option` grew past [`MAX_SUBNEG`]; the rest of it
    /// is skipped up to its `IAC SE`, and it produces no other event.
    OversizedSubnegotiation {
        /// The option it was for.
        option: u8,
    },
    /// A subnegotiation of `option` was cut short by `IAC` and a command
    /// other than `SE` or `IAC`: its bytes are dropped and the command is
    /// processed as if outside (a peer that forgot `IAC SE` recovers at its
    /// next command).
    UnterminatedSubnegotiation {
        /// The option it was for.
        option: u8,
    },
    /// A COM-PORT-OPTION subnegotiation with no command code.
    EmptyComPort,
    /// The input ended inside a command or a subnegotiation (reported by
    /// `finish`, at the end of the connection).
    Truncated,
}

/// Appends `data` to `out` as Telnet data: every 0xFF byte doubled, all
/// other bytes unchanged. Copies runs between IAC bytes whole, so bulk data
/// without 0xFF costs one copy.
pub fn escape_into(data: &[u8], out: &mut BytesMut) {
    out.reserve(data.len());
    let mut rest = data;
    while let Some(i) = rest.iter().position(|&b| b == IAC) {
        out.extend_from_slice(&rest[..=i]);
        out.put_u8(IAC);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
}

/// Appends `IAC verb option`.
pub(crate) fn encode_negotiation(verb: Verb, option: u8, out: &mut BytesMut) {
    out.extend_from_slice(&[IAC, verb.byte(), option]);
}

/// Appends `IAC command` (for [`IacCommand::Other`], whatever byte it holds).
#[cfg(test)]
pub(crate) fn encode_command(command: IacCommand, out: &mut BytesMut) {
    out.extend_from_slice(&[IAC, command.byte()]);
}

/// Appends `IAC SB option payload IAC SE`, doubling IAC in the option byte
/// and the payload.
#[cfg(test)]
pub(crate) fn encode_subnegotiation(option: u8, payload: &[u8], out: &mut BytesMut) {
    out.extend_from_slice(&[IAC, SB]);
    escape_into(&[option], out);
    escape_into(payload, out);
    out.extend_from_slice(&[IAC, SE]);
}
