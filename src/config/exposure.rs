//! The safe default: no plain text on the network unless asked for.
//!
//! A `tcp:`, `rfc2217:` or `modbus-tcp:` endpoint bound to an address that
//! is not loopback serves whoever can reach it, and what it serves is a
//! device's console, bootloader or PLC. Without `tls` such an endpoint is
//! refused, like any invalid setting (exit status 2, and by
//! `check-config`), unless it says `insecure`: plain text on that endpoint,
//! knowingly. Loopback, unix and pty endpoints are unaffected.
//!
//! A host name is resolved as binding resolves it (the first address), and
//! that address is judged; `0.0.0.0` and `[::]` are not loopback. A name
//! that does not resolve is left to binding, which reports it.

use std::net::{SocketAddr, ToSocketAddrs};

use super::{ConfigError, Source};
use crate::endpoint::{EndpointKind, EndpointSpec};

/// The non-loopback address `spec` would serve plain text on, if any.
pub(crate) fn plain_on_network(spec: &EndpointSpec) -> Option<SocketAddr> {
    let addr = match &spec.kind {
        EndpointKind::Tcp { addr }
        | EndpointKind::Rfc2217 { addr }
        | EndpointKind::ModbusTcp { addr } => addr,
        EndpointKind::Unix { .. } | EndpointKind::Pty { .. } => return None,
    };
    if spec.options.tls || spec.options.insecure {
        return None;
    }
    let resolved = addr.to_socket_addrs().ok()?.next()?;
    (!resolved.ip().to_canonical().is_loopback()).then_some(resolved)
}

/// Refuses the first endpoint of `listen` that would serve plain text on
/// the network, saying what to add.
pub(super) fn check(listen: &[EndpointSpec], source: Source) -> Result<(), ConfigError> {
    for spec in listen {
        if let Some(addr) = plain_on_network(spec) {
            return Err(ConfigError::PlainText {
                option: source.name("--listen"),
                spec: spec.to_string(),
                addr,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposed(spec: &str) -> Option<SocketAddr> {
        plain_on_network(&spec.parse().unwrap())
    }

    #[test]
    fn loopback_unix_and_pty_are_fine() {
        for spec in [
            "tcp:127.0.0.1:7000",
            "tcp:127.0.0.2:7000",
            "tcp:[::1]:7000",
            "tcp:[::ffff:127.0.0.1]:7000",
            "tcp:localhost:7000",
            "rfc2217:127.0.0.1:2217",
            "modbus-tcp:127.0.0.1:502",
            "unix:/tmp/x.sock",
            "pty:/tmp/ttyX",
        ] {
            assert_eq!(exposed(spec), None, "{spec}");
        }
    }

    #[test]
    fn any_other_address_is_plain_text_on_the_network() {
        for (spec, addr) in [
            ("tcp:0.0.0.0:7000", "0.0.0.0:7000"),
            ("tcp:[::]:7000", "[::]:7000"),
            ("rfc2217:192.168.1.10:2217", "192.168.1.10:2217"),
            ("modbus-tcp:0.0.0.0:502", "0.0.0.0:502"),
            ("tcp:[fd00::2]:7000", "[fd00::2]:7000"),
            // from= narrows who may connect; it encrypts nothing.
            ("tcp:0.0.0.0:7000,from=10.0.0.0/8", "0.0.0.0:7000"),
        ] {
            assert_eq!(exposed(spec), Some(addr.parse().unwrap()), "{spec}");
        }
    }

    #[test]
    fn insecure_or_tls_is_a_choice() {
        assert_eq!(exposed("tcp:0.0.0.0:7000,insecure"), None);
        assert_eq!(exposed("modbus-tcp:[::]:502,insecure"), None);
        assert_eq!(exposed("rfc2217:0.0.0.0:2217,tls"), None);
    }

    #[test]
    fn the_message_says_what_to_add() {
        let listen = ["unix:/tmp/a", "tcp:127.0.0.1:1", "tcp:0.0.0.0:7000"]
            .map(|s| s.parse::<EndpointSpec>().unwrap());
        let e = check(&listen, Source::Flags).unwrap_err().to_string();
        assert!(e.starts_with("--listen tcp:0.0.0.0:7000 "), "{e}");
        assert!(e.contains("tcp:0.0.0.0:7000,tls"), "{e}");
        assert!(e.contains("tcp:0.0.0.0:7000,insecure"), "{e}");
        let e = check(&listen, Source::File).unwrap_err().to_string();
        assert!(e.starts_with("listen tcp:0.0.0.0:7000 "), "{e}");
        assert!(check(&listen[..2], Source::Flags).is_ok());
    }
}
