//! The session protocol's subjects and its JSON requests (open, ping), and
//! the random tokens that name clients and sessions.
//!
//! Host and client names go into subject tokens; port names never do (they
//! may contain dots), they travel in the payloads.

use std::fmt::Write as _;
use std::sync::OnceLock;

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// How the host serves a session: RFC 2217 (line settings, modem lines
/// and break travel in-band) or the raw bytes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    Rfc2217,
    Raw,
}

/// `serialhub.host.<HOST>.open`: request/reply, opens a session.
pub(crate) fn open_subject(host: &str) -> String {
    format!("serialhub.host.{host}.open")
}

/// `serialhub.host.<HOST>.ping`: request/reply, asks whether a session is
/// alive on the host.
pub(crate) fn ping_subject(host: &str) -> String {
    format!("serialhub.host.{host}.ping")
}

/// `serialhub.host.<HOST>.s.<SID>`: frames from the client to the host.
pub(crate) fn to_host_subject(host: &str, session: &str) -> String {
    format!("serialhub.host.{host}.s.{session}")
}

/// `serialhub.client.<CID>.<SID>`: frames from the host to the client.
pub(crate) fn to_client_subject(client: &str, session: &str) -> String {
    format!("serialhub.client.{client}.{session}")
}

/// Whether `token` may be one subject token: the fleet's name rule,
/// `[A-Za-z0-9_-]{1,64}`. Names from the network are checked before they
/// go into a subject.
pub(crate) fn valid_token(token: &str) -> bool {
    (1..=64).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The longest opener host name kept for logs and status.
pub(crate) const MAX_PEER: usize = 64;

/// An opener's host name as the network gave it, made safe for logs and
/// status: at most [`MAX_PEER`] characters of `[A-Za-z0-9_.-]`, anything
/// else (a newline, a terminal escape) shown as `_`; `?` when empty.
pub(crate) fn peer_name(peer: &str) -> String {
    let name: String = peer
        .chars()
        .take(MAX_PEER)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "?".to_owned()
    } else {
        name
    }
}

/// The longest text from a peer (a refusal, a ping's error) kept.
pub(crate) const MAX_TEXT: usize = 256;

/// Text a peer sent, made safe for errors, logs and status: at most
/// [`MAX_TEXT`] characters, control characters shown as `?`.
pub(crate) fn peer_text(text: &str) -> String {
    text.chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenRequest {
    pub(crate) port: String,
    pub(crate) mode: Mode,
    pub(crate) session: String,
    pub(crate) client: String,
    /// The opening machine's host name, for logs and status.
    pub(crate) peer: String,
    /// What the client takes in before its reader reads.
    pub(crate) window: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OpenReply {
    pub(crate) ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) window: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) max_frame: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PingRequest {
    pub(crate) session: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PingReply {
    pub(crate) ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// The ping reply for a session the host does not hold.
pub(crate) const UNKNOWN_SESSION: &str = "unknown session";

/// A random token of 16 hex digits (64 bits): a session id.
pub(crate) fn token() -> String {
    let mut bytes = [0u8; 8];
    // The system generator fails only without /dev/urandom or getrandom;
    // a time-based id is then unique enough within one process.
    if SystemRandom::new().fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos as u64 ^ u64::from(std::process::id())).to_be_bytes();
    }
    bytes.iter().fold(String::with_capacity(16), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// This process's client id: one token for every session it opens.
pub(crate) fn client_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(token)
}

/// This machine's host name up to its first dot, or "unknown".
pub(crate) fn local_host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = if rc == 0 {
        String::from_utf8_lossy(&buf[..len]).into_owned()
    } else {
        String::new()
    };
    match name.split('.').next() {
        Some(h) if !h.is_empty() => h.to_owned(),
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_subject_tokens_and_differ() {
        let (a, b) = (token(), token());
        assert!(valid_token(&a) && valid_token(&b));
        assert_ne!(a, b);
        assert!(!valid_token("a.b") && !valid_token("") && !valid_token("*"));
    }

    #[test]
    fn peer_names_from_the_network_are_made_safe() {
        assert_eq!(peer_name("lab-3.example"), "lab-3.example");
        assert_eq!(
            peer_name("evil\n2026 ERROR x\u{1b}[2J"),
            "evil_2026_ERROR_x__2J"
        );
        assert_eq!(peer_name(""), "?");
        assert_eq!(peer_name(&"é".repeat(1000)), "_".repeat(MAX_PEER));
    }

    #[test]
    fn text_from_a_peer_is_cut_and_cannot_drive_a_terminal() {
        assert_eq!(peer_text("no port \"x\" on lab1"), "no port \"x\" on lab1");
        assert_eq!(peer_text("a\nb\u{1b}[2J"), "a?b?[2J");
        assert_eq!(peer_text(&"x".repeat(1 << 20)).len(), MAX_TEXT);
    }

    #[test]
    fn modes_are_lowercase_in_json() {
        assert_eq!(
            serde_json::to_string(&Mode::Rfc2217).ok().as_deref(),
            Some("\"rfc2217\"")
        );
        assert_eq!(
            serde_json::from_str::<Mode>("\"raw\"").ok(),
            Some(Mode::Raw)
        );
    }
}
