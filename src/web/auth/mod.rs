//! Who a request is, and what it may do.
//!
//! - No users configured, on a loopback listener: everyone is `rw`, as a
//!   loopback TCP client is (`auth: "none"`).
//! - Mutual TLS: the verified certificate's identity, with each port's
//!   `--allow` roles ([`crate::access::AccessPolicy`]), as on TLS endpoints
//!   (`auth: "certificate"`).
//! - Users configured (`[[http.user]]`): every page, API and WebSocket
//!   needs a session cookie, also on loopback (`auth: "password"`).
//!   `/metrics` is not the console's: scrapers have no cookies.
//!
//! Cross-site requests are refused: a WebSocket upgrade needs an `Origin`
//! equal to the request's own `scheme://Host`, and a POST with another
//! Origin is refused ([`same_origin`]). Repeated login failures from one
//! address wait ([`Failures`]).

pub(crate) mod login;
pub(crate) mod password;
pub(crate) mod sessions;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use axum::http::HeaderMap;
use axum::http::header::{COOKIE, HOST, ORIGIN};

use self::password::Verifier;
use self::sessions::Sessions;
use crate::access::{AccessPolicy, Role};
use crate::config::http::HttpUser;
use crate::tls::Identity;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "serialhub_session";

/// Each port's `--allow` roles, by port name, for certificate identities;
/// the daemon replaces it when a reload changes the ports.
pub(crate) type Policies = Arc<ArcSwap<BTreeMap<String, AccessPolicy>>>;

/// How a request was authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    None,
    Password,
    Certificate,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::None => "none",
            Method::Password => "password",
            Method::Certificate => "certificate",
        }
    }
}

/// An authenticated request's principal.
#[derive(Clone, Debug)]
pub(crate) struct Who {
    /// The login, or the certificate's identity (`cn:NAME`).
    pub(crate) user: Option<String>,
    pub(crate) method: Method,
    /// The role of a login or of everyone; per port for certificates.
    role: Option<Role>,
    cert: Option<Arc<Identity>>,
}

impl Who {
    /// This principal's role on `port` (`None`: refused there).
    pub(crate) fn role_on(&self, port: &str, policies: &Policies) -> Option<Role> {
        match &self.cert {
            Some(id) => policies
                .load()
                .get(port)
                .and_then(|p| p.role(id.cn.as_deref(), &id.dns, &id.sha256)),
            None => self.role,
        }
    }

    /// Its role anywhere: the best it has on any port, for `whoami`.
    pub(crate) fn role(&self, policies: &Policies) -> Option<Role> {
        match &self.cert {
            None => self.role,
            Some(_) => {
                let roles: Vec<Role> = policies
                    .load()
                    .keys()
                    .filter_map(|p| self.role_on(p, policies))
                    .collect();
                if roles.contains(&Role::Rw) {
                    Some(Role::Rw)
                } else {
                    roles.first().copied()
                }
            }
        }
    }
}

/// The users, their sessions, and the failed logins.
#[derive(Debug)]
pub(crate) struct Auth {
    users: Mutex<Arc<Vec<HttpUser>>>,
    /// The listener is reachable from the network without a client CA:
    /// without users nobody gets in (a reload that removed them all must
    /// not open the console to everyone).
    required: bool,
    pub(crate) sessions: Sessions,
    pub(crate) failures: Failures,
    /// Checks passwords, a bounded number at once.
    pub(crate) verifier: Verifier,
    pub(crate) policies: Policies,
}

impl Auth {
    /// `required`: logins are needed even when no user is left.
    pub(crate) fn new(users: &[HttpUser], required: bool, policies: Policies) -> Auth {
        Auth {
            users: Mutex::new(Arc::new(users.to_vec())),
            required,
            sessions: Sessions::default(),
            failures: Failures::default(),
            verifier: Verifier::default(),
            policies,
        }
    }

    fn users(&self) -> Arc<Vec<HttpUser>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Whether everyone is let in without a login or a certificate (a
    /// loopback listener with no users): then only requests that name a
    /// loopback host are this machine's ([`loopback_host`]).
    pub(crate) fn open(&self) -> bool {
        !self.has_users() && !self.required
    }

    /// Whether logins are needed.
    pub(crate) fn has_users(&self) -> bool {
        !self.users().is_empty()
    }

    /// The user `name`, if configured.
    pub(crate) fn user(&self, name: &str) -> Option<HttpUser> {
        self.users().iter().find(|u| u.name == name).cloned()
    }

    /// A configured user's password hash, to check an unknown user's
    /// password against (see [`login`]).
    pub(crate) fn decoy_hash(&self) -> Option<String> {
        self.users().first().map(|u| u.password_hash.clone())
    }

    /// New users (a reload): the sessions of users removed or given
    /// another role end.
    pub(crate) fn set_users(&self, users: &[HttpUser]) {
        *self.users.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(users.to_vec());
        self.sessions
            .keep_users(|name, role| users.iter().any(|u| u.name == name && u.role == role));
    }

    /// Who makes a request with `headers` over a connection with the client
    /// certificate `cert`; `None`: a login is needed.
    pub(crate) fn who(&self, headers: &HeaderMap, cert: Option<&Arc<Identity>>) -> Option<Who> {
        if let Some(id) = cert {
            return Some(Who {
                user: Some(id.to_string()),
                method: Method::Certificate,
                role: None,
                cert: Some(id.clone()),
            });
        }
        if self.open() {
            return Some(Who {
                user: None,
                method: Method::None,
                role: Some(Role::Rw),
                cert: None,
            });
        }
        let token = cookie(headers, COOKIE_NAME)?;
        let (user, role) = self.sessions.get(token)?;
        Some(Who {
            user: Some(user),
            method: Method::Password,
            role: Some(role),
            cert: None,
        })
    }
}

/// The value of cookie `name` in `headers`.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request's `Origin` is its own `scheme://Host` (exactly:
/// `null`, another port or a trailing slash is another origin). `required`:
/// a missing Origin fails (WebSocket upgrades, which browsers always send
/// it with); else only a different one does (POSTs by clients that are not
/// browsers), or a browser's `Sec-Fetch-Site` saying another site sent it.
pub(crate) fn same_origin(headers: &HeaderMap, https: bool, required: bool) -> bool {
    let Some(origin) = headers.get(ORIGIN) else {
        let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
        return !required && !matches!(site, Some(b"cross-site" | b"same-site"));
    };
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let scheme = if https { "https" } else { "http" };
    origin
        .to_str()
        .is_ok_and(|o| o.eq_ignore_ascii_case(&format!("{scheme}://{host}")))
}

/// Whether the request's `Host` names this machine by a loopback name
/// (`localhost`, `127.0.0.1`, `[::1]`, any port), or is absent (not a
/// browser). A page of another site whose name an attacker points at
/// 127.0.0.1 (DNS rebinding) is same-origin with itself and carries its
/// own `Host`: refused, it cannot use a console that trusts loopback.
pub(crate) fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST) else {
        return true;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, _)) => ip,
            None => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Failed logins by address: after [`FREE_FAILURES`], an attempt from that
/// address within [`PENALTY`] of its last failure is refused at once,
/// unchecked (429), so guessing slows to one try per [`PENALTY`] without
/// holding a connection. At most [`MAX_ADDRESSES`] are remembered (the
/// stalest forgotten first), each for [`REMEMBER`].
#[derive(Debug, Default)]
pub(crate) struct Failures {
    map: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Failures allowed before the wait: typing mistakes.
const FREE_FAILURES: u32 = 3;
/// The pause asked between attempts after them: guessing slows to a crawl.
const PENALTY: Duration = Duration::from_secs(1);
/// Addresses remembered: a bounded table, whatever a flood sends.
const MAX_ADDRESSES: usize = 4096;
/// How long a failure counts.
const REMEMBER: Duration = Duration::from_secs(15 * 60);

/// The address failures are counted for: an IPv6 peer by its /64, which
/// one host usually has whole (counting each address would let it rotate
/// through them and churn the table).
fn counted(ip: IpAddr) -> IpAddr {
    const HOST_BITS: u128 = (1 << 64) - 1;
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !HOST_BITS).into()),
        },
        v4 => v4,
    }
}

impl Failures {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `ip` must still wait before its next attempt is checked
    /// (zero: it is checked now).
    pub(crate) fn wait(&self, ip: IpAddr) -> Duration {
        match self.map().get(&counted(ip)) {
            Some((n, at)) if *n >= FREE_FAILURES => PENALTY.saturating_sub(at.elapsed()),
            _ => Duration::ZERO,
        }
    }

    /// A failed attempt from `ip`.
    pub(crate) fn failed(&self, ip: IpAddr) {
        let ip = counted(ip);
        let now = Instant::now();
        let mut map = self.map();
        if !map.contains_key(&ip) && map.len() >= MAX_ADDRESSES {
            map.retain(|_, (_, at)| now.duration_since(*at) < REMEMBER);
            if map.len() >= MAX_ADDRESSES
                && let Some(stale) = map.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k)
            {
                map.remove(&stale);
            }
        }
        let e = map.entry(ip).or_insert((0, now));
        if now.duration_since(e.1) >= REMEMBER {
            e.0 = 0;
        }
        *e = (e.0.saturating_add(1), now);
    }

    /// A good login from `ip`: its failures are forgiven.
    pub(crate) fn succeeded(&self, ip: IpAddr) {
        self.map().remove(&counted(ip));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn origins_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("127.0.0.1:9108"));
        assert!(!same_origin(&h, false, true));
        assert!(same_origin(&h, false, false));
        h.insert(ORIGIN, HeaderValue::from_static("http://127.0.0.1:9108"));
        assert!(same_origin(&h, false, true));
        assert!(!same_origin(&h, true, true));
        h.insert(ORIGIN, HeaderValue::from_static("HTTP://127.0.0.1:9108"));
        assert!(same_origin(&h, false, true), "scheme and host are caseless");
        for other in [
            "http://evil.example",
            "null",
            "",
            "http://127.0.0.1:9108/",
            "http://127.0.0.1:9109",
            "http://127.0.0.1",
            "http://127.0.0.1:9108.evil.example",
            "http://127.0.0.1:9108@evil.example",
        ] {
            h.insert(ORIGIN, HeaderValue::from_static(other));
            assert!(!same_origin(&h, false, false), "{other}");
        }
        h.remove(ORIGIN);
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h, false, false), "a cross-site form");
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h, false, false));
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; serialhub_session=tok; b=2"),
        );
        assert_eq!(cookie(&h, COOKIE_NAME), Some("tok"));
        assert_eq!(cookie(&h, "c"), None);
    }

    #[test]
    fn only_loopback_hosts_are_open() {
        let host = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(HOST, HeaderValue::from_static(v));
            loopback_host(&h)
        };
        for ok in [
            "127.0.0.1:9108",
            "127.1.2.3",
            "localhost:1",
            "LocalHost.",
            "[::1]:80",
            "[::1]",
        ] {
            assert!(host(ok), "{ok}");
        }
        for bad in [
            "evil.example:9108",
            "evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1:1",
            "[::2]:1",
            "localhost.evil:1",
            "",
            ":9108",
            "[::1",
            "0.0.0.0:9108",
        ] {
            assert!(!host(bad), "{bad}");
        }
        assert!(loopback_host(&HeaderMap::new()));
    }

    #[test]
    fn failures_slow_down_one_address() {
        let f = Failures::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..FREE_FAILURES {
            assert_eq!(f.wait(ip), Duration::ZERO);
            f.failed(ip);
        }
        assert!(f.wait(ip) > Duration::ZERO && f.wait(ip) <= PENALTY);
        assert_eq!(f.wait("10.0.0.2".parse().unwrap()), Duration::ZERO);
        f.succeeded(ip);
        assert_eq!(f.wait(ip), Duration::ZERO);
        // One IPv6 host rotating through its /64 is one address.
        for i in 0..FREE_FAILURES {
            f.failed(format!("2001:db8::{i}").parse().unwrap());
        }
        assert!(f.wait("2001:db8::ffff:1".parse().unwrap()) > Duration::ZERO);
        assert_eq!(f.wait("2001:db8:0:1::1".parse().unwrap()), Duration::ZERO);
        assert_eq!(counted("::ffff:10.0.0.1".parse().unwrap()), ip);
        for i in 0..MAX_ADDRESSES + 5 {
            f.failed(IpAddr::from([10, 1, (i >> 8) as u8, i as u8]));
        }
        assert!(f.map().len() <= MAX_ADDRESSES);
    }
}
