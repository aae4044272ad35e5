//! Resolved, validated settings: one [`PortConfig`] per serial port.
//!
//! Settings come from the `serve` flags or a configuration file
//! ([`mod@file`]); either source first becomes raw [`PortSettings`]
//! ([`settings`]), and [`PortConfig::resolve`] alone validates those, so
//! both sources share every range and message (naming the setting as its
//! [`Source`] spells it: `--max-clients` or `max-clients`). A file's ports
//! are then checked against each other for shared names, devices and
//! addresses (the `clash` module). A network endpoint without `tls` on an
//! address that is not loopback is refused unless it says `insecure`
//! ([`exposure`]).
//!
//! This is where the one-second in-flight bound becomes concrete buffer sizes.
//! Bytes a client has sent but the wire has not yet carried sit in three
//! places: the socket's receive buffer, the hub's write budget, and the tty's
//! output buffer. The budget gets half of `max_inflight`, the receive buffer
//! is asked for the other half (Linux enforces a minimum of about 2 KiB of
//! buffer space, of which well under half is payload), and the device writer
//! keeps the tty's buffer to one pacing step plus a 20 ms margin (about
//! 70 ms) ahead of the line ([`crate::pace`]).
//!
//! Every numeric setting has a range, below; a value outside it is refused
//! with an error naming the flag and the range, so no setting can overflow a
//! size, a duration or a semaphore further in. `--help`, docs/serve.md and
//! docs/configuration.md quote these ranges.

mod clash;
mod error;
pub(crate) mod exposure;
pub(crate) mod file;
pub(crate) mod http;
mod ranges;
mod raw;
pub(crate) mod settings;
mod sizing;
mod tls;

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::access::AccessPolicy;
use crate::cli::ServeArgs;
use crate::device::sim::REPLY_DELAY;
use crate::device::{DeviceSpec, SimMode, SimSpec};
use crate::endpoint::tcp::SocketSizing;
use crate::endpoint::{DEFAULT_LISTEN, EndpointSpec, Framing};
use crate::hub::{HubConfig, TxnConfig};
use crate::line::LineSettings;
use crate::traffic::TrafficConfig;
use crate::units::usize_size_text;

pub(crate) use crate::units::{duration_text, size_text};
pub(crate) use error::ConfigError;
pub use file::{ControlConfig, DaemonConfig, FileError, load};
pub(crate) use http::check_metrics;
pub(crate) use ranges::*;
pub(crate) use settings::{LogSettings, PortSettings, Writers};
pub(crate) use sizing::{hub_config, socket_sizing};

/// Checks a port started by `serve` flags against the control socket and
/// the metrics endpoint, and its endpoints against each other, before
/// anything is bound: the checks a configuration file's ports get.
pub(crate) fn check_flags(
    port: &PortConfig,
    control: Option<&std::path::Path>,
    metrics: Option<(&str, &'static str)>,
) -> Result<(), ConfigError> {
    if let Some((addr, flag)) = metrics {
        check_metrics(addr, flag)?;
    }
    let metrics = metrics.map(|(addr, _)| addr);
    let Some(c) = clash::first(std::slice::from_ref(port), control, metrics) else {
        return Ok(());
    };
    // One port: every clash is between its endpoints, or with the control
    // socket or the metrics endpoint.
    let clash::Clash::Address { endpoint, other } = c.clash else {
        return Ok(());
    };
    let spec = port.listen[endpoint].to_string();
    let how = match other {
        clash::Owner::Control => "is also the control socket",
        clash::Owner::Metrics => "is also the --http (--metrics) address",
        clash::Owner::Port(_)
            if port.listen[..endpoint]
                .iter()
                .any(|e| e.to_string() == spec) =>
        {
            "is given twice"
        }
        clash::Owner::Port(_) => "is also bound by an earlier --listen",
    };
    Err(ConfigError::SameAddress { spec, how })
}

/// Where settings came from, which decides how messages name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `serve` flags: `--max-clients`.
    Flags,
    /// A configuration file's keys: `max-clients`, `log.keep`.
    File,
}

impl Source {
    /// The setting whose flag is `flag`, as this source spells it.
    pub(crate) fn name(self, flag: &'static str) -> &'static str {
        match self {
            Source::Flags => flag,
            Source::File => match flag {
                "--log" => "log.dir",
                "--log-format" => "log.format",
                "--log-max-size" => "log.max-size",
                "--log-keep" => "log.keep",
                "--no-pacing" => "pacing",
                "--allow" => "access",
                f => f.trim_start_matches("--"),
            },
        }
    }

    fn transaction_writers(self) -> &'static str {
        match self {
            Source::Flags => "--writers transaction",
            Source::File => "writers = \"transaction\"",
        }
    }
}

fn count_text(n: usize) -> String {
    n.to_string()
}

/// `value` if `range` holds it, else an error naming `option` and the range,
/// both written by `text`.
fn check<T: PartialOrd + Copy>(
    option: &'static str,
    value: T,
    range: &RangeInclusive<T>,
    text: fn(T) -> String,
) -> Result<T, ConfigError> {
    if range.contains(&value) {
        return Ok(value);
    }
    Err(ConfigError::OutOfRange {
        option,
        value: text(value),
        range: format!("{} to {}", text(*range.start()), text(*range.end())),
    })
}

/// The line settings of `sim --baud`.
pub(crate) fn sim_line(baud: u32) -> Result<LineSettings, ConfigError> {
    let line = LineSettings::with_baud(baud);
    line.validate()
        .map_err(|e| ConfigError::line(e, Source::Flags))?;
    Ok(line)
}

/// The simulator of `sim --mode MODE [--reply-delay DURATION]`.
pub(crate) fn sim_spec(
    mode: SimMode,
    reply_delay: Option<Duration>,
) -> Result<SimSpec, ConfigError> {
    // `sim` makes a pty; loopback has none (it would silently be echo).
    if mode == SimMode::Loopback {
        return Err(ConfigError::LoopbackSim);
    }
    let mut spec = SimSpec::from(mode);
    if let Some(delay) = reply_delay {
        if mode != SimMode::Modbus {
            return Err(ConfigError::NotApplicable {
                option: "--reply-delay",
                only: "--mode modbus",
            });
        }
        spec.reply_delay = check("--reply-delay", delay, &REPLY_DELAY, duration_text)?;
    }
    Ok(spec)
}

/// One port's resolved, validated settings.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PortConfig {
    /// Names the port in logs, status and metrics; unique in a daemon.
    pub(crate) name: String,
    pub(crate) device: DeviceSpec,
    pub(crate) line: LineSettings,
    pub(crate) listen: Vec<EndpointSpec>,
    /// The roles of client identities (`--allow`, `[port.access]`).
    pub(crate) access: AccessPolicy,
    pub(crate) hub: HubConfig,
    pub(crate) sockets: SocketSizing,
    pub(crate) max_clients: usize,
    pub(crate) drain_timeout: Duration,
    pub(crate) pacing: bool,
    /// How often to log the port's counters; `None` for never.
    pub(crate) stats_every: Option<Duration>,
    /// `None` when no traffic log directory is given.
    pub(crate) traffic: Option<TrafficConfig>,
    /// The TLS files, if given (read and checked when resolved).
    pub(crate) tls: Option<crate::tls::TlsFiles>,
    /// Its labels in the fleet registry; a change restarts it on reload.
    pub(crate) labels: crate::fleet::config::Labels,
}

/// The old name of [`PortConfig`], from when a process served one port.
pub(crate) type ServeConfig = PortConfig;

impl PortConfig {
    /// The port that `serve` flags describe.
    pub(crate) fn from_args(a: &ServeArgs) -> Result<PortConfig, ConfigError> {
        Self::resolve(PortSettings::from(a), Source::Flags)
    }

    /// Validates `s`, filling in the built-in defaults for what it leaves
    /// out. Errors name the setting as `source` spells it.
    pub(crate) fn resolve(mut s: PortSettings, source: Source) -> Result<PortConfig, ConfigError> {
        use settings::defaults as d;
        let device = s
            .device
            .take()
            .ok_or(ConfigError::Missing(source.name("--device")))?;
        let name = match s.name.take() {
            Some(name) => check_name(source.name("--name"), name)?,
            None => name_of(&device),
        };
        let line = LineSettings {
            baud: s.baud.unwrap_or(d::BAUD),
            data_bits: s.data_bits.unwrap_or(d::DATA_BITS),
            parity: s.parity.unwrap_or(d::PARITY),
            stop_bits: s.stop_bits.unwrap_or(d::STOP_BITS),
            flow_control: s.flow_control.unwrap_or(d::FLOW_CONTROL),
        };
        line.validate().map_err(|e| ConfigError::line(e, source))?;
        let max_inflight = check(
            source.name("--max-inflight"),
            s.max_inflight.unwrap_or(d::MAX_INFLIGHT),
            &MAX_INFLIGHT,
            duration_text,
        )?;
        let max_clients = check(
            source.name("--max-clients"),
            s.max_clients.unwrap_or(d::MAX_CLIENTS),
            &MAX_CLIENTS,
            count_text,
        )?;
        let lock_idle = check(
            source.name("--lock-idle"),
            s.lock_idle.unwrap_or(d::LOCK_IDLE),
            &LOCK_IDLE,
            duration_text,
        )?;
        let lock_max = check(
            source.name("--lock-max"),
            s.lock_max.unwrap_or(d::LOCK_MAX),
            &LOCK_MAX,
            duration_text,
        )?;
        let drain_timeout = check(
            source.name("--drain-timeout"),
            s.drain_timeout.unwrap_or(d::DRAIN_TIMEOUT),
            &DRAIN_TIMEOUT,
            duration_text,
        )?;
        let stats_every = Some(s.stats_every.unwrap_or(d::STATS_EVERY)).filter(|e| !e.is_zero());
        if let Some(every) = stats_every
            && !STATS_EVERY.contains(&every)
        {
            return Err(ConfigError::OutOfRange {
                option: source.name("--stats-every"),
                value: duration_text(every),
                range: format!(
                    "0 for off, or {} to {}",
                    duration_text(*STATS_EVERY.start()),
                    duration_text(*STATS_EVERY.end())
                ),
            });
        }
        let listen = match s.listen.take() {
            Some(listen) if !listen.is_empty() => listen,
            _ => vec![DEFAULT_LISTEN.parse().expect("default endpoint parses")],
        };
        exposure::check(&listen, source)?;
        let access = AccessPolicy::new(s.allow.take().unwrap_or_default()).map_err(|why| {
            ConfigError::Access {
                option: source.name("--allow"),
                why,
            }
        })?;
        let client_queue = match s.client_queue {
            Some(n) => Some(check(
                source.name("--client-queue"),
                n,
                &CLIENT_QUEUE,
                usize_size_text,
            )?),
            None => None,
        };
        let scrollback = check(
            source.name("--scrollback"),
            s.scrollback
                .unwrap_or(crate::hub::history::DEFAULT_SCROLLBACK),
            &SCROLLBACK,
            usize_size_text,
        )?;
        let writers = s.writers.unwrap_or(d::WRITERS);
        if writers != Writers::Transaction
            && let Some(spec) = listen.iter().find(|s| {
                matches!(s.kind, crate::endpoint::EndpointKind::ModbusTcp { .. })
                    || matches!(s.options.framing, Framing::Gap | Framing::ModbusRtu)
                    || s.options.see.is_some()
                    // An RFC 2217 client's data is framed only as requests.
                    || (matches!(s.kind, crate::endpoint::EndpointKind::Rfc2217 { .. })
                        && s.options.framing != Framing::None)
            })
        {
            return Err(ConfigError::NeedsTransactions {
                spec: spec.to_string(),
                writers: source.transaction_writers(),
            });
        }
        let txn = match writers {
            Writers::Merge => None,
            Writers::Transaction => Some(txn_config(&s, &line, source)?),
        };
        let traffic = traffic_config(&s.log, source)?;
        let tls = tls::files(s.tls.take(), &listen, source)?;
        let pacing = s.pacing.unwrap_or(d::PACING);
        Ok(PortConfig {
            name,
            device,
            hub: HubConfig {
                lock_idle,
                lock_max,
                txn,
                keep_settings: s.keep_settings.unwrap_or(false),
                scrollback,
                ..hub_config(
                    &line,
                    pacing,
                    max_inflight,
                    client_queue,
                    s.slow_reader.unwrap_or(d::SLOW_READER),
                )
            },
            sockets: socket_sizing(&line, pacing, max_inflight),
            line,
            listen,
            access,
            max_clients,
            drain_timeout,
            pacing,
            stats_every,
            traffic,
            tls,
            labels: s.take_labels(source)?,
        })
    }
}

/// Whether `name` may name a port: it appears in every log line and metric
/// label of the port, so it is short and needs no quoting.
pub(crate) fn is_port_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn check_name(option: &'static str, name: String) -> Result<String, ConfigError> {
    if is_port_name(&name) {
        Ok(name)
    } else {
        Err(ConfigError::Name { option, name })
    }
}

/// The name of a port that is not given one: its device's file name
/// (`ttyUSB0`), or `sim-MODE`, with any character a name may not hold
/// replaced by `_`.
pub(crate) fn name_of(device: &DeviceSpec) -> String {
    let raw = match device {
        DeviceSpec::Tty(path) => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.to_string_lossy().into_owned()),
        DeviceSpec::Sim(sim) => format!("sim-{}", format!("{:?}", sim.mode).to_lowercase()),
        DeviceSpec::Remote { .. } | DeviceSpec::Fleet(_) => device.remote_name(),
    };
    let mut name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME)
        .collect();
    if name.is_empty() {
        name.push_str("port");
    }
    name
}

/// Transaction timing: the gaps follow the line rate unless set.
fn txn_config(
    s: &PortSettings,
    line: &LineSettings,
    source: Source,
) -> Result<TxnConfig, ConfigError> {
    let char_time = Duration::from_secs_f64(1.0 / line.bytes_per_sec());
    let three_and_a_half = char_time.saturating_mul(7) / 2;
    let reply_gap = match s.reply_gap {
        Some(g) => check(source.name("--reply-gap"), g, &REPLY_GAP, duration_text)?,
        None => three_and_a_half.max(REPLY_GAP_MIN),
    };
    Ok(TxnConfig {
        reply_timeout: check(
            source.name("--reply-timeout"),
            s.reply_timeout.unwrap_or(settings::defaults::REPLY_TIMEOUT),
            &REPLY_TIMEOUT,
            duration_text,
        )?,
        reply_gap,
        frame_gap: three_and_a_half.max(FRAME_GAP_MIN),
        char_time,
        unsolicited: s.unsolicited.unwrap_or(settings::defaults::UNSOLICITED),
    })
}

fn traffic_config(log: &LogSettings, source: Source) -> Result<Option<TrafficConfig>, ConfigError> {
    use settings::defaults as d;
    let Some(dir) = &log.dir else { return Ok(None) };
    Ok(Some(TrafficConfig {
        dir: dir.clone(),
        format: log.format.unwrap_or(d::LOG_FORMAT),
        max_size: check(
            source.name("--log-max-size"),
            log.max_size.unwrap_or(d::LOG_MAX_SIZE),
            &LOG_MAX_SIZE,
            size_text,
        )?,
        keep: check(
            source.name("--log-keep"),
            log.keep.unwrap_or(d::LOG_KEEP),
            &LOG_KEEP,
            count_text,
        )?,
    }))
}

#[cfg(test)]
mod tests {
    use super::sizing::{SEND_BUFFER_MIN, UNPACED_SOCKET_BUFFER};
    use super::*;
    use crate::device::READ_CHUNK;
    use crate::hub::SlowReaderPolicy;

    #[test]
    fn budget_is_half_the_inflight_allowance() {
        let line = LineSettings::with_baud(9600);
        let h = hub_config(
            &line,
            true,
            Duration::from_secs(1),
            Some(0),
            SlowReaderPolicy::Drop,
        );
        // Less the device writer's lead, which is in flight in the driver.
        let lead = crate::pace::Steps::for_rate(960.0).lead;
        assert_eq!(h.write_budget, 480 - lead);
        assert_eq!(h.write_chunk, (480 - lead) / 4);
        assert_eq!(h.client_queue, READ_CHUNK);
        let s = socket_sizing(&line, true, Duration::from_secs(1));
        assert_eq!(s.recv_buffer, 480);
        assert_eq!(s.send_buffer, SEND_BUFFER_MIN);
    }

    /// Issue 12: `--no-pacing` sizes the hub and sockets in bytes, not in
    /// line time at the nominal baud; an explicit `--client-queue` wins.
    #[test]
    fn issue12_unpaced_port_gets_byte_sized_buffers() {
        let cfg = |extra: &[&str]| ServeConfig::from_args(&serve_args(extra)).unwrap();
        let paced = cfg(&["-b", "115200"]);
        assert!(paced.pacing && paced.hub.paced);
        let lead = crate::pace::Steps::for_rate(11_520.0).lead;
        assert_eq!(paced.hub.write_budget, 5760 - lead);
        assert_eq!(paced.hub.write_chunk, (5760 - lead) / 4);
        assert_eq!(paced.sockets.recv_buffer, 5760);
        for baud in ["9600", "115200"] {
            let c = cfg(&["-b", baud, "--no-pacing"]);
            assert!(!c.pacing && !c.hub.paced);
            assert_eq!(c.hub.write_budget, crate::hub::budget::UNPACED_BUDGET);
            assert_eq!(c.hub.write_chunk, crate::hub::budget::UNPACED_CHUNK);
            assert_eq!(c.hub.client_queue, crate::hub::budget::UNPACED_CLIENT_QUEUE);
            assert_eq!(c.sockets.recv_buffer, UNPACED_SOCKET_BUFFER);
            assert_eq!(c.sockets.send_buffer, UNPACED_SOCKET_BUFFER);
        }
        let c = cfg(&["--no-pacing", "--client-queue", "64KiB"]);
        assert_eq!(c.hub.client_queue, 64 << 10);
    }

    #[test]
    fn tiny_allowance_keeps_a_working_budget() {
        let line = LineSettings::with_baud(300);
        let h = hub_config(
            &line,
            true,
            Duration::from_millis(10),
            Some(0),
            SlowReaderPolicy::Drop,
        );
        assert_eq!(h.write_budget, MIN_BUDGET);
        assert!(h.write_chunk >= 1);
    }

    /// Issue 21: `--allow ROLE:IDENTITY`, repeatable, becomes the port's
    /// policy; a bad one is a usage error naming the flag.
    #[test]
    fn issue21_allow_flags_make_the_policy() {
        use crate::access::Role;
        let cfg = ServeConfig::from_args(&serve_args(&[
            "--allow",
            "rw:cn:alice",
            "--allow",
            "ro:dns:monitor.lab",
        ]))
        .unwrap();
        assert_eq!(
            cfg.access.role(Some("alice"), &[], &[0; 32]),
            Some(Role::Rw)
        );
        let dns = ["monitor.lab".to_owned()];
        assert_eq!(cfg.access.role(None, &dns, &[0; 32]), Some(Role::Ro));
        assert_eq!(cfg.access.role(Some("eve"), &[], &[0; 32]), None);
        let open = ServeConfig::from_args(&serve_args(&[])).unwrap();
        assert!(open.access.is_open());

        use clap::Parser;
        let parse = |allow: &str| {
            crate::cli::Cli::try_parse_from([
                "serialhub",
                "serve",
                "-d",
                "sim:echo",
                "--allow",
                allow,
            ])
            .map(|_| ())
            .unwrap_err()
            .to_string()
        };
        assert!(
            parse("admin:cn:x").contains("ROLE rw or ro"),
            "{}",
            parse("admin:cn:x")
        );
        assert!(parse("rw:sha256:00").contains("64 hex digits"));
        let e = ServeConfig::from_args(&serve_args(&["--allow", "rw:any", "--allow", "ro:any"]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--allow: identity any is listed as both rw and ro; give it one role"
        );
    }

    fn serve_args(extra: &[&str]) -> ServeArgs {
        use clap::Parser;
        let mut args = vec!["serialhub", "serve", "-d", "sim:echo"];
        args.extend_from_slice(extra);
        match crate::cli::Cli::try_parse_from(args).unwrap().command {
            crate::cli::Command::Serve(a) => a,
            _ => panic!("not serve"),
        }
    }

    /// The error for `extra`, which must name `option` and `range`.
    fn refused(extra: &[&str], option: &str, range: &str) {
        let e = ServeConfig::from_args(&serve_args(extra))
            .expect_err(&format!("{extra:?} accepted"))
            .to_string();
        assert!(e.contains(option), "{extra:?}: {e}");
        assert!(e.contains(range), "{extra:?}: {e}");
    }

    #[test]
    fn issue8_numeric_settings_out_of_range_are_refused() {
        let cases: &[(&[&str], &str, &str)] = &[
            (&["--scrollback", "17MiB"], "--scrollback", "to 16MiB"),
            (&["--max-clients", "0"], "--max-clients", "1 to 65536"),
            (&["--max-clients", "65537"], "--max-clients", "1 to 65536"),
            (
                &["--max-clients", "18446744073709551615"],
                "--max-clients",
                "1 to 65536",
            ),
            (&["--max-inflight", "0s"], "--max-inflight", "10ms to 1h"),
            (&["--max-inflight", "9ms"], "--max-inflight", "10ms to 1h"),
            (
                &["--max-inflight", "500000000000y"],
                "--max-inflight",
                "10ms to 1h",
            ),
            (
                &["--max-inflight", "33554432s"],
                "--max-inflight",
                "10ms to 1h",
            ),
            (&["--client-queue", "0"], "--client-queue", "4KiB to 64MiB"),
            (
                &["--client-queue", "4095"],
                "--client-queue",
                "4KiB to 64MiB",
            ),
            (
                &["--client-queue", "18446744073709551615"],
                "--client-queue",
                "4KiB to 64MiB",
            ),
            (&["--lock-idle", "0s"], "--lock-idle", "10ms to 1h"),
            (
                &["--lock-idle", "500000000000y"],
                "--lock-idle",
                "10ms to 1h",
            ),
            (&["--lock-max", "99ms"], "--lock-max", "100ms to 1day"),
            (&["--lock-max", "2days"], "--lock-max", "100ms to 1day"),
            (&["--drain-timeout", "61min"], "--drain-timeout", "0s to 1h"),
            (
                &["--stats-every", "1ms"],
                "--stats-every",
                "0 for off, or 1s to 1day",
            ),
            (
                &["--stats-every", "1000000000000000000s"],
                "--stats-every",
                "1s to 1day",
            ),
            (&["--baud", "49"], "--baud", "50 to 20000000"),
            (&["--baud", "20000001"], "--baud", "50 to 20000000"),
            (&["--data-bits", "4"], "--data-bits", "5, 6, 7 or 8"),
            (&["--stop-bits", "0"], "--stop-bits", "1 or 2"),
            (
                &["--log", "x", "--log-keep", "1001"],
                "--log-keep",
                "1 to 1000",
            ),
            (
                &["--log", "x", "--log-max-size", "4095"],
                "--log-max-size",
                "4KiB to 1TiB",
            ),
            (
                &["--log", "x", "--log-max-size", "2TiB"],
                "--log-max-size",
                "4KiB to 1TiB",
            ),
        ];
        for (extra, option, range) in cases {
            refused(extra, option, range);
        }
    }

    #[test]
    fn issue8_range_ends_are_accepted() {
        let cfg = |extra: &[&str]| {
            ServeConfig::from_args(&serve_args(extra)).unwrap_or_else(|e| panic!("{extra:?}: {e}"))
        };
        let c = cfg(&[
            "--max-clients",
            "1",
            "--lock-idle",
            "10ms",
            "--lock-max",
            "100ms",
        ]);
        assert_eq!(c.max_clients, 1);
        assert_eq!(cfg(&["--scrollback", "0"]).hub.scrollback, 0);
        assert_eq!(cfg(&["--scrollback", "16MiB"]).hub.scrollback, 16 << 20);
        assert_eq!(cfg(&[]).hub.scrollback, 64 << 10);
        assert_eq!(c.hub.lock_idle, Duration::from_millis(10));
        assert_eq!(c.hub.lock_max, Duration::from_millis(100));
        let c = cfg(&[
            "--max-clients",
            "65536",
            "--lock-idle",
            "1h",
            "--lock-max",
            "1day",
        ]);
        assert_eq!(c.max_clients, 65536);
        assert_eq!(c.hub.lock_max, Duration::from_secs(86_400));
        assert_eq!(cfg(&["--stats-every", "0"]).stats_every, None);
        assert_eq!(
            cfg(&["--stats-every", "1s"]).stats_every,
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            cfg(&["--drain-timeout", "0s"]).drain_timeout,
            Duration::ZERO
        );
        assert_eq!(cfg(&["--client-queue", "4KiB"]).hub.client_queue, 4096);
        assert_eq!(cfg(&["--client-queue", "64MiB"]).hub.client_queue, 64 << 20);
        let t = cfg(&["--log", "x", "--log-max-size", "1TiB", "--log-keep", "1000"]);
        assert_eq!(
            t.traffic.map(|t| (t.max_size, t.keep)),
            Some((1 << 40, 1000))
        );
    }

    /// The chunk-size wrap of issue 8: every size derived from the largest
    /// in-flight allowance, at any baud rate, fits the types it is used as.
    #[test]
    fn issue8_derived_sizes_stay_usable_at_the_extremes() {
        for baud in [crate::line::MIN_BAUD, 10_240, 9600, 4_000_000, 20_000_000] {
            for inflight in [*MAX_INFLIGHT.start(), *MAX_INFLIGHT.end()] {
                let line = LineSettings::with_baud(baud);
                let h = hub_config(
                    &line,
                    true,
                    inflight,
                    Some(CLIENT_QUEUE_MIN),
                    SlowReaderPolicy::Drop,
                );
                assert!(
                    (MIN_BUDGET..=MAX_BUDGET).contains(&h.write_budget),
                    "{baud} {inflight:?}"
                );
                assert!(h.write_chunk >= 1 && h.write_chunk <= h.write_budget);
                assert!(u32::try_from(h.write_chunk).is_ok());
                assert!(h.write_budget <= tokio::sync::Semaphore::MAX_PERMITS);
            }
        }
        // 1 h at 10240 baud: a budget of 1.8 MB, not the wrapped 0-byte chunk.
        let h = hub_config(
            &LineSettings::with_baud(10_240),
            true,
            *MAX_INFLIGHT.end(),
            Some(0),
            SlowReaderPolicy::Drop,
        );
        let lead = crate::pace::Steps::for_rate(1024.0).lead;
        assert_eq!(h.write_budget, 1024 * 3600 / 2 - lead);
        assert_eq!(h.write_chunk, h.write_budget / 4);
    }

    #[test]
    fn issue8_default_client_queue_is_in_range() {
        for baud in ["50", "9600", "20000000"] {
            let c = ServeConfig::from_args(&serve_args(&["--baud", baud])).unwrap();
            assert!(CLIENT_QUEUE.contains(&c.hub.client_queue), "{baud}");
        }
    }

    #[test]
    fn sim_settings_are_checked() {
        // Size and duration texts are tested in `units`.
        assert!(sim_line(49).unwrap_err().to_string().contains("--baud"));
        assert_eq!(sim_line(115_200).unwrap().baud, 115_200);
        let ms = Duration::from_millis;
        assert_eq!(
            sim_spec(SimMode::Modbus, Some(ms(20))).unwrap().reply_delay,
            ms(20)
        );
        assert_eq!(
            sim_spec(SimMode::Modbus, None).unwrap(),
            SimMode::Modbus.into()
        );
        let e = sim_spec(SimMode::Modbus, Some(ms(10_001))).unwrap_err();
        assert!(
            e.to_string()
                .contains("--reply-delay 10s 1ms is out of range (0s to 10s)"),
            "{e}"
        );
        let e = sim_spec(SimMode::Echo, Some(ms(5))).unwrap_err();
        assert!(
            e.to_string()
                .contains("--reply-delay applies only to --mode modbus"),
            "{e}"
        );
    }

    /// `--help` quotes the ranges checked here.
    #[test]
    fn help_states_the_ranges() {
        use clap::CommandFactory;
        let mut cmd = crate::cli::Cli::command();
        let serve = cmd.find_subcommand_mut("serve").unwrap();
        let help = serve.render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let d = |r: &RangeInclusive<Duration>| {
            format!(
                "{} to {}",
                duration_text(*r.start()),
                duration_text(*r.end())
            )
        };
        let n = |r: &RangeInclusive<usize>| format!("{} to {}", r.start(), r.end());
        let s = |r: &RangeInclusive<usize>| {
            format!(
                "{} to {}",
                usize_size_text(*r.start()),
                usize_size_text(*r.end())
            )
        };
        for want in [
            format!("(50 to {})", crate::line::MAX_BAUD),
            format!("({})", s(&CLIENT_QUEUE)),
            format!("({};", d(&MAX_INFLIGHT)),
            format!("(else {})", d(&STATS_EVERY)),
            format!("({})", n(&MAX_CLIENTS)),
            format!("({})", d(&LOCK_IDLE)),
            format!("({})", d(&LOCK_MAX)),
            "(0 to 1h)".to_owned(),
            format!(
                "({} to {})",
                size_text(*LOG_MAX_SIZE.start()),
                size_text(*LOG_MAX_SIZE.end())
            ),
            format!("({})", n(&LOG_KEEP)),
            format!(
                "max-line=SIZE (1 to {})",
                usize_size_text(crate::endpoint::options::MAX_MAX_LINE)
            ),
        ] {
            assert!(help.contains(&want), "--help lacks {want:?}:\n{help}");
        }
    }

    /// The flags' defaults are the built-in defaults that a file's port
    /// gets, so `--help` and `print-config` agree.
    #[test]
    fn flag_defaults_are_the_builtin_defaults() {
        let flags = ServeConfig::from_args(&serve_args(&["--name", "p"])).unwrap();
        let bare = PortConfig::resolve(
            PortSettings {
                name: Some("p".into()),
                device: Some("sim:echo".parse().unwrap()),
                ..PortSettings::default()
            },
            Source::File,
        )
        .unwrap();
        assert_eq!(format!("{flags:?}"), format!("{bare:?}"));
    }

    #[test]
    fn ports_are_named_after_their_device_unless_named() {
        let name = |device: &str, extra: &[&str]| {
            let mut args = vec!["serialhub", "serve", "-d", device];
            args.extend_from_slice(extra);
            let crate::cli::Command::Serve(a) =
                crate::cli::Cli::try_parse_from(args).unwrap().command
            else {
                panic!("not serve")
            };
            PortConfig::from_args(&a)
                .map(|c| c.name)
                .map_err(|e| e.to_string())
        };
        use clap::Parser;
        assert_eq!(name("/dev/ttyUSB0", &[]).unwrap(), "ttyUSB0");
        assert_eq!(name("sim:echo", &[]).unwrap(), "sim-echo");
        assert_eq!(
            name("sim:modbus,reply-delay=1ms", &[]).unwrap(),
            "sim-modbus"
        );
        assert_eq!(name("/tmp/odd name:1", &[]).unwrap(), "odd_name_1");
        assert_eq!(name("/", &[]).unwrap(), "_");
        assert_eq!(name("sim:echo", &["--name", "lab1"]).unwrap(), "lab1");
        let e = name("sim:echo", &["--name", "lab 1"]).unwrap_err();
        assert!(
            e.starts_with("--name \"lab 1\" is not a usable port name"),
            "{e}"
        );
        assert!(name("sim:echo", &["--name", ""]).is_err());
    }

    #[test]
    fn traffic_log_settings_are_validated() {
        let cfg = |extra: &[&str]| ServeConfig::from_args(&serve_args(extra));
        assert_eq!(cfg(&[]).unwrap().traffic, None);
        let t = cfg(&["--log", "/var/log/hub", "--log-max-size", "64KiB"])
            .unwrap()
            .traffic
            .unwrap();
        assert_eq!(t.max_size, 65536);
        assert_eq!(t.keep, crate::traffic::DEFAULT_KEEP);
        let e = cfg(&["--log", "x", "--log-max-size", "100"]).unwrap_err();
        assert!(e.to_string().contains("(4KiB to 1TiB)"), "{e}");
        let e = cfg(&["--log", "x", "--log-keep", "0"]).unwrap_err();
        assert!(e.to_string().contains("--log-keep"), "{e}");
    }
}
