//! Endpoints: the ways clients reach the hub.
//!
//! An endpoint string is `KIND:ADDRESS[,OPTION=VALUE]...`. Only `tcp` exists
//! so far (`tcp:HOST:PORT`). Each kind has its own module that accepts
//! connections; [`client`] runs one connected client, whatever its kind.

pub mod client;
pub mod tcp;

/// A parsed `--listen` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointSpec {
    /// `tcp:HOST:PORT`; HOST may be a name, an IPv4 address or `[IPv6]`.
    Tcp { addr: String },
}

/// The endpoint every `serve` listens on when given none: loopback only, so a
/// port is never exposed to the network by accident.
pub const DEFAULT_LISTEN: &str = "tcp:127.0.0.1:7000";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointParseError {
    #[error("endpoint {0:?} has no kind; expected KIND:ADDRESS such as tcp:127.0.0.1:7000")]
    NoKind(String),
    #[error("unknown endpoint kind {kind:?} in {spec:?}; supported: tcp")]
    UnknownKind { kind: String, spec: String },
    #[error("bad address in {spec:?}: {why}")]
    Address { spec: String, why: &'static str },
    #[error("unknown option {option:?} in {spec:?}")]
    Option { option: String, spec: String },
}

impl std::str::FromStr for EndpointSpec {
    type Err = EndpointParseError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.split(',');
        let head = parts.next().unwrap_or_default();
        if let Some(option) = parts.next() {
            return Err(EndpointParseError::Option {
                option: option.to_owned(),
                spec: spec.to_owned(),
            });
        }
        let (kind, addr) = head
            .split_once(':')
            .ok_or_else(|| EndpointParseError::NoKind(spec.to_owned()))?;
        match kind {
            "tcp" => parse_host_port(addr)
                .map(|()| EndpointSpec::Tcp {
                    addr: addr.to_owned(),
                })
                .map_err(|why| EndpointParseError::Address {
                    spec: spec.to_owned(),
                    why,
                }),
            _ => Err(EndpointParseError::UnknownKind {
                kind: kind.to_owned(),
                spec: spec.to_owned(),
            }),
        }
    }
}

/// Checks `HOST:PORT` syntax; the host is resolved when binding.
fn parse_host_port(addr: &str) -> Result<(), &'static str> {
    let (host, port) = addr.rsplit_once(':').ok_or("expected HOST:PORT")?;
    if host.is_empty() {
        return Err("missing host (use 0.0.0.0 to listen on all interfaces)");
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("an IPv6 host must be in brackets, as in [::1]:7000");
    }
    port.parse::<u16>()
        .map(|_| ())
        .map_err(|_| "port must be a number from 0 to 65535")
}

impl std::fmt::Display for EndpointSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointSpec::Tcp { addr } => write!(f, "tcp:{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(a: &str) -> EndpointSpec {
        EndpointSpec::Tcp { addr: a.into() }
    }

    #[test]
    fn parses_tcp_endpoints() {
        assert_eq!("tcp:127.0.0.1:7000".parse(), Ok(tcp("127.0.0.1:7000")));
        assert_eq!("tcp:[::1]:0".parse(), Ok(tcp("[::1]:0")));
        assert_eq!("tcp:localhost:80".parse(), Ok(tcp("localhost:80")));
        assert_eq!(
            DEFAULT_LISTEN.parse::<EndpointSpec>().unwrap().to_string(),
            DEFAULT_LISTEN
        );
    }

    #[test]
    fn rejects_bad_endpoints_with_reasons() {
        let err = |s: &str| s.parse::<EndpointSpec>().unwrap_err().to_string();
        assert!(err("127.0.0.1:7000").contains("unknown endpoint kind"));
        assert!(err("7000").contains("no kind"));
        assert!(err("udp:1.2.3.4:5").contains("unknown endpoint kind \"udp\""));
        assert!(err("tcp:1.2.3.4:99999").contains("port must be a number"));
        assert!(err("tcp:1.2.3.4").contains("expected HOST:PORT"));
        assert!(err("tcp::7000").contains("missing host"));
        assert!(err("tcp:::1:7000").contains("brackets"));
        assert!(err("tcp:1.2.3.4:5,framing=line").contains("unknown option"));
    }
}
