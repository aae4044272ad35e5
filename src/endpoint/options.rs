//! Endpoint strings: `KIND:ADDRESS[,OPTION=VALUE]...`.
//!
//! | kind | address | example |
//! |---|---|---|
//! | `tcp` | `HOST:PORT` (IPv6 in brackets) | `tcp:127.0.0.1:7000` |
//! | `unix` | socket path | `unix:/run/serialhub.sock,mode=0660` |
//! | `pty` | symlink path for a virtual serial port | `pty:/tmp/ttyLOG,access=ro`, `pty:/tmp/ttyA,control=none` |
//! | `modbus-tcp` | `HOST:PORT` | `modbus-tcp:0.0.0.0:502` |
//! | `rfc2217` | `HOST:PORT` | `rfc2217:0.0.0.0:7002,control=any` |
//!
//! Options apply to every client of the endpoint:
//! `access=rw|ro`, `framing=none|line|gap|modbus-rtu`, `delimiter=lf|cr|nul|0xNN`,
//! `max-line=BYTES` (1 to 64 KiB), `gap=DURATION` (100us to 10s),
//! `max-request=BYTES` (1 to 64 KiB), `see=own|all`, `lock=none|inband`,
//! `slow-reader=disconnect|drop|block`, `mode=OCTAL` (unix only), and
//! `keepalive=DURATION|off` (tcp, rfc2217 and modbus-tcp), and `control=first|any|none` (rfc2217 and pty: whose
//! settings changes apply). rfc2217 takes neither `lock` nor `mode`; its
//! framing options cut the data inside the Telnet stream into requests
//! under transaction writers.
//!
//! modbus-tcp takes only `access` (read-only: the read functions 01 to 04
//! alone), `keepalive` and the network options. Network endpoints (tcp,
//! rfc2217, modbus-tcp) also take `from=CIDR`,
//! repeatable: only peers from those networks are served ([`super::allow`]);
//! `tls`; and `insecure`, which accepts plain text on a non-loopback
//! address knowingly (see [`crate::config`]'s safe default).

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use super::allow::AllowFrom;
use crate::hub::{ControlPolicy, SlowReaderPolicy};

/// A parsed `--listen` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSpec {
    pub(crate) kind: EndpointKind,
    pub(crate) options: EndpointOptions,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum EndpointKind {
    /// `HOST:PORT`; HOST may be a name, an IPv4 address or `[IPv6]`.
    Tcp {
        addr: String,
    },
    Unix {
        path: PathBuf,
    },
    Pty {
        path: PathBuf,
    },
    /// A Modbus TCP gateway to the RTU device, on `HOST:PORT`.
    ModbusTcp {
        addr: String,
    },
    /// Telnet with the COM-PORT-OPTION (RFC 2217), on `HOST:PORT`.
    Rfc2217 {
        addr: String,
    },
}

impl EndpointKind {
    /// Whether clients come over TCP (and so have a keepalive).
    pub(crate) fn is_tcp(&self) -> bool {
        matches!(
            self,
            EndpointKind::Tcp { .. }
                | EndpointKind::ModbusTcp { .. }
                | EndpointKind::Rfc2217 { .. }
        )
    }
}

/// Whether a client may write to the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Access {
    #[default]
    ReadWrite,
    /// Writes are discarded and counted.
    ReadOnly,
}

/// How a client's writes are cut into chunks for the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Framing {
    /// Bytes go as they arrive.
    #[default]
    None,
    /// Only whole lines go, so two clients never interleave inside a line.
    Line,
    /// A request is what the client writes before it pauses for the gap
    /// (transaction mode; the default there).
    Gap,
    /// A request is one Modbus RTU frame, found by its length and checked
    /// by its CRC (transaction mode).
    ModbusRtu,
}

/// Which device output a client gets in transaction mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum See {
    /// Replies to its own requests, and unsolicited output.
    Own,
    /// Everything, whoever asked (a monitor or logger).
    All,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EndpointOptions {
    pub(crate) access: Access,
    pub(crate) framing: Framing,
    /// Line end for `framing=line`.
    pub(crate) delimiter: u8,
    /// Longest line `framing=line` holds back; a longer one is sent in pieces.
    pub(crate) max_line: usize,
    /// In-band lock commands (DLE escapes) are honoured.
    pub(crate) inband_lock: bool,
    /// Overrides `--slow-reader` for this endpoint's clients.
    pub(crate) slow_reader: Option<SlowReaderPolicy>,
    /// File mode of a unix socket.
    pub(crate) mode: u32,
    /// Silence that ends a request under `framing=gap`; by default the
    /// port's inter-frame gap.
    pub(crate) gap: Option<Duration>,
    /// Longest request `framing=gap` holds back; a longer one is split.
    pub(crate) max_request: usize,
    /// Which output the client gets in transaction mode; by default `all`
    /// for read-only endpoints, `own` otherwise.
    pub(crate) see: Option<See>,
    /// TCP keepalive idle time for tcp and modbus-tcp clients; `None`
    /// (`keepalive=off`) sends no probes.
    pub(crate) keepalive: Option<Duration>,
    /// Whose settings changes apply (rfc2217 clients, pty programs).
    pub(crate) control: ControlPolicy,
    /// The networks clients may come from (`from=`, network endpoints).
    pub(crate) from: AllowFrom,
    /// `tls`: clients speak TLS (tcp, rfc2217 and modbus-tcp).
    pub(crate) tls: bool,
    /// Time a TLS client has to complete its handshake.
    pub(crate) handshake_timeout: Duration,
    /// `insecure`: plain text on a non-loopback address, accepted
    /// knowingly.
    pub(crate) insecure: bool,
}

impl EndpointOptions {
    /// Whether clients of this endpoint get every reply, whoever asked.
    pub(crate) fn sees_all(&self) -> bool {
        self.see.unwrap_or(match self.access {
            Access::ReadOnly => See::All,
            Access::ReadWrite => See::Own,
        }) == See::All
    }
}

/// Default longest line for `framing=line`.
pub(crate) const DEFAULT_MAX_LINE: usize = 1024;
/// Largest `max-line`: the partial line is held in memory per client, and
/// each read for a line-framed client is up to this size.
pub(crate) const MAX_MAX_LINE: usize = 64 * 1024;
/// Default longest request for `framing=gap`: a Modbus RTU frame's limit.
pub(crate) const DEFAULT_MAX_REQUEST: usize = 256;
/// `max-request`.
pub(crate) const MAX_REQUEST: RangeInclusive<usize> = 1..=64 * 1024;
/// `gap`: at most 10 s, so a request is never held for long.
pub(crate) const GAP: RangeInclusive<Duration> =
    Duration::from_micros(100)..=Duration::from_secs(10);
/// Default unix socket mode: owner and group may connect.
pub(crate) const DEFAULT_UNIX_MODE: u32 = 0o660;
/// Default TCP keepalive idle time: with 3 probes 10 s apart, a vanished
/// peer is dropped about a minute after it last sent anything.
pub(crate) const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);
/// `keepalive`: at least 1 s (the kernel counts whole seconds), at most 2 h
/// (the kernel's own default, past which the option is pointless).
pub(crate) const KEEPALIVE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(7200);

impl Default for EndpointOptions {
    fn default() -> Self {
        Self {
            access: Access::ReadWrite,
            framing: Framing::None,
            delimiter: b'\n',
            max_line: DEFAULT_MAX_LINE,
            inband_lock: false,
            slow_reader: None,
            mode: DEFAULT_UNIX_MODE,
            gap: None,
            max_request: DEFAULT_MAX_REQUEST,
            see: None,
            keepalive: Some(DEFAULT_KEEPALIVE),
            control: ControlPolicy::default(),
            from: AllowFrom::default(),
            tls: false,
            handshake_timeout: crate::tls::handshake::DEFAULT_TIMEOUT,
            insecure: false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointParseError {
    #[error("endpoint {0:?} has no kind; expected KIND:ADDRESS such as tcp:127.0.0.1:7000")]
    NoKind(String),
    #[error(
        "unknown endpoint kind {kind:?} in {spec:?}; supported: tcp, unix, pty, modbus-tcp, rfc2217"
    )]
    UnknownKind { kind: String, spec: String },
    #[error("bad address in {spec:?}: {why}")]
    Address { spec: String, why: &'static str },
    #[error(
        "unknown option {option:?} in {spec:?}; options: access, framing, delimiter, max-line, gap, max-request, see, lock, slow-reader, mode, keepalive, control, from, tls, handshake-timeout, insecure"
    )]
    Option { option: String, spec: String },
    #[error("bad value for {option} in {spec:?}: {why}")]
    Value {
        option: String,
        spec: String,
        why: &'static str,
    },
}

impl std::str::FromStr for EndpointSpec {
    type Err = EndpointParseError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let mut parts = spec.split(',');
        let head = parts.next().unwrap_or_default();
        let (kind, addr) = head
            .split_once(':')
            .ok_or_else(|| EndpointParseError::NoKind(spec.to_owned()))?;
        let address = |why| EndpointParseError::Address {
            spec: spec.to_owned(),
            why,
        };
        let kind = match kind {
            "tcp" => {
                check_host_port(addr).map_err(address)?;
                EndpointKind::Tcp {
                    addr: addr.to_owned(),
                }
            }
            "modbus-tcp" => {
                check_host_port(addr).map_err(address)?;
                EndpointKind::ModbusTcp {
                    addr: addr.to_owned(),
                }
            }
            "rfc2217" => {
                check_host_port(addr).map_err(address)?;
                EndpointKind::Rfc2217 {
                    addr: addr.to_owned(),
                }
            }
            "unix" | "pty" if addr.is_empty() => return Err(address("missing path")),
            "unix" => EndpointKind::Unix { path: addr.into() },
            "pty" => EndpointKind::Pty { path: addr.into() },
            _ => {
                return Err(EndpointParseError::UnknownKind {
                    kind: kind.to_owned(),
                    spec: spec.to_owned(),
                });
            }
        };
        let mut options = EndpointOptions::default();
        for opt in parts {
            apply_option(&mut options, &kind, opt).map_err(|e| match e {
                OptErr::Unknown => EndpointParseError::Option {
                    option: opt.to_owned(),
                    spec: spec.to_owned(),
                },
                OptErr::Value(why) => EndpointParseError::Value {
                    option: opt.split('=').next().unwrap_or(opt).to_owned(),
                    spec: spec.to_owned(),
                    why,
                },
            })?;
        }
        if options.tls && options.insecure {
            return Err(EndpointParseError::Value {
                option: "insecure".to_owned(),
                spec: spec.to_owned(),
                why: "a tls endpoint is not plain text: give tls or insecure, not both",
            });
        }
        Ok(EndpointSpec { kind, options })
    }
}

enum OptErr {
    Unknown,
    Value(&'static str),
}

/// The options that take no value.
fn apply_flag(o: &mut EndpointOptions, kind: &EndpointKind, opt: &str) -> Result<(), OptErr> {
    let flag = match opt {
        "tls" => &mut o.tls,
        "insecure" => &mut o.insecure,
        _ => return Err(OptErr::Unknown),
    };
    if !kind.is_tcp() {
        return Err(OptErr::Value(
            "only tcp, rfc2217 and modbus-tcp endpoints are on the network (a unix socket or pty is protected by its file mode)",
        ));
    }
    *flag = true;
    Ok(())
}

fn apply_option(o: &mut EndpointOptions, kind: &EndpointKind, opt: &str) -> Result<(), OptErr> {
    let Some((key, value)) = opt.split_once('=') else {
        return apply_flag(o, kind, opt);
    };
    if matches!(kind, EndpointKind::ModbusTcp { .. })
        && !matches!(key, "keepalive" | "from" | "access" | "handshake-timeout")
    {
        return Err(OptErr::Value(
            "modbus-tcp endpoints take only access, keepalive, from, tls, handshake-timeout and insecure: requests are Modbus TCP frames",
        ));
    }
    if matches!(kind, EndpointKind::Rfc2217 { .. }) && matches!(key, "lock" | "mode") {
        return Err(OptErr::Value(
            "rfc2217 endpoints take no lock or mode: their clients speak Telnet",
        ));
    }
    match key {
        "access" => {
            o.access = match value {
                "rw" => Access::ReadWrite,
                "ro" => Access::ReadOnly,
                _ => return Err(OptErr::Value("expected rw or ro")),
            }
        }
        "framing" => {
            o.framing = match value {
                "none" => Framing::None,
                "line" => Framing::Line,
                "gap" => Framing::Gap,
                "modbus-rtu" => Framing::ModbusRtu,
                _ => return Err(OptErr::Value("expected none, line, gap or modbus-rtu")),
            }
        }
        "delimiter" => {
            o.delimiter = match value {
                "lf" => b'\n',
                "cr" => b'\r',
                "nul" => 0,
                hex => hex
                    .strip_prefix("0x")
                    .filter(|h| (1..=2).contains(&h.len()))
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(OptErr::Value(
                        "expected lf, cr, nul or a byte from 0x00 to 0xff, like 0x03",
                    ))?,
            }
        }
        "max-line" => {
            o.max_line = crate::units::parse_bytes(value)
                .ok()
                .filter(|n| (1..=MAX_MAX_LINE).contains(n))
                .ok_or(OptErr::Value(
                    "expected a size from 1 to 64KiB, such as 256 or 4KiB",
                ))?
        }
        "gap" => {
            o.gap = Some(
                humantime::parse_duration(value)
                    .ok()
                    .filter(|d| GAP.contains(d))
                    .ok_or(OptErr::Value(
                        "expected a duration from 100us to 10s, such as 2ms",
                    ))?,
            )
        }
        "max-request" => {
            o.max_request = crate::units::parse_bytes(value)
                .ok()
                .filter(|n| MAX_REQUEST.contains(n))
                .ok_or(OptErr::Value(
                    "expected a size from 1 to 64KiB, such as 256",
                ))?
        }
        "see" => {
            o.see = Some(match value {
                "own" => See::Own,
                "all" => See::All,
                _ => return Err(OptErr::Value("expected own or all")),
            })
        }
        "lock" => {
            o.inband_lock = match value {
                "none" => false,
                "inband" => true,
                _ => return Err(OptErr::Value("expected none or inband")),
            }
        }
        "slow-reader" => {
            o.slow_reader = Some(match value {
                "disconnect" => SlowReaderPolicy::Disconnect,
                "drop" => SlowReaderPolicy::Drop,
                "block" => SlowReaderPolicy::Block,
                _ => return Err(OptErr::Value("expected disconnect, drop or block")),
            })
        }
        "mode" if matches!(kind, EndpointKind::Unix { .. }) => {
            o.mode = Some(value)
                .filter(|v| (1..=4).contains(&v.len()))
                .filter(|v| v.bytes().all(|b| matches!(b, b'0'..=b'7')))
                .and_then(|v| u32::from_str_radix(v, 8).ok())
                .filter(|m| *m <= 0o777)
                .ok_or(OptErr::Value(
                    "expected an octal file mode from 0000 to 0777, such as 0660",
                ))?
        }
        "mode" => return Err(OptErr::Value("only unix endpoints have a mode")),
        "control"
            if matches!(
                kind,
                EndpointKind::Rfc2217 { .. } | EndpointKind::Pty { .. }
            ) =>
        {
            o.control = value
                .parse()
                .map_err(|_| OptErr::Value("expected first, any or none"))?
        }
        "control" => {
            return Err(OptErr::Value(
                "only rfc2217 and pty endpoints change settings (control=)",
            ));
        }
        "keepalive" if kind.is_tcp() => {
            o.keepalive = match value {
                "off" => None,
                _ => Some(
                    humantime::parse_duration(value)
                        .ok()
                        .filter(|d| KEEPALIVE.contains(d) && d.subsec_nanos() == 0)
                        .ok_or(OptErr::Value(
                            "expected whole seconds from 1s to 2h, such as 30s or 5m, or off",
                        ))?,
                ),
            }
        }
        "keepalive" => {
            return Err(OptErr::Value(
                "only tcp, rfc2217 and modbus-tcp endpoints have a keepalive",
            ));
        }
        "handshake-timeout" if kind.is_tcp() => {
            o.handshake_timeout = crate::tls::handshake::timeout(value).map_err(OptErr::Value)?
        }
        "handshake-timeout" => return Err(OptErr::Value("only network endpoints take tls")),
        "from" if kind.is_tcp() => o.from.add(value).map_err(OptErr::Value)?,
        "from" => {
            return Err(OptErr::Value(
                "only tcp, rfc2217 and modbus-tcp endpoints take from=: unix and pty clients have no network address",
            ));
        }
        _ => return Err(OptErr::Unknown),
    }
    Ok(())
}

/// Checks `HOST:PORT` syntax; the host is resolved when binding.
fn check_host_port(addr: &str) -> Result<(), &'static str> {
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

impl std::fmt::Display for EndpointKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndpointKind::Tcp { addr } => write!(f, "tcp:{addr}"),
            EndpointKind::Unix { path } => write!(f, "unix:{}", path.display()),
            EndpointKind::Pty { path } => write!(f, "pty:{}", path.display()),
            EndpointKind::ModbusTcp { addr } => write!(f, "modbus-tcp:{addr}"),
            EndpointKind::Rfc2217 { addr } => write!(f, "rfc2217:{addr}"),
        }
    }
}

impl std::fmt::Display for EndpointSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.kind.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> EndpointSpec {
        s.parse().unwrap()
    }

    #[test]
    fn parses_kinds() {
        assert_eq!(
            parse("tcp:127.0.0.1:7000").kind,
            EndpointKind::Tcp {
                addr: "127.0.0.1:7000".into()
            }
        );
        assert_eq!(
            parse("tcp:[::1]:0").kind,
            EndpointKind::Tcp {
                addr: "[::1]:0".into()
            }
        );
        assert_eq!(
            parse("unix:/run/x.sock").kind,
            EndpointKind::Unix {
                path: "/run/x.sock".into()
            }
        );
        assert_eq!(
            parse("pty:/tmp/ttyA").kind,
            EndpointKind::Pty {
                path: "/tmp/ttyA".into()
            }
        );
        assert_eq!(
            parse(super::super::DEFAULT_LISTEN).to_string(),
            super::super::DEFAULT_LISTEN
        );
        assert_eq!(parse("tcp:h:1").options, EndpointOptions::default());
    }

    #[test]
    fn parses_options() {
        let o = parse("pty:/tmp/ttyLOG,access=ro").options;
        assert_eq!(o.access, Access::ReadOnly);
        let o = parse("tcp:127.0.0.1:7001,framing=line,delimiter=cr,max-line=256").options;
        assert_eq!(
            (o.framing, o.delimiter, o.max_line),
            (Framing::Line, b'\r', 256)
        );
        let o = parse("unix:/x,mode=0600,lock=inband,slow-reader=drop").options;
        assert_eq!(o.mode, 0o600);
        assert!(o.inband_lock);
        assert_eq!(o.slow_reader, Some(SlowReaderPolicy::Drop));
        assert_eq!(parse("tcp:h:1,delimiter=0x03").options.delimiter, 3);
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
        assert!(err("unix:").contains("missing path"));
        assert!(err("tcp:1.2.3.4:5,colour=blue").contains("unknown option \"colour=blue\""));
        assert!(err("tcp:1.2.3.4:5,access=rx").contains("expected rw or ro"));
        assert!(err("tcp:1.2.3.4:5,mode=0600").contains("only unix endpoints"));
        assert!(err("unix:/x,mode=999").contains("octal"));
        assert!(err("tcp:h:1,max-line=0").contains("max-line"));
        assert!(err("unix:/x,keepalive=5s").contains("only tcp, rfc2217 and modbus-tcp"));
        assert!(err("pty:/x,keepalive=off").contains("only tcp, rfc2217 and modbus-tcp"));
        assert!(err("tcp:h:1,control=any").contains("only rfc2217 and pty"));
        assert!(err("unix:/x,control=any").contains("only rfc2217 and pty"));
        assert!(err("pty:/x,control=some").contains("first, any or none"));
        assert_eq!(
            parse("pty:/x,control=any").options.control,
            ControlPolicy::Any
        );
        assert_eq!(parse("pty:/x").options.control, ControlPolicy::First);
        assert!(err("rfc2217:h:1,control=all").contains("first, any or none"));
        assert_eq!(
            parse("rfc2217:h:7002,control=none").options.control,
            ControlPolicy::None
        );
        assert!(err("modbus-tcp:h:502,framing=line").contains("only access, keepalive"));
        assert_eq!(
            parse("modbus-tcp:h:502,access=ro").options.access,
            Access::ReadOnly
        );
    }

    #[test]
    fn from_is_repeatable_on_network_endpoints_only() {
        let o = parse("tcp:0.0.0.0:7000,from=10.0.0.0/8,from=192.168.1.0/24").options;
        let nets: Vec<String> = o.from.networks().iter().map(ToString::to_string).collect();
        assert_eq!(nets, ["10.0.0.0/8", "192.168.1.0/24"]);
        assert!(o.from.allows("10.9.9.9".parse().unwrap()));
        assert!(!o.from.allows("127.0.0.1".parse().unwrap()));
        for spec in [
            "rfc2217:[::]:2217,from=fd00::/8",
            "modbus-tcp:0.0.0.0:502,from=10.0.0.0/8,keepalive=5s",
        ] {
            assert!(parse(spec).options.from.is_set(), "{spec}");
        }
        assert!(!parse("tcp:h:1").options.from.is_set());
        let err = |s: &str| s.parse::<EndpointSpec>().unwrap_err().to_string();
        assert!(err("unix:/x,from=10.0.0.0/8").contains("no network address"));
        assert!(err("pty:/x,from=10.0.0.0/8").contains("no network address"));
        let e = err("tcp:h:1,from=10.0.0.0/33");
        assert!(e.contains("from") && e.contains("10.0.0.0/8"), "{e}");
        assert!(err("tcp:h:1,from=").contains("expected a network"));
    }

    #[test]
    fn tls_and_insecure_are_flags_of_network_endpoints() {
        let o = parse("tcp:0.0.0.0:7000,insecure").options;
        assert!(o.insecure && !o.tls);
        let o = parse("modbus-tcp:0.0.0.0:802,tls,from=10.0.0.0/8").options;
        assert!(o.tls && !o.insecure && o.from.is_set());
        assert!(parse("rfc2217:0.0.0.0:2217,insecure").options.insecure);
        assert!(!parse("tcp:h:1").options.insecure);
        let err = |s: &str| s.parse::<EndpointSpec>().unwrap_err().to_string();
        assert!(err("unix:/x,insecure").contains("only tcp, rfc2217 and modbus-tcp"));
        assert!(err("pty:/x,tls").contains("only tcp, rfc2217 and modbus-tcp"));
        assert!(err("tcp:h:1,tls,insecure").contains("not both"));
        assert!(err("tcp:h:1,secure").contains("unknown option \"secure\""));
    }

    #[test]
    fn tls_is_for_network_endpoints() {
        let err = |s: &str| s.parse::<EndpointSpec>().unwrap_err().to_string();
        assert!(!parse("tcp:h:1").options.tls);
        for spec in ["tcp:h:1,tls", "rfc2217:h:1,tls", "modbus-tcp:h:1,tls"] {
            let o = parse(spec).options;
            assert!(o.tls, "{spec}");
            assert_eq!(o.handshake_timeout, Duration::from_secs(10));
        }
        assert!(err("unix:/x,tls").contains("only tcp, rfc2217 and modbus-tcp"));
        assert!(err("pty:/x,tls").contains("only tcp, rfc2217 and modbus-tcp"));
        assert!(err("tls:h:1").contains("unknown endpoint kind"));
        assert!(err("tcp:h:1,tls=yes").contains("unknown option"));
        assert_eq!(
            parse("modbus-tcp:h:1,tls,handshake-timeout=2s")
                .options
                .handshake_timeout,
            Duration::from_secs(2)
        );
        for bad in ["0s", "50ms", "61s", "x", ""] {
            let e = err(&format!("tcp:h:1,tls,handshake-timeout={bad}"));
            assert!(e.contains("100ms to 60s"), "{bad}: {e}");
        }
        assert!(err("unix:/x,handshake-timeout=1s").contains("only network endpoints"));
    }

    #[test]
    fn keepalive_defaults_on_and_can_be_set_or_turned_off() {
        assert_eq!(parse("tcp:h:1").options.keepalive, Some(DEFAULT_KEEPALIVE));
        assert_eq!(
            parse("tcp:h:1,keepalive=5s").options.keepalive,
            Some(Duration::from_secs(5))
        );
        assert_eq!(parse("tcp:h:1,keepalive=off").options.keepalive, None);
        assert_eq!(
            parse("modbus-tcp:h:502,keepalive=1m").options.keepalive,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn numeric_options_have_ranges() {
        let err = |s: &str| s.parse::<EndpointSpec>().unwrap_err().to_string();
        for bad in [
            "0",
            "-1",
            "65537",
            "1MiB",
            "18446744073709551615",
            "99999999999999999999",
            "x",
            "",
        ] {
            let e = err(&format!("tcp:h:1,max-line={bad}"));
            assert!(
                e.contains("max-line") && e.contains("1 to 64KiB"),
                "{bad}: {e}"
            );
        }
        assert_eq!(parse("tcp:h:1,max-line=1").options.max_line, 1);
        assert_eq!(
            parse("tcp:h:1,max-line=64KiB").options.max_line,
            MAX_MAX_LINE
        );
        for bad in ["0x", "0x100", "0x+5", "0xzz", "3", "0x0003", "-0x1"] {
            let e = err(&format!("tcp:h:1,delimiter={bad}"));
            assert!(
                e.contains("delimiter") && e.contains("0x00 to 0xff"),
                "{bad}: {e}"
            );
        }
        assert_eq!(parse("tcp:h:1,delimiter=0xff").options.delimiter, 0xff);
        assert_eq!(parse("tcp:h:1,delimiter=0x0").options.delimiter, 0);
        for bad in [
            "1000",
            "+660",
            "0o660",
            "",
            "00000660",
            "8",
            "-1",
            "4294967296",
        ] {
            let e = err(&format!("unix:/x,mode={bad}"));
            assert!(
                e.contains("mode") && e.contains("0000 to 0777"),
                "{bad}: {e}"
            );
        }
        for bad in ["0s", "500ms", "1500ms", "2h 1s", "3h", "x", "", "on", "-1s"] {
            let e = err(&format!("tcp:h:1,keepalive={bad}"));
            assert!(
                e.contains("keepalive") && e.contains("1s to 2h"),
                "{bad}: {e}"
            );
        }
        assert_eq!(
            parse("tcp:h:1,keepalive=1s").options.keepalive,
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            parse("tcp:h:1,keepalive=2h").options.keepalive,
            Some(Duration::from_secs(7200))
        );
        assert_eq!(parse("unix:/x,mode=0").options.mode, 0);
        assert_eq!(parse("unix:/x,mode=777").options.mode, 0o777);
    }
}
