//! The broker's address as `--fleet URL` gives it: `nats://HOST:PORT`, a
//! comma-separated list of them for a cluster, `tls://` for TLS, with user
//! and password (or a token) in the URL. The credentials are taken out of
//! the addresses as they are parsed, so no address handed on, logged or
//! shown carries a password: [`FleetUrl`]'s `Display` shows the user alone.

use std::fmt;
use std::str::FromStr;

/// NATS's own port, when a URL names none.
pub(crate) const DEFAULT_PORT: u16 = 4222;

/// Servers listed at most: a cluster has a few; a limit keeps a typo from
/// costing anything.
const MAX_SERVERS: usize = 64;

/// One server of the list.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Server {
    tls: bool,
    /// A name, an IPv4 address, or an IPv6 one in brackets.
    host: String,
    port: u16,
}

/// Who connects: a user and password, or a token.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Auth {
    User { user: String, password: String },
    Token(String),
}

// Never the secret, even in a debug print.
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::User { user, .. } => write!(f, "User({user:?}, password hidden)"),
            Auth::Token(_) => f.write_str("Token(hidden)"),
        }
    }
}

/// A parsed, checked `--fleet` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FleetUrl {
    servers: Vec<Server>,
    auth: Option<Auth>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("no server given: expected nats://HOST:PORT (comma-separated for a cluster)")]
    Empty,
    #[error("{0:?}: expected nats://HOST:PORT or tls://HOST:PORT")]
    Scheme(String),
    #[error("{0:?}: no host")]
    NoHost(String),
    #[error("{0:?}: the port is not a number from 1 to 65535")]
    Port(String),
    #[error("{0:?}: a path, query or fragment has no meaning here")]
    Path(String),
    #[error("the servers give different users or passwords: give them once")]
    TwoAuths,
    #[error("more than {MAX_SERVERS} servers")]
    TooMany,
}

impl FleetUrl {
    /// Whether the broker is reached over TLS (any `tls://` server).
    pub(crate) fn tls(&self) -> bool {
        self.servers.iter().any(|s| s.tls)
    }

    /// The credentials the URL gave, if any.
    pub(crate) fn auth(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    /// The servers as async-nats takes them (`nats://HOST:PORT`), without
    /// credentials.
    pub(crate) fn addresses(&self) -> Vec<String> {
        self.servers
            .iter()
            .map(|s| {
                let scheme = if s.tls { "tls" } else { "nats" };
                format!("{scheme}://{}:{}", s.host, s.port)
            })
            .collect()
    }
}

/// The servers, with the user but never the password or token:
/// `nats://alice@10.0.0.1:4222,nats://10.0.0.2:4222`.
impl fmt::Display for FleetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.servers.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let scheme = if s.tls { "tls" } else { "nats" };
            write!(f, "{scheme}://")?;
            if i == 0 {
                match &self.auth {
                    Some(Auth::User { user, .. }) => write!(f, "{user}@")?,
                    Some(Auth::Token(_)) => f.write_str("TOKEN@")?,
                    None => {}
                }
            }
            write!(f, "{}:{}", s.host, s.port)?;
        }
        Ok(())
    }
}

impl FromStr for FleetUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<FleetUrl, UrlError> {
        let mut servers = Vec::new();
        let mut auth: Option<Auth> = None;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if servers.len() == MAX_SERVERS {
                return Err(UrlError::TooMany);
            }
            let (server, a) = server(part)?;
            match (&auth, a) {
                (_, None) => {}
                (None, Some(a)) => auth = Some(a),
                (Some(old), Some(a)) if *old == a => {}
                (Some(_), Some(_)) => return Err(UrlError::TwoAuths),
            }
            servers.push(server);
        }
        if servers.is_empty() {
            return Err(UrlError::Empty);
        }
        Ok(FleetUrl { servers, auth })
    }
}

/// One server of the list, and the credentials it carries.
fn server(part: &str) -> Result<(Server, Option<Auth>), UrlError> {
    // Never echo the credentials in an error: name the server by what
    // follows them.
    let shown = |rest: &str| match rest.rsplit_once('@') {
        Some((_, after)) => after.to_owned(),
        None => rest.to_owned(),
    };
    let (tls, rest) = match part.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "nats" => (false, rest),
            "tls" => (true, rest),
            _ => return Err(UrlError::Scheme(shown(part))),
        },
        None => (false, part),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '?', '#']) {
        return Err(UrlError::Path(shown(rest)));
    }
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (addr, after) = v6
            .split_once(']')
            .ok_or_else(|| UrlError::NoHost(hostport.to_owned()))?;
        (format!("[{addr}]"), after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (hostport.to_owned(), None),
        }
    };
    if host.is_empty() || host == "[]" || host.contains(char::is_whitespace) {
        return Err(UrlError::NoHost(hostport.to_owned()));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| UrlError::Port(hostport.to_owned()))?,
    };
    let auth = userinfo.map(|u| match u.split_once(':') {
        Some((user, password)) => Auth::User {
            user: percent_decode(user),
            password: percent_decode(password),
        },
        None => Auth::Token(percent_decode(u)),
    });
    Ok((Server { tls, host, port }, auth))
}

/// `%XX` escapes decoded, as URLs write reserved characters in a password;
/// anything that is not a valid escape is kept as written.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            // Two hex digits make at most 255.
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_clusters() {
        let u: FleetUrl = "nats://127.0.0.1:4223".parse().unwrap();
        assert_eq!(u.addresses(), ["nats://127.0.0.1:4223"]);
        assert!(!u.tls() && u.auth().is_none());
        let u: FleetUrl = "broker.lab".parse().unwrap();
        assert_eq!(u.addresses(), ["nats://broker.lab:4222"]);
        let u: FleetUrl = "tls://a:1, tls://b:2,".parse().unwrap();
        assert_eq!(u.addresses(), ["tls://a:1", "tls://b:2"]);
        assert!(u.tls());
        let u: FleetUrl = "nats://[::1]:4222/".parse().unwrap();
        assert_eq!(u.addresses(), ["nats://[::1]:4222"]);
    }

    #[test]
    fn the_password_is_taken_out_and_never_shown() {
        let u: FleetUrl = "nats://alice:s%40cret@h:1,nats://alice:s%40cret@g:2"
            .parse()
            .unwrap();
        assert_eq!(
            u.auth(),
            Some(&Auth::User {
                user: "alice".into(),
                password: "s@cret".into()
            })
        );
        assert_eq!(u.addresses(), ["nats://h:1", "nats://g:2"]);
        assert_eq!(u.to_string(), "nats://alice@h:1,nats://g:2");
        assert!(!format!("{u:?}").contains("cret"));
        let t: FleetUrl = "nats://tok3n@h".parse().unwrap();
        assert_eq!(t.auth(), Some(&Auth::Token("tok3n".into())));
        assert!(!t.to_string().contains("tok3n"));
        let e = "ftp://u:secret@h".parse::<FleetUrl>().unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = "nats://u:secret@h:x".parse::<FleetUrl>().unwrap_err();
        assert!(!e.to_string().contains("secret"), "{e}");
    }

    #[test]
    fn bad_urls_are_refused() {
        for (s, want) in [
            ("", UrlError::Empty),
            (" , ", UrlError::Empty),
            ("http://h:1", UrlError::Scheme("http://h:1".into())),
            ("nats://:1", UrlError::NoHost(":1".into())),
            ("nats://h:0", UrlError::Port("h:0".into())),
            ("nats://h:70000", UrlError::Port("h:70000".into())),
            ("nats://h:1/x", UrlError::Path("h:1/x".into())),
            ("nats://a:b@h,nats://c:d@g", UrlError::TwoAuths),
        ] {
            assert_eq!(s.parse::<FleetUrl>().unwrap_err(), want, "{s:?}");
        }
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("é%"), "é%");
    }
}
