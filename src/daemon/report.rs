//! What a reload did, and the one line that says it: the answer to
//! `serialhub reload` and the log line are both its [`Display`].
//!
//! `unchanged: lab1; changed in place: plc (line 9600 8N1 -> 19200 8N1,
//! +unix:/run/plc.sock); restarted: lab2; added: lab3; removed: old`, then,
//! if a port could not start, `failed to start: NAME: ERROR; ...`. A part
//! with no port is left out.
//!
//! [`Display`]: std::fmt::Display

use super::certs::Certificates;
use super::plan::InPlace;
use crate::port::PortError;

/// What a reload did to each port, by name. It can differ from the plan: a
/// port that could not be changed in place is restarted, and a port that
/// could not start is in `failed`.
#[derive(Debug, Default)]
pub(crate) struct ReloadReport {
    /// Not touched. In the running order.
    pub(crate) unchanged: Vec<String>,
    /// Changed in place, and how. In the running order.
    pub(crate) in_place: Vec<InPlace>,
    /// Stopped and started anew. In the file's order.
    pub(crate) restarted: Vec<String>,
    /// Started. In the file's order.
    pub(crate) added: Vec<String>,
    /// Stopped. In the running order.
    pub(crate) removed: Vec<String>,
    /// Ports of the file that are not running, and why.
    pub(crate) failed: Vec<Failed>,
    /// The TLS files read again for the ports that kept running.
    pub(crate) certificates: Certificates,
    /// The file's `[fleet]` differs from the one read at start-up, which
    /// is what runs until a restart.
    pub(crate) fleet_changed: bool,
}

/// A port of the file that could not start.
#[derive(Debug)]
pub(crate) struct Failed {
    pub(crate) name: String,
    pub(crate) error: PortError,
}

impl ReloadReport {
    /// Whether every port runs as the file says, on the TLS files as they
    /// are on disk.
    pub(crate) fn complete(&self) -> bool {
        self.failed.is_empty() && self.certificates.kept.is_empty()
    }
}

impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let changed: Vec<String> = self
            .in_place
            .iter()
            .map(|c| format!("{} ({})", c.name, c.change))
            .collect();
        let failed: Vec<String> = self
            .failed
            .iter()
            .map(|p| format!("{}: {}", p.name, p.error))
            .collect();
        let certificates = if self.certificates.none() {
            String::new()
        } else {
            self.certificates.to_string()
        };
        // Another resource a reload reads anew gets its part here.
        let parts = [
            ("unchanged", self.unchanged.join(", ")),
            ("changed in place", changed.join("; ")),
            ("restarted", self.restarted.join(", ")),
            ("added", self.added.join(", ")),
            ("removed", self.removed.join(", ")),
            ("failed to start", failed.join("; ")),
            ("TLS certificates", certificates),
            (
                "fleet",
                if self.fleet_changed {
                    "[fleet] changed, not applied: it takes a restart".to_owned()
                } else {
                    String::new()
                },
            ),
        ];
        let parts: Vec<String> = parts
            .into_iter()
            .filter(|(_, names)| !names.is_empty())
            .map(|(what, names)| format!("{what}: {names}"))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::daemon::plan::PortChange;
    use crate::endpoint::unix::UnixError;
    use crate::line::{FlowControl, LineSettings, Parity};

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|&s| s.to_owned()).collect()
    }

    fn line(baud: u32) -> LineSettings {
        LineSettings {
            baud,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow_control: FlowControl::None,
        }
    }

    fn in_use(path: &str) -> PortError {
        PortError::Unix(UnixError::InUse(PathBuf::from(path)))
    }

    #[test]
    fn the_readme_example_reads_as_the_readme_quotes_it() {
        let report = ReloadReport {
            unchanged: names(&["lab1"]),
            in_place: vec![InPlace {
                name: "plc".into(),
                change: PortChange {
                    line: Some((line(9600), line(19200))),
                    removed: vec![],
                    added: vec!["unix:/run/plc.sock".parse().unwrap()],
                },
            }],
            restarted: names(&["lab2"]),
            added: names(&["lab3"]),
            ..ReloadReport::default()
        };
        assert!(report.complete());
        assert_eq!(
            report.to_string(),
            "unchanged: lab1; changed in place: plc (line 9600 8N1 -> 19200 8N1, \
             +unix:/run/plc.sock); restarted: lab2; added: lab3"
        );
    }

    #[test]
    fn every_part_in_its_place_and_empty_ones_left_out() {
        let report = ReloadReport {
            unchanged: names(&["a", "b"]),
            in_place: vec![
                InPlace {
                    name: "c".into(),
                    change: PortChange {
                        line: None,
                        removed: vec!["tcp:127.0.0.1:7000".parse().unwrap()],
                        added: vec!["pty:/tmp/c".parse().unwrap()],
                    },
                },
                InPlace {
                    name: "d".into(),
                    change: PortChange {
                        line: Some((line(1200), line(2400))),
                        removed: vec![],
                        added: vec![],
                    },
                },
            ],
            restarted: names(&["e", "f"]),
            added: names(&["g"]),
            removed: names(&["h", "i"]),
            failed: vec![],
            certificates: Certificates::default(),
            fleet_changed: true,
        };
        assert_eq!(
            report.to_string(),
            "unchanged: a, b; changed in place: c (-tcp:127.0.0.1:7000, +pty:/tmp/c); \
             d (line 1200 8N1 -> 2400 8N1); restarted: e, f; added: g; removed: h, i; \
             fleet: [fleet] changed, not applied: it takes a restart"
        );
        let removed = ReloadReport {
            removed: names(&["echo", "extra"]),
            ..ReloadReport::default()
        };
        assert_eq!(removed.to_string(), "removed: echo, extra");
        assert_eq!(ReloadReport::default().to_string(), "");
    }

    #[test]
    fn ports_that_could_not_start_come_last_with_why() {
        let report = ReloadReport {
            unchanged: names(&["a"]),
            restarted: names(&["b"]),
            failed: vec![
                Failed {
                    name: "c".into(),
                    error: in_use("/run/c.sock"),
                },
                Failed {
                    name: "d".into(),
                    error: in_use("/run/d.sock"),
                },
            ],
            ..ReloadReport::default()
        };
        assert!(!report.complete());
        assert_eq!(
            report.to_string(),
            "unchanged: a; restarted: b; failed to start: \
             c: unix:/run/c.sock is in use by a running program; \
             d: unix:/run/d.sock is in use by a running program"
        );
        // With nothing else to say, the failure alone, not after a "; ".
        let alone = ReloadReport {
            failed: vec![Failed {
                name: "c".into(),
                error: in_use("/run/c.sock"),
            }],
            ..ReloadReport::default()
        };
        assert_eq!(
            alone.to_string(),
            "failed to start: c: unix:/run/c.sock is in use by a running program"
        );
    }
}
