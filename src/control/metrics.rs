//! The metrics exposition: every port's counters, from a status snapshot,
//! as Prometheus (OpenMetrics) text. [`crate::web::server`] serves it at
//! `/metrics`.
//!
//! Per-client series are capped at [`MAX_CLIENT_SERIES`] per port, so a
//! port with thousands of clients cannot blow up a Prometheus server's
//! memory; the other clients are summed into one `client="other"` series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tracing::warn;

use super::PortStatus;
use crate::endpoint::refusal::{Refusal, Refusals};
use crate::hub::status::{ClientStatus, DeviceState, HubStatus};

/// Per-client series exported per port. Each client costs nine series
/// (with its id and peer as labels, so every new connection is new series);
/// past this many, a scrape could grow without bound. Clients beyond it (the
/// most recent ones: ids rise) are summed into `client="other"`, and counted
/// by `serialhub_unlisted_clients`.
pub(crate) const MAX_CLIENT_SERIES: usize = 64;
/// What `/metrics` is served as: the format prometheus-client writes.
pub(crate) const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The device states, for `serialhub_device_state{state}`.
const STATES: [&str; 5] = ["opening", "waiting", "open", "reconnecting", "closed"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabels {
    port: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    port: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    port: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClientLabels {
    port: String,
    client: String,
    peer: String,
}

type PortCounter = Family<PortLabels, Counter>;
type PortGauge = Family<PortLabels, Gauge<u64, std::sync::atomic::AtomicU64>>;
type ClientGauge = Family<ClientLabels, Gauge<u64, std::sync::atomic::AtomicU64>>;

/// The metric families of one scrape. The registry is built afresh from
/// each status snapshot: the counters live in the hubs, and clients come and
/// go, so there is nothing to keep between scrapes.
struct Families {
    registry: Registry,
    read: PortCounter,
    written: PortCounter,
    up: PortGauge,
    state: Family<StateLabels, Gauge<u64, std::sync::atomic::AtomicU64>>,
    reopens: PortCounter,
    clients: PortGauge,
    unlisted: PortGauge,
    dropped: PortCounter,
    kicked: PortCounter,
    refused: PortCounter,
    refused_by_reason: Family<ReasonLabels, Counter>,
    lock_waits: PortCounter,
    log_dropped: PortCounter,
    transactions: PortCounter,
    timeouts: PortCounter,
    requests_dropped: PortCounter,
    reset_lost: PortCounter,
    unsolicited_dropped: PortCounter,
    bad_replies: PortCounter,
    replies_discarded: PortCounter,
    client_in: ClientGauge,
    client_out: ClientGauge,
    client_queued: ClientGauge,
    client_dropped: ClientGauge,
    client_discarded: ClientGauge,
    client_reset_lost: ClientGauge,
    client_bad_replies: ClientGauge,
    client_transactions: ClientGauge,
    client_timeouts: ClientGauge,
}

fn family<F: Default + Clone + prometheus_client::registry::Metric>(
    registry: &mut Registry,
    name: &str,
    help: &str,
) -> F {
    let f = F::default();
    registry.register(name, help, f.clone());
    f
}

impl Families {
    fn new() -> Families {
        let mut r = Registry::with_prefix("serialhub");
        // Counters get `_total` from the encoder.
        Families {
            read: family(&mut r, "device_read_bytes", "Bytes read from the device"),
            written: family(
                &mut r,
                "device_written_bytes",
                "Bytes written to the device",
            ),
            up: family(&mut r, "device_up", "1 if the device is open, else 0"),
            state: family(
                &mut r,
                "device_state",
                "1 for the device's current state (opening, waiting, open, reconnecting, closed), 0 for the others",
            ),
            reopens: family(
                &mut r,
                "device_reopens",
                "Times the device was opened again after being lost",
            ),
            clients: family(&mut r, "clients", "Clients connected"),
            unlisted: family(
                &mut r,
                "unlisted_clients",
                "Clients past the per-port series cap, summed into client=\"other\"",
            ),
            dropped: family(
                &mut r,
                "dropped_bytes",
                "Device bytes clients did not get (slow readers, kicked clients' queues)",
            ),
            kicked: family(
                &mut r,
                "kicked_clients",
                "Clients disconnected by a policy or an operator",
            ),
            refused: family(
                &mut r,
                "refused_clients",
                "Connections refused (max clients reached, no file descriptor to spare)",
            ),
            refused_by_reason: family(
                &mut r,
                "refused",
                "Connections refused, by reason: max_clients, descriptors, network (from=), handshake, identity, revoked",
            ),
            lock_waits: family(
                &mut r,
                "lock_waits",
                "Writes and requests that had to wait for another client's write lock",
            ),
            log_dropped: family(
                &mut r,
                "traffic_log_dropped_records",
                "Traffic-log records dropped because the log writer was behind",
            ),
            transactions: family(
                &mut r,
                "transactions",
                "Transactions run (--writers transaction)",
            ),
            timeouts: family(
                &mut r,
                "reply_timeouts",
                "Transactions that got no reply in time",
            ),
            requests_dropped: family(
                &mut r,
                "requests_dropped",
                "Settings and modem-line requests dropped unapplied because their client had left",
            ),
            reset_lost: family(
                &mut r,
                "reset_lost_bytes",
                "Client bytes the kernel discarded when a connection was reset before serialhub read them",
            ),
            unsolicited_dropped: family(
                &mut r,
                "unsolicited_dropped_bytes",
                "Device bytes answering no request that went to no client but see=all ones (--unsolicited drop)",
            ),
            bad_replies: family(
                &mut r,
                "bad_replies",
                "Replies that could not be passed on (a Modbus reply failing its CRC)",
            ),
            replies_discarded: family(
                &mut r,
                "replies_discarded_bytes",
                "Reply bytes whose client had gone before they came",
            ),
            client_in: family(
                &mut r,
                "client_in_bytes",
                "Bytes the client sent to the device",
            ),
            client_out: family(
                &mut r,
                "client_out_bytes",
                "Device bytes queued for the client",
            ),
            client_queued: family(
                &mut r,
                "client_queued_bytes",
                "Bytes waiting in the client's output queue now",
            ),
            client_dropped: family(
                &mut r,
                "client_dropped_bytes",
                "Device bytes the client did not get",
            ),
            client_discarded: family(
                &mut r,
                "client_discarded_bytes",
                "The client's bytes not sent to the device (read-only endpoint, bad CRC)",
            ),
            client_reset_lost: family(
                &mut r,
                "client_reset_lost_bytes",
                "The client's bytes the kernel discarded when its connection was reset",
            ),
            client_bad_replies: family(
                &mut r,
                "client_bad_replies",
                "Replies to the client that could not be passed on",
            ),
            client_transactions: family(
                &mut r,
                "client_transactions",
                "The client's transactions run (--writers transaction)",
            ),
            client_timeouts: family(
                &mut r,
                "client_reply_timeouts",
                "The client's transactions that got no reply in time",
            ),
            registry: r,
        }
    }

    fn port(&self, name: &str, hub: &HubStatus) {
        let l = PortLabels {
            port: name.to_owned(),
        };
        self.read.get_or_create(&l).inc_by(hub.bytes_from_device);
        self.written.get_or_create(&l).inc_by(hub.bytes_to_device);
        let state = state_name(&hub.device_state);
        self.up.get_or_create(&l).set(u64::from(state == "open"));
        for s in STATES {
            let labels = StateLabels {
                port: name.to_owned(),
                state: s,
            };
            self.state.get_or_create(&labels).set(u64::from(s == state));
        }
        self.reopens.get_or_create(&l).inc_by(hub.reopens);
        self.clients.get_or_create(&l).set(hub.clients.len() as u64);
        self.dropped.get_or_create(&l).inc_by(hub.dropped);
        self.kicked.get_or_create(&l).inc_by(hub.kicked);
        self.refused.get_or_create(&l).inc_by(hub.refused);
        self.lock_waits.get_or_create(&l).inc_by(hub.lock_waits);
        self.log_dropped
            .get_or_create(&l)
            .inc_by(hub.traffic_log_dropped);
        self.transactions.get_or_create(&l).inc_by(hub.transactions);
        self.timeouts.get_or_create(&l).inc_by(hub.timeouts);
        self.requests_dropped
            .get_or_create(&l)
            .inc_by(hub.requests_dropped);
        self.reset_lost.get_or_create(&l).inc_by(hub.reset_lost);
        self.unsolicited_dropped
            .get_or_create(&l)
            .inc_by(hub.unsolicited_dropped);
        self.bad_replies.get_or_create(&l).inc_by(hub.bad_replies);
        self.replies_discarded
            .get_or_create(&l)
            .inc_by(hub.replies_discarded);

        let mut clients: Vec<&ClientStatus> = hub.clients.iter().collect();
        clients.sort_by_key(|c| c.id);
        let rest = clients.split_off(clients.len().min(MAX_CLIENT_SERIES));
        self.unlisted.get_or_create(&l).set(rest.len() as u64);
        for c in clients {
            self.client(name, c.id.to_string(), c.peer.clone(), &ClientCounts::of(c));
        }
        if !rest.is_empty() {
            let mut sum = ClientCounts::default();
            for c in rest {
                sum.add(&ClientCounts::of(c));
            }
            self.client(name, "other".into(), "other".into(), &sum);
        }
    }

    fn refusals(&self, port: &str, refusals: &Refusals) {
        for reason in Refusal::ALL {
            let labels = ReasonLabels {
                port: port.to_owned(),
                reason: reason.name(),
            };
            self.refused_by_reason
                .get_or_create(&labels)
                .inc_by(refusals.get(reason));
        }
    }

    fn client(&self, port: &str, client: String, peer: String, c: &ClientCounts) {
        let labels = ClientLabels {
            port: port.to_owned(),
            client,
            peer,
        };
        self.client_in.get_or_create(&labels).set(c.bytes_in);
        self.client_out.get_or_create(&labels).set(c.bytes_out);
        self.client_queued.get_or_create(&labels).set(c.queued);
        self.client_dropped.get_or_create(&labels).set(c.dropped);
        self.client_discarded
            .get_or_create(&labels)
            .set(c.discarded);
        self.client_reset_lost
            .get_or_create(&labels)
            .set(c.reset_lost);
        self.client_bad_replies
            .get_or_create(&labels)
            .set(c.bad_replies);
        self.client_transactions
            .get_or_create(&labels)
            .set(c.transactions);
        self.client_timeouts.get_or_create(&labels).set(c.timeouts);
    }
}

/// A client's per-client series, or those of the clients past the cap
/// added up.
#[derive(Default)]
struct ClientCounts {
    bytes_in: u64,
    bytes_out: u64,
    queued: u64,
    dropped: u64,
    discarded: u64,
    reset_lost: u64,
    bad_replies: u64,
    transactions: u64,
    timeouts: u64,
}

impl ClientCounts {
    fn of(c: &ClientStatus) -> ClientCounts {
        ClientCounts {
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            queued: u64::try_from(c.queued).unwrap_or(u64::MAX),
            dropped: c.dropped,
            discarded: c.discarded,
            reset_lost: c.reset_lost,
            bad_replies: c.bad_replies,
            transactions: c.transactions,
            timeouts: c.timeouts,
        }
    }

    fn add(&mut self, c: &ClientCounts) {
        self.bytes_in = self.bytes_in.saturating_add(c.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(c.bytes_out);
        self.queued = self.queued.saturating_add(c.queued);
        self.dropped = self.dropped.saturating_add(c.dropped);
        self.discarded = self.discarded.saturating_add(c.discarded);
        self.reset_lost = self.reset_lost.saturating_add(c.reset_lost);
        self.bad_replies = self.bad_replies.saturating_add(c.bad_replies);
        self.transactions = self.transactions.saturating_add(c.transactions);
        self.timeouts = self.timeouts.saturating_add(c.timeouts);
    }
}

fn state_name(s: &DeviceState) -> &'static str {
    match s {
        DeviceState::Opening => "opening",
        DeviceState::Waiting => "waiting",
        DeviceState::Open { .. } => "open",
        DeviceState::Reconnecting { .. } => "reconnecting",
        DeviceState::Closed => "closed",
    }
}

/// The exposition text for `ports`, in the OpenMetrics text format.
pub(crate) fn render(ports: &[PortStatus]) -> Result<String, std::fmt::Error> {
    let families = Families::new();
    for p in ports {
        match serde_json::from_value::<HubStatus>(p.hub.clone()) {
            Ok(hub) => {
                families.port(&p.name, &hub);
                families.refusals(&p.name, &p.refusals);
            }
            // Both ends are this crate: only a bug gets here.
            Err(e) => warn!(port = %p.name, error = %e, "metrics: unreadable port status"),
        }
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &families.registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(id: u64) -> ClientStatus {
        ClientStatus {
            id,
            peer: format!("tcp:127.0.0.1:{}", 40000 + id),
            connected_since: "2026-01-01T00:00:00Z".into(),
            bytes_in: id,
            bytes_out: 1000 + id,
            queued: 1,
            dropped: 2,
            discarded: 3,
            transactions: 4,
            timeouts: 5,
            reset_lost: 6,
            bad_replies: 7,
            identity: None,
        }
    }

    fn port(name: &str, clients: Vec<ClientStatus>, state: DeviceState) -> PortStatus {
        let hub = HubStatus {
            device_state: state,
            device_since: "2026-01-01T00:00:00Z".into(),
            bytes_from_device: 5,
            bytes_to_device: 7,
            dropped: 0,
            kicked: 3,
            refused: 0,
            transactions: 0,
            timeouts: 0,
            reopens: 4,
            lock_waits: 0,
            traffic_log_dropped: 0,
            requests_dropped: 8,
            reset_lost: 9,
            unsolicited_dropped: 10,
            bad_replies: 11,
            replies_discarded: 12,
            settings_changed_by: None,
            write_lock: None,
            clients,
        };
        PortStatus::new(
            name,
            "sim:echo".into(),
            "9600 8N1".into(),
            "merge",
            vec![],
            &hub,
        )
    }

    /// The value of the one sample of `metric` whose labels include all of
    /// `labels`.
    fn value(text: &str, metric: &str, labels: &[&str]) -> Vec<u64> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")))
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect()
    }

    #[test]
    fn issue10_per_client_series_are_capped_and_the_rest_summed() {
        let n = MAX_CLIENT_SERIES as u64 + 6;
        // Out of order, as a status could list them: the cap keeps the
        // lowest ids (the oldest clients), whatever the order.
        let clients: Vec<_> = (1..=n).rev().map(client).collect();
        let text = render(&[port("big", clients, DeviceState::Opening)]).unwrap();
        let series = value(&text, "serialhub_client_in_bytes", &[r#"port="big""#]);
        assert_eq!(series.len(), MAX_CLIENT_SERIES + 1, "{text}");
        for id in 1..=MAX_CLIENT_SERIES as u64 {
            let c = format!(r#"client="{id}""#);
            assert_eq!(value(&text, "serialhub_client_in_bytes", &[&c]), [id]);
        }
        let over = format!(r#"client="{}""#, MAX_CLIENT_SERIES + 1);
        assert!(value(&text, "serialhub_client_in_bytes", &[&over]).is_empty());
        let other = [r#"client="other""#, r#"peer="other""#];
        let rest = MAX_CLIENT_SERIES as u64 + 1..=n;
        assert_eq!(
            value(&text, "serialhub_client_in_bytes", &other),
            [rest.clone().sum::<u64>()]
        );
        assert_eq!(
            value(&text, "serialhub_client_out_bytes", &other),
            [rest.map(|id| 1000 + id).sum::<u64>()]
        );
        assert_eq!(value(&text, "serialhub_client_queued_bytes", &other), [6]);
        assert_eq!(value(&text, "serialhub_client_dropped_bytes", &other), [12]);
        for (family, each) in [
            ("serialhub_client_discarded_bytes", 3),
            ("serialhub_client_transactions", 4),
            ("serialhub_client_reply_timeouts", 5),
            ("serialhub_client_reset_lost_bytes", 6),
            ("serialhub_client_bad_replies", 7),
        ] {
            assert_eq!(value(&text, family, &other), [6 * each], "{family}");
        }
        assert_eq!(value(&text, "serialhub_unlisted_clients", &[]), [6]);
        assert_eq!(value(&text, "serialhub_clients", &[]), [n]);
    }

    #[test]
    fn issue10_ports_under_the_cap_have_no_other_series() {
        let text = render(&[
            port(
                "a",
                vec![client(1), client(2)],
                DeviceState::Open {
                    tty: "/dev/pts/3".into(),
                },
            ),
            port(
                "b",
                vec![],
                DeviceState::Reconnecting {
                    error: "gone".into(),
                },
            ),
        ])
        .unwrap();
        assert!(
            !text
                .lines()
                .any(|l| !l.starts_with('#') && l.contains(r#"client="other""#)),
            "{text}"
        );
        assert_eq!(
            value(&text, "serialhub_unlisted_clients", &[r#"port="a""#]),
            [0]
        );
        assert_eq!(value(&text, "serialhub_device_up", &[r#"port="a""#]), [1]);
        assert_eq!(value(&text, "serialhub_device_up", &[r#"port="b""#]), [0]);
        assert_eq!(
            value(
                &text,
                "serialhub_device_state",
                &[r#"port="b""#, r#"state="reconnecting""#]
            ),
            [1]
        );
        assert_eq!(
            value(
                &text,
                "serialhub_device_state",
                &[r#"port="b""#, r#"state="open""#]
            ),
            [0]
        );
        assert_eq!(
            value(&text, "serialhub_device_reopens_total", &[r#"port="b""#]),
            [4]
        );
        assert_eq!(
            value(&text, "serialhub_kicked_clients_total", &[r#"port="a""#]),
            [3]
        );
        assert_eq!(
            value(&text, "serialhub_device_read_bytes_total", &[r#"port="a""#]),
            [5]
        );
        assert_eq!(
            value(
                &text,
                "serialhub_device_written_bytes_total",
                &[r#"port="a""#]
            ),
            [7]
        );
        assert!(text.ends_with("# EOF\n"));
    }

    /// Issue 20: every drop the hub counts, and every per-client counter
    /// `status` gives, is a series.
    #[test]
    fn issue20_every_counter_of_status_is_a_series() {
        let mut a = port("a", vec![client(1)], DeviceState::Opening);
        a.refusals = Refusals {
            max_clients: 13,
            descriptors: 14,
            network: 15,
            handshake: 16,
            identity: 17,
            revoked: 18,
        };
        let text = render(&[a]).unwrap();
        let port = [r#"port="a""#];
        for (family, want) in [
            ("serialhub_requests_dropped_total", 8),
            ("serialhub_reset_lost_bytes_total", 9),
            ("serialhub_unsolicited_dropped_bytes_total", 10),
            ("serialhub_bad_replies_total", 11),
            ("serialhub_replies_discarded_bytes_total", 12),
        ] {
            assert_eq!(value(&text, family, &port), [want], "{family}\n{text}");
            let name = family.trim_end_matches("_total");
            assert!(
                text.contains(&format!("# TYPE {name} counter\n")),
                "{family}\n{text}"
            );
        }
        for reason in Refusal::ALL {
            let labels = [r#"port="a""#, &format!(r#"reason="{reason}""#)];
            assert_eq!(
                value(&text, "serialhub_refused_total", &labels),
                [13 + reason as u64],
                "{reason}\n{text}"
            );
        }
        let client = [r#"port="a""#, r#"client="1""#];
        for (family, want) in [
            ("serialhub_client_discarded_bytes", 3),
            ("serialhub_client_transactions", 4),
            ("serialhub_client_reply_timeouts", 5),
            ("serialhub_client_reset_lost_bytes", 6),
            ("serialhub_client_bad_replies", 7),
        ] {
            assert_eq!(value(&text, family, &client), [want], "{family}\n{text}");
        }
    }
}
