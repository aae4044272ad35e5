//! Telnet option negotiation: RFC 1143's "Q method", one state machine per
//! option and side, and the [`Policy`] of a role.
//!
//! Each option has two independent sides: [`Side::Local`] (we do it; we send
//! WILL/WONT, the peer DO/DONT) and [`Side::Remote`] (the peer does it). Each
//! side is `No`, `Yes`, or waiting for the answer to our own request
//! (`WantYes`/`WantNo`), with a one-deep queue for a change of mind while
//! waiting. A received command is answered only when it changes the state,
//! and an answer to our own request is never answered, so two peers that
//! both follow the rules cannot loop. An option the policy does not accept
//! is refused (DONT for WILL, WONT for DO) and never enabled.

use bytes::BytesMut;

use super::{OPT_BINARY, OPT_COM_PORT, OPT_ECHO, OPT_SGA, Verb, encode_negotiation};

/// A set of Telnet option numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct OptionSet([u64; 4]);

impl OptionSet {
    /// No option.
    pub(crate) const EMPTY: OptionSet = OptionSet([0; 4]);

    /// This set with `option` added.
    pub(crate) const fn with(self, option: u8) -> OptionSet {
        let mut words = self.0;
        words[(option / 64) as usize] |= 1 << (option % 64);
        OptionSet(words)
    }

    /// Whether `option` is in the set.
    pub(crate) const fn contains(self, option: u8) -> bool {
        self.0[(option / 64) as usize] & (1 << (option % 64)) != 0
    }

    /// The options in the set, lowest first.
    pub(crate) fn iter(self) -> impl Iterator<Item = u8> {
        (0..=u8::MAX).filter(move |&o| self.contains(o))
    }
}

/// Which options a role accepts and which it asks for when the connection
/// opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Options we agree to enable on our side when the peer sends DO.
    pub(crate) accept_local: OptionSet,
    /// Options we agree the peer enables when it sends WILL.
    pub(crate) accept_remote: OptionSet,
    /// Options we offer at start (WILL); should be in `accept_local`.
    pub(crate) offer_local: OptionSet,
    /// Options we ask the peer for at start (DO); should be in
    /// `accept_remote`.
    pub(crate) offer_remote: OptionSet,
}

impl Policy {
    /// The RFC 2217 access server (serialhub's `rfc2217:` endpoint).
    ///
    /// Offers WILL BINARY, WILL SGA, WILL ECHO and asks DO BINARY, DO
    /// COM-PORT-OPTION, as pyserial's own server does (it also offers WILL
    /// COM-PORT-OPTION; we only accept it when asked). pyserial's client
    /// opens with DO ECHO, WILL SGA, DO SGA, DO COM-PORT-OPTION and WILL
    /// COM-PORT-OPTION, and waits until its WILL COM-PORT-OPTION is answered
    /// with DO (and its WILL BINARY, if the server asked for it): each of
    /// its requests crosses one of our offers or is accepted here, so every
    /// one gets exactly one answer. ECHO is claimed but not performed: the
    /// device echoes, or not; claiming it keeps interactive telnet clients
    /// from echoing locally.
    pub(crate) const fn server() -> Policy {
        let both = OptionSet::EMPTY
            .with(OPT_BINARY)
            .with(OPT_SGA)
            .with(OPT_COM_PORT);
        Policy {
            accept_local: both.with(OPT_ECHO),
            accept_remote: both,
            offer_local: OptionSet::EMPTY
                .with(OPT_BINARY)
                .with(OPT_SGA)
                .with(OPT_ECHO),
            offer_remote: OptionSet::EMPTY.with(OPT_BINARY).with(OPT_COM_PORT),
        }
    }

    /// The RFC 2217 client (serialhub using a remote port as its device).
    ///
    /// Offers WILL COM-PORT-OPTION (RFC 2217: the client sends WILL, the
    /// server DO), WILL/DO BINARY and WILL/DO SGA; accepts the server's ECHO
    /// (the server then does not expect us to echo) and its WILL
    /// COM-PORT-OPTION.
    pub(crate) const fn client() -> Policy {
        let both = OptionSet::EMPTY
            .with(OPT_BINARY)
            .with(OPT_SGA)
            .with(OPT_COM_PORT);
        Policy {
            accept_local: both,
            accept_remote: both.with(OPT_ECHO),
            offer_local: both,
            offer_remote: OptionSet::EMPTY.with(OPT_BINARY).with(OPT_SGA),
        }
    }
}

/// Our side or the peer's side of an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// We perform the option (we send WILL/WONT).
    Local,
    /// The peer performs the option (we send DO/DONT).
    Remote,
}

/// An option that became enabled or disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OptionChange {
    /// Whose side changed.
    pub(crate) side: Side,
    /// The option number.
    pub(crate) option: u8,
    /// Its new state.
    pub(crate) enabled: bool,
}

/// What a received negotiation command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Outcome {
    /// Nothing changed (a repeat, or an answer that confirms nothing new).
    Unchanged,
    /// The option was enabled or disabled.
    Changed(OptionChange),
    /// The peer asked for an option the policy does not accept; refused.
    Refused {
        /// Which side the peer asked to enable.
        side: Side,
        /// The option number.
        option: u8,
    },
}

/// RFC 1143 state of one side of one option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Q {
    #[default]
    No,
    Yes,
    /// We asked to disable; `opposite` once we changed our mind meanwhile.
    WantNo {
        opposite: bool,
    },
    /// We asked to enable; `opposite` once we changed our mind meanwhile.
    WantYes {
        opposite: bool,
    },
}

/// The negotiation state of every option, both sides.
#[derive(Debug, Clone)]
pub(crate) struct Negotiator {
    policy: Policy,
    local: [Q; 256],
    remote: [Q; 256],
}

impl Negotiator {
    /// All options off, to be negotiated under `policy`.
    pub(crate) fn new(policy: Policy) -> Negotiator {
        Negotiator {
            policy,
            local: [Q::No; 256],
            remote: [Q::No; 256],
        }
    }

    /// Appends the policy's opening offers (WILL for `offer_local`, DO for
    /// `offer_remote`) to `out`. Call once, before anything is sent.
    pub(crate) fn start(&mut self, out: &mut BytesMut) {
        for option in self.policy.offer_local.iter() {
            self.request(Side::Local, option, true, out);
        }
        for option in self.policy.offer_remote.iter() {
            self.request(Side::Remote, option, true, out);
        }
    }

    /// Whether `option` is in force on `side`.
    pub(crate) fn is_enabled(&self, side: Side, option: u8) -> bool {
        self.q(side, option) == Q::Yes
    }

    /// Asks the peer to enable (`enable`) or disable `option` on `side`,
    /// appending the command to `out` if one is needed now. A request
    /// that is already in force or already pending sends nothing; a change
    /// of mind while waiting is queued and sent when the answer comes.
    pub(crate) fn request(&mut self, side: Side, option: u8, enable: bool, out: &mut BytesMut) {
        let q = self.q(side, option);
        let (next, send) = match (q, enable) {
            (Q::No, true) => (Q::WantYes { opposite: false }, true),
            (Q::Yes, false) => (Q::WantNo { opposite: false }, true),
            (Q::WantNo { .. }, true) => (Q::WantNo { opposite: true }, false),
            (Q::WantNo { .. }, false) => (Q::WantNo { opposite: false }, false),
            (Q::WantYes { .. }, false) => (Q::WantYes { opposite: true }, false),
            (Q::WantYes { .. }, true) => (Q::WantYes { opposite: false }, false),
            (Q::No, false) | (Q::Yes, true) => (q, false),
        };
        self.set_q(side, option, next);
        if send {
            encode_negotiation(verb_for(side, enable), option, out);
        }
    }

    /// Handles a received `IAC verb option`, appending any answer to `out`.
    pub(crate) fn receive(&mut self, verb: Verb, option: u8, out: &mut BytesMut) -> Outcome {
        let (side, yes) = match verb {
            Verb::Will => (Side::Remote, true),
            Verb::Wont => (Side::Remote, false),
            Verb::Do => (Side::Local, true),
            Verb::Dont => (Side::Local, false),
        };
        let accepted = match side {
            Side::Local => self.policy.accept_local.contains(option),
            Side::Remote => self.policy.accept_remote.contains(option),
        };
        let before = self.q(side, option);
        // (next state, what to send: Some(enable) or None)
        let (next, send) = if yes {
            match before {
                Q::No if accepted => (Q::Yes, Some(true)),
                Q::No => (Q::No, Some(false)),
                Q::Yes => (Q::Yes, None),
                // The peer answered our disable with enable: RFC 1143 takes
                // it as a protocol error and settles without answering.
                Q::WantNo { opposite: false } => (Q::No, None),
                Q::WantNo { opposite: true } => (Q::Yes, None),
                Q::WantYes { opposite: false } => (Q::Yes, None),
                Q::WantYes { opposite: true } => (Q::WantNo { opposite: false }, Some(false)),
            }
        } else {
            match before {
                Q::No => (Q::No, None),
                Q::Yes => (Q::No, Some(false)),
                Q::WantNo { opposite: false } => (Q::No, None),
                Q::WantNo { opposite: true } => (Q::WantYes { opposite: false }, Some(true)),
                Q::WantYes { .. } => (Q::No, None),
            }
        };
        self.set_q(side, option, next);
        if let Some(enable) = send {
            encode_negotiation(verb_for(side, enable), option, out);
        }
        if yes && !accepted && before == Q::No {
            return Outcome::Refused { side, option };
        }
        let (was, is) = (before == Q::Yes, next == Q::Yes);
        if was == is {
            Outcome::Unchanged
        } else {
            Outcome::Changed(OptionChange {
                side,
                option,
                enabled: is,
            })
        }
    }

    fn q(&self, side: Side, option: u8) -> Q {
        match side {
            Side::Local => self.local[usize::from(option)],
            Side::Remote => self.remote[usize::from(option)],
        }
    }

    fn set_q(&mut self, side: Side, option: u8, q: Q) {
        match side {
            Side::Local => self.local[usize::from(option)] = q,
            Side::Remote => self.remote[usize::from(option)] = q,
        }
    }
}

/// The command that asks for (or agrees to) `enable` on `side`.
fn verb_for(side: Side, enable: bool) -> Verb {
    match (side, enable) {
        (Side::Local, true) => Verb::Will,
        (Side::Local, false) => Verb::Wont,
        (Side::Remote, true) => Verb::Do,
        (Side::Remote, false) => Verb::Dont,
    }
}
