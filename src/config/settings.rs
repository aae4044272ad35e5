//! One port's raw settings, as any source gives them: every value optional,
//! nothing checked yet. The `serve` flags and a `[[port]]` table of the
//! configuration file both become a [`PortSettings`]; the file's port is
//! laid over its `[defaults]` with [`PortSettings::over`]; and
//! [`PortConfig::resolve`](super::PortConfig::resolve) fills in the
//! built-in defaults below and validates, so both sources share one set of
//! ranges and messages.

use std::path::PathBuf;
use std::time::Duration;

use crate::access::AllowRule;
use crate::cli::ServeArgs;
use crate::device::DeviceSpec;
use crate::endpoint::EndpointSpec;
use crate::hub::{SlowReaderPolicy, Unsolicited};
use crate::line::{FlowControl, Parity};
use crate::traffic::Format;

/// How clients' writes reach the device (`--writers`, `writers =`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Writers {
    /// Bytes go as they come, each client's in order.
    Merge,
    /// One request at a time, its reply to the client that asked.
    Transaction,
}

/// The built-in defaults, which `--help` and `print-config` show; a test
/// checks that the flags' defaults are these.
pub(crate) mod defaults {
    use super::*;

    pub(crate) const BAUD: u32 = 9600;
    pub(crate) const DATA_BITS: u8 = 8;
    pub(crate) const PARITY: Parity = Parity::None;
    pub(crate) const STOP_BITS: u8 = 1;
    pub(crate) const FLOW_CONTROL: FlowControl = FlowControl::None;
    pub(crate) const SLOW_READER: SlowReaderPolicy = SlowReaderPolicy::Disconnect;
    pub(crate) const MAX_INFLIGHT: Duration = Duration::from_secs(1);
    pub(crate) const STATS_EVERY: Duration = Duration::from_secs(60);
    pub(crate) const PACING: bool = true;
    pub(crate) const MAX_CLIENTS: usize = 256;
    pub(crate) const LOCK_IDLE: Duration = crate::config::DEFAULT_LOCK_IDLE;
    pub(crate) const LOCK_MAX: Duration = crate::config::DEFAULT_LOCK_MAX;
    pub(crate) const WRITERS: Writers = Writers::Merge;
    pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(1);
    pub(crate) const UNSOLICITED: Unsolicited = Unsolicited::All;
    pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
    pub(crate) const LOG_FORMAT: Format = Format::Text;
    pub(crate) const LOG_MAX_SIZE: u64 = crate::traffic::DEFAULT_MAX_SIZE;
    pub(crate) const LOG_KEEP: usize = crate::traffic::DEFAULT_KEEP;
}

/// One port's settings before validation; `None` means "not given here".
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PortSettings {
    pub(crate) name: Option<String>,
    pub(crate) device: Option<DeviceSpec>,
    pub(crate) baud: Option<u32>,
    pub(crate) data_bits: Option<u8>,
    pub(crate) parity: Option<Parity>,
    pub(crate) stop_bits: Option<u8>,
    pub(crate) flow_control: Option<FlowControl>,
    /// `None` or empty: the flags' default endpoint. The file requires it.
    pub(crate) listen: Option<Vec<EndpointSpec>>,
    /// `--allow`, or `[port.access]`: the roles of client identities.
    pub(crate) allow: Option<Vec<AllowRule>>,
    pub(crate) slow_reader: Option<SlowReaderPolicy>,
    /// `None`: two seconds of line time, at least 16 KiB.
    pub(crate) client_queue: Option<usize>,
    /// Device bytes kept for web viewers that join.
    pub(crate) scrollback: Option<usize>,
    pub(crate) max_inflight: Option<Duration>,
    pub(crate) max_clients: Option<usize>,
    pub(crate) pacing: Option<bool>,
    /// A client's settings outlive it.
    pub(crate) keep_settings: Option<bool>,
    pub(crate) lock_idle: Option<Duration>,
    pub(crate) lock_max: Option<Duration>,
    pub(crate) writers: Option<Writers>,
    pub(crate) reply_timeout: Option<Duration>,
    /// `None`: 3.5 characters at the line rate, at least 10 ms.
    pub(crate) reply_gap: Option<Duration>,
    pub(crate) unsolicited: Option<Unsolicited>,
    pub(crate) drain_timeout: Option<Duration>,
    /// Zero turns the periodic stats line off.
    pub(crate) stats_every: Option<Duration>,
    pub(crate) log: LogSettings,
    /// The TLS files (`--tls-*`, a file's `[tls]`), for `tls` endpoints.
    pub(crate) tls: Option<crate::tls::TlsFiles>,
    /// The port's labels in the fleet (`--label`, `labels = {...}`).
    pub(crate) labels: Option<crate::fleet::config::Labels>,
}

/// The traffic log's raw settings; there is a log only if `dir` is given.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LogSettings {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) format: Option<Format>,
    pub(crate) max_size: Option<u64>,
    pub(crate) keep: Option<usize>,
}

impl PortSettings {
    /// The labels, checked; errors name `--label` or `labels`.
    pub(crate) fn take_labels(
        &mut self,
        source: super::Source,
    ) -> Result<crate::fleet::config::Labels, super::ConfigError> {
        let labels = self.labels.take().unwrap_or_default();
        let option = match source {
            super::Source::Flags => "--label",
            super::Source::File => "labels",
        };
        crate::fleet::config::check_labels(&labels)
            .map_err(|why| super::ConfigError::Labels { option, why })?;
        Ok(labels)
    }

    /// These settings, with anything they leave out taken from `base`.
    pub(crate) fn over(self, base: &PortSettings) -> PortSettings {
        let b = base.clone();
        PortSettings {
            name: self.name.or(b.name),
            device: self.device.or(b.device),
            baud: self.baud.or(b.baud),
            data_bits: self.data_bits.or(b.data_bits),
            parity: self.parity.or(b.parity),
            stop_bits: self.stop_bits.or(b.stop_bits),
            flow_control: self.flow_control.or(b.flow_control),
            listen: self.listen.or(b.listen),
            allow: self.allow.or(b.allow),
            slow_reader: self.slow_reader.or(b.slow_reader),
            client_queue: self.client_queue.or(b.client_queue),
            scrollback: self.scrollback.or(b.scrollback),
            max_inflight: self.max_inflight.or(b.max_inflight),
            max_clients: self.max_clients.or(b.max_clients),
            pacing: self.pacing.or(b.pacing),
            keep_settings: self.keep_settings.or(b.keep_settings),
            lock_idle: self.lock_idle.or(b.lock_idle),
            lock_max: self.lock_max.or(b.lock_max),
            writers: self.writers.or(b.writers),
            reply_timeout: self.reply_timeout.or(b.reply_timeout),
            reply_gap: self.reply_gap.or(b.reply_gap),
            unsolicited: self.unsolicited.or(b.unsolicited),
            drain_timeout: self.drain_timeout.or(b.drain_timeout),
            stats_every: self.stats_every.or(b.stats_every),
            log: LogSettings {
                dir: self.log.dir.or(b.log.dir),
                format: self.log.format.or(b.log.format),
                max_size: self.log.max_size.or(b.log.max_size),
                keep: self.log.keep.or(b.log.keep),
            },
            tls: self.tls.or(b.tls),
            labels: self.labels.or(b.labels),
        }
    }
}

impl From<&ServeArgs> for PortSettings {
    /// Every flag, defaults included (clap fills them in).
    fn from(a: &ServeArgs) -> Self {
        PortSettings {
            name: a.name.clone(),
            device: a.device.clone(),
            baud: Some(a.line.baud),
            data_bits: Some(a.line.data_bits),
            parity: Some(a.line.parity.into()),
            stop_bits: Some(a.line.stop_bits),
            flow_control: Some(a.line.flow_control.into()),
            listen: Some(a.listen.clone()),
            allow: Some(a.allow.clone()),
            slow_reader: Some(a.slow_reader.into()),
            client_queue: a.client_queue,
            scrollback: Some(a.scrollback),
            max_inflight: Some(a.max_inflight),
            max_clients: Some(a.max_clients),
            pacing: Some(!a.no_pacing),
            keep_settings: Some(a.keep_settings),
            lock_idle: Some(a.lock_idle),
            lock_max: Some(a.lock_max),
            writers: Some(a.writers.into()),
            reply_timeout: Some(a.reply_timeout),
            reply_gap: a.reply_gap,
            unsolicited: Some(a.unsolicited.into()),
            drain_timeout: Some(a.drain_timeout),
            stats_every: Some(a.stats_every),
            log: LogSettings {
                dir: a.log.clone(),
                format: Some(a.log_format.into()),
                // A size that does not fit in u64 is out of range anyway.
                max_size: Some(u64::try_from(a.log_max_size).unwrap_or(u64::MAX)),
                keep: Some(a.log_keep),
            },
            tls: a
                .tls_cert
                .clone()
                .zip(a.tls_key.clone())
                .map(|(cert, key)| crate::tls::TlsFiles {
                    cert,
                    key,
                    client_ca: a.tls_client_ca.clone(),
                    crls: a.tls_crl.clone(),
                }),
            labels: Some(crate::fleet::config::labels(&a.fleet.labels)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_settings_win_and_gaps_are_filled() {
        let base = PortSettings {
            baud: Some(115_200),
            max_clients: Some(4),
            log: LogSettings {
                keep: Some(3),
                format: Some(Format::Json),
                ..LogSettings::default()
            },
            ..PortSettings::default()
        };
        let own = PortSettings {
            baud: Some(19_200),
            log: LogSettings {
                dir: Some("/tmp".into()),
                keep: Some(9),
                ..LogSettings::default()
            },
            ..PortSettings::default()
        };
        let s = own.over(&base);
        assert_eq!(s.baud, Some(19_200));
        assert_eq!(s.max_clients, Some(4));
        assert_eq!(s.data_bits, None);
        assert_eq!(s.log.keep, Some(9));
        assert_eq!(s.log.format, Some(Format::Json));
        assert_eq!(s.log.dir, Some(PathBuf::from("/tmp")));
    }
}
