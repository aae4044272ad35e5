//! Devices: what a port is opened on, and the loops that move its bytes.
//!
//! A device is a tty path, a built-in simulator (`sim:echo`, `sim:source`,
//! `sim:sink`, `sim:modbus`), or a remote port (`rfc2217://HOST:PORT`,
//! `tcp://HOST:PORT`, or a fleet port `fleet://HOST/PORT`, see [`remote`]). A simulator runs in-process on a
//! pseudo-terminal and is then opened like any other tty, so every byte takes
//! the real termios path. The loops see any of them as a [`DeviceIo`]. [`run`] owns the open port: one reading loop publishes into the hub,
//! one writing loop drains the hub's write queue at line rate (see
//! [`writer`]). If the device fails (a USB adapter unplugged) both loops stop,
//! clients stay connected, and the port is reopened when the device returns;
//! bytes not yet written wait in the write queue, so none is lost.

mod fd;
pub(crate) mod io;
pub(crate) mod loopback;
pub(crate) mod remote;
pub mod sim;
pub(crate) mod tty;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::fds::FdReserve;
use crate::fleet::address::FleetPort;
use crate::hub::status::DeviceState;
use crate::hub::{Hub, WriteQueue};
use crate::line::LineSettings;
use crate::modem::ModemOutputs;
use crate::traffic::Event;
use crate::watch::Watch;
pub(crate) use fd::register as register_fd;
pub(crate) use io::DeviceIo;
use nix::sys::inotify::AddWatchFlags;
pub use sim::set_nonblocking;
pub use sim::{Sim, SimMode, SimSpec};
pub(crate) use tty::{Tty, TtyError};
pub(crate) use writer::DeviceWriter;

/// Where the port's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DeviceSpec {
    Tty(PathBuf),
    Sim(SimSpec),
    /// A remote port: `rfc2217://HOST:PORT` or `tcp://HOST:PORT`, with
    /// the options of its URL (`?ign_set_control`).
    Remote {
        protocol: remote::Protocol,
        addr: String,
        options: remote::RemoteOptions,
    },
    /// A port of another host of the fleet: `fleet://HOST/PORT`.
    Fleet(FleetPort),
}

impl std::str::FromStr for DeviceSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(mode) = s.strip_prefix("sim:") {
            return mode.parse().map(DeviceSpec::Sim);
        }
        if let Some(name) = s.strip_prefix("fleet://") {
            return name.parse().map(DeviceSpec::Fleet);
        }
        if let Some(url) = remote::RemoteUrl::parse(s) {
            let remote::RemoteUrl {
                protocol,
                addr,
                options,
            } = url?;
            return Ok(DeviceSpec::Remote {
                protocol,
                addr,
                options,
            });
        }
        if s.is_empty() {
            return Err("device path is empty".into());
        }
        Ok(DeviceSpec::Tty(PathBuf::from(s)))
    }
}

impl DeviceSpec {
    /// A remote port's part of a port name: `HOST-PORT` for an address,
    /// `HOST-PORT` for a fleet port too; empty for any other device.
    pub(crate) fn remote_name(&self) -> String {
        match self {
            DeviceSpec::Remote { addr, .. } => addr.replace(':', "-"),
            DeviceSpec::Fleet(p) => format!("{}-{}", p.host, p.port),
            DeviceSpec::Tty(_) | DeviceSpec::Sim(_) => String::new(),
        }
    }
}

impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Tty(p) => write!(f, "{}", p.display()),
            DeviceSpec::Sim(s) => write!(f, "sim:{s}"),
            DeviceSpec::Remote {
                protocol,
                addr,
                options,
            } => write!(f, "{}://{addr}{}", protocol.scheme(), options.query()),
            DeviceSpec::Fleet(port) => write!(f, "fleet://{port}"),
        }
    }
}

/// A device: its path and, once open, its tty; plus the simulator behind
/// it if it is one.
#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) line: LineSettings,
    /// Pace writes at the line rate (see [`writer`]).
    pub(crate) pacing: bool,
    path: PathBuf,
    /// Set for a remote port, which is reconnected rather than reopened.
    remote: Option<remote::Target>,
    /// `None` while the device is not there (waiting for it at start-up).
    tty: Option<Arc<DeviceIo>>,
    /// Keeps an in-process simulator alive as long as the device.
    _sim: Option<Sim>,
}

/// Size of one device read; also the largest chunk fanned out to clients.
pub(crate) const READ_CHUNK: usize = 4096;
/// Delay before the first reopen attempt, doubled up to `REOPEN_MAX`, so a
/// device that comes back is open again within a second.
const REOPEN_MIN: Duration = Duration::from_millis(200);
const REOPEN_MAX: Duration = Duration::from_secs(1);

impl Device {
    /// Opens the device, starting the simulator first if it is one.
    pub(crate) async fn open(spec: &DeviceSpec, line: LineSettings) -> Result<Device, TtyError> {
        let (path, sim) =
            match spec {
                DeviceSpec::Tty(p) => (p.clone(), None),
                DeviceSpec::Sim(SimSpec {
                    mode: SimMode::Loopback,
                    ..
                }) => {
                    return Ok(Device {
                        line,
                        pacing: true,
                        path: PathBuf::from(spec.to_string()),
                        remote: None,
                        tty: Some(Arc::new(DeviceIo::Loopback(loopback::Loopback::default()))),
                        _sim: None,
                    });
                }
                // Found through the broker, which may not be reached yet (or
                // the port's host not be up): the device task connects in the
                // background, so start-up never waits for the fleet.
                DeviceSpec::Fleet(port) => {
                    return Ok(Device {
                        line,
                        pacing: true,
                        path: PathBuf::from(spec.to_string()),
                        remote: Some(remote::Target::Fleet(port.clone())),
                        tty: None,
                        _sim: None,
                    });
                }
                DeviceSpec::Remote {
                    protocol,
                    addr,
                    options,
                } => {
                    let target = remote::Target::Tcp {
                        protocol: *protocol,
                        addr: addr.clone(),
                        options: *options,
                    };
                    // Nothing to restore: no client has set a modem line yet.
                    let r = target.connect(&line, None, true).await.map_err(|reason| {
                        TtyError::Open {
                            path: PathBuf::from(spec.to_string()),
                            reason,
                        }
                    })?;
                    return Ok(Device {
                        line,
                        pacing: true,
                        path: PathBuf::from(target.shown()),
                        remote: Some(target),
                        tty: Some(Arc::new(DeviceIo::Remote(Box::new(r)))),
                        _sim: None,
                    });
                }
                DeviceSpec::Sim(sim) => {
                    let sim = Sim::spawn_spec(*sim, &line).map_err(|reason| TtyError::Open {
                        path: PathBuf::from(spec.to_string()),
                        reason,
                    })?;
                    (sim.path().to_owned(), Some(sim))
                }
            };
        let tty = Arc::new(DeviceIo::Tty(Tty::open(&path, &line)?));
        Ok(Device {
            line,
            pacing: true,
            path,
            remote: None,
            tty: Some(tty),
            _sim: sim,
        })
    }

    /// A device that is not there yet: [`run`] opens it when it appears
    /// (a tty) or connects when it answers (a remote port).
    pub(crate) fn absent(spec: &DeviceSpec, line: LineSettings) -> Option<Device> {
        let (path, remote) = match spec {
            DeviceSpec::Tty(p) => (p.clone(), None),
            DeviceSpec::Remote { .. } | DeviceSpec::Fleet(_) => {
                let target = target_of(spec)?;
                (PathBuf::from(target.shown()), Some(target))
            }
            DeviceSpec::Sim(_) => return None,
        };
        Some(Device {
            line,
            pacing: true,
            path,
            remote,
            tty: None,
            _sim: None,
        })
    }

    /// The tty's path (a simulator's pty; a remote port's address).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// False while the device is waited for (absent at start-up).
    pub(crate) fn is_open(&self) -> bool {
        self.tty.is_some()
    }
}

/// Moves bytes between `device` and `hub` until `shutdown`, then writes what
/// is still queued for the device, for at most `drain` time. A device that
/// is absent, or goes away, is opened again when it (re)appears; clients'
/// writes wait meanwhile.
pub(crate) async fn run(
    mut device: Device,
    hub: Arc<Hub>,
    writes: WriteQueue,
    fds: Arc<FdReserve>,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let mut writer = DeviceWriter::new(writes, &device.line, device.pacing);
    let traffic = hub.traffic().clone();
    let path = device.path.display().to_string();
    traffic.record(Event::Settings(settings_text(&device.line)));
    hub.line_applied(device.line);
    let mut opened_before = device.tty.is_some();
    if !opened_before {
        hub.set_device_state(DeviceState::Waiting);
    }
    loop {
        let tty = match &device.tty {
            Some(t) => t.clone(),
            // With the settings in force now, which clients may have changed,
            // and the modem lines they set (a remote port; see `reopen`).
            None => match reopen(
                &device,
                writer.line(),
                writer.lines_set(&hub),
                &fds,
                &shutdown,
            )
            .await
            {
                Some(t) => {
                    if opened_before {
                        info!(device = %path, "device reopened");
                    } else {
                        info!(device = %path, "device appeared; open");
                    }
                    opened_before = true;
                    let t = Arc::new(t);
                    device.tty = Some(t.clone());
                    t
                }
                None => {
                    traffic.record(Event::DeviceClose(path.clone()));
                    hub.set_device_state(DeviceState::Closed);
                    return;
                }
            },
        };
        traffic.record(Event::DeviceOpen(path.clone()));
        hub.set_device_state(DeviceState::Open { tty: path.clone() });
        let lost = tokio::select! {
            e = read_loop(&tty, &hub) => e,
            e = writer.run(&tty, &hub) => e,
            e = watch_modem(&tty, &hub) => e,
            () = shutdown.cancelled() => {
                match tokio::time::timeout(drain, writer.drain(&tty, &hub)).await {
                    Ok(Ok(())) => info!("device writes drained"),
                    Ok(Err(e)) => warn!(error = %e, "device failed while draining writes"),
                    Err(_) => warn!(unwritten = hub.writes_in_flight(),
                        "gave up draining device writes after {drain:?}"),
                }
                traffic.record(Event::DeviceClose(path.clone()));
                hub.set_device_state(DeviceState::Closed);
                return;
            }
        };
        warn!(device = %path, error = %lost, "device lost; will reopen");
        hub.set_device_state(DeviceState::Reconnecting {
            error: lost.to_string(),
        });
        traffic.record(Event::DeviceLost {
            path: path.clone(),
            error: lost.to_string(),
        });
        device.tty = None;
    }
}

/// Reads the device and publishes every chunk. Returns why it stopped.
///
/// Not cancel safe in one respect: if cancelled inside a blocking fan-out,
/// some clients got the last chunk and others did not. It is only cancelled
/// when the device is lost or on shutdown.
async fn read_loop(tty: &DeviceIo, hub: &Hub) -> std::io::Error {
    // The buffer is made when the device first has something to say, so a
    // port whose device stays silent holds none (issue 10: a daemon serving
    // many idle ports).
    if let Err(e) = tty.readable().await {
        return e;
    }
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match tty.read(&mut buf).await {
            Ok(0) => return std::io::Error::other("device hung up"),
            Ok(n) => {
                if let DeviceIo::Remote(r) = tty
                    && let Ok(inputs) = r.modem_inputs()
                {
                    hub.settings.inputs_changed(inputs);
                }
                hub.publish(Bytes::copy_from_slice(&buf[..n])).await
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return e,
        }
    }
}

/// How often a tty's modem inputs are read while a client watches them
/// (RFC 2217's NOTIFY-MODEMSTATE). Not every driver supports TIOCMIWAIT,
/// and a thread blocked in it could not be stopped; a poll costs nothing
/// while nobody watches.
const MODEM_POLL: Duration = Duration::from_millis(100);

/// Tells the hub of the device's modem inputs and line errors while someone
/// watches them.
/// A device without modem lines (a pty) is never polled again. Never ends.
async fn watch_modem(io: &DeviceIo, hub: &Hub) -> std::io::Error {
    loop {
        hub.settings.watched().await;
        if io.modem_inputs().is_err() && io.line_errors().is_err() {
            return std::future::pending().await;
        }
        io.publish_state(&hub.settings);
        tokio::time::sleep(MODEM_POLL).await;
    }
}

/// Opens the device again, or connects again to a remote port, with `line`.
/// A remote port is also sent `lines`, the DTR and RTS its clients set, if
/// they set any: the server may have restarted with other lines, and
/// serialhub answers its clients with those. (A tty's lines are left to its
/// driver, which raises both on open.)
async fn reopen(
    device: &Device,
    line: &LineSettings,
    lines: Option<ModemOutputs>,
    fds: &FdReserve,
    shutdown: &CancellationToken,
) -> Option<DeviceIo> {
    let path = device.path.as_path();
    let mut delay = REOPEN_MIN;
    let mut attempts = 0u64;
    // Hear of the device appearing (created, moved or linked in place, or
    // its permissions set) at once; the timer is the fallback where the
    // directory cannot be watched (it does not exist yet, or no descriptor
    // is to be had).
    let appears = AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_ATTRIB;
    let watch = match device.remote {
        Some(_) => None,
        None => path.parent().and_then(|dir| Watch::new(dir, appears).ok()),
    };
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = changed(watch.as_ref()) => {}
            () = shutdown.cancelled() => return None,
        }
        let opened = match &device.remote {
            Some(target) => {
                // Boxed: see `io`; connecting is rare, the task long-lived.
                Box::pin(target.connect(line, lines, device.pacing))
                    .await
                    .map(|r| DeviceIo::Remote(Box::new(r)))
                    .map_err(|e| e.to_string())
            }
            // With the reserve's descriptors, so clients cannot starve it.
            None => fds
                .with_reserve(|| Tty::open(path, line))
                .map(DeviceIo::Tty)
                .map_err(|e| e.to_string()),
        };
        match opened {
            Ok(t) => return Some(t),
            Err(e) => {
                attempts += 1;
                if attempts == 1 || attempts.is_power_of_two() {
                    warn!(error = %e, attempts, "device still unavailable");
                }
            }
        }
        delay = (delay * 2).min(REOPEN_MAX);
    }
}

/// The remote port `spec` names, if it names one.
fn target_of(spec: &DeviceSpec) -> Option<remote::Target> {
    match spec {
        DeviceSpec::Remote {
            protocol,
            addr,
            options,
        } => Some(remote::Target::Tcp {
            protocol: *protocol,
            addr: addr.clone(),
            options: *options,
        }),
        DeviceSpec::Fleet(port) => Some(remote::Target::Fleet(port.clone())),
        DeviceSpec::Tty(_) | DeviceSpec::Sim(_) => None,
    }
}

/// Waits for events on `watch`, or forever without one.
async fn changed(watch: Option<&Watch>) {
    match watch {
        Some(w) => {
            if w.next().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// The serial settings as the traffic log states them.
fn settings_text(line: &LineSettings) -> String {
    let flow = format!("{:?}", line.flow_control).to_lowercase();
    format!("{line} flow={flow}")
}

/// Counts written bytes; kept here so the writer stays pure I/O.
fn count_tx(hub: &Hub, n: usize) {
    hub.stats.device_tx.fetch_add(n as u64, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_spec_parses_paths_and_sims() {
        assert_eq!(
            "/dev/ttyUSB0".parse(),
            Ok(DeviceSpec::Tty("/dev/ttyUSB0".into()))
        );
        assert_eq!(
            "sim:echo".parse(),
            Ok(DeviceSpec::Sim(SimMode::Echo.into()))
        );
        assert_eq!(
            "sim:sink".parse::<DeviceSpec>().unwrap().to_string(),
            "sim:sink"
        );
        assert_eq!(
            "rfc2217://host:7000".parse(),
            Ok(DeviceSpec::Remote {
                protocol: remote::Protocol::Rfc2217,
                addr: "host:7000".into(),
                options: remote::RemoteOptions::default(),
            })
        );
        assert_eq!(
            "tcp://[::1]:4001"
                .parse::<DeviceSpec>()
                .unwrap()
                .to_string(),
            "tcp://[::1]:4001"
        );
        assert_eq!(
            "rfc2217://host:4000?ign_set_control"
                .parse::<DeviceSpec>()
                .unwrap()
                .to_string(),
            "rfc2217://host:4000?ign_set_control"
        );
        for bad in [
            "rfc2217://host",
            "tcp://:7000",
            "tcp://h:0",
            "rfc2217://h:99999",
        ] {
            assert!(
                bad.parse::<DeviceSpec>().unwrap_err().contains("HOST:PORT"),
                "{bad}"
            );
        }
        assert_eq!(
            "fleet://lab1/ttyUSB0.1".parse::<DeviceSpec>().unwrap(),
            DeviceSpec::Fleet("lab1/ttyUSB0.1".parse().unwrap())
        );
        assert_eq!(
            "fleet://lab1/ttyUSB0.1"
                .parse::<DeviceSpec>()
                .unwrap()
                .to_string(),
            "fleet://lab1/ttyUSB0.1"
        );
        for bad in ["fleet://lab1", "fleet://lab.1/x", "fleet:///x"] {
            let e = bad.parse::<DeviceSpec>().unwrap_err();
            assert!(
                e.contains("HOST/PORT") || e.contains("fleet host name"),
                "{bad}: {e}"
            );
        }
        let e = "sim:nope".parse::<DeviceSpec>().unwrap_err();
        assert!(e.contains("echo, source, sink, modbus or loopback"), "{e}");
        assert!("".parse::<DeviceSpec>().is_err());
    }

    #[test]
    fn device_spec_parses_modbus_reply_delay() {
        let spec = |s: &str| match s.parse::<DeviceSpec>() {
            Ok(DeviceSpec::Sim(sim)) => Ok(sim),
            Ok(other) => panic!("{s} parsed as {other:?}"),
            Err(e) => Err(e),
        };
        assert_eq!(
            spec("sim:modbus").unwrap().reply_delay,
            sim::DEFAULT_REPLY_DELAY
        );
        let s = spec("sim:modbus,reply-delay=20ms").unwrap();
        assert_eq!(s.mode, SimMode::Modbus);
        assert_eq!(s.reply_delay, Duration::from_millis(20));
        assert_eq!(
            DeviceSpec::Sim(s).to_string(),
            "sim:modbus,reply-delay=20ms"
        );
        assert_eq!(
            spec("sim:modbus,reply-delay=0s").unwrap().reply_delay,
            Duration::ZERO
        );
        for (bad, why) in [
            ("sim:echo,reply-delay=5ms", "only to sim:modbus"),
            ("sim:modbus,reply-delay=11s", "out of range (0 to 10s)"),
            ("sim:modbus,reply-delay=fast", "try 5ms"),
            ("sim:modbus,delay=5ms", "unknown simulator option"),
        ] {
            let e = spec(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
