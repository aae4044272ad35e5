//! The Telnet framing layer: a byte stream in, [`Token`]s out.
//!
//! The parser is a small state machine over single bytes, except in plain
//! data, where it copies whole runs up to the next IAC. Between `feed`
//! calls it keeps its state and at most one subnegotiation's payload (capped
//! at [`MAX_SUBNEG`]); data is never held back: each `feed` ends with the
//! data it saw, in one [`Token::Data`] per stretch between other tokens.

use bytes::{Bytes, BytesMut};

use super::{IAC, IacCommand, MAX_SUBNEG, Malformed, SB, SE, Verb};

/// One item of a Telnet stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    /// Data bytes, IAC doubling undone. Never empty.
    Data(Bytes),
    /// `IAC` and a command byte other than a verb, SB, SE or IAC.
    Command(IacCommand),
    /// `IAC WILL/WONT/DO/DONT option`.
    Negotiate(Verb, u8),
    /// `IAC SB option payload IAC SE`, IAC doubling in the payload undone;
    /// the payload is at most [`MAX_SUBNEG`] bytes.
    Subnegotiation {
        /// The option byte.
        option: u8,
        /// What came between the option byte and `IAC SE`.
        payload: Bytes,
    },
    /// Bad input the parser recovered from.
    Malformed(Malformed),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    /// After IAC in data.
    Iac,
    /// After IAC and a verb: the option byte comes next.
    Verb(Verb),
    /// After IAC SB: the option byte comes next.
    SbOption,
    /// After IAC SB IAC: IAC (option 255) or SE (an empty subnegotiation).
    SbOptionIac,
    /// Inside a subnegotiation; `oversized` once it passed the cap, after
    /// which its bytes are skipped.
    Sb {
        option: u8,
        oversized: bool,
    },
    /// After IAC inside a subnegotiation.
    SbIac {
        option: u8,
        oversized: bool,
    },
}

/// The Telnet stream parser. See the [module docs](self).
#[derive(Debug)]
pub(crate) struct Parser {
    state: State,
    /// The current subnegotiation's payload; never longer than MAX_SUBNEG.
    sb: Vec<u8>,
    /// Data seen since the last token, emitted before the next token or at
    /// the end of `feed`, so that one run of data is one allocation.
    data: BytesMut,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// A parser at the start of a stream.
    pub(crate) fn new() -> Self {
        Parser {
            state: State::Data,
            sb: Vec::new(),
            data: BytesMut::new(),
        }
    }

    /// Parses `input`, appending the tokens it completes to `out`. Any
    /// partial command or subnegotiation at the end is kept for the next
    /// call; all data is emitted.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<Token>) {
        let mut rest = input;
        while !rest.is_empty() {
            if self.state == State::Data {
                match rest.iter().position(|&b| b == IAC) {
                    None => {
                        self.data.extend_from_slice(rest);
                        rest = &[];
                    }
                    Some(i) => {
                        self.data.extend_from_slice(&rest[..i]);
                        self.state = State::Iac;
                        rest = &rest[i + 1..];
                    }
                }
            } else {
                self.step(rest[0], out);
                rest = &rest[1..];
            }
        }
        self.flush_data(out);
    }

    /// Ends the stream: reports [`Malformed::Truncated`] if it stopped
    /// inside a command or subnegotiation, and resets to the start state.
    pub(crate) fn finish(&mut self, out: &mut Vec<Token>) {
        self.flush_data(out);
        if self.state != State::Data {
            out.push(Token::Malformed(Malformed::Truncated));
            self.state = State::Data;
            self.sb.clear();
        }
    }

    /// Bytes held between calls (the partial subnegotiation); never more
    /// than [`MAX_SUBNEG`].
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.sb.len() + self.data.len()
    }

    /// Whether the stream is between tokens (nothing partial is held).
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        self.state == State::Data
    }

    fn step(&mut self, b: u8, out: &mut Vec<Token>) {
        match self.state {
            State::Data => {
                if b == IAC {
                    self.state = State::Iac;
                } else {
                    self.data.extend_from_slice(&[b]);
                }
            }
            State::Iac => self.after_iac(b, out),
            State::Verb(verb) => {
                self.state = State::Data;
                self.emit(out, Token::Negotiate(verb, b));
            }
            State::SbOption => {
                if b == IAC {
                    self.state = State::SbOptionIac;
                } else {
                    self.begin_sb(b);
                }
            }
            State::SbOptionIac => match b {
                IAC => self.begin_sb(IAC),
                SE => {
                    self.state = State::Data;
                    self.emit(out, Token::Malformed(Malformed::EmptySubnegotiation));
                }
                _ => {
                    self.emit(out, Token::Malformed(Malformed::EmptySubnegotiation));
                    self.after_iac(b, out);
                }
            },
            State::Sb { option, oversized } => {
                if b == IAC {
                    self.state = State::SbIac { option, oversized };
                } else {
                    self.push_sb(b, option, oversized, out);
                }
            }
            State::SbIac { option, oversized } => match b {
                IAC => self.push_sb(IAC, option, oversized, out),
                SE => {
                    self.state = State::Data;
                    if !oversized {
                        let payload = Bytes::copy_from_slice(&self.sb);
                        self.emit(out, Token::Subnegotiation { option, payload });
                    }
                    self.sb.clear();
                }
                _ => {
                    self.sb.clear();
                    let bad = Malformed::UnterminatedSubnegotiation { option };
                    self.emit(out, Token::Malformed(bad));
                    self.after_iac(b, out);
                }
            },
        }
    }

    /// The byte after an IAC, outside a subnegotiation.
    fn after_iac(&mut self, b: u8, out: &mut Vec<Token>) {
        self.state = State::Data;
        if let Some(verb) = Verb::from_byte(b) {
            self.state = State::Verb(verb);
            return;
        }
        match b {
            IAC => self.data.extend_from_slice(&[IAC]),
            SB => self.state = State::SbOption,
            SE => self.emit(out, Token::Malformed(Malformed::StraySubnegotiationEnd)),
            _ => self.emit(out, Token::Command(IacCommand::from_byte(b))),
        }
    }

    fn begin_sb(&mut self, option: u8) {
        self.sb.clear();
        self.state = State::Sb {
            option,
            oversized: false,
        };
    }

    fn push_sb(&mut self, b: u8, option: u8, oversized: bool, out: &mut Vec<Token>) {
        let mut oversized = oversized;
        if !oversized {
            if self.sb.len() < MAX_SUBNEG {
                self.sb.push(b);
            } else {
                oversized = true;
                self.sb.clear();
                let bad = Malformed::OversizedSubnegotiation { option };
                self.emit(out, Token::Malformed(bad));
            }
        }
        self.state = State::Sb { option, oversized };
    }

    fn emit(&mut self, out: &mut Vec<Token>, token: Token) {
        self.flush_data(out);
        out.push(token);
    }

    fn flush_data(&mut self, out: &mut Vec<Token>) {
        if !self.data.is_empty() {
            out.push(Token::Data(self.data.split().freeze()));
        }
    }
}
