//! Network allow-lists: the `from=CIDR` endpoint option.
//!
//! An endpoint with `from=` options serves only peers whose address is in
//! one of their networks; any other connection is closed right after
//! `accept`, before it costs a client slot or a TLS handshake, and counted
//! as a [`Refusal::Network`](super::refusal::Refusal::Network). Without
//! `from=` every address may connect.
//!
//! A peer reaching an IPv6 listener (`[::]`) over IPv4 has an IPv4-mapped
//! address (`::ffff:10.1.2.3`): it is judged as the IPv4 address it is, and
//! as written, so `from=10.0.0.0/8` and `from=::ffff:10.0.0.0/104` both
//! admit it.

use std::net::IpAddr;

use ipnet::IpNet;

/// The networks an endpoint's peers may come from; empty: any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AllowFrom(Vec<IpNet>);

/// Most `from=` options on one endpoint: each connection is checked
/// against all of them, and no real allow-list is longer.
pub(crate) const MAX_FROM: usize = 64;

impl AllowFrom {
    /// Adds one `from=` value: a network in CIDR form (`10.0.0.0/8`,
    /// `fd00::/8`) or one address (`192.168.1.7`, a /32 or /128). Host bits
    /// below the prefix are ignored: `192.168.1.7/24` is `192.168.1.0/24`.
    pub(crate) fn add(&mut self, value: &str) -> Result<(), &'static str> {
        let net = match value.parse::<IpNet>() {
            Ok(net) => net.trunc(),
            Err(_) => value
                .parse::<IpAddr>()
                .map(IpNet::from)
                .map_err(|_| "expected a network such as 10.0.0.0/8 or fd00::/8, or one address")?,
        };
        if self.0.len() >= MAX_FROM {
            return Err("at most 64 from= networks per endpoint");
        }
        self.0.push(net);
        Ok(())
    }

    /// Whether any network is given (else every peer is allowed).
    #[cfg(test)]
    pub(crate) fn is_set(&self) -> bool {
        !self.0.is_empty()
    }

    /// Whether a peer at `ip` may connect.
    pub(crate) fn allows(&self, ip: IpAddr) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let canonical = ip.to_canonical();
        self.0
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }

    #[cfg(test)]
    pub(crate) fn networks(&self) -> &[IpNet] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow(nets: &[&str]) -> AllowFrom {
        let mut a = AllowFrom::default();
        for n in nets {
            a.add(n).unwrap();
        }
        a
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_allows_everyone() {
        let a = AllowFrom::default();
        assert!(!a.is_set());
        assert!(a.allows(ip("203.0.113.9")));
        assert!(a.allows(ip("2001:db8::1")));
    }

    #[test]
    fn ipv4_networks() {
        let a = allow(&["10.0.0.0/8", "192.168.1.0/24"]);
        assert!(a.allows(ip("10.255.0.1")));
        assert!(a.allows(ip("192.168.1.200")));
        assert!(!a.allows(ip("192.168.2.1")));
        assert!(!a.allows(ip("11.0.0.1")));
        assert!(!a.allows(ip("127.0.0.1")));
        // An IPv4 network never admits an IPv6 peer that is not mapped.
        assert!(!a.allows(ip("::a00:1")));
    }

    #[test]
    fn ipv6_networks() {
        let a = allow(&["fd00::/8", "2001:db8:1::/48"]);
        assert!(a.allows(ip("fd12:3456::1")));
        assert!(a.allows(ip("2001:db8:1:ffff::2")));
        assert!(!a.allows(ip("2001:db8:2::1")));
        assert!(!a.allows(ip("::1")));
        assert!(!a.allows(ip("10.0.0.1")));
    }

    #[test]
    fn mapped_peers_are_judged_as_ipv4_and_as_written() {
        let v4 = allow(&["10.0.0.0/8"]);
        assert!(v4.allows(ip("::ffff:10.1.2.3")));
        assert!(!v4.allows(ip("::ffff:11.1.2.3")));
        let mapped = allow(&["::ffff:10.0.0.0/104"]);
        assert!(mapped.allows(ip("::ffff:10.1.2.3")));
        assert!(!mapped.allows(ip("::ffff:11.1.2.3")));
        let lo = allow(&["127.0.0.0/8"]);
        assert!(lo.allows(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn single_addresses_and_host_bits() {
        let a = allow(&["192.168.1.7", "::1", "172.16.5.9/12"]);
        assert!(a.allows(ip("192.168.1.7")));
        assert!(!a.allows(ip("192.168.1.8")));
        assert!(a.allows(ip("::1")));
        assert!(a.allows(ip("172.31.0.1")));
        assert_eq!(a.networks()[2].to_string(), "172.16.0.0/12");
        let all = allow(&["0.0.0.0/0", "::/0"]);
        assert!(all.allows(ip("8.8.8.8")) && all.allows(ip("2001:db8::1")));
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "/8",
            "localhost",
            "10.0.0.0/8/8",
            "10.0.0.0-10.0.0.9",
            "[::1]",
            "10.0.0.0/-1",
        ] {
            let mut a = AllowFrom::default();
            assert!(a.add(bad).is_err(), "{bad}");
            assert!(!a.is_set(), "{bad}");
        }
        let mut a = AllowFrom::default();
        for k in 0..MAX_FROM {
            a.add(&format!("10.0.{k}.0/24")).unwrap();
        }
        assert!(a.add("10.1.0.0/16").unwrap_err().contains("at most 64"));
    }
}
