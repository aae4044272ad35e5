//! What a reload is to do, computed from the running configuration and the
//! new one alone: no I/O, no tasks, so every case is a unit test.
//!
//! Ports are matched by name (a renamed port is one removed and one added).
//! A port whose configuration is the same is left alone; one whose line
//! settings or endpoints alone changed is changed in place, and the plan
//! says what changes as data ([`PortChange`]); any other change restarts it.
//! The daemon carries the plan out (`super::reload`) and says what it did in
//! a [`super::report::ReloadReport`].

use std::collections::HashMap;

use crate::config::PortConfig;
use crate::endpoint::EndpointSpec;
use crate::line::LineSettings;

/// What a reload does to each port, by name.
///
/// Ports are the only thing a reload changes today. Another resource that a
/// reload will read anew (a TLS certificate and key, say) gets a field of its
/// own here, computed by [`plan`] from the old and new files, and a part of
/// its own in the report's summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ReloadPlan {
    /// The same configuration: not touched. In the running order.
    pub(crate) unchanged: Vec<String>,
    /// Only line settings or endpoints changed. In the running order.
    pub(crate) in_place: Vec<InPlace>,
    /// Any other change: stopped, then started anew. In the file's order.
    pub(crate) restart: Vec<String>,
    /// New names: started. In the file's order.
    pub(crate) add: Vec<String>,
    /// Names the file no longer has: stopped. In the running order.
    pub(crate) remove: Vec<String>,
}

/// A port changed in place, and what changes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct InPlace {
    pub(crate) name: String,
    pub(crate) change: PortChange,
}

/// What an in-place change does to a running port: what
/// [`crate::port::Port::reconfigure`] does with the old and new settings.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PortChange {
    /// The line settings, old and new, if they change.
    pub(crate) line: Option<(LineSettings, LineSettings)>,
    /// Endpoints that stop, in the old configuration's order.
    pub(crate) removed: Vec<EndpointSpec>,
    /// Endpoints that are bound, in the new configuration's order.
    pub(crate) added: Vec<EndpointSpec>,
}

impl PortChange {
    /// The in-place change from `old` to `new`, which must differ in line
    /// settings and endpoints alone ([`Kind::between`]).
    fn between(old: &PortConfig, new: &PortConfig) -> PortChange {
        PortChange {
            line: (old.line != new.line).then_some((old.line, new.line)),
            removed: old
                .listen
                .iter()
                .filter(|e| !new.listen.contains(e))
                .cloned()
                .collect(),
            added: new
                .listen
                .iter()
                .filter(|e| !old.listen.contains(e))
                .cloned()
                .collect(),
        }
    }

    /// Nothing to do: the endpoints were only listed in another order.
    fn is_empty(&self) -> bool {
        self.line.is_none() && self.removed.is_empty() && self.added.is_empty()
    }
}

/// `line 9600 8N1 -> 19200 8N1, -tcp:127.0.0.1:7000, +unix:/run/plc.sock`:
/// the line first, then the endpoints removed, then those added.
impl std::fmt::Display for PortChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some((old, new)) = &self.line {
            parts.push(format!("line {old} -> {new}"));
        }
        parts.extend(self.removed.iter().map(|e| format!("-{e}")));
        parts.extend(self.added.iter().map(|e| format!("+{e}")));
        f.write_str(&parts.join(", "))
    }
}

/// The plan that takes the ports running with `old` to those `new` describes.
pub(crate) fn plan<'a, 'b>(
    old: impl IntoIterator<Item = &'a PortConfig>,
    new: impl IntoIterator<Item = &'b PortConfig>,
) -> ReloadPlan {
    let new: Vec<&PortConfig> = new.into_iter().collect();
    // Matched by name through maps, so a reload of n ports takes O(n)
    // lookups, not n searches of n (issue 18).
    let by_name: HashMap<&str, &PortConfig> = new.iter().map(|p| (p.name.as_str(), *p)).collect();
    let mut plan = ReloadPlan::default();
    let mut running: HashMap<&str, Kind> = HashMap::new();
    for o in old {
        let Some(n) = by_name.get(o.name.as_str()) else {
            plan.remove.push(o.name.clone());
            continue;
        };
        let kind = Kind::between(o, n);
        match kind {
            Kind::Same => plan.unchanged.push(o.name.clone()),
            Kind::InPlace => {
                let change = PortChange::between(o, n);
                if change.is_empty() {
                    plan.unchanged.push(o.name.clone());
                } else {
                    plan.in_place.push(InPlace {
                        name: o.name.clone(),
                        change,
                    });
                }
            }
            // Listed below, in the file's order, with the added ones.
            Kind::Restart => {}
        }
        running.insert(o.name.as_str(), kind);
    }
    for n in new {
        match running.get(n.name.as_str()) {
            None => plan.add.push(n.name.clone()),
            Some(Kind::Restart) => plan.restart.push(n.name.clone()),
            Some(Kind::Same | Kind::InPlace) => {}
        }
    }
    plan
}

/// How a port's new configuration differs from the one it runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Same,
    /// Only line settings and endpoints: [`crate::port::Port::reconfigure`]
    /// applies it without disturbing the other clients.
    InPlace,
    /// Anything else: the port is stopped (draining) and started anew.
    Restart,
}

impl Kind {
    fn between(old: &PortConfig, new: &PortConfig) -> Kind {
        if old == new {
            return Kind::Same;
        }
        // The same port with the old line and endpoints: the sizes derived
        // from the line rate follow it at run time (the hub resizes them).
        let mut same = new.clone();
        same.listen = old.listen.clone();
        same.line = old.line;
        same.sockets = old.sockets;
        same.hub.write_budget = old.hub.write_budget;
        same.hub.write_chunk = old.hub.write_chunk;
        if !new.hub.client_queue_fixed {
            same.hub.client_queue = old.hub.client_queue;
        }
        if same == *old {
            Kind::InPlace
        } else {
            Kind::Restart
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PortSettings, Source, Writers};
    use crate::line::Parity;

    /// Port `name` on `/dev/ttyS0` at 9600 8N1, listening on a local TCP
    /// port, with `f` applied.
    fn port(name: &str, f: impl FnOnce(&mut PortSettings)) -> PortConfig {
        let mut s = PortSettings {
            name: Some(name.into()),
            device: Some("/dev/ttyS0".parse().unwrap()),
            baud: Some(9600),
            listen: Some(vec![ep("tcp:127.0.0.1:7000")]),
            ..PortSettings::default()
        };
        f(&mut s);
        PortConfig::resolve(s, Source::File).unwrap()
    }

    fn ep(s: &str) -> EndpointSpec {
        s.parse().unwrap()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|&s| s.to_owned()).collect()
    }

    /// Port `name` changed in place by `change`, and nothing else.
    fn only_in_place(old: &PortConfig, new: &PortConfig) -> PortChange {
        let p = plan([old], [new]);
        assert_eq!(p.in_place.len(), 1, "{p:?}");
        assert_eq!(p.in_place[0].name, old.name);
        assert!(
            p.unchanged.is_empty() && p.restart.is_empty() && p.add.is_empty(),
            "{p:?}"
        );
        assert!(p.remove.is_empty(), "{p:?}");
        p.in_place[0].change.clone()
    }

    fn only_restart(old: &PortConfig, new: &PortConfig) {
        let p = plan([old], [new]);
        assert_eq!(
            p,
            ReloadPlan {
                restart: vec![old.name.clone()],
                ..ReloadPlan::default()
            },
            "{new:?}"
        );
    }

    #[test]
    fn the_same_file_leaves_every_port_alone() {
        let ports = [port("a", |_| {}), port("b", |_| {})];
        assert_eq!(
            plan(&ports, &ports),
            ReloadPlan {
                unchanged: names(&["a", "b"]),
                ..ReloadPlan::default()
            }
        );
    }

    #[test]
    fn a_line_change_is_made_in_place_and_says_old_and_new() {
        let old = port("p", |_| {});
        let new = port("p", |s| s.baud = Some(19200));
        let change = only_in_place(&old, &new);
        assert_eq!(change.line, Some((old.line, new.line)));
        assert!(change.removed.is_empty() && change.added.is_empty());
        assert_eq!(change.to_string(), "line 9600 8N1 -> 19200 8N1");
        let even = port("p", |s| s.parity = Some(Parity::Even));
        assert_eq!(
            only_in_place(&old, &even).to_string(),
            "line 9600 8N1 -> 9600 8E1"
        );
    }

    #[test]
    fn endpoint_changes_are_made_in_place_as_adds_and_removes() {
        let old = port("p", |_| {});
        let more = port("p", |s| {
            s.listen = Some(vec![ep("tcp:127.0.0.1:7000"), ep("unix:/run/p.sock")]);
        });
        let change = only_in_place(&old, &more);
        assert_eq!(change.line, None);
        assert!(change.removed.is_empty());
        assert_eq!(change.added, vec![ep("unix:/run/p.sock")]);
        assert_eq!(change.to_string(), "+unix:/run/p.sock");

        let moved = port("p", |s| s.listen = Some(vec![ep("pty:/tmp/p")]));
        let change = only_in_place(&more, &moved);
        assert_eq!(
            change.removed,
            vec![ep("tcp:127.0.0.1:7000"), ep("unix:/run/p.sock")]
        );
        assert_eq!(change.added, vec![ep("pty:/tmp/p")]);
        assert_eq!(
            change.to_string(),
            "-tcp:127.0.0.1:7000, -unix:/run/p.sock, +pty:/tmp/p"
        );
    }

    #[test]
    fn a_line_and_endpoint_change_together_is_one_in_place_change() {
        let old = port("plc", |_| {});
        let new = port("plc", |s| {
            s.baud = Some(19200);
            s.listen = Some(vec![ep("tcp:127.0.0.1:7000"), ep("unix:/run/plc.sock")]);
        });
        assert_eq!(
            only_in_place(&old, &new).to_string(),
            "line 9600 8N1 -> 19200 8N1, +unix:/run/plc.sock"
        );
    }

    #[test]
    fn endpoints_listed_in_another_order_change_nothing() {
        let old = port("p", |s| {
            s.listen = Some(vec![ep("tcp:127.0.0.1:7000"), ep("unix:/run/p.sock")]);
        });
        let new = port("p", |s| {
            s.listen = Some(vec![ep("unix:/run/p.sock"), ep("tcp:127.0.0.1:7000")]);
        });
        assert_ne!(old, new);
        assert_eq!(
            plan([&old], [&new]),
            ReloadPlan {
                unchanged: names(&["p"]),
                ..ReloadPlan::default()
            }
        );
    }

    #[test]
    fn any_other_change_restarts_the_port() {
        let old = port("p", |_| {});
        for new in [
            port("p", |s| s.device = Some("/dev/ttyS1".parse().unwrap())),
            port("p", |s| s.max_clients = Some(3)),
            port("p", |s| s.client_queue = Some(1 << 20)),
            port("p", |s| s.pacing = Some(false)),
            // A line change with another change is still a restart.
            port("p", |s| {
                s.baud = Some(115_200);
                s.writers = Some(Writers::Transaction);
            }),
            port("p", |s| {
                s.listen = Some(vec![ep("unix:/run/p.sock")]);
                s.device = Some("/dev/ttyS1".parse().unwrap());
            }),
        ] {
            only_restart(&old, &new);
        }
    }

    #[test]
    fn a_line_change_under_transactions_restarts_the_port() {
        // Its timings come from the line rate (the README says so).
        let txn = |baud| {
            port("p", move |s| {
                s.baud = Some(baud);
                s.writers = Some(Writers::Transaction);
            })
        };
        only_restart(&txn(9600), &txn(19200));
        // Its endpoints still change in place.
        let more = port("p", |s| {
            s.writers = Some(Writers::Transaction);
            s.listen = Some(vec![ep("tcp:127.0.0.1:7000"), ep("tcp:127.0.0.1:7001")]);
        });
        assert_eq!(
            only_in_place(&txn(9600), &more).added,
            vec![ep("tcp:127.0.0.1:7001")]
        );
    }

    #[test]
    fn new_names_are_added_and_missing_ones_removed() {
        let a = port("a", |_| {});
        let b = port("b", |_| {});
        assert_eq!(
            plan([&a], [&a, &b]),
            ReloadPlan {
                unchanged: names(&["a"]),
                add: names(&["b"]),
                ..ReloadPlan::default()
            }
        );
        assert_eq!(
            plan([&a, &b], [&a]),
            ReloadPlan {
                unchanged: names(&["a"]),
                remove: names(&["b"]),
                ..ReloadPlan::default()
            }
        );
        assert_eq!(
            plan([], [&a, &b]),
            ReloadPlan {
                add: names(&["a", "b"]),
                ..ReloadPlan::default()
            }
        );
        assert_eq!(
            plan([&a, &b], []),
            ReloadPlan {
                remove: names(&["a", "b"]),
                ..ReloadPlan::default()
            }
        );
    }

    #[test]
    fn a_renamed_port_is_removed_and_added() {
        // Same device and endpoints: ports are matched by name alone.
        let old = port("lab", |_| {});
        let new = port("bench", |_| {});
        assert_eq!(
            plan([&old], [&new]),
            ReloadPlan {
                add: names(&["bench"]),
                remove: names(&["lab"]),
                ..ReloadPlan::default()
            }
        );
    }

    #[test]
    fn every_kind_at_once_in_the_documented_orders() {
        let dev = |d: &str| -> crate::device::DeviceSpec { d.parse().unwrap() };
        let old = [
            port("keep2", |_| {}),
            port("gone2", |_| {}),
            port("fast", |_| {}),
            port("moved", |s| s.device = Some(dev("/dev/ttyS1"))),
            port("keep1", |_| {}),
            port("slow", |_| {}),
            port("gone1", |_| {}),
            port("other", |_| {}),
        ];
        let new = [
            port("new2", |_| {}),
            port("other", |s| s.device = Some(dev("/dev/ttyS3"))),
            port("keep1", |_| {}),
            port("slow", |s| s.baud = Some(1200)),
            port("moved", |s| s.device = Some(dev("/dev/ttyS2"))),
            port("keep2", |_| {}),
            port("new1", |_| {}),
            port("fast", |s| s.baud = Some(115_200)),
        ];
        let p = plan(&old, &new);
        // Kept, changed and removed ports in the running order; restarted
        // and added ones in the file's.
        assert_eq!(p.unchanged, names(&["keep2", "keep1"]));
        let in_place: Vec<&str> = p.in_place.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(in_place, ["fast", "slow"]);
        assert_eq!(p.restart, names(&["other", "moved"]));
        assert_eq!(p.add, names(&["new2", "new1"]));
        assert_eq!(p.remove, names(&["gone2", "gone1"]));
        // Every port of either file is in exactly one list.
        let total = p.unchanged.len() + p.in_place.len() + p.restart.len() + p.add.len();
        assert_eq!(total, new.len());
        assert_eq!(total - p.add.len() + p.remove.len(), old.len());
    }
}
