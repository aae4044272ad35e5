//! Command-line definitions (clap). These are raw flags; [`crate::config`]
//! turns them into validated settings. The values flags choose among are
//! the CLI's own enums (`cli/values.rs`), which convert into the domain types, so
//! clap stays out of the rest of the crate.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::access::AllowRule;
use crate::device::DeviceSpec;
use crate::endpoint::EndpointSpec;
use crate::traffic::DEFAULT_KEEP;
use crate::units::parse_bytes;
use port_flags::PORT_FLAGS;
use time::OffsetDateTime;

pub(crate) mod fleet;
pub(crate) mod http;
mod port_flags;
mod values;
pub(crate) use values::{
    Direction, FlowControl, Format, Parity, SimMode, SlowReaderPolicy, Unsolicited, Writers,
};

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
    /// The control socket: where `serve` listens for `status`, `kick` and
    /// the like, and where those commands find it. Default: `serve` listens
    /// on PID.sock in the runtime directory ($XDG_RUNTIME_DIR/serialhub/,
    /// /run/serialhub/ as root, else /tmp/serialhub-UID/), and the commands
    /// ask every serialhub there: `status` shows them all, the others go to
    /// the one serving the port named (`reload`: the only one, or the only
    /// one started with --config).
    // Not `global`: then every subcommand would show it, `completions` too.
    // The commands that use it take it after their name as well.
    #[arg(long, value_name = "PATH")]
    pub(crate) control: Option<PathBuf>,
    /// `--http`, `--metrics` (`serve` only).
    #[command(flatten)]
    pub(crate) http: http::HttpAddr,
    #[command(subcommand)]
    pub(crate) command: Command,
}

impl Cli {
    /// `--control`, given before the subcommand or after it.
    pub(crate) fn control_socket(&self) -> Option<&PathBuf> {
        let after = match &self.command {
            Command::Serve(a) => &a.daemon.at,
            Command::Status(a) => &a.at,
            Command::Kick(a) => &a.at,
            Command::Lock(a) | Command::Unlock(a) => &a.at,
            Command::Reload(a) => a,
            _ => return self.control.as_ref(),
        };
        self.control.as_ref().or(after.control.as_ref())
    }

    /// `--http` and `--metrics`, each given before `serve` or after it.
    pub(crate) fn http_addr(&self) -> http::HttpAddr {
        match &self.command {
            Command::Serve(a) => self.http.or(&a.daemon.http),
            _ => self.http.clone(),
        }
    }
}

/// `--control` for the commands that use it, after their name.
#[derive(Debug, Args)]
pub(crate) struct ControlFlag {
    /// The control socket (as before the command; see `serialhub --help`).
    #[arg(long, value_name = "PATH")]
    pub(crate) control: Option<PathBuf>,
}

/// `serve`'s `--control` and `--metrics`, after its name.
#[derive(Debug, Args)]
pub(crate) struct DaemonFlags {
    #[command(flatten)]
    pub(crate) at: ControlFlag,
    #[command(flatten)]
    pub(crate) http: http::HttpAddr,
}

/// `serve`'s examples, as a literal so that `concat!` can head them.
macro_rules! serve_examples {
    () => {
        "\
Share a USB adapter over TCP (plain text, to the lab network only) and as a
virtual serial port:
  serialhub serve -d /dev/ttyUSB0 -b 115200 -l tcp:0.0.0.0:7000,insecure,from=192.168.1.0/24 \\
      -l pty:/tmp/ttyV0

Let RFC 2217 clients (pyserial's rfc2217://) set the line, the first one wins:
  serialhub serve -d /dev/ttyUSB0 -l rfc2217:127.0.0.1:7002,control=first

A Modbus TCP gateway and an RTU pty on one bus (try the simulated slave):
  serialhub serve -d sim:modbus -b 19200 --writers transaction \\
      -l modbus-tcp:127.0.0.1:1502 -l pty:/tmp/ttyMB,framing=modbus-rtu

Every port of a configuration file (see `serialhub print-config`):
  serialhub serve --config /etc/serialhub/serialhub.toml"
    };
}
/// `serve`'s examples: the EXAMPLES section of serialhub-serve(1).
pub(crate) const SERVE_EXAMPLES: &str = serve_examples!();
/// The same, under "Examples:" in `serve --help`.
const SERVE_EXAMPLES_HELP: &str = concat!("Examples:\n", serve_examples!());

// Parsed once at start-up, so the size of `serve`'s flags does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve one serial device to network and local clients.
    #[command(after_long_help = SERVE_EXAMPLES_HELP)]
    Serve(ServeArgs),
    /// Run a simulated serial device on a pseudo-terminal.
    Sim(SimArgs),
    /// Print a traffic log written by `serve --log`.
    Log(LogArgs),
    /// Show a running serialhub's ports and clients.
    Status(StatusArgs),
    /// Print an argon2id hash of a password read from stdin, for a
    /// configuration file's [[http.user]] password-hash.
    Passwd,
    /// Disconnect one client of a running serialhub.
    Kick(KickArgs),
    /// Take a port's write lock as the operator: no client's writes reach
    /// the device (they wait, nothing is dropped) until `unlock`. Never
    /// expires. Refused while a client holds the lock.
    Lock(PortArgs),
    /// Release a port's write lock, whoever holds it (a client or the
    /// operator).
    Unlock(PortArgs),
    /// Make a running serialhub read its configuration file again and apply
    /// it (as SIGHUP does); says what changed, or why nothing did.
    Reload(ControlFlag),
    /// Print a shell completion script, e.g. `serialhub completions bash |
    /// sudo tee /usr/local/share/bash-completion/completions/serialhub`
    /// (where `scripts/install` puts it).
    Completions(CompletionsArgs),
    /// Print the man page (roff), e.g. `serialhub man | man -l -`.
    Man(ManArgs),
    /// Validate a configuration file and summarise it, starting nothing.
    CheckConfig(CheckConfigArgs),
    /// Print an example configuration file with every option and its default.
    PrintConfig,
    Fleet(fleet::FleetArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    pub(crate) at: ControlFlag,
    /// Only this port.
    pub(crate) port: Option<String>,
    /// Print JSON (a stable schema, for scripts) instead of tables.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct KickArgs {
    #[command(flatten)]
    pub(crate) at: ControlFlag,
    /// The port's name (see `serialhub status`).
    pub(crate) port: String,
    /// The client's id (see `serialhub status`).
    pub(crate) client: u64,
}

#[derive(Debug, Args)]
pub(crate) struct PortArgs {
    #[command(flatten)]
    pub(crate) at: ControlFlag,
    /// The port's name (see `serialhub status`).
    pub(crate) port: String,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// A subcommand's page (serialhub-serve(1)) instead of serialhub(1).
    #[arg(value_name = "COMMAND")]
    pub(crate) command: Option<String>,
    /// Write every page (serialhub.1, serialhub-serve.1, ...) into DIR,
    /// which must exist, instead of printing one.
    #[arg(long, value_name = "DIR", conflicts_with = "command")]
    pub(crate) dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct CheckConfigArgs {
    /// The configuration file (TOML), as for `serve --config`.
    #[arg(value_name = "FILE")]
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct LineArgs {
    /// Baud rate (50 to 20000000).
    #[arg(short, long, default_value_t = 9600)]
    pub(crate) baud: u32,
    /// Data bits per character (5-8).
    #[arg(long, default_value_t = 8)]
    pub(crate) data_bits: u8,
    /// Parity bit: none, odd or even.
    #[arg(long, value_enum, default_value_t = Parity::None)]
    pub(crate) parity: Parity,
    /// Stop bits (1 or 2).
    #[arg(long, default_value_t = 1)]
    pub(crate) stop_bits: u8,
    /// Flow control: none, rtscts (hardware) or xonxoff (software).
    #[arg(long, value_enum, default_value_t = FlowControl::None)]
    pub(crate) flow_control: FlowControl,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) daemon: DaemonFlags,
    /// The device: a tty path (/dev/ttyUSB0, /dev/serial/by-id/..., a pty), a
    /// built-in simulator: sim:echo, sim:source, sim:sink, sim:loopback or
    /// sim:modbus (sim:modbus,reply-delay=DURATION sets its reply delay, 0 to
    /// 10s), or a remote port: rfc2217://HOST:PORT or tcp://HOST:PORT
    /// (rfc2217://HOST:PORT?ign_set_control for a server that does not answer
    /// DTR, RTS or flow-control requests, as pyserial names it), or a fleet
    /// port by name, fleet://HOST/PORT (with --fleet). Required unless --config.
    #[arg(short, long, value_parser = parse_device, required_unless_present = "config")]
    pub(crate) device: Option<DeviceSpec>,
    /// Serve the ports of this configuration file (TOML; see
    /// `serialhub print-config`) instead of one port from flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = PORT_FLAGS)]
    pub(crate) config: Option<PathBuf>,
    /// The port's name in logs (letters, digits, '_', '.', '-'). Default:
    /// the device's file name (ttyUSB0), or sim-MODE.
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) line: LineArgs,
    /// Where clients connect (repeatable): tcp:HOST:PORT, unix:PATH,
    /// pty:PATH (a virtual serial port), rfc2217:HOST:PORT (Telnet with RFC
    /// 2217 port control) or modbus-tcp:HOST:PORT (a Modbus TCP gateway;
    /// needs --writers transaction), then options: ,access=rw|ro
    /// ,framing=none|line|gap|modbus-rtu (gap and modbus-rtu need --writers
    /// transaction) ,delimiter=lf|cr|nul|0xNN ,max-line=SIZE (1 to 64KiB)
    /// ,gap=DURATION (100us to 10s) ,max-request=SIZE (1 to 64KiB)
    /// ,see=own|all (transaction writers) ,lock=none|inband
    /// ,slow-reader=POLICY ,mode=0000-0777 (unix) ,control=first|any|none
    /// (rfc2217, pty) ,keepalive=DURATION|off (tcp, rfc2217, modbus-tcp;
    /// default 30s) ,from=CIDR (tcp, rfc2217, modbus-tcp; repeatable: only
    /// clients from these networks) ,tls (tcp, rfc2217, modbus-tcp: clients
    /// speak TLS; needs --tls-cert and --tls-key)
    /// ,handshake-timeout=DURATION (100ms to 60s; default 10s) ,insecure
    /// (plain text on an address that is not loopback, knowingly).
    /// modbus-tcp takes only access, keepalive, from, tls,
    /// handshake-timeout and insecure. Default: tcp:127.0.0.1:7000. A network endpoint on another
    /// address (tcp:0.0.0.0:PORT accepts remote clients) is refused unless it
    /// says tls or insecure.
    #[arg(short, long = "listen", value_name = "ENDPOINT")]
    pub(crate) listen: Vec<EndpointSpec>,
    /// A role for the clients of TLS endpoints with a certificate of this
    /// identity (repeatable): ROLE:IDENTITY, where ROLE is rw or ro (read
    /// only: writes discarded and counted, settings answered with the values
    /// in force, Modbus read functions only) and IDENTITY is cn:NAME,
    /// dns:NAME, sha256:HEX (the certificate's fingerprint) or any. Without
    /// it every verified certificate is rw; with it, one that matches none
    /// is refused. A named identity decides over any; ro over rw. Clients
    /// without a certificate are ruled by their endpoint's access=.
    #[arg(long = "allow", value_name = "ROLE:IDENTITY")]
    pub(crate) allow: Vec<AllowRule>,
    /// What happens to a client that reads slower than the device sends.
    #[arg(long, value_enum, default_value_t = SlowReaderPolicy::Disconnect)]
    pub(crate) slow_reader: SlowReaderPolicy,
    /// Bytes queued per client before the slow-reader policy acts, e.g. 64KiB
    /// (4KiB to 64MiB). Default: 2 s of line time, at least 16KiB (1MiB
    /// with --no-pacing).
    #[arg(long, value_parser = parse_bytes, value_name = "SIZE")]
    pub(crate) client_queue: Option<usize>,
    /// Bytes of what the device said that a web terminal shows to a viewer
    /// that joins, and resumes from after a network blip (0 to 16MiB; 0:
    /// none).
    #[arg(long, value_parser = parse_bytes, value_name = "SIZE", default_value = "64KiB")]
    pub(crate) scrollback: usize,
    /// Most line time that bytes accepted from clients may wait before reaching
    /// the wire (socket buffers plus serialhub's own queue), e.g. 1s, 500ms
    /// (10ms to 1h; serialhub's own queue holds at most 64MiB).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s", value_name = "DURATION")]
    pub(crate) max_inflight: Duration,
    /// Log the port's counters (bytes, clients, drops, kicks) this often when
    /// they have changed; 0 turns it off (else 1s to 1day).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s", value_name = "DURATION")]
    pub(crate) stats_every: Duration,
    /// Do not pace writes at the line rate; rely on the driver's output queue
    /// and blocking writes alone. For devices faster than their nominal baud
    /// (USB CDC-ACM) and ptys used as pipes. Pacing is what keeps the
    /// in-flight bound on drivers that do not report their output queue.
    #[arg(long)]
    pub(crate) no_pacing: bool,
    /// Keep the line settings and modem lines a client set after it leaves.
    /// By default, when the last client that changed them leaves, the port
    /// returns to its configured settings.
    #[arg(long)]
    pub(crate) keep_settings: bool,
    /// Most clients connected at once, over all endpoints (1 to 65536).
    #[arg(long, default_value_t = 256)]
    pub(crate) max_clients: usize,
    /// A client holding the exclusive write lock loses it after writing
    /// nothing for this long (10ms to 1h).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s", value_name = "DURATION")]
    pub(crate) lock_idle: Duration,
    /// A client holding the exclusive write lock loses it after holding it
    /// this long, however busy it is (100ms to 1day).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s", value_name = "DURATION")]
    pub(crate) lock_max: Duration,
    /// Serve even if the device is not there, and open it when it appears
    /// (without it, a missing device stops start-up).
    #[arg(long)]
    pub(crate) wait_for_device: bool,
    /// How clients' writes reach the device. merge: bytes go as they come,
    /// each client's in order. transaction: each client's writes are cut
    /// into requests (by the endpoint's framing; gap by default), one
    /// request runs at a time, and its reply goes to the client that asked.
    #[arg(long, value_enum, default_value_t = Writers::Merge)]
    pub(crate) writers: Writers,
    /// transaction: a request with no complete reply after this long ends as
    /// a timeout, logged and counted (10ms to 1min).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s", value_name = "DURATION")]
    pub(crate) reply_timeout: Duration,
    /// transaction: silence after a reply's first byte that ends it, where
    /// its framing cannot tell its end (1ms to 10s). Default: 3.5 characters
    /// at the line rate, at least 10ms.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) reply_gap: Option<Duration>,
    /// transaction: who gets device output that answers no request: all
    /// clients, nobody (drop, counted), or the last requester (last).
    /// Clients with see=all get it either way.
    #[arg(long, value_enum, default_value_t = Unsolicited::All)]
    pub(crate) unsolicited: Unsolicited,
    /// On shutdown, how long to keep writing bytes already accepted for the
    /// device (0 to 1h).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s", value_name = "DURATION")]
    pub(crate) drain_timeout: Duration,
    /// Keep a traffic log of the port in this directory, which must exist.
    #[arg(long, value_name = "DIR")]
    pub(crate) log: Option<PathBuf>,
    /// Traffic log format: text (hex and ASCII side by side) or json (JSON lines).
    #[arg(long, value_enum, default_value_t = Format::Text, requires = "log")]
    pub(crate) log_format: Format,
    /// Start a new traffic log file before one would grow past SIZE, e.g. 64KiB
    /// (4KiB to 1TiB).
    #[arg(long, value_parser = parse_bytes, default_value = "16MiB", value_name = "SIZE", requires = "log")]
    pub(crate) log_max_size: usize,
    /// Most traffic log files kept, the current one included; older ones are
    /// deleted (1 to 1000).
    #[arg(long, default_value_t = DEFAULT_KEEP, value_name = "N", requires = "log")]
    pub(crate) log_keep: usize,
    /// TLS: the server's certificate chain (PEM, its own certificate
    /// first), for endpoints with the `tls` option and --metrics-tls.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// TLS: the private key of --tls-cert (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// TLS: a CA bundle (PEM). Clients of TLS endpoints must then present a
    /// certificate that chains to it (mutual TLS).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_client_ca: Option<PathBuf>,
    /// TLS: a certificate revocation list (PEM) for --tls-client-ca; a
    /// client whose certificate it revokes is refused (repeatable).
    #[arg(long, value_name = "FILE", requires = "tls_client_ca")]
    pub(crate) tls_crl: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) http: http::HttpFlags,
    #[command(flatten)]
    pub(crate) fleet: fleet::FleetFlags,
}

#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Log files, or directories of them (read oldest first).
    #[arg(required = true, value_name = "FILE")]
    pub(crate) files: Vec<PathBuf>,
    /// Only data from the device (with --tx: data both ways).
    #[arg(long)]
    pub(crate) rx: bool,
    /// Only data to the device (with --rx: data both ways).
    #[arg(long)]
    pub(crate) tx: bool,
    /// Only records of one client: `#ID`, or text its name contains (tcp:10.0.0.5).
    #[arg(long, value_name = "CLIENT")]
    pub(crate) client: Option<String>,
    /// Only records at or after TIME: RFC 3339 (2025-01-02T03:04:05Z) or a
    /// duration ago (10m, 2h).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub(crate) since: Option<OffsetDateTime>,
    /// Only records before TIME (as for --since).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub(crate) until: Option<OffsetDateTime>,
    /// Keep printing records as they are written, across file rotations.
    #[arg(short, long)]
    pub(crate) follow: bool,
    /// Write only the bytes that went one way (rx: from the device, tx: to
    /// it) to stdout, exactly as they passed, for replaying or diffing a
    /// capture.
    #[arg(long, value_enum, value_name = "DIRECTION", conflicts_with_all = ["rx", "tx", "json"])]
    pub(crate) raw: Option<Direction>,
    /// Print records as JSON lines instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SimArgs {
    /// echo: send back what it receives; source: send the counter pattern;
    /// sink: receive and check the counter pattern; modbus: a Modbus RTU
    /// slave with units 1 to 3. (loopback is refused: it has no tty, and is
    /// only `serve --device sim:loopback`.)
    #[arg(short, long, value_enum)]
    pub(crate) mode: SimMode,
    /// modbus: how long the slave waits before it answers (0 to 10s;
    /// default 5ms).
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    pub(crate) reply_delay: Option<Duration>,
    /// Line rate to pace at (8N1: baud/10 bytes per second), 50 to 20000000.
    #[arg(short, long, default_value_t = 9600)]
    pub(crate) baud: u32,
    /// Symlink to create at this path, pointing at the simulator's tty.
    #[arg(long)]
    pub(crate) link: PathBuf,
}

fn parse_device(s: &str) -> Result<DeviceSpec, String> {
    s.parse()
}

/// Parses an RFC 3339 time, or a duration meaning that long ago.
pub(crate) fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    if let Some(t) = crate::traffic::text::parse_ts(s) {
        return Ok(t);
    }
    let ago = humantime::parse_duration(s).map_err(|_| {
        format!("{s:?} is neither an RFC 3339 time (2025-01-02T03:04:05Z) nor a duration (10m)")
    })?;
    let ago = time::Duration::try_from(ago).map_err(|_| format!("{s} is too long ago"))?;
    OffsetDateTime::now_utc()
        .checked_sub(ago)
        .ok_or_else(|| format!("{s} is too long ago"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_examples_parse() {
        let mut commands = Vec::new();
        let mut lines = SERVE_EXAMPLES.lines();
        while let Some(line) = lines.next() {
            let Some(cmd) = line.trim().strip_prefix("serialhub ") else {
                continue;
            };
            let mut cmd = cmd.to_owned();
            while let Some(head) = cmd.strip_suffix('\\') {
                cmd = format!("{head} {}", lines.next().unwrap().trim());
            }
            commands.push(cmd);
        }
        assert!(!commands.is_empty());
        for cmd in commands {
            let args = std::iter::once("serialhub").chain(cmd.split_whitespace());
            assert!(Cli::try_parse_from(args).is_ok(), "{cmd}");
        }
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
        assert_eq!(a.log, None);
    }

    #[test]
    fn log_flags_need_a_log_dir() {
        let serve = |extra: &[&str]| {
            let mut args = vec!["serialhub", "serve", "-d", "sim:echo"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        let Command::Serve(a) = serve(&["--log", "/tmp"]).unwrap().command else {
            panic!("not serve")
        };
        assert_eq!(a.log_max_size, 16 << 20);
        assert_eq!(a.log_keep, 5);
        assert_eq!(a.log_format, Format::Text);
        let Command::Serve(a) = serve(&[
            "--log",
            "/tmp",
            "--log-max-size",
            "64KiB",
            "--log-format",
            "json",
        ])
        .unwrap()
        .command
        else {
            panic!("not serve")
        };
        assert_eq!(a.log_max_size, 65536);
        assert_eq!(a.log_format, Format::Json);
        assert!(serve(&["--log-keep", "3"]).is_err());
    }

    #[test]
    fn config_replaces_the_port_flags() {
        let serve = |extra: &[&str]| {
            let mut args = vec!["serialhub", "serve"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        let Command::Serve(a) = serve(&["--config", "hub.toml"]).unwrap().command else {
            panic!("not serve")
        };
        assert_eq!(a.config, Some(PathBuf::from("hub.toml")));
        assert_eq!(a.device, None);
        assert!(serve(&[]).is_err(), "neither --device nor --config");
        for flag in [
            &["-d", "sim:echo"][..],
            &["--name", "x"],
            &["-b", "115200"],
            &["-l", "tcp:127.0.0.1:0"],
            &["--max-clients", "3"],
            &["--no-pacing"],
            &["--log", "/tmp"],
        ] {
            let mut args = vec!["--config", "hub.toml"];
            args.extend_from_slice(flag);
            let e = serve(&args).expect_err(&format!("{flag:?} with --config"));
            assert!(
                e.to_string().contains("cannot be used with"),
                "{flag:?}: {e}"
            );
        }
        assert!(serve(&["-v", "--config", "hub.toml"]).is_ok());
        assert!(Cli::try_parse_from(["serialhub", "check-config", "hub.toml"]).is_ok());
        assert!(Cli::try_parse_from(["serialhub", "check-config"]).is_err());
        assert!(Cli::try_parse_from(["serialhub", "print-config"]).is_ok());
    }

    #[test]
    fn times_are_rfc3339_or_ago() {
        let t = parse_time("2025-01-02T03:04:05.25Z").unwrap();
        assert_eq!(t, time::macros::datetime!(2025-01-02 03:04:05.25 UTC));
        let ago = parse_time("10m").unwrap();
        let d = OffsetDateTime::now_utc() - ago;
        assert!(d >= time::Duration::minutes(10) && d < time::Duration::minutes(11));
        assert!(parse_time("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn raw_excludes_other_output_choices() {
        let log = |extra: &[&str]| {
            let mut args = vec!["serialhub", "log", "f.log"];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args)
        };
        assert!(log(&["--raw", "tx"]).is_ok());
        assert!(log(&["--raw", "tx", "--rx"]).is_err());
        assert!(log(&["--raw", "tx", "--json"]).is_err());
        assert!(log(&[]).is_ok());
        assert!(Cli::try_parse_from(["serialhub", "log"]).is_err());
    }
}
