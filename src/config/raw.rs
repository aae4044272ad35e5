//! The configuration file as serde reads it: raw structs that mirror the
//! TOML with `deny_unknown_fields`, and the value types (durations, sizes,
//! modes, parsed text) that report a bad value at its place in the file.
//! [`super::file`] turns them into settings and checks them.

use std::fmt;
use std::marker::PhantomData;
use std::ops::Range;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use super::settings::{LogSettings, PortSettings, Writers};
use crate::access::{AllowRule, Identity, Role};
use crate::device::DeviceSpec;
use crate::endpoint::EndpointSpec;
use crate::hub::{SlowReaderPolicy, Unsolicited};
use crate::line::{FlowControl, Parity};
use crate::traffic::Format;

/// Where a port's parts are in the file, for messages.
#[derive(Default)]
pub(super) struct Spans {
    pub(super) port: Range<usize>,
    pub(super) name: Range<usize>,
    pub(super) device: Option<Range<usize>>,
    /// One per endpoint, in order.
    pub(super) listen: Vec<Range<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub(super) control: Option<RawControl>,
    pub(super) metrics: Option<RawMetrics>,
    pub(super) http: Option<RawHttp>,
    pub(super) tls: Option<RawTls>,
    pub(super) fleet: Option<Spanned<RawFleet>>,
    pub(super) defaults: Option<Spanned<RawPort>>,
    #[serde(default)]
    pub(super) port: Vec<Spanned<RawPort>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub(super) socket: Option<PathBuf>,
    pub(super) mode: Option<Mode>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) listen: Spanned<String>,
    /// HTTPS, with the `[tls]` files.
    pub(super) tls: Option<Spanned<bool>>,
}

/// `[http]`: the listener of the metrics and the web console (`[metrics]`
/// is its old name), and its password users.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) listen: Option<Spanned<String>>,
    /// HTTPS, with the `[tls]` files.
    pub(super) tls: Option<Spanned<bool>>,
    /// Plain HTTP with passwords on a network address, knowingly.
    pub(super) insecure: Option<bool>,
    /// `[[http.user]]`.
    #[serde(default)]
    pub(super) user: Vec<Spanned<RawUser>>,
}

/// `[[http.user]]`: a login of the web console.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawUser {
    pub(super) name: String,
    pub(super) password_hash: String,
    pub(super) role: String,
}

/// `[tls]`: the files TLS endpoints and the metrics listener use.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawTls {
    pub(super) cert: PathBuf,
    pub(super) key: PathBuf,
    pub(super) client_ca: Option<PathBuf>,
    #[serde(default)]
    pub(super) crl: Vec<PathBuf>,
}

/// `[fleet]`: the NATS broker this serve joins, as the `--fleet*` flags.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub(super) url: Option<String>,
    pub(super) host: Option<String>,
    pub(super) creds: Option<PathBuf>,
    pub(super) ca: Option<PathBuf>,
    pub(super) heartbeat: Option<Dur>,
}

impl RawFleet {
    pub(super) fn settings(self) -> crate::fleet::config::FleetSettings {
        crate::fleet::config::FleetSettings {
            url: self.url,
            host: self.host,
            creds: self.creds,
            ca: self.ca,
            heartbeat: self.heartbeat.map(|d| d.0),
        }
    }
}

/// A `[[port]]` table, or `[defaults]` (which may not set the name,
/// device, listen or log directory).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawPort {
    pub(super) name: Option<Spanned<String>>,
    pub(super) device: Option<Spanned<Text<DeviceSpec>>>,
    pub(super) baud: Option<u32>,
    pub(super) data_bits: Option<u8>,
    pub(super) parity: Option<Parity>,
    pub(super) stop_bits: Option<u8>,
    pub(super) flow_control: Option<FlowControl>,
    pub(super) listen: Option<Vec<Spanned<Text<EndpointSpec>>>>,
    pub(super) access: Option<RawAccess>,
    pub(super) slow_reader: Option<SlowReaderPolicy>,
    pub(super) client_queue: Option<Size>,
    pub(super) scrollback: Option<Size>,
    pub(super) max_inflight: Option<Dur>,
    pub(super) max_clients: Option<usize>,
    pub(super) pacing: Option<bool>,
    pub(super) keep_settings: Option<bool>,
    pub(super) lock_idle: Option<Dur>,
    pub(super) lock_max: Option<Dur>,
    pub(super) writers: Option<Writers>,
    pub(super) reply_timeout: Option<Dur>,
    pub(super) reply_gap: Option<Dur>,
    pub(super) unsolicited: Option<Unsolicited>,
    pub(super) drain_timeout: Option<Dur>,
    pub(super) stats_every: Option<Dur>,
    pub(super) log: Option<RawLog>,
    /// Labels in the fleet registry: `labels = { board = "rpi4" }`.
    pub(super) labels: Option<std::collections::BTreeMap<String, String>>,
}

/// `[port.access]`: the identities of each role, as `--allow` gives them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAccess {
    #[serde(default)]
    pub(super) rw: Vec<Text<Identity>>,
    #[serde(default)]
    pub(super) ro: Vec<Text<Identity>>,
}

impl RawAccess {
    fn rules(self) -> Vec<AllowRule> {
        let with = |role, list: Vec<Text<Identity>>| {
            list.into_iter().map(move |i| AllowRule {
                role,
                identity: i.0,
            })
        };
        with(Role::Rw, self.rw)
            .chain(with(Role::Ro, self.ro))
            .collect()
    }
}

/// `[port.log]`: the traffic log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawLog {
    pub(super) dir: Option<PathBuf>,
    pub(super) format: Option<Format>,
    pub(super) max_size: Option<Size>,
    pub(super) keep: Option<usize>,
}

impl RawPort {
    /// The settings, the name, and where the device and endpoints are.
    pub(super) fn settings(self) -> (PortSettings, Option<Spanned<String>>, Spans) {
        let spans = Spans {
            device: self.device.as_ref().map(Spanned::span),
            listen: self.listen.iter().flatten().map(Spanned::span).collect(),
            ..Spans::default()
        };
        let listen = self
            .listen
            .map(|l| l.into_iter().map(|s| s.into_inner().0).collect());
        let log = self.log.unwrap_or(RawLog {
            dir: None,
            format: None,
            max_size: None,
            keep: None,
        });
        let settings = PortSettings {
            name: None,
            device: self.device.map(|d| d.into_inner().0),
            baud: self.baud,
            data_bits: self.data_bits,
            parity: self.parity,
            stop_bits: self.stop_bits,
            flow_control: self.flow_control,
            listen,
            allow: self.access.map(RawAccess::rules),
            slow_reader: self.slow_reader,
            // A size beyond usize is out of range anyway.
            client_queue: self
                .client_queue
                .map(|s| usize::try_from(s.0).unwrap_or(usize::MAX)),
            scrollback: self
                .scrollback
                .map(|s| usize::try_from(s.0).unwrap_or(usize::MAX)),
            max_inflight: self.max_inflight.map(|d| d.0),
            max_clients: self.max_clients,
            pacing: self.pacing,
            keep_settings: self.keep_settings,
            lock_idle: self.lock_idle.map(|d| d.0),
            lock_max: self.lock_max.map(|d| d.0),
            writers: self.writers,
            reply_timeout: self.reply_timeout.map(|d| d.0),
            reply_gap: self.reply_gap.map(|d| d.0),
            unsolicited: self.unsolicited,
            drain_timeout: self.drain_timeout.map(|d| d.0),
            stats_every: self.stats_every.map(|d| d.0),
            log: LogSettings {
                dir: log.dir,
                format: log.format,
                max_size: log.max_size.map(|s| s.0),
                keep: log.keep,
            },
            // The file's `[tls]` applies to every port (see `file::parse`).
            tls: None,
            labels: self.labels,
        };
        (settings, self.name, spans)
    }
}

/// A value written as a string in flag syntax, parsed by its `FromStr`.
pub(super) struct Text<T>(T);

impl<'de, T> Deserialize<'de> for Text<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: FromStr> Visitor<'_> for V<T>
        where
            T::Err: fmt::Display,
        {
            type Value = Text<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
                s.parse().map(Text).map_err(E::custom)
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// A duration: a string such as `"1s"` or `"500ms"`.
pub(super) struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"1s\" or \"500ms\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Dur, E> {
                humantime::parse_duration(s)
                    .map(Dur)
                    .map_err(|e| E::custom(format!("{s:?}: {e} (try \"1s\" or \"500ms\")")))
            }
        }
        d.deserialize_str(V)
    }
}

/// A size in bytes: an integer, or a string such as `"64KiB"`.
pub(super) struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size: a number of bytes, or a string such as \"64KiB\"")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Size, E> {
                Ok(Size(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Size, E> {
                u64::try_from(n)
                    .map(Size)
                    .map_err(|_| E::custom(format!("size {n} is negative")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Size, E> {
                parse_size::parse_size(s).map(Size).map_err(|e| {
                    E::custom(format!("{e} in {s:?} (try 4096, \"64KiB\" or \"10MiB\")"))
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// A file mode: an octal string such as `"0600"`, or a TOML integer
/// (`0o600`), at most 0o777.
pub(super) struct Mode(pub(super) u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const WHY: &str = "expected an octal file mode from \"0000\" to \"0777\", such as \"0600\"";
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an octal file mode such as \"0600\"")
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Mode, E> {
                u32::try_from(n)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .map(Mode)
                    .ok_or_else(|| E::custom(WHY))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Mode, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(-1))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                Some(s)
                    .filter(|v| (1..=4).contains(&v.len()))
                    .filter(|v| v.bytes().all(|b| matches!(b, b'0'..=b'7')))
                    .and_then(|v| u32::from_str_radix(v, 8).ok())
                    .filter(|m| *m <= 0o777)
                    .map(Mode)
                    .ok_or_else(|| E::custom(WHY))
            }
        }
        d.deserialize_any(V)
    }
}
