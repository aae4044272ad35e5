//! Who may do what on a port: roles for the identities that verified client
//! certificates give.
//!
//! `--allow ROLE:IDENTITY` (repeatable) or a file's `[port.access]`
//! (`rw = [...]`, `ro = [...]`) lists identities with their role:
//! - `rw`: read, write, and change settings as the endpoint's `control=`
//!   allows; `ro`: read only, as an `access=ro` endpoint's clients are;
//! - `cn:NAME`, the certificate subject's common name (exact); `dns:NAME`,
//!   one of its DNS subject alternative names (case-insensitive);
//!   `sha256:HEX`, the certificate's SHA-256 fingerprint (64 hex digits,
//!   any case, colons allowed), to pin one certificate; `any`, every
//!   certificate the client CA vouches for.
//!
//! [`AccessPolicy::role`] is the pure matcher. With no identity listed,
//! every verified certificate is `rw`. With a list, a certificate that
//! matches none has no role and is refused. An identity named (`cn:`,
//! `dns:`, `sha256:`) decides over `any`; where named identities of both
//! roles match one certificate, `ro` wins: the lesser right.
//!
//! Plain-text clients have no certificate, hence no identity: their
//! endpoint's `access=` alone decides what they may do.

use std::fmt;
use std::str::FromStr;

/// What a client may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Role {
    /// Read, write, and change settings as the endpoint allows.
    Rw,
    /// Read only: writes are discarded and counted, settings requests
    /// answered with the values in force, and on Modbus TCP only the read
    /// functions pass.
    Ro,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Rw => "rw",
            Role::Ro => "ro",
        })
    }
}

/// One identity a certificate may have.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// The subject's common name.
    Cn(String),
    /// A DNS subject alternative name, lower-cased.
    Dns(String),
    /// The certificate's SHA-256 fingerprint.
    Sha256([u8; 32]),
    /// Every certificate the client CA vouches for.
    Any,
}

/// Longest `cn:` or `dns:` name: a common name is at most 64 characters
/// (RFC 5280's ub-common-name), a DNS name at most 253.
pub(crate) const MAX_NAME: usize = 253;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("identity {0:?}: expected cn:NAME, dns:NAME, sha256:HEX (64 hex digits) or any")]
    Identity(String),
    #[error("identity {given:?}: {why}")]
    Value { given: String, why: &'static str },
    #[error("{0:?}: expected ROLE:IDENTITY with ROLE rw or ro, such as ro:cn:bob or rw:any")]
    Rule(String),
    #[error("identity {0} is listed as both rw and ro; give it one role")]
    BothRoles(Identity),
}

impl FromStr for Identity {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<Identity, AccessError> {
        let value = |why| AccessError::Value {
            given: s.to_owned(),
            why,
        };
        let name = |n: &str| -> Result<String, AccessError> {
            if n.is_empty() {
                Err(value("the name is empty"))
            } else if n.len() > MAX_NAME {
                Err(value("the name is longer than 253 bytes"))
            } else if n.chars().any(char::is_control) {
                Err(value("the name has a control character"))
            } else {
                Ok(n.to_owned())
            }
        };
        if s == "any" {
            return Ok(Identity::Any);
        }
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| AccessError::Identity(s.to_owned()))?;
        match kind {
            "cn" => name(rest).map(Identity::Cn),
            "dns" => name(rest).map(|n| Identity::Dns(n.to_ascii_lowercase())),
            "sha256" => parse_fingerprint(rest)
                .map(Identity::Sha256)
                .ok_or_else(|| value("expected 64 hex digits, colons allowed between pairs")),
            _ => Err(AccessError::Identity(s.to_owned())),
        }
    }
}

/// 64 hex digits, any case, with or without a colon between pairs.
fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: Vec<u8> = if s.contains(':') {
        let pairs: Vec<&str> = s.split(':').collect();
        if pairs.len() != 32 || pairs.iter().any(|p| p.len() != 2) {
            return None;
        }
        pairs.concat().into_bytes()
    } else {
        s.as_bytes().to_vec()
    };
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        if !pair.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Cn(n) => write!(f, "cn:{n}"),
            Identity::Dns(n) => write!(f, "dns:{n}"),
            Identity::Sha256(h) => {
                f.write_str("sha256:")?;
                h.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
            Identity::Any => f.write_str("any"),
        }
    }
}

impl Identity {
    /// Whether a certificate with these names and fingerprint has this
    /// identity.
    fn matches(&self, cn: Option<&str>, dns: &[String], sha256: &[u8; 32]) -> bool {
        match self {
            Identity::Cn(n) => cn == Some(n.as_str()),
            Identity::Dns(n) => dns.iter().any(|d| d.eq_ignore_ascii_case(n)),
            Identity::Sha256(h) => h == sha256,
            Identity::Any => true,
        }
    }
}

/// One `--allow ROLE:IDENTITY`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AllowRule {
    pub(crate) role: Role,
    pub(crate) identity: Identity,
}

impl FromStr for AllowRule {
    type Err = AccessError;

    fn from_str(s: &str) -> Result<AllowRule, AccessError> {
        let (role, identity) = s
            .split_once(':')
            .ok_or_else(|| AccessError::Rule(s.to_owned()))?;
        let role = match role {
            "rw" => Role::Rw,
            "ro" => Role::Ro,
            _ => return Err(AccessError::Rule(s.to_owned())),
        };
        Ok(AllowRule {
            role,
            identity: identity.parse()?,
        })
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role, self.identity)
    }
}

/// A port's identities and their roles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct AccessPolicy {
    rw: Vec<Identity>,
    ro: Vec<Identity>,
}

impl AccessPolicy {
    /// The policy of `rules`, refusing an identity given both roles
    /// (duplicates within one role are kept once).
    pub(crate) fn new(
        rules: impl IntoIterator<Item = AllowRule>,
    ) -> Result<AccessPolicy, AccessError> {
        let mut p = AccessPolicy::default();
        for r in rules {
            let (mine, other) = match r.role {
                Role::Rw => (&mut p.rw, &p.ro),
                Role::Ro => (&mut p.ro, &p.rw),
            };
            if other.contains(&r.identity) {
                return Err(AccessError::BothRoles(r.identity));
            }
            if !mine.contains(&r.identity) {
                mine.push(r.identity);
            }
        }
        Ok(p)
    }

    /// Whether no identity is listed (every verified certificate is `rw`).
    pub(crate) fn is_open(&self) -> bool {
        self.rw.is_empty() && self.ro.is_empty()
    }

    /// The identities listed with `role`.
    #[cfg(test)]
    pub(crate) fn listed(&self, role: Role) -> &[Identity] {
        match role {
            Role::Rw => &self.rw,
            Role::Ro => &self.ro,
        }
    }

    /// The role of a verified certificate with common name `cn`, DNS
    /// names `dns` and fingerprint `sha256`; `None`: it is refused.
    pub(crate) fn role(&self, cn: Option<&str>, dns: &[String], sha256: &[u8; 32]) -> Option<Role> {
        if self.is_open() {
            return Some(Role::Rw);
        }
        let hit = |list: &[Identity], named: bool| {
            list.iter()
                .filter(|i| (**i != Identity::Any) == named)
                .any(|i| i.matches(cn, dns, sha256))
        };
        for named in [true, false] {
            if hit(&self.ro, named) {
                return Some(Role::Ro);
            }
            if hit(&self.rw, named) {
                return Some(Role::Rw);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";

    fn fp() -> [u8; 32] {
        let mut h = [0u8; 32];
        for (i, b) in h.iter_mut().enumerate() {
            *b = (i as u8 % 16) * 0x11;
        }
        h
    }

    fn policy(rules: &[&str]) -> AccessPolicy {
        AccessPolicy::new(rules.iter().map(|r| r.parse::<AllowRule>().unwrap())).unwrap()
    }

    #[test]
    fn parses_rules() {
        let r: AllowRule = "rw:cn:alice".parse().unwrap();
        assert_eq!(
            r,
            AllowRule {
                role: Role::Rw,
                identity: Identity::Cn("alice".into())
            }
        );
        let r: AllowRule = "ro:dns:Monitor.LAB".parse().unwrap();
        assert_eq!(r.identity, Identity::Dns("monitor.lab".into()));
        assert_eq!(r.to_string(), "ro:dns:monitor.lab");
        let r: AllowRule = "rw:any".parse().unwrap();
        assert_eq!(r.identity, Identity::Any);
        // A common name may hold colons and spaces.
        let r: AllowRule = "ro:cn:Lab Bench: 3".parse().unwrap();
        assert_eq!(r.identity, Identity::Cn("Lab Bench: 3".into()));
        let plain: AllowRule = format!("ro:sha256:{FP}").parse().unwrap();
        assert_eq!(plain.identity, Identity::Sha256(fp()));
        let colons: String = FP
            .as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let r: AllowRule = format!("ro:sha256:{colons}").parse().unwrap();
        assert_eq!(r.identity, Identity::Sha256(fp()));
        assert_eq!(
            r.identity.to_string(),
            format!("sha256:{}", FP.to_lowercase())
        );
    }

    #[test]
    fn refuses_bad_rules_with_reasons() {
        let err = |s: &str| s.parse::<AllowRule>().unwrap_err().to_string();
        assert!(err("alice").contains("ROLE:IDENTITY"));
        assert!(err("admin:cn:alice").contains("ROLE rw or ro"));
        assert!(err("rw:").contains("expected cn:NAME"));
        assert!(err("rw:uid:alice").contains("expected cn:NAME"));
        assert!(err("rw:cn:").contains("empty"));
        assert!(err("rw:dns:").contains("empty"));
        assert!(err("rw:cn:a\nb").contains("control character"));
        assert!(err(&format!("rw:cn:{}", "x".repeat(254))).contains("253"));
        assert!(err("rw:ANY").contains("expected cn:NAME"));
        for bad in [
            "",
            "00",
            &FP[1..],
            &format!("{FP}00"),
            &FP.replace('A', "G"),
            &format!("{}:{}", &FP[..2], &FP[2..]),
            &format!(":{}", &FP[..62]),
            "+0112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            // 32 pairs but one of three digits
            &format!("000{}", ":00".repeat(31)),
        ] {
            let e = err(&format!("ro:sha256:{bad}"));
            assert!(e.contains("64 hex digits"), "{bad}: {e}");
        }
        let both = AccessPolicy::new(["rw:cn:alice", "ro:cn:alice"].map(|r| r.parse().unwrap()))
            .unwrap_err();
        assert_eq!(
            both.to_string(),
            "identity cn:alice is listed as both rw and ro; give it one role"
        );
    }

    #[test]
    fn without_a_policy_every_certificate_is_rw() {
        let p = AccessPolicy::default();
        assert!(p.is_open());
        assert_eq!(p.role(None, &[], &[0; 32]), Some(Role::Rw));
        assert_eq!(p.role(Some("anyone"), &[], &fp()), Some(Role::Rw));
    }

    #[test]
    fn with_a_policy_a_certificate_matching_none_is_refused() {
        let p = policy(&["rw:cn:alice", "ro:cn:bob", "ro:dns:monitor.lab"]);
        assert_eq!(p.role(Some("alice"), &[], &[0; 32]), Some(Role::Rw));
        assert_eq!(p.role(Some("bob"), &[], &[0; 32]), Some(Role::Ro));
        let dns = ["x.lab".to_owned(), "MONITOR.lab".to_owned()];
        assert_eq!(p.role(None, &dns, &[0; 32]), Some(Role::Ro));
        assert_eq!(p.role(Some("mallory"), &[], &[0; 32]), None);
        assert_eq!(p.role(None, &[], &[0; 32]), None);
        // A common name is not a DNS name, nor the other way round.
        assert_eq!(p.role(Some("monitor.lab"), &[], &[0; 32]), None);
        assert_eq!(p.role(None, &["alice".to_owned()], &[0; 32]), None);
        // Names are matched whole and common names exactly.
        assert_eq!(p.role(Some("Alice"), &[], &[0; 32]), None);
        assert_eq!(p.role(Some("alice2"), &[], &[0; 32]), None);
    }

    #[test]
    fn a_fingerprint_pins_one_certificate() {
        let p = policy(&[&format!("rw:sha256:{FP}")]);
        assert_eq!(p.role(Some("alice"), &[], &fp()), Some(Role::Rw));
        let mut other = fp();
        other[31] ^= 1;
        assert_eq!(p.role(Some("alice"), &[], &other), None);
    }

    #[test]
    fn named_identities_decide_over_any_and_ro_wins_among_them() {
        let p = policy(&["rw:any", "ro:cn:bob"]);
        assert_eq!(p.role(Some("bob"), &[], &[0; 32]), Some(Role::Ro));
        assert_eq!(p.role(Some("carol"), &[], &[0; 32]), Some(Role::Rw));
        let p = policy(&["ro:any", "rw:cn:alice"]);
        assert_eq!(p.role(Some("alice"), &[], &[0; 32]), Some(Role::Rw));
        assert_eq!(p.role(Some("carol"), &[], &[0; 32]), Some(Role::Ro));
        let p = policy(&["rw:cn:alice", "ro:dns:shared.lab"]);
        let dns = ["shared.lab".to_owned()];
        assert_eq!(p.role(Some("alice"), &dns, &[0; 32]), Some(Role::Ro));
        assert_eq!(p.listed(Role::Rw), [Identity::Cn("alice".into())]);
    }

    #[test]
    fn duplicates_within_a_role_are_kept_once() {
        let p = policy(&["ro:cn:bob", "ro:cn:bob", "ro:any"]);
        assert_eq!(p.listed(Role::Ro).len(), 2);
        assert!(p.listed(Role::Rw).is_empty());
    }
}
