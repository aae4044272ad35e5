//! Resolved, validated settings for `serve`, derived from the CLI flags.
//!
//! This is where the one-second in-flight bound becomes concrete buffer sizes.
//! Bytes a client has sent but the wire has not yet carried sit in three
//! places: the socket's receive buffer, the hub's write budget, and the tty's
//! output buffer. The budget gets half of `max_inflight`, the receive buffer
//! is asked for the other half (Linux enforces a minimum of about 2 KiB of
//! buffer space, of which well under half is payload), and the device writer
//! keeps the tty's buffer to a 20 ms lead.

use std::time::Duration;

use crate::cli::ServeArgs;
use crate::device::{DeviceSpec, READ_CHUNK};
use crate::endpoint::tcp::SocketSizing;
use crate::endpoint::{DEFAULT_LISTEN, EndpointSpec};
use crate::hub::{HubConfig, SlowReaderPolicy};
use crate::line::{LineError, LineSettings};
use crate::traffic::{self, TrafficConfig};

/// Default per-client queue: this much line time...
const CLIENT_QUEUE_TIME: Duration = Duration::from_secs(2);
/// ...but at least this many bytes, so short stalls at low rates are absorbed.
const CLIENT_QUEUE_MIN: usize = 16 * 1024;
/// Send buffer per client socket: one second of line time, at least 4 KiB,
/// so a stalled reader fills its queue (and meets its policy) promptly.
const SEND_BUFFER_MIN: usize = 4096;
/// A lock holder that writes nothing for this long loses the write lock.
pub const DEFAULT_LOCK_IDLE: Duration = Duration::from_secs(5);
/// Smallest write budget; below this, per-chunk overheads dominate.
const MIN_BUDGET: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Line(#[from] LineError),
    #[error("--max-clients must be at least 1")]
    NoClients,
    #[error("--max-inflight must be more than zero")]
    NoInflight,
    #[error("--log-max-size must be at least {min} bytes")]
    LogTooSmall { min: u64 },
    #[error("--log-keep must be at least 1")]
    LogKeep,
}

#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub device: DeviceSpec,
    pub line: LineSettings,
    pub listen: Vec<EndpointSpec>,
    pub hub: HubConfig,
    pub sockets: SocketSizing,
    pub max_clients: usize,
    pub drain_timeout: Duration,
    pub pacing: bool,
    /// How often to log the port's counters; `None` for never.
    pub stats_every: Option<Duration>,
    /// `None` when `--log` is not given.
    pub traffic: Option<TrafficConfig>,
}

impl ServeConfig {
    pub fn from_args(a: &ServeArgs) -> Result<ServeConfig, ConfigError> {
        let line = LineSettings {
            baud: a.line.baud,
            data_bits: a.line.data_bits,
            parity: a.line.parity,
            stop_bits: a.line.stop_bits,
            flow_control: a.line.flow_control,
        };
        line.validate()?;
        if a.max_clients == 0 {
            return Err(ConfigError::NoClients);
        }
        if a.max_inflight.is_zero() {
            return Err(ConfigError::NoInflight);
        }
        let listen = if a.listen.is_empty() {
            vec![DEFAULT_LISTEN.parse().expect("default endpoint parses")]
        } else {
            a.listen.clone()
        };
        let client_queue = a
            .client_queue
            .unwrap_or_else(|| line.bytes_in(CLIENT_QUEUE_TIME).max(CLIENT_QUEUE_MIN));
        Ok(ServeConfig {
            device: a.device.clone(),
            hub: HubConfig {
                lock_idle: a.lock_idle,
                ..hub_config(&line, a.max_inflight, client_queue, a.slow_reader)
            },
            sockets: socket_sizing(&line, a.max_inflight),
            line,
            listen,
            max_clients: a.max_clients,
            drain_timeout: a.drain_timeout,
            pacing: !a.no_pacing,
            stats_every: (!a.stats_every.is_zero()).then_some(a.stats_every),
            traffic: traffic_config(a)?,
        })
    }
}

fn traffic_config(a: &ServeArgs) -> Result<Option<TrafficConfig>, ConfigError> {
    let Some(dir) = &a.log else { return Ok(None) };
    let max_size = a.log_max_size as u64;
    if max_size < traffic::MIN_MAX_SIZE {
        return Err(ConfigError::LogTooSmall {
            min: traffic::MIN_MAX_SIZE,
        });
    }
    if a.log_keep == 0 {
        return Err(ConfigError::LogKeep);
    }
    Ok(Some(TrafficConfig {
        dir: dir.clone(),
        format: a.log_format,
        max_size,
        keep: a.log_keep,
    }))
}

/// Splits the in-flight allowance between the hub and the socket buffers.
pub fn hub_config(
    line: &LineSettings,
    max_inflight: Duration,
    client_queue: usize,
    slow_reader: SlowReaderPolicy,
) -> HubConfig {
    let write_budget = (line.bytes_in(max_inflight) / 2).max(MIN_BUDGET);
    HubConfig {
        client_queue: client_queue.max(READ_CHUNK),
        slow_reader,
        write_budget,
        // A quarter of the budget per read lets up to four writers take turns.
        write_chunk: (write_budget / 4).max(1),
        lock_idle: DEFAULT_LOCK_IDLE,
    }
}

pub fn socket_sizing(line: &LineSettings, max_inflight: Duration) -> SocketSizing {
    SocketSizing {
        recv_buffer: (line.bytes_in(max_inflight) / 2).max(1),
        send_buffer: line.bytes_in(Duration::from_secs(1)).max(SEND_BUFFER_MIN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_half_the_inflight_allowance() {
        let line = LineSettings::with_baud(9600);
        let h = hub_config(&line, Duration::from_secs(1), 0, SlowReaderPolicy::Drop);
        assert_eq!(h.write_budget, 480);
        assert_eq!(h.write_chunk, 120);
        assert_eq!(h.client_queue, READ_CHUNK);
        let s = socket_sizing(&line, Duration::from_secs(1));
        assert_eq!(s.recv_buffer, 480);
        assert_eq!(s.send_buffer, SEND_BUFFER_MIN);
    }

    #[test]
    fn tiny_allowance_keeps_a_working_budget() {
        let line = LineSettings::with_baud(300);
        let h = hub_config(&line, Duration::from_millis(10), 0, SlowReaderPolicy::Drop);
        assert_eq!(h.write_budget, MIN_BUDGET);
        assert!(h.write_chunk >= 1);
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

    #[test]
    fn traffic_log_settings_are_validated() {
        let cfg = |extra: &[&str]| ServeConfig::from_args(&serve_args(extra));
        assert_eq!(cfg(&[]).unwrap().traffic, None);
        let t = cfg(&["--log", "/var/log/hub", "--log-max-size", "64KiB"])
            .unwrap()
            .traffic
            .unwrap();
        assert_eq!(t.max_size, 65536);
        assert_eq!(t.keep, traffic::DEFAULT_KEEP);
        let e = cfg(&["--log", "x", "--log-max-size", "100"]).unwrap_err();
        assert!(e.to_string().contains("at least 4096 bytes"), "{e}");
        let e = cfg(&["--log", "x", "--log-keep", "0"]).unwrap_err();
        assert!(e.to_string().contains("--log-keep"), "{e}");
    }
}
