//! A fleet port's name, `HOST/PORT`: the host's fleet name and the port's
//! name there, as `fleet ls` lists it, `--device fleet://HOST/PORT` and
//! `fleet connect HOST/PORT` take it.
//!
//! The host name is a NATS subject token, so it holds only letters, digits,
//! `_` and `-` (1 to 64); the port name is a port name as `--name` takes
//! it (dots too), which never goes into a subject, only into payloads.

use super::config::{MAX_HOST, is_host_name};

/// Longest port name: `--name`'s bound (kept here, not imported, so that
/// parsing a device does not depend on the configuration; a test holds the
/// two equal).
const MAX_PORT: usize = 64;

/// Whether `name` may name a port, as `--name` takes it.
pub(crate) fn is_port_name(name: &str) -> bool {
    (1..=MAX_PORT).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A port of the fleet: `HOST/PORT`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FleetPort {
    pub(crate) host: String,
    pub(crate) port: String,
}

impl std::str::FromStr for FleetPort {
    type Err = String;

    /// Parses `HOST/PORT`, saying which part is wrong and why.
    fn from_str(s: &str) -> Result<FleetPort, String> {
        let Some((host, port)) = s.split_once('/') else {
            return Err(format!("{s:?}: expected HOST/PORT (a fleet port's name)"));
        };
        if !is_host_name(host) {
            return Err(format!(
                "{s:?}: the host {host:?} is not a fleet host name: use 1 to {MAX_HOST} \
                 letters, digits, '_' or '-'"
            ));
        }
        if !is_port_name(port) {
            return Err(format!(
                "{s:?}: the port {port:?} is not a port name: use 1 to {} letters, digits, \
                 '_', '.' or '-'",
                MAX_PORT
            ));
        }
        Ok(FleetPort {
            host: host.to_owned(),
            port: port.to_owned(),
        })
    }
}

impl std::fmt::Display for FleetPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_slash_port_is_parsed_and_shown_back() {
        let p: FleetPort = "lab-1/ttyUSB0.a_b".parse().unwrap();
        assert_eq!((p.host.as_str(), p.port.as_str()), ("lab-1", "ttyUSB0.a_b"));
        assert_eq!(p.to_string(), "lab-1/ttyUSB0.a_b");
    }

    #[test]
    fn bad_names_are_refused_saying_which_part() {
        for (bad, why) in [
            ("lab1", "expected HOST/PORT"),
            ("/ttyUSB0", "not a fleet host name"),
            ("lab.1/ttyUSB0", "not a fleet host name"),
            ("lab*/ttyUSB0", "not a fleet host name"),
            ("lab1/", "not a port name"),
            ("lab1/tty/USB0", "not a port name"),
            ("lab1/tty USB0", "not a port name"),
        ] {
            let e = bad.parse::<FleetPort>().unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let long = format!("{}/p", "h".repeat(MAX_HOST + 1));
        assert!(long.parse::<FleetPort>().is_err());
        assert!(
            format!("{}/p", "h".repeat(MAX_HOST))
                .parse::<FleetPort>()
                .is_ok()
        );
    }

    #[test]
    fn port_names_are_those_a_port_may_have() {
        assert_eq!(MAX_PORT, crate::config::MAX_NAME);
        for name in [
            "a",
            "tty.USB-0_x",
            &"p".repeat(64),
            "",
            "a b",
            "a/b",
            &"p".repeat(65),
        ] {
            assert_eq!(
                is_port_name(name),
                crate::config::is_port_name(name),
                "{name:?}"
            );
        }
    }
}
