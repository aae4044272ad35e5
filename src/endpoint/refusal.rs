//! Connections turned away before they became clients: why, how many, and
//! a log that a scanner cannot flood.
//!
//! Every refusal is counted by its [`Refusal`] reason twice: for the
//! endpoint that refused it and for its port (which keeps counting across
//! endpoints added and removed by a reload). Status shows both, the metrics
//! the port's as `serialhub_refused_total{port,reason}`: the reasons are a
//! fixed list, so the labels are bounded.
//!
//! Refusals for who the peer is (its network, its handshake, its
//! certificate) are logged at most once per peer address per
//! [`LOG_EVERY`], the addresses remembered in a map of at most
//! [`LOG_PEERS`]; what is not logged is counted and said on the next line
//! that is. Refusals for want of room (`--max-clients`, descriptors) are
//! logged by the accept loop as episodes instead, once when they start and
//! once when they end.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tracing::warn;

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// `--max-clients` reached (also counted in the hub's `refused`).
    MaxClients,
    /// No file descriptor to spare (also counted in the hub's `refused`).
    Descriptors,
    /// The peer's address is outside the endpoint's `from=` networks.
    Network,
    /// The TLS handshake failed or timed out.
    Handshake,
    /// A verified certificate that matches no `--allow` identity.
    Identity,
    /// A certificate on a certificate revocation list.
    Revoked,
}

impl Refusal {
    /// Every reason, in the order status and the metrics list them.
    pub(crate) const ALL: [Refusal; 6] = [
        Refusal::MaxClients,
        Refusal::Descriptors,
        Refusal::Network,
        Refusal::Handshake,
        Refusal::Identity,
        Refusal::Revoked,
    ];

    /// The reason's name in status, the metrics' `reason` label and the log.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Refusal::MaxClients => "max_clients",
            Refusal::Descriptors => "descriptors",
            Refusal::Network => "network",
            Refusal::Handshake => "handshake",
            Refusal::Identity => "identity",
            Refusal::Revoked => "revoked",
        }
    }

    fn index(self) -> usize {
        match self {
            Refusal::MaxClients => 0,
            Refusal::Descriptors => 1,
            Refusal::Network => 2,
            Refusal::Handshake => 3,
            Refusal::Identity => 4,
            Refusal::Revoked => 5,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One counter per reason, bumped without a lock.
#[derive(Debug, Default)]
pub(crate) struct RefusalCounts([AtomicU64; Refusal::ALL.len()]);

impl RefusalCounts {
    pub(crate) fn add(&self, reason: Refusal, n: u64) {
        self.0[reason.index()].fetch_add(n, Relaxed);
    }

    pub(crate) fn get(&self, reason: Refusal) -> u64 {
        self.0[reason.index()].load(Relaxed)
    }

    /// Every counter now, by name.
    pub(crate) fn snapshot(&self) -> Refusals {
        Refusals {
            max_clients: self.get(Refusal::MaxClients),
            descriptors: self.get(Refusal::Descriptors),
            network: self.get(Refusal::Network),
            handshake: self.get(Refusal::Handshake),
            identity: self.get(Refusal::Identity),
            revoked: self.get(Refusal::Revoked),
        }
    }
}

/// Refusals by reason, as `status --json` gives them (`"refusals"` per
/// port and per endpoint). The field names are the reasons' names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Refusals {
    #[serde(default)]
    pub(crate) max_clients: u64,
    #[serde(default)]
    pub(crate) descriptors: u64,
    #[serde(default)]
    pub(crate) network: u64,
    #[serde(default)]
    pub(crate) handshake: u64,
    #[serde(default)]
    pub(crate) identity: u64,
    #[serde(default)]
    pub(crate) revoked: u64,
}

impl Refusals {
    pub(crate) fn get(&self, reason: Refusal) -> u64 {
        match reason {
            Refusal::MaxClients => self.max_clients,
            Refusal::Descriptors => self.descriptors,
            Refusal::Network => self.network,
            Refusal::Handshake => self.handshake,
            Refusal::Identity => self.identity,
            Refusal::Revoked => self.revoked,
        }
    }

    /// All refusals, whatever the reason.
    pub(crate) fn total(&self) -> u64 {
        Refusal::ALL
            .iter()
            .fold(0u64, |n, r| n.saturating_add(self.get(*r)))
    }
}

/// How long a peer address that was logged is not logged again.
pub(crate) const LOG_EVERY: Duration = Duration::from_secs(10);
/// Peer addresses remembered per endpoint: a scanner from more addresses
/// than this within [`LOG_EVERY`] is logged this many times, and the rest
/// is counted as unlogged. A few tens of kilobytes at most.
pub(crate) const LOG_PEERS: usize = 1024;

/// Which refusals to log: each peer address at most once per
/// [`LOG_EVERY`], in bounded memory. Pure (the time is given), so it is
/// tested without waiting.
#[derive(Debug, Default)]
pub(crate) struct RateLimit {
    /// When each remembered address was last logged.
    logged: HashMap<IpAddr, Instant>,
    /// Refusals not logged since the last line that was.
    unlogged: u64,
}

impl RateLimit {
    /// Whether a refusal of `peer` at `now` is logged. If it is, returns
    /// how many refusals were not logged since the last line that was (and
    /// starts counting again); if not, counts it.
    pub(crate) fn admit(&mut self, peer: IpAddr, now: Instant) -> Option<u64> {
        let fresh = |t: &Instant| now.saturating_duration_since(*t) < LOG_EVERY;
        if let Some(t) = self.logged.get(&peer)
            && fresh(t)
        {
            self.unlogged = self.unlogged.saturating_add(1);
            return None;
        }
        if !self.logged.contains_key(&peer) && self.logged.len() >= LOG_PEERS {
            self.logged.retain(|_, t| fresh(t));
            if self.logged.len() >= LOG_PEERS {
                self.unlogged = self.unlogged.saturating_add(1);
                return None;
            }
        }
        self.logged.insert(peer, now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// Addresses remembered now (at most [`LOG_PEERS`]).
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.logged.len()
    }
}

/// What an endpoint's accept loop (and its handshakes) refuse with: the
/// endpoint's counters, its port's, and the rate-limited log. Shared by
/// the endpoint's tasks.
#[derive(Debug)]
pub(crate) struct Refuser {
    endpoint: Arc<RefusalCounts>,
    port: Arc<RefusalCounts>,
    log: Mutex<RateLimit>,
}

impl Refuser {
    /// Counts into `endpoint` and `port`.
    pub(crate) fn new(endpoint: Arc<RefusalCounts>, port: Arc<RefusalCounts>) -> Refuser {
        Refuser {
            endpoint,
            port,
            log: Mutex::new(RateLimit::default()),
        }
    }

    /// Counts `n` refusals without logging them (the accept loop logs its
    /// room refusals as episodes).
    pub(crate) fn count(&self, reason: Refusal, n: u64) {
        self.endpoint.add(reason, n);
        self.port.add(reason, n);
    }

    /// Counts one refusal of the peer `name` (`tcp:10.1.2.3:40000`) at
    /// address `ip`, and logs it unless that address was logged within
    /// [`LOG_EVERY`]. `detail` says what was wrong.
    pub(crate) fn refuse(
        &self,
        reason: Refusal,
        name: &str,
        ip: Option<IpAddr>,
        detail: impl fmt::Display,
    ) {
        self.count(reason, 1);
        let unlogged = match ip {
            Some(ip) => self
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .admit(ip, Instant::now()),
            None => Some(0),
        };
        if let Some(unlogged) = unlogged {
            warn!(peer = %name, %reason, unlogged,
                "connection refused: {detail} (each address logged at most once per {}s)",
                LOG_EVERY.as_secs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn an_address_is_logged_once_per_window_and_the_rest_counted() {
        let mut r = RateLimit::default();
        let t = Instant::now();
        assert_eq!(r.admit(ip(1), t), Some(0));
        for k in 1..=5 {
            assert_eq!(r.admit(ip(1), t + Duration::from_secs(k)), None);
        }
        // Another address is logged at once, and says what was not.
        assert_eq!(r.admit(ip(2), t + Duration::from_secs(5)), Some(5));
        assert_eq!(
            r.admit(ip(1), t + LOG_EVERY - Duration::from_millis(1)),
            None
        );
        assert_eq!(r.admit(ip(1), t + LOG_EVERY), Some(1));
    }

    #[test]
    fn a_scanner_from_many_addresses_cannot_grow_the_map() {
        let mut r = RateLimit::default();
        let t = Instant::now();
        let n = LOG_PEERS as u32 * 3;
        let logged = (0..n).filter(|k| r.admit(ip(*k), t).is_some()).count();
        assert_eq!(logged, LOG_PEERS);
        assert_eq!(r.remembered(), LOG_PEERS);
        // Once the window has passed, the old addresses make room.
        let later = t + LOG_EVERY;
        assert_eq!(r.admit(ip(n), later), Some(u64::from(n) - LOG_PEERS as u64));
        assert_eq!(r.remembered(), 1);
    }

    #[test]
    fn counts_go_to_the_endpoint_and_the_port() {
        let port = Arc::new(RefusalCounts::default());
        let a = Arc::new(RefusalCounts::default());
        let b = Arc::new(RefusalCounts::default());
        let (ra, rb) = (
            Refuser::new(a.clone(), port.clone()),
            Refuser::new(b.clone(), port.clone()),
        );
        ra.refuse(Refusal::Network, "tcp:10.0.0.1:1", Some(ip(1)), "x");
        ra.refuse(Refusal::Network, "tcp:10.0.0.1:2", Some(ip(1)), "x");
        rb.count(Refusal::MaxClients, 3);
        rb.refuse(Refusal::Handshake, "tcp:10.0.0.2:1", None, "x");
        assert_eq!(a.snapshot().network, 2);
        assert_eq!(a.snapshot().total(), 2);
        assert_eq!(b.snapshot().max_clients, 3);
        assert_eq!(b.snapshot().handshake, 1);
        let p = port.snapshot();
        assert_eq!((p.network, p.max_clients, p.handshake), (2, 3, 1));
        assert_eq!(p.total(), 6);
        for r in Refusal::ALL {
            assert_eq!(p.get(r), port.get(r), "{r}");
        }
    }

    #[test]
    fn reasons_have_distinct_names_and_slots() {
        let names: std::collections::HashSet<_> = Refusal::ALL.iter().map(|r| r.name()).collect();
        let slots: std::collections::HashSet<_> = Refusal::ALL.iter().map(|r| r.index()).collect();
        assert_eq!(names.len(), Refusal::ALL.len());
        assert_eq!(slots.len(), Refusal::ALL.len());
        let json = serde_json::to_value(Refusals::default()).unwrap();
        for r in Refusal::ALL {
            assert_eq!(json[r.name()], 0, "{r}");
        }
    }
}
