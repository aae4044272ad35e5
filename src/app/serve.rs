//! `serve`: the ports, control socket and metrics address that the flags or
//! a configuration file ask for, checked before anything is bound, then the
//! daemon that runs them until `shutdown`.

use std::path::PathBuf;

use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::config::{self, PortConfig};
use crate::control::{self, ControlConfig, discover};
use crate::daemon::{self, PortPlan};
use crate::fleet::config::{FleetSettings, Origin};
use crate::fleet::registry::Registry;

use super::Error;

/// Serves what `args` describe; `control` and `metrics` are `--control` and
/// `--metrics`, given before `serve` or after it.
pub(crate) async fn run(
    args: ServeArgs,
    control: Option<PathBuf>,
    metrics: Option<String>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let control = control.map(|path| ControlConfig {
        path,
        mode: control::DEFAULT_MODE,
    });
    let flags = FleetSettings::from(&args.fleet);
    let mut file_fleet = FleetSettings::default();
    let (plans, file_control, file_metrics, https) = match &args.config {
        Some(file) => {
            let daemon = config::load(file).map_err(Error::File)?;
            file_fleet = daemon.fleet.clone();
            // --metrics overrides the file's, and is checked as it is.
            if let Some(addr) = &metrics {
                config::check_metrics(addr).map_err(Error::Settings)?;
            }
            let plans = daemon.ports.into_iter().map(PortPlan::from_file).collect();
            let control = daemon.control.unwrap_or(config::ControlConfig {
                socket: None,
                mode: control::DEFAULT_MODE,
            });
            // HTTPS with the file's [tls], as its [metrics] says.
            let https = match &daemon.metrics {
                Some(m) if m.tls => daemon.tls.clone(),
                _ => None,
            };
            (
                plans,
                Some(control),
                daemon.metrics.map(|m| m.listen),
                https,
            )
        }
        None => {
            let config = PortConfig::from_args(&args).map_err(Error::Settings)?;
            let control = control.as_ref().map(|c| c.path.as_path());
            config::check_flags(&config, control, metrics.as_deref()).map_err(Error::Settings)?;
            if args.metrics_tls && metrics.is_none() {
                return Err(Error::Settings(config::ConfigError::NotApplicable {
                    option: "--metrics-tls",
                    only: "--metrics",
                }));
            }
            let https = config.tls.clone().filter(|_| args.metrics_tls);
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
    let metrics = metrics
        .or(file_metrics)
        .map(|addr| control::http::MetricsListen { addr, tls: https });
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
