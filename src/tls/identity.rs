//! Who a verified client certificate says the client is: its subject's
//! common name, its DNS subject alternative names, and the certificate's
//! SHA-256 fingerprint (which names it even without a CA, for pinning).
//!
//! Shown as `cn:NAME`, else `dns:NAME` (the first), else `sha256:HEX`: the
//! forms `--allow` matches.

use std::fmt;

use x509_parser::extensions::GeneralName;

/// The longest name kept from a certificate; longer ones are cut (a
/// certificate is the peer's input, and names end up in logs and status).
const MAX_NAME: usize = 255;
/// The most DNS names kept from one certificate.
const MAX_DNS: usize = 32;

/// A verified client certificate's identity.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The subject's first common name, if it has one that is text.
    pub cn: Option<String>,
    /// The DNS names among its subject alternative names.
    pub dns: Vec<String>,
    /// SHA-256 of the certificate (DER).
    pub sha256: [u8; 32],
}

impl Identity {
    /// The identity in `der`, a certificate the verifier accepted. A
    /// certificate x509-parser cannot read still has its fingerprint.
    pub fn from_der(der: &[u8]) -> Identity {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.as_ref());
        let (mut cn, mut dns) = (None, Vec::new());
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) {
            cn = cert
                .subject()
                .iter_common_name()
                .find_map(|c| c.as_str().ok())
                .map(clean);
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                dns = san
                    .value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some(clean(d)),
                        _ => None,
                    })
                    .take(MAX_DNS)
                    .collect();
            }
        }
        Identity { cn, dns, sha256 }
    }

    /// The fingerprint in lowercase hex.
    pub fn fingerprint(&self) -> String {
        hex(&self.sha256)
    }
}

/// A name with control characters replaced and its length capped, so it
/// prints safely on one line.
fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if out.len() > MAX_NAME {
        let mut end = MAX_NAME;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.cn, self.dns.first()) {
            (Some(cn), _) => write!(f, "cn:{cn}"),
            (None, Some(dns)) => write!(f, "dns:{dns}"),
            (None, None) => write!(f, "sha256:{}", self.fingerprint()),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({self}, sha256:{})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, dns: &[&str]) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(dns.iter().map(|d| d.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn common_name_first_then_dns_then_fingerprint() {
        let der = cert(Some("alice"), &["alice.lab"]);
        let id = Identity::from_der(&der);
        assert_eq!(id.to_string(), "cn:alice");
        assert_eq!(id.dns, vec!["alice.lab".to_owned()]);
        let expected = ring::digest::digest(&ring::digest::SHA256, &der);
        assert_eq!(&id.sha256[..], expected.as_ref());
        assert_eq!(id.fingerprint().len(), 64);

        let id = Identity::from_der(&cert(None, &["monitor.lab", "other.lab"]));
        assert_eq!(id.to_string(), "dns:monitor.lab");
        assert_eq!(id.dns.len(), 2);

        let der = cert(None, &[]);
        let id = Identity::from_der(&der);
        assert_eq!(id.to_string(), format!("sha256:{}", id.fingerprint()));
    }

    #[test]
    fn garbage_has_a_fingerprint_and_no_names() {
        let id = Identity::from_der(b"not a certificate");
        assert_eq!(id.cn, None);
        assert!(id.dns.is_empty());
        assert!(id.to_string().starts_with("sha256:"));
    }

    #[test]
    fn names_are_printable_and_capped() {
        assert_eq!(clean("a\nb"), "a?b");
        assert_eq!(clean(&"é".repeat(200)).len(), 254);
    }
}
