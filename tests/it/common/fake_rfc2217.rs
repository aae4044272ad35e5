//! A small fake RFC 2217 access server, for serialhub's `--device
//! rfc2217://` client: it agrees to BINARY, SGA and COM-PORT-OPTION, answers
//! the line settings, masks and PURGE-DATA with the value asked, echoes the
//! data, and records every SET-CONTROL it receives, in order, by
//! connection. Whether it answers SET-CONTROL is its [`Answers`] mode:
//! esptool's `esp_rfc2217_server` answers flow control but never DTR or RTS;
//! sredird-style servers answer none.
//!
//! Written by hand from RFC 854 and RFC 2217 rather than with serialhub's own
//! codec, so a bug there cannot hide itself here.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
const COM_PORT: u8 = 44;
const SET_CONTROL: u8 = 5;
const PURGE_DATA: u8 = 12;

/// SET-CONTROL values for DTR and RTS (RFC 2217).
pub const DTR_ON: u8 = 8;
pub const DTR_OFF: u8 = 9;
pub const RTS_ON: u8 = 11;
pub const RTS_OFF: u8 = 12;

/// Which SET-CONTROL requests the fake answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answers {
    /// Every one (a well-behaved server).
    All,
    /// Flow control and break, never DTR or RTS (`esp_rfc2217_server`).
    NotModemLines,
    /// None at all (sredird-style).
    None,
}

/// A running fake server; its threads end with the test process.
pub struct FakeRfc2217 {
    pub addr: SocketAddr,
    pub answers: Answers,
    /// Every SET-CONTROL value received: (connection number from 0, value).
    controls: Arc<Mutex<Vec<(usize, u8)>>>,
    /// The open connections, so a test can hang up on serialhub.
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl FakeRfc2217 {
    /// Listens on 127.0.0.1, on a port the OS chooses.
    pub fn start(answers: Answers) -> FakeRfc2217 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake server");
        let addr = listener.local_addr().unwrap();
        let controls = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (c, open) = (controls.clone(), conns.clone());
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { return };
                let _ = stream.set_nodelay(true);
                if let Ok(s) = stream.try_clone() {
                    open.lock().unwrap().push(s);
                }
                let session = Session {
                    conn: n,
                    answers,
                    controls: c.clone(),
                    agreed: Vec::new(),
                };
                std::thread::spawn(move || session.run(stream));
            }
        });
        FakeRfc2217 {
            addr,
            answers,
            controls,
            conns,
        }
    }

    /// `rfc2217://ADDR` with `query` (`""` or `"?ign_set_control"`).
    pub fn url(&self, query: &str) -> String {
        format!("rfc2217://{}{query}", self.addr)
    }

    /// The DTR and RTS requests received on connection `conn`, in order.
    pub fn modem_lines(&self, conn: usize) -> Vec<u8> {
        self.controls
            .lock()
            .unwrap()
            .iter()
            .filter(|(c, v)| *c == conn && matches!(*v, DTR_ON | DTR_OFF | RTS_ON | RTS_OFF))
            .map(|(_, v)| *v)
            .collect()
    }

    /// Every SET-CONTROL value received on any connection, in order.
    pub fn controls(&self) -> Vec<(usize, u8)> {
        self.controls.lock().unwrap().clone()
    }

    /// Closes every open connection, as a restarted server would.
    pub fn hang_up(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Names of DTR and RTS SET-CONTROL values, for assertion messages.
pub fn names(values: &[u8]) -> Vec<&'static str> {
    values
        .iter()
        .map(|v| match *v {
            DTR_ON => "DTR on",
            DTR_OFF => "DTR off",
            RTS_ON => "RTS on",
            RTS_OFF => "RTS off",
            _ => "other",
        })
        .collect()
}

/// One connection's parser state and what it has agreed.
struct Session {
    conn: usize,
    answers: Answers,
    controls: Arc<Mutex<Vec<(usize, u8)>>>,
    /// (verb, option) pairs already answered, so nothing is answered twice.
    agreed: Vec<(u8, u8)>,
}

enum State {
    Data,
    Iac,
    Verb(u8),
    Sub,
    SubIac,
}

impl Session {
    fn run(mut self, mut stream: TcpStream) {
        let mut state = State::Data;
        let mut sub = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let mut out = Vec::new();
            for &b in &buf[..n] {
                state = match state {
                    State::Data if b == IAC => State::Iac,
                    State::Data => {
                        out.push(b);
                        State::Data
                    }
                    State::Iac => match b {
                        IAC => {
                            out.extend([IAC, IAC]);
                            State::Data
                        }
                        WILL | WONT | DO | DONT => State::Verb(b),
                        SB => {
                            sub.clear();
                            State::Sub
                        }
                        _ => State::Data,
                    },
                    State::Verb(verb) => {
                        self.negotiate(verb, b, &mut out);
                        State::Data
                    }
                    State::Sub if b == IAC => State::SubIac,
                    State::Sub => {
                        sub.push(b);
                        State::Sub
                    }
                    State::SubIac => match b {
                        SE => {
                            self.subnegotiation(&sub, &mut out);
                            State::Data
                        }
                        _ => {
                            sub.push(b);
                            State::Sub
                        }
                    },
                };
            }
            if !out.is_empty() && stream.write_all(&out).is_err() {
                return;
            }
        }
    }

    /// Agrees to BINARY, SGA and COM-PORT-OPTION, refuses the rest; answers
    /// each request once.
    fn negotiate(&mut self, verb: u8, option: u8, out: &mut Vec<u8>) {
        if self.agreed.contains(&(verb, option)) {
            return;
        }
        self.agreed.push((verb, option));
        let ok = matches!(option, 0 | 3 | COM_PORT);
        let answer = match verb {
            WILL if ok => DO,
            WILL => DONT,
            DO if ok => WILL,
            DO => WONT,
            _ => return,
        };
        out.extend([IAC, answer, option]);
    }

    /// Answers a COM-PORT request with the value asked, except the
    /// SET-CONTROL requests its mode leaves unanswered.
    fn subnegotiation(&mut self, sub: &[u8], out: &mut Vec<u8>) {
        let [COM_PORT, code, value @ ..] = sub else {
            return;
        };
        match *code {
            SET_CONTROL => {
                let Some(&v) = value.first() else { return };
                self.controls.lock().unwrap().push((self.conn, v));
                let modem_line = matches!(v, DTR_ON | DTR_OFF | RTS_ON | RTS_OFF);
                let answer = match self.answers {
                    Answers::All => true,
                    Answers::NotModemLines => !modem_line,
                    Answers::None => false,
                };
                if !answer {
                    return;
                }
            }
            1..=4 | 10 | 11 | PURGE_DATA => {}
            _ => return,
        }
        out.extend([IAC, SB, COM_PORT, code + 100]);
        for &b in value {
            out.push(b);
            if b == IAC {
                out.push(IAC);
            }
        }
        out.extend([IAC, SE]);
    }
}
