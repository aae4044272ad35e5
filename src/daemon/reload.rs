//! Carries a reload out: reads and checks the file, asks [`plan`] what to
//! do, does it, and says what it did in a [`ReloadReport`].
//!
//! A file with an error changes nothing. Every port that goes (removed, or
//! restarting) is stopped first, then ports are changed in place, then the
//! new and restarting ones start, so an endpoint that moves (a unix socket or
//! a pty link) is never deleted by its old owner after its new one made it.
//! A port that cannot be changed in place (an added endpoint cannot bind) is
//! restarted instead, and reports the same error if it cannot start either.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::certs;
use super::plan::plan;
use super::ports::{PortPlan, Running, start, stop_all};
use super::report::{Failed, ReloadReport};
use crate::config::{self, FileError};
use crate::fds::FdReserve;
use crate::fleet::config::FleetSettings;
use crate::tls::TlsAcceptor;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReloadError {
    #[error("serialhub was started with flags, not --config: there is nothing to reload")]
    NoFile,
    #[error("{0}; nothing changed")]
    Config(FileError),
}

/// Applies the configuration file anew (see the module docs), reads the TLS
/// files of the ports that keep running (and `metrics_tls`, the metrics
/// listener's) again, and logs what it did. `Err` if the file is bad
/// (nothing changed); otherwise the report, which names any port that could
/// not start (the others are as the file says) and TLS files that did not
/// load. Started with flags, only the TLS files are read again, if any.
pub(crate) async fn reload(
    running: &mut Vec<Running>,
    file: Option<&Path>,
    metrics_tls: Option<&TlsAcceptor>,
    fleet: &FleetSettings,
    fds: &Arc<FdReserve>,
    shutdown: &CancellationToken,
) -> Result<ReloadReport, ReloadError> {
    let Some(file) = file else {
        let report = ReloadReport {
            certificates: certs::reread(running.iter().map(|r| &r.port), metrics_tls),
            ..ReloadReport::default()
        };
        if report.certificates.none() {
            let e = ReloadError::NoFile;
            warn!("{e}");
            return Err(e);
        }
        log(&report);
        return Ok(report);
    };
    let new = match config::load(file) {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "reload refused: the configuration has an error; nothing changed");
            return Err(ReloadError::Config(e));
        }
    };
    // The fleet is joined once, at start-up.
    let fleet_changed = new.fleet != *fleet;
    let new: Vec<PortPlan> = new.ports.into_iter().map(PortPlan::from_file).collect();
    let mut report = carry_out(running, new, fds, shutdown).await;
    report.fleet_changed = fleet_changed;
    // Ports just started read their files as they started.
    let started: HashSet<&str> = report
        .restarted
        .iter()
        .chain(&report.added)
        .map(String::as_str)
        .collect();
    let kept = running
        .iter()
        .filter(|r| !started.contains(r.plan.name.as_str()))
        .map(|r| &r.port);
    report.certificates = certs::reread(kept, metrics_tls);
    log(&report);
    Ok(report)
}

fn log(report: &ReloadReport) {
    if report.complete() {
        info!("reloaded: {report}");
    } else {
        warn!("reloaded, not completely: {report}");
    }
}

/// Takes `running` to the ports of `new`, by the plan.
async fn carry_out(
    running: &mut Vec<Running>,
    new: Vec<PortPlan>,
    fds: &Arc<FdReserve>,
    shutdown: &CancellationToken,
) -> ReloadReport {
    let plan = plan(
        running.iter().map(|r| &r.plan.config),
        new.iter().map(|p| &p.config),
    );
    let mut report = ReloadReport {
        unchanged: plan.unchanged,
        removed: plan.remove,
        ..ReloadReport::default()
    };
    let mut old: HashMap<String, Running> = running
        .drain(..)
        .map(|r| (r.plan.name.clone(), r))
        .collect();
    let by_name: HashMap<&str, &PortPlan> = new.iter().map(|p| (p.name.as_str(), p)).collect();

    let going = report.removed.iter().chain(&plan.restart);
    stop_all(going.filter_map(|name| old.remove(name)).collect()).await;

    let mut failed_in_place = Vec::new();
    for change in plan.in_place {
        let (Some(mut r), Some(&p)) = (old.remove(&change.name), by_name.get(&*change.name)) else {
            continue; // The plan names only ports of both.
        };
        match r.port.reconfigure(&r.plan.config, &p.config).await {
            Ok(()) => {
                r.plan = p.clone();
                old.insert(change.name.clone(), r);
                report.in_place.push(change);
            }
            Err(e) => {
                warn!(port = %p.name, error = %e, "reload: cannot change the port in place; restarting it");
                failed_in_place.push(r);
            }
        }
    }
    stop_all(failed_in_place).await;

    // What is left of the old ports runs as the file says: unchanged, or
    // changed in place. The rest start, in the file's order.
    let added: HashSet<&str> = plan.add.iter().map(String::as_str).collect();
    for p in new {
        if let Some(mut r) = old.remove(&p.name) {
            r.plan = p;
            running.push(r);
            continue;
        }
        match start(&p, fds, shutdown).await {
            Ok(port) => {
                if added.contains(p.name.as_str()) {
                    report.added.push(p.name.clone());
                } else {
                    report.restarted.push(p.name.clone());
                }
                running.push(Running { plan: p, port });
            }
            Err(error) => {
                warn!(port = %p.name, error = %error, "reload: the port could not start");
                report.failed.push(Failed {
                    name: p.name,
                    error,
                });
            }
        }
    }
    report
}
