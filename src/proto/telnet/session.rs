//! [`Telnet`]: one connection's Telnet state, the object an endpoint holds.
//!
//! It feeds received bytes through the [`Parser`], answers negotiation
//! through the [`Negotiator`] (the answers go into a buffer the caller
//! sends), and decodes COM-PORT-OPTION subnegotiations into
//! [`rfc2217::Message`]s. Sending is plain functions on the caller's
//! buffer: [`escape_into`](super::escape_into) for data,
//! [`Message::encode`](rfc2217::Message::encode) for RFC 2217 commands.
//!
//! A server endpoint's loop, in outline:
//! ```
//! use bytes::BytesMut;
//! use serialhub::proto::telnet::{Event, Telnet, escape_into, rfc2217};
//!
//! let mut telnet = Telnet::server();
//! let mut to_client = BytesMut::new();
//! telnet.start(&mut to_client); // write before reading anything
//!
//! let received = b"\xff\xfb\x2c\xff\xfa\x2c\x01\x00\x00\x4b\x00\xff\xf0hi";
//! let mut events = Vec::new();
//! telnet.feed(received, &mut events, &mut to_client);
//! for event in events.drain(..) {
//!     match event {
//!         Event::Data(bytes) => { /* to the device */ }
//!         Event::ComPort(msg) => {
//!             if let rfc2217::Command::SetBaudrate(_asked) = msg.command {
//!                 // apply it, then answer with the rate in force
//!                 rfc2217::Message::to_client(rfc2217::Command::SetBaudrate(19200))
//!                     .encode(&mut to_client);
//!             }
//!         }
//!         _ => {}
//!     }
//! }
//! escape_into(b"from the device \xff", &mut to_client);
//! // write `to_client` to the socket
//! ```

use bytes::{Bytes, BytesMut};

use super::negotiation::{Negotiator, OptionChange, Outcome, Policy, Side};
use super::parser::{Parser, Token};
use super::rfc2217::{self, COM_PORT_OPTION};
use super::{IacCommand, Malformed};

/// What a received stream says, after negotiation is handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Data bytes, IAC doubling undone. Never empty. Adjacent data events
    /// may be split differently for different read boundaries.
    Data(Bytes),
    /// A Telnet command such as NOP, BRK or AYT; RFC 2217 needs none.
    Command(IacCommand),
    /// An option was enabled or disabled on one side (the answer, if any,
    /// is already in the replies buffer).
    OptionChanged(OptionChange),
    /// The peer asked for an option our policy does not accept; the
    /// refusal is already in the replies buffer.
    OptionRefused {
        /// Which side the peer asked to enable.
        side: Side,
        /// The option number.
        option: u8,
    },
    /// A COM-PORT-OPTION message. Decoded whether or not the option was
    /// negotiated (pyserial's server does the same), so the endpoint
    /// decides what to answer.
    ComPort(rfc2217::Message),
    /// A subnegotiation of another option (payload at most
    /// [`MAX_SUBNEG`](super::MAX_SUBNEG) bytes).
    Subnegotiation {
        /// The option byte.
        option: u8,
        /// The payload, IAC doubling undone.
        payload: Bytes,
    },
    /// Bad input that was skipped.
    Malformed(Malformed),
}

/// One connection's Telnet state: parser and option negotiation.
#[derive(Debug)]
pub struct Telnet {
    parser: Parser,
    negotiator: Negotiator,
    /// Scratch for the parser's output, reused across calls.
    tokens: Vec<Token>,
}

impl Telnet {
    /// A connection negotiating under `policy`.
    pub(crate) fn new(policy: Policy) -> Telnet {
        Telnet {
            parser: Parser::new(),
            negotiator: Negotiator::new(policy),
            tokens: Vec::new(),
        }
    }

    /// The RFC 2217 access server role ([`Policy::server`]).
    pub fn server() -> Telnet {
        Telnet::new(Policy::server())
    }

    /// The RFC 2217 client role ([`Policy::client`]).
    pub fn client() -> Telnet {
        Telnet::new(Policy::client())
    }

    /// Appends the opening offers to `out`; call once, before sending
    /// anything else.
    pub fn start(&mut self, out: &mut BytesMut) {
        self.negotiator.start(out);
    }

    /// Handles received bytes: appends events to `events` and negotiation
    /// answers to `replies` (to be sent to the peer). A partial command at
    /// the end is kept for the next call.
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<Event>, replies: &mut BytesMut) {
        self.parser.feed(input, &mut self.tokens);
        for token in self.tokens.drain(..) {
            let event = match token {
                Token::Data(b) => Event::Data(b),
                Token::Command(c) => Event::Command(c),
                Token::Malformed(m) => Event::Malformed(m),
                Token::Negotiate(verb, option) => {
                    match self.negotiator.receive(verb, option, replies) {
                        Outcome::Unchanged => continue,
                        Outcome::Changed(change) => Event::OptionChanged(change),
                        Outcome::Refused { side, option } => Event::OptionRefused { side, option },
                    }
                }
                Token::Subnegotiation { option, payload } if option == COM_PORT_OPTION => {
                    match rfc2217::Message::decode(&payload) {
                        Some(msg) => Event::ComPort(msg),
                        None => Event::Malformed(Malformed::EmptyComPort),
                    }
                }
                Token::Subnegotiation { option, payload } => {
                    Event::Subnegotiation { option, payload }
                }
            };
            events.push(event);
        }
    }

    /// The connection ended: reports [`Malformed::Truncated`] if it ended
    /// inside a command or subnegotiation.
    pub(crate) fn finish(&mut self, events: &mut Vec<Event>) {
        self.parser.finish(&mut self.tokens);
        for token in self.tokens.drain(..) {
            if let Token::Malformed(m) = token {
                events.push(Event::Malformed(m));
            }
        }
    }

    /// Whether `option` is in force on `side`.
    pub(crate) fn is_enabled(&self, side: Side, option: u8) -> bool {
        self.negotiator.is_enabled(side, option)
    }

    /// Whether the peer agreed to COM-PORT-OPTION on either side (pyserial
    /// accepts either; RFC 2217 has the client WILL and the server DO).
    pub fn com_port_enabled(&self) -> bool {
        self.is_enabled(Side::Local, COM_PORT_OPTION)
            || self.is_enabled(Side::Remote, COM_PORT_OPTION)
    }

    /// Bytes held between calls: the partial subnegotiation, never more
    /// than [`MAX_SUBNEG`](super::MAX_SUBNEG).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.parser.buffered()
    }
}
