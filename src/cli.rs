//! Command-line definitions (clap). These are raw flags; [`crate::config`]
//! turns them into validated settings.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::device::{DeviceSpec, SimMode};
use crate::endpoint::EndpointSpec;
use crate::hub::SlowReaderPolicy;
use crate::line::{FlowControl, Parity};

#[derive(Debug, Parser)]
#[command(
    name = "serialhub",
    version,
    about = "Share one serial port with many programs, safely and fast."
)]
pub struct Cli {
    /// More log output (-v debug, -vv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve one serial device to network and local clients.
    Serve(ServeArgs),
    /// Run a simulated serial device on a pseudo-terminal.
    Sim(SimArgs),
}

#[derive(Debug, Args)]
pub struct LineArgs {
    /// Baud rate.
    #[arg(short, long, default_value_t = 9600)]
    pub baud: u32,
    /// Data bits per character (5-8).
    #[arg(long, default_value_t = 8)]
    pub data_bits: u8,
    #[arg(long, value_enum, default_value_t = Parity::None)]
    pub parity: Parity,
    /// Stop bits (1 or 2).
    #[arg(long, default_value_t = 1)]
    pub stop_bits: u8,
    #[arg(long, value_enum, default_value_t = FlowControl::None)]
    pub flow_control: FlowControl,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The device: a tty path (/dev/ttyUSB0, /dev/serial/by-id/..., a pty) or a
    /// built-in simulator: sim:echo, sim:source or sim:sink.
    #[arg(short, long, value_parser = parse_device)]
    pub device: DeviceSpec,
    #[command(flatten)]
    pub line: LineArgs,
    /// Where clients connect (repeatable): tcp:HOST:PORT, unix:PATH or pty:PATH,
    /// then options: ,access=rw|ro ,framing=none|line ,delimiter=lf|cr|nul|0xNN
    /// ,max-line=SIZE ,lock=none|inband ,slow-reader=POLICY ,mode=0660 (unix).
    /// Default: tcp:127.0.0.1:7000. Use tcp:0.0.0.0:PORT to accept remote clients.
    #[arg(short, long = "listen", value_name = "ENDPOINT")]
    pub listen: Vec<EndpointSpec>,
    /// What happens to a client that reads slower than the device sends.
    #[arg(long, value_enum, default_value_t = SlowReaderPolicy::Disconnect)]
    pub slow_reader: SlowReaderPolicy,
    /// Bytes queued per client before the slow-reader policy acts, e.g. 64KiB.
    /// Default: 2 s of line time, at least 16KiB.
    #[arg(long, value_parser = parse_bytes, value_name = "SIZE")]
    pub client_queue: Option<usize>,
    /// Most line time that bytes accepted from clients may wait before reaching
    /// the wire (socket buffers plus serialhub's own queue), e.g. 1s, 500ms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s", value_name = "DURATION")]
    pub max_inflight: Duration,
    /// Do not pace writes at the line rate; rely on the driver's output queue
    /// and blocking writes alone. For devices faster than their nominal baud
    /// (USB CDC-ACM) and ptys used as pipes. Pacing is what keeps the
    /// in-flight bound on drivers that do not report their output queue.
    #[arg(long)]
    pub no_pacing: bool,
    /// Most clients connected at once, over all endpoints.
    #[arg(long, default_value_t = 256)]
    pub max_clients: usize,
    /// A client holding the exclusive write lock loses it after writing
    /// nothing for this long.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s", value_name = "DURATION")]
    pub lock_idle: Duration,
    /// On shutdown, how long to keep writing bytes already accepted for the device.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s", value_name = "DURATION")]
    pub drain_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// echo: send back what it receives; source: send the counter pattern;
    /// sink: receive and check the counter pattern.
    #[arg(short, long, value_enum)]
    pub mode: SimMode,
    /// Line rate to pace at (8N1: baud/10 bytes per second).
    #[arg(short, long, default_value_t = 9600)]
    pub baud: u32,
    /// Symlink to create at this path, pointing at the simulator's tty.
    #[arg(long)]
    pub link: PathBuf,
}

fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    s.parse()
}

/// Parses sizes like `4096`, `64KiB`, `10MiB`, `1kb`.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let n = parse_size::parse_size(s)
        .map_err(|e| format!("{e} in {s:?} (try 4096, 64KiB or 10MiB)"))?;
    usize::try_from(n).map_err(|_| format!("{s} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_suffixes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64KiB"), Ok(65536));
        assert_eq!(parse_bytes("10MiB"), Ok(10 << 20));
        assert!(parse_bytes("lots").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_parses_repeated_listen() {
        let cli = Cli::try_parse_from([
            "serialhub",
            "serve",
            "-d",
            "sim:echo",
            "-l",
            "tcp:127.0.0.1:0",
            "-l",
            "tcp:[::1]:0",
        ])
        .unwrap();
        let Command::Serve(a) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(a.listen.len(), 2);
        assert_eq!(a.line.baud, 9600);
    }
}
