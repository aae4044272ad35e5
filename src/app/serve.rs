//! `serve`: the ports, control socket and metrics address that the flags or
//! a configuration file ask for, checked before anything is bound, then the
//! daemon that runs them until `shutdown`.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::config::http::{HttpConfig, HttpName};
use crate::config::{self, PortConfig};
use crate::control::{self, ControlConfig, discover};
use crate::daemon::{self, PortPlan};
use crate::fleet::config::{FleetSettings, Origin};
use crate::fleet::registry::Registry;
use crate::web::server::HttpListen;

use super::Error;

/// Serves what `args` describe; `control` and `http` are `--control` and
/// `--http` (or its old name `--metrics`), given before `serve` or after it.
pub(crate) async fn run(
    args: ServeArgs,
    control: Option<PathBuf>,
    http: Option<(String, HttpName)>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let metrics = http.as_ref().map(|(addr, _)| addr.clone());
    let flag = match http.as_ref().map(|(_, name)| *name) {
        Some(HttpName::Metrics) => "--metrics",
        _ => "--http",
    };
    let control = control.map(|path| ControlConfig {
        path,
        mode: control::DEFAULT_MODE,
    });
    let flags = FleetSettings::from(&args.fleet);
    let mut file_fleet = FleetSettings::default();
    let (plans, file_control, file_http, https) = match &args.config {
        Some(file) => {
            let daemon = config::load(file).map_err(Error::File)?;
            file_fleet = daemon.fleet.clone();
            // --metrics overrides the file's, and is checked as it is.
            if let Some(addr) = &metrics {
                config::check_metrics(addr, flag).map_err(Error::Settings)?;
            }
            let plans = daemon.ports.into_iter().map(PortPlan::from_file).collect();
            let control = daemon.control.unwrap_or(config::ControlConfig {
                socket: None,
                mode: control::DEFAULT_MODE,
            });
            // HTTPS with the file's [tls], as its [http] says (or
            // --http-tls).
            let https = match &daemon.http {
                Some(m) if m.tls => daemon.tls.clone(),
                _ => daemon.tls.clone().filter(|_| args.http.tls()),
            };
            (plans, Some(control), daemon.http, https)
        }
        None => {
            let config = PortConfig::from_args(&args).map_err(Error::Settings)?;
            let control = control.as_ref().map(|c| c.path.as_path());
            let given = metrics.as_deref().map(|addr| (addr, flag));
            config::check_flags(&config, control, given).map_err(Error::Settings)?;
            let tls = args.http.tls();
            if tls && metrics.is_none() {
                let (option, only) = if args.http.metrics_tls {
                    ("--metrics-tls", "--metrics")
                } else {
                    ("--http-tls", "--http")
                };
                return Err(Error::Settings(config::ConfigError::NotApplicable {
                    option,
                    only,
                }));
            }
            let https = config.tls.clone().filter(|_| tls);
            let plan = PortPlan {
                name: config.name.clone(),
                config,
                wait_for_device: args.wait_for_device,
            };
            (vec![plan], None, None, https)
        }
    };
    // The --fleet* flags win over the file's [fleet], and name themselves
    // in errors when given.
    let origin = if flags == FleetSettings::default() {
        Origin::File
    } else {
        Origin::Flags
    };
    let fleet = flags
        .over(file_fleet.clone())
        .resolve(origin)
        .map_err(|e| Error::Fleet(e.into()))?;
    if fleet.is_none()
        && let Some(p) = plans
            .iter()
            .find(|p| matches!(p.config.device, crate::device::DeviceSpec::Fleet(_)))
    {
        return Err(Error::Settings(config::ConfigError::FleetDevice {
            device: p.config.device.to_string(),
        }));
    }
    // --control wins, then the file's socket; else one of our own in the
    // runtime directory, where the control commands find it.
    let mode = file_control
        .as_ref()
        .map_or(control::DEFAULT_MODE, |c| c.mode);
    let named = control.or_else(|| {
        let path = file_control?.socket?;
        Some(ControlConfig { path, mode })
    });
    let control = match named {
        Some(c) => Some(c),
        None => match discover::prepare() {
            Ok(_) => Some(ControlConfig {
                path: discover::own_socket(),
                mode,
            }),
            // With flags there was never a socket unless asked for: serve on
            // without one rather than fail.
            Err(e) if args.config.is_none() => {
                tracing::warn!(
                    "{e}; no control socket, so `serialhub status` cannot reach this serve"
                );
                None
            }
            Err(e) => return Err(Error::ControlDir(e)),
        },
    };
    // --http wins over the file's listen; its users and insecure stay.
    let file_http = file_http.unwrap_or(HttpConfig {
        listen: None,
        tls: false,
        insecure: false,
        users: Vec::new(),
        name: HttpName::Http,
    });
    let (listen, name) = match http {
        Some((addr, name)) => (Some(addr), name),
        None => (file_http.listen, file_http.name),
    };
    if listen.is_none() && !file_http.users.is_empty() {
        tracing::warn!(
            "[[http.user]] given, but no HTTP listener: give --http ADDR or [http] listen"
        );
    }
    let metrics = listen.map(|addr| HttpListen {
        addr,
        tls: https,
        insecure: file_http.insecure || args.http.http_insecure,
        users: file_http.users,
        name,
    });
    // Last: a host name another live serialhub holds stops us here, before
    // any port is opened.
    let fleet = match fleet {
        Some(config) => Some(Registry::start(config).await.map_err(Error::Fleet)?),
        None => None,
    };
    daemon::run(
        plans,
        control,
        metrics,
        args.config,
        fleet,
        file_fleet,
        shutdown,
    )
    .await
    .map_err(Error::Daemon)
}
