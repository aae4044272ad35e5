//! Clashes between the ports of a configuration: no two ports may share a
//! name, a device or a traffic log directory, and no two endpoints (nor an
//! endpoint and the control socket or the metrics endpoint) an address.
//!
//! The answer is the one a comparison of every pair in file order gives:
//! the first port that clashes with something before it, at its first
//! clashing part (name, device, log directory, then its endpoints in order),
//! with the earliest thing it clashes with. It is found by looking each
//! port's keys up in maps of what came before, and each tty path is
//! canonicalised once, so the time grows with the number of ports, not its
//! square (issue 18: comparing every pair, and canonicalising both paths
//! each time, took minutes for 10,000 ports).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::PortConfig;
use crate::device::DeviceSpec;
use crate::endpoint::EndpointKind;

/// What an address is already used by. Ordered as the addresses are
/// registered: the control socket or the metrics endpoint (never both for
/// one kind of address), then the ports in file order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Owner {
    Control,
    Metrics,
    /// The port at this index.
    Port(usize),
}

/// How a port clashes with something before it. Indexes are of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Clash {
    Name(usize),
    Device(usize),
    LogDir(usize),
    /// The port's endpoint at index `endpoint` has an address of `other`.
    Address {
        endpoint: usize,
        other: Owner,
    },
}

/// The first port, in file order, that clashes with something before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Collision {
    /// The port's index.
    pub(crate) port: usize,
    pub(crate) clash: Clash,
}

/// The first collision, in file order, among `ports`, the control socket
/// and the metrics endpoint (`HOST:PORT`).
pub(crate) fn first(
    ports: &[PortConfig],
    control: Option<&Path>,
    metrics: Option<&str>,
) -> Option<Collision> {
    let found = |port, clash| Some(Collision { port, clash });
    let mut names = HashMap::with_capacity(ports.len());
    let mut devices = Devices::default();
    let mut logs = HashMap::new();
    let mut paths = HashMap::new();
    let mut tcp = Tcp::default();
    if let Some(socket) = control {
        paths.insert(socket, Owner::Control);
    }
    if let Some(addr) = metrics {
        tcp.insert(addr, Owner::Metrics);
    }
    for (i, port) in ports.iter().enumerate() {
        if let Some(j) = first_for(&mut names, port.name.as_str(), i) {
            return found(i, Clash::Name(j));
        }
        if let Some(j) = devices.check(&port.device, i) {
            return found(i, Clash::Device(j));
        }
        if let Some(log) = &port.traffic
            && let Some(j) = first_for(&mut logs, log.dir.as_path(), i)
        {
            return found(i, Clash::LogDir(j));
        }
        for (endpoint, spec) in port.listen.iter().enumerate() {
            let other = match &spec.kind {
                EndpointKind::Tcp { addr }
                | EndpointKind::ModbusTcp { addr }
                | EndpointKind::Rfc2217 { addr } => tcp.check(addr, Owner::Port(i)),
                EndpointKind::Unix { path } | EndpointKind::Pty { path } => {
                    first_for(&mut paths, path.as_path(), Owner::Port(i))
                }
            };
            if let Some(other) = other {
                return found(i, Clash::Address { endpoint, other });
            }
        }
    }
    None
}

/// What `key` is already used by, if anything; else it is now `owner`'s.
fn first_for<K: Eq + Hash, V: Copy>(map: &mut HashMap<K, V>, key: K, owner: V) -> Option<V> {
    match map.entry(key) {
        Entry::Occupied(e) => Some(*e.get()),
        Entry::Vacant(e) => {
            e.insert(owner);
            None
        }
    }
}

/// The earlier of two owners, either of which may be absent.
fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The devices seen so far, by port index. Two ttys are the same if their
/// paths are, or if both resolve to the same file (a `/dev/serial/by-id/`
/// link and its tty); two remote ports if their addresses are. Simulators
/// are each their own, and a fleet port is shared by its host as any port
/// is, so two ports may have it.
#[derive(Default)]
struct Devices<'a> {
    paths: HashMap<&'a Path, usize>,
    /// Of the ttys whose path resolves.
    canonical: HashMap<PathBuf, usize>,
    remote: HashMap<&'a str, usize>,
}

impl<'a> Devices<'a> {
    /// The first earlier port with `device`; else `device` is now `port`'s.
    fn check(&mut self, device: &'a DeviceSpec, port: usize) -> Option<usize> {
        match device {
            DeviceSpec::Sim(_) | DeviceSpec::Fleet(_) => None,
            DeviceSpec::Remote { addr, .. } => first_for(&mut self.remote, addr.as_str(), port),
            DeviceSpec::Tty(path) => {
                let same_path = first_for(&mut self.paths, path.as_path(), port);
                let same_file = std::fs::canonicalize(path)
                    .ok()
                    .and_then(|file| first_for(&mut self.canonical, file, port));
                earliest(same_path, same_file)
            }
        }
    }
}

/// The TCP addresses (`HOST:PORT`) seen so far. Two collide when binding
/// both would fail: the same port on the same address, or on an address and
/// the wildcard. Port 0 never collides. Addresses that are not IP addresses
/// (host names) collide with the same text, in any case.
#[derive(Default)]
struct Tcp {
    /// Every address, by its text in lower case.
    text: HashMap<String, Owner>,
    /// IP addresses: by address and port, the wildcards by port, and any by
    /// port (which a wildcard collides with).
    exact: HashMap<(IpAddr, u16), Owner>,
    wildcard: HashMap<u16, Owner>,
    any: HashMap<u16, Owner>,
}

impl Tcp {
    /// The earliest owner `addr` collides with; else it is now `owner`'s.
    fn check(&mut self, addr: &str, owner: Owner) -> Option<Owner> {
        if is_port_zero(addr) {
            return None;
        }
        // A text that matches in any case is a collision whether or not
        // either side is an IP address: IP addresses that differ only in
        // the case of hex digits are the same address.
        let by_text = self.text.get(&addr.to_ascii_lowercase()).copied();
        let by_ip = addr.parse::<SocketAddr>().ok().and_then(|a| {
            if a.ip().is_unspecified() {
                self.any.get(&a.port()).copied()
            } else {
                earliest(
                    self.exact.get(&(a.ip(), a.port())).copied(),
                    self.wildcard.get(&a.port()).copied(),
                )
            }
        });
        let other = earliest(by_text, by_ip);
        if other.is_none() {
            self.insert(addr, owner);
        }
        other
    }

    fn insert(&mut self, addr: &str, owner: Owner) {
        if is_port_zero(addr) {
            return;
        }
        self.text.entry(addr.to_ascii_lowercase()).or_insert(owner);
        if let Ok(a) = addr.parse::<SocketAddr>() {
            self.exact.entry((a.ip(), a.port())).or_insert(owner);
            self.any.entry(a.port()).or_insert(owner);
            if a.ip().is_unspecified() {
                self.wildcard.entry(a.port()).or_insert(owner);
            }
        }
    }
}

/// Port 0 asks the system for a free port, so it never collides.
fn is_port_zero(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(_, p)| p == "0")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{LogSettings, PortSettings, Source};
    use proptest::prelude::*;

    fn port(name: &str, device: &str, listen: &[&str], log: Option<&str>) -> PortConfig {
        PortConfig::resolve(
            PortSettings {
                name: Some(name.into()),
                device: Some(device.parse().unwrap()),
                listen: Some(listen.iter().map(|l| l.parse().unwrap()).collect()),
                log: LogSettings {
                    dir: log.map(PathBuf::from),
                    ..LogSettings::default()
                },
                ..PortSettings::default()
            },
            Source::File,
        )
        .unwrap()
    }

    /// The check as it was before issue 18: every pair, in file order.
    fn pairwise(
        ports: &[PortConfig],
        control: Option<&Path>,
        metrics: Option<&str>,
    ) -> Option<Collision> {
        let found = |port, clash| Some(Collision { port, clash });
        let mut paths: Vec<(PathBuf, Owner)> = Vec::new();
        let mut tcp: Vec<(String, Owner)> = Vec::new();
        paths.extend(control.map(|c| (c.to_owned(), Owner::Control)));
        tcp.extend(metrics.map(|m| (m.to_owned(), Owner::Metrics)));
        for (i, port) in ports.iter().enumerate() {
            if let Some(j) = ports[..i].iter().position(|p| p.name == port.name) {
                return found(i, Clash::Name(j));
            }
            if let Some(j) = ports[..i]
                .iter()
                .position(|p| same_device(&p.device, &port.device))
            {
                return found(i, Clash::Device(j));
            }
            if let Some(log) = &port.traffic
                && let Some(j) = ports[..i]
                    .iter()
                    .position(|p| p.traffic.as_ref().is_some_and(|t| t.dir == log.dir))
            {
                return found(i, Clash::LogDir(j));
            }
            for (k, spec) in port.listen.iter().enumerate() {
                let other = match &spec.kind {
                    EndpointKind::Tcp { addr }
                    | EndpointKind::ModbusTcp { addr }
                    | EndpointKind::Rfc2217 { addr } => {
                        let other = tcp.iter().find(|(a, _)| same_tcp(a, addr)).map(|o| o.1);
                        tcp.push((addr.clone(), Owner::Port(i)));
                        other
                    }
                    EndpointKind::Unix { path } | EndpointKind::Pty { path } => {
                        let other = paths.iter().find(|(p, _)| p == path).map(|o| o.1);
                        paths.push((path.clone(), Owner::Port(i)));
                        other
                    }
                };
                if let Some(other) = other {
                    return found(i, Clash::Address { endpoint: k, other });
                }
            }
        }
        None
    }

    fn same_device(a: &DeviceSpec, b: &DeviceSpec) -> bool {
        if let (DeviceSpec::Remote { addr: x, .. }, DeviceSpec::Remote { addr: y, .. }) = (a, b) {
            return x == y;
        }
        let (DeviceSpec::Tty(a), DeviceSpec::Tty(b)) = (a, b) else {
            return false;
        };
        a == b
            || matches!(
                (std::fs::canonicalize(a), std::fs::canonicalize(b)),
                (Ok(x), Ok(y)) if x == y
            )
    }

    fn same_tcp(a: &str, b: &str) -> bool {
        if is_port_zero(a) || is_port_zero(b) {
            return false;
        }
        match (a.parse::<SocketAddr>(), b.parse::<SocketAddr>()) {
            (Ok(x), Ok(y)) => {
                x.port() == y.port()
                    && (x.ip() == y.ip() || x.ip().is_unspecified() || y.ip().is_unspecified())
            }
            _ => a.eq_ignore_ascii_case(b),
        }
    }

    /// Issue 18: 10,000 distinct ports pass, and a last port that clashes
    /// with an early one in each way is found, against the earliest.
    #[test]
    fn issue18_many_ports_clash_with_the_earliest() {
        let dir = tempfile::tempdir().unwrap();
        let tty = |i: usize| dir.path().join(format!("tty{i}")).display().to_string();
        let tcp = |i: usize| format!("tcp:127.0.0.1:{}", 10_000 + i);
        let unix = |i: usize| format!("unix:{}/p{i}.sock", dir.path().display());
        let log = |i: usize| format!("{}/log{i}", dir.path().display());
        // One tty in three exists, so canonicalising it succeeds.
        for i in (0..10_000).step_by(3) {
            std::fs::write(tty(i), b"").unwrap();
        }
        let mut ports: Vec<PortConfig> = (0..10_000)
            .map(|i| {
                let device = if i % 2 == 0 {
                    tty(i)
                } else {
                    "sim:echo".into()
                };
                port(
                    &format!("p{i}"),
                    &device,
                    &[&tcp(i), &unix(i)],
                    Some(&log(i)),
                )
            })
            .collect();
        let metrics = Some("127.0.0.1:9108");
        assert_eq!(first(&ports, None, metrics), None);
        let n = ports.len();
        let link = dir.path().join("by-id");
        std::os::unix::fs::symlink(tty(6), &link).unwrap();
        let link = link.display().to_string();
        for (last, clash) in [
            (port("p7", "sim:echo", &[&tcp(n)], None), Clash::Name(7)),
            (port("x", &tty(4), &[&tcp(n)], None), Clash::Device(4)),
            (port("x", &link, &[&tcp(n)], None), Clash::Device(6)),
            (
                port("x", "sim:echo", &[&tcp(n)], Some(&log(9))),
                Clash::LogDir(9),
            ),
            (
                port("x", "sim:echo", &[&tcp(n), &unix(5)], None),
                Clash::Address {
                    endpoint: 1,
                    other: Owner::Port(5),
                },
            ),
            (
                // The wildcard clashes with port 3's 127.0.0.1:10003.
                port("x", "sim:echo", &["tcp:0.0.0.0:10003,insecure"], None),
                Clash::Address {
                    endpoint: 0,
                    other: Owner::Port(3),
                },
            ),
            (
                port("x", "sim:echo", &["tcp:[::]:9108,insecure"], None),
                Clash::Address {
                    endpoint: 0,
                    other: Owner::Metrics,
                },
            ),
        ] {
            ports.push(last);
            let want = Some(Collision { port: n, clash });
            assert_eq!(first(&ports, None, metrics), want);
            ports.pop();
        }
    }

    /// Ports drawn from small pools of names, devices, addresses and log
    /// directories, so that they clash often and in every way; `link` is a
    /// link to /dev/null.
    fn arb_ports(link: String) -> impl Strategy<Value = Vec<PortConfig>> {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let devices = [
            "sim:echo".to_owned(),
            "/dev/null".into(),
            "/dev//null".into(),
            link,
            "/nonexistent/ttyX".into(),
            "/nonexistent//ttyX".into(),
            "tcp://h:1".into(),
            "rfc2217://h:1".into(),
            "tcp://H:1".into(),
        ];
        let endpoints = [
            "tcp:127.0.0.1:7001",
            "tcp:127.0.0.2:7001",
            "tcp:0.0.0.0:7001,insecure",
            "tcp:[::]:7001,insecure",
            "tcp:[::1]:7001",
            "rfc2217:[::1]:7002",
            "tcp:127.0.0.1:7002",
            "tcp:127.0.0.1:0",
            "tcp:127.0.0.1:00",
            "tcp:localhost:7001",
            "tcp:LOCALHOST:7001",
            "tcp:[fe80::A]:9108,insecure",
            "tcp:[fe80::a]:9108,insecure",
            "unix:/tmp/a",
            "unix:/tmp//a",
            "pty:/tmp/b",
            "unix:/tmp/c.sock",
        ];
        let logs = [None, Some("/tmp/l1"), Some("/tmp//l1"), Some("/tmp/l2")];
        let one = (
            0..names.len(),
            0..devices.len(),
            prop::collection::vec(0..endpoints.len(), 1..4),
            0..logs.len(),
        )
            .prop_map(move |(n, d, l, g)| {
                let listen: Vec<&str> = l.iter().map(|&k| endpoints[k]).collect();
                port(names[n], &devices[d], &listen, logs[g])
            });
        prop::collection::vec(one, 0..10)
    }

    /// Issue 18: the maps find exactly what comparing every pair found.
    #[test]
    fn issue18_maps_find_what_every_pair_found() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        let cases = (
            arb_ports(link.display().to_string()),
            any::<bool>(),
            any::<bool>(),
        );
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2000));
        runner
            .run(&cases, |(ports, control, metrics)| {
                let control = control.then_some(Path::new("/tmp/c.sock"));
                let metrics = metrics.then_some("[fe80::a]:9108");
                prop_assert_eq!(
                    first(&ports, control, metrics),
                    pairwise(&ports, control, metrics)
                );
                Ok(())
            })
            .unwrap();
    }
}
