//! Tests of option negotiation: no loops, refusals, the Q method's queue,
//! pyserial's opening handshake (its client's option logic transcribed),
//! and our two roles against each other.

use bytes::BytesMut;

use super::tests::parse;
use super::*;

fn neg(pairs: &[(Verb, u8)]) -> Vec<u8> {
    let mut out = BytesMut::new();
    for &(v, o) in pairs {
        encode_negotiation(v, o, &mut out);
    }
    out.to_vec()
}

#[test]
fn repeated_request_gets_no_second_answer() {
    let mut n = Negotiator::new(Policy::server());
    let mut out = BytesMut::new();
    let first = n.receive(Verb::Will, OPT_SGA, &mut out);
    assert_eq!(
        first,
        negotiation::Outcome::Changed(OptionChange {
            side: Side::Remote,
            option: OPT_SGA,
            enabled: true
        })
    );
    assert_eq!(&out[..], &neg(&[(Verb::Do, OPT_SGA)])[..]);
    out.clear();
    assert_eq!(
        n.receive(Verb::Will, OPT_SGA, &mut out),
        negotiation::Outcome::Unchanged
    );
    assert!(out.is_empty(), "a repeated WILL was answered");
    // Disabling: answered once, then silence.
    assert!(matches!(
        n.receive(Verb::Wont, OPT_SGA, &mut out),
        negotiation::Outcome::Changed(OptionChange { enabled: false, .. })
    ));
    assert_eq!(&out[..], &neg(&[(Verb::Dont, OPT_SGA)])[..]);
    out.clear();
    n.receive(Verb::Wont, OPT_SGA, &mut out);
    assert!(out.is_empty());
}

#[test]
fn unknown_options_are_refused() {
    let mut n = Negotiator::new(Policy::server());
    let mut out = BytesMut::new();
    assert_eq!(
        n.receive(Verb::Will, 31, &mut out),
        negotiation::Outcome::Refused {
            side: Side::Remote,
            option: 31
        }
    );
    assert_eq!(
        n.receive(Verb::Do, 24, &mut out),
        negotiation::Outcome::Refused {
            side: Side::Local,
            option: 24
        }
    );
    assert_eq!(&out[..], &neg(&[(Verb::Dont, 31), (Verb::Wont, 24)])[..]);
    assert!(!n.is_enabled(Side::Remote, 31) && !n.is_enabled(Side::Local, 24));
    // A negative for an option that is off needs no answer.
    out.clear();
    n.receive(Verb::Wont, 31, &mut out);
    n.receive(Verb::Dont, 24, &mut out);
    assert!(out.is_empty());
    // The server does not echo the peer: DO ECHO yes, WILL ECHO no.
    let mut c = Negotiator::new(Policy::server());
    c.receive(Verb::Will, OPT_ECHO, &mut out);
    assert_eq!(&out[..], &neg(&[(Verb::Dont, OPT_ECHO)])[..]);
}

#[test]
fn q_method_queues_a_change_of_mind() {
    let mut n = Negotiator::new(Policy::client());
    let mut out = BytesMut::new();
    n.request(Side::Remote, OPT_SGA, true, &mut out);
    n.request(Side::Remote, OPT_SGA, true, &mut out); // already pending
    assert_eq!(&out[..], &neg(&[(Verb::Do, OPT_SGA)])[..]);
    // Changed our mind while waiting: the WILL is then answered DONT.
    n.request(Side::Remote, OPT_SGA, false, &mut out);
    out.clear();
    n.receive(Verb::Will, OPT_SGA, &mut out);
    assert_eq!(&out[..], &neg(&[(Verb::Dont, OPT_SGA)])[..]);
    out.clear();
    n.receive(Verb::Wont, OPT_SGA, &mut out);
    assert!(out.is_empty());
    assert!(!n.is_enabled(Side::Remote, OPT_SGA));
}

/// pyserial's client-side `TelnetOption`, transcribed: each entry is
/// (option, send_yes, ack_yes, ack_no, state), state one of "requested",
/// "active", "inactive".
struct PyserialClient {
    options: Vec<(u8, Verb, Verb, Verb, &'static str)>,
}

impl PyserialClient {
    fn new() -> Self {
        use Verb::*;
        // The order and initial states of serial/rfc2217.py `Serial.open`.
        PyserialClient {
            options: vec![
                (OPT_ECHO, Do, Will, Wont, "requested"),
                (OPT_SGA, Will, Do, Dont, "requested"),
                (OPT_SGA, Do, Will, Wont, "requested"),
                (OPT_BINARY, Do, Will, Wont, "inactive"),
                (OPT_COM_PORT, Do, Will, Wont, "requested"),
                (OPT_BINARY, Will, Do, Dont, "inactive"),
                (OPT_COM_PORT, Will, Do, Dont, "requested"),
            ],
        }
    }

    fn open(&self) -> Vec<u8> {
        let sends: Vec<_> = (self.options.iter())
            .filter(|o| o.4 == "requested")
            .map(|o| (o.1, o.0))
            .collect();
        neg(&sends)
    }

    fn receive(&mut self, verb: Verb, option: u8) -> Vec<u8> {
        let mut out = Vec::new();
        let mut known = false;
        for o in self.options.iter_mut().filter(|o| o.0 == option) {
            known = true;
            let no = match o.1 {
                Verb::Will => Verb::Wont,
                _ => Verb::Dont,
            };
            if verb == o.2 {
                if o.4 == "inactive" {
                    out.extend(neg(&[(o.1, option)]));
                }
                o.4 = "active";
            } else if verb == o.3 {
                if o.4 == "active" {
                    out.extend(neg(&[(no, option)]));
                }
                o.4 = "inactive";
            }
        }
        if !known && matches!(verb, Verb::Will | Verb::Do) {
            let refuse = if verb == Verb::Will {
                Verb::Dont
            } else {
                Verb::Wont
            };
            out.extend(neg(&[(refuse, option)]));
        }
        out
    }

    /// The open() wait: we-BINARY and we-RFC2217 active where requested.
    fn mandatory_ok(&self) -> bool {
        self.options[5..].iter().all(|o| o.4 != "requested") && self.options[6].4 == "active"
    }
}

#[test]
fn pyserial_opening_gets_exactly_the_answers_it_needs() {
    let mut client = PyserialClient::new();
    let mut server = Telnet::server();
    let mut to_client = BytesMut::new();
    server.start(&mut to_client);
    let mut to_server = client.open();

    // What the server answers to pyserial's opening requests, after its
    // own offers: only what pyserial asked and our offers did not cover.
    let mut probe = Telnet::server();
    let (mut events, mut answers) = (Vec::new(), BytesMut::new());
    probe.start(&mut BytesMut::new());
    probe.feed(&to_server, &mut events, &mut answers);
    assert_eq!(
        &answers[..],
        &neg(&[(Verb::Do, OPT_SGA), (Verb::Will, OPT_COM_PORT)])[..],
        "{events:?}"
    );
    assert_eq!(
        &to_client[..],
        &neg(&[
            (Verb::Will, OPT_BINARY),
            (Verb::Will, OPT_ECHO),
            (Verb::Will, OPT_SGA),
            (Verb::Do, OPT_BINARY),
            (Verb::Do, OPT_COM_PORT),
        ])[..]
    );

    // Both sides exchange until quiet; a loop would never get quiet.
    let mut rounds = 0;
    while !(to_client.is_empty() && to_server.is_empty()) {
        rounds += 1;
        assert!(rounds < 10, "negotiation does not settle");
        let mut events = Vec::new();
        let mut replies = BytesMut::new();
        server.feed(&std::mem::take(&mut to_server), &mut events, &mut replies);
        for t in parse(&to_client.split()) {
            if let Token::Negotiate(v, o) = t {
                to_server.extend(client.receive(v, o));
            }
        }
        to_client = replies;
    }
    assert!(client.mandatory_ok(), "pyserial's open would time out");
    assert!(client.options.iter().all(|o| o.4 == "active"));
    for opt in [OPT_BINARY, OPT_SGA, OPT_COM_PORT] {
        assert!(server.is_enabled(Side::Local, opt) && server.is_enabled(Side::Remote, opt));
    }
    assert!(server.is_enabled(Side::Local, OPT_ECHO));
    assert!(server.com_port_enabled());
}

#[test]
fn server_and_client_roles_agree_without_looping() {
    let mut server = Telnet::server();
    let mut client = Telnet::client();
    let (mut to_client, mut to_server) = (BytesMut::new(), BytesMut::new());
    server.start(&mut to_client);
    client.start(&mut to_server);
    let mut sent = 0;
    while !(to_client.is_empty() && to_server.is_empty()) {
        sent += to_client.len() + to_server.len();
        assert!(sent < 200, "negotiation does not settle");
        let (mut ev, mut a, mut b) = (Vec::new(), BytesMut::new(), BytesMut::new());
        server.feed(&to_server.split(), &mut ev, &mut a);
        client.feed(&to_client.split(), &mut ev, &mut b);
        to_client = a;
        to_server = b;
    }
    for opt in [OPT_BINARY, OPT_SGA, OPT_COM_PORT] {
        assert!(client.is_enabled(Side::Local, opt), "client WILL {opt}");
        assert!(server.is_enabled(Side::Remote, opt), "server DO {opt}");
    }
    assert!(client.is_enabled(Side::Remote, OPT_ECHO));
    assert!(client.com_port_enabled() && server.com_port_enabled());
}
