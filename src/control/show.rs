//! `serialhub status` as tables, for people.

use std::fmt::Write as _;

use super::PortStatus;
use crate::endpoint::refusal::{Refusal, Refusals};

/// `network 3, handshake 1` (the reasons with refusals), or `none`.
fn reasons(r: &Refusals) -> String {
    let named: Vec<String> = Refusal::ALL
        .iter()
        .filter(|reason| r.get(**reason) > 0)
        .map(|reason| format!("{reason} {}", r.get(*reason)))
        .collect();
    if named.is_empty() {
        "none".to_owned()
    } else {
        named.join(", ")
    }
}

/// Renders ports and their clients as text tables.
pub(crate) fn tables(ports: &[PortStatus]) -> String {
    let mut out = String::new();
    for p in ports {
        let h = &p.hub;
        let field = |k: &str| h.get(k).cloned().unwrap_or_default();
        let num = |k: &str| field(k).as_u64().unwrap_or(0);
        let device = field("device_state");
        let state = device["state"].as_str().unwrap_or("?").to_owned();
        let detail = device["tty"]
            .as_str()
            .or(device["error"].as_str())
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        let changed = field("settings_changed_by")
            .as_str()
            .map(|c| format!(" (set by {c})"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "port {}: {} {}{} [{}], {}{} since {}",
            p.name,
            p.device,
            p.line,
            changed,
            p.writers,
            state,
            detail,
            field("device_since").as_str().unwrap_or("?"),
        );
        let _ = writeln!(
            out,
            "  bytes from device {}, to device {}; dropped {}, kicked {}, refused {}; \
             transactions {}, timeouts {}",
            num("bytes_from_device"),
            num("bytes_to_device"),
            num("dropped"),
            num("kicked"),
            num("refused"),
            num("transactions"),
            num("timeouts"),
        );
        let _ = writeln!(
            out,
            "  write lock {}, lock waits {}; device reopens {}; traffic log dropped {}; \
             requests of departed clients dropped {}",
            field("write_lock").as_str().unwrap_or("-"),
            num("lock_waits"),
            num("reopens"),
            num("traffic_log_dropped"),
            num("requests_dropped"),
        );
        let _ = writeln!(
            out,
            "  unsolicited bytes dropped {}; bad replies {}; reply bytes of departed clients \
             discarded {}; client bytes lost to resets {}",
            num("unsolicited_dropped"),
            num("bad_replies"),
            num("replies_discarded"),
            num("reset_lost"),
        );
        let _ = writeln!(out, "  endpoints: {}", p.endpoints.join(", "));
        let _ = writeln!(out, "  connections refused: {}", reasons(&p.refusals));
        for e in p
            .endpoint_refusals
            .iter()
            .filter(|e| e.refusals.total() > 0)
        {
            let _ = writeln!(out, "    by {}: {}", e.endpoint, reasons(&e.refusals));
        }
        if let Some(addr) = &p.metrics {
            let scheme = if p.metrics_https { "https" } else { "http" };
            let _ = writeln!(out, "  metrics: {scheme}://{addr}/metrics");
        }
        if let Some(f) = &p.fleet {
            let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let why = f
                .error
                .as_ref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  fleet: {}/{} on {}, {}{why}; labels {}",
                f.host,
                p.name,
                f.url,
                f.state,
                if labels.is_empty() {
                    "none".to_owned()
                } else {
                    labels.join(",")
                },
            );
        }
        let clients = field("clients");
        let clients = clients.as_array().map(Vec::as_slice).unwrap_or_default();
        if clients.is_empty() {
            let _ = writeln!(out, "  no clients");
            continue;
        }
        let _ = writeln!(
            out,
            "  {:>5}  {:<32} {:<27} {:>10} {:>10} {:>7} {:>8} {:>9} {:>6} {:>6} {:>8} {:>3}  IDENTITY",
            "ID",
            "CLIENT",
            "CONNECTED",
            "IN",
            "OUT",
            "QUEUED",
            "DROPPED",
            "DISCARDED",
            "LOST",
            "TXNS",
            "TIMEOUTS",
            "BAD"
        );
        for c in clients {
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            let _ = writeln!(
                out,
                "  {:>5}  {:<32} {:<27} {:>10} {:>10} {:>7} {:>8} {:>9} {:>6} {:>6} {:>8} {:>3}  {}",
                n("id"),
                c["peer"].as_str().unwrap_or("?"),
                c["connected_since"].as_str().unwrap_or("?"),
                n("bytes_in"),
                n("bytes_out"),
                n("queued"),
                n("dropped"),
                n("discarded"),
                n("reset_lost"),
                n("transactions"),
                n("timeouts"),
                n("bad_replies"),
                // Who a TLS client's certificate names; last, as a name
                // may hold spaces.
                c["identity"].as_str().unwrap_or("-"),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::status::{ClientStatus, DeviceState, HubStatus};

    #[test]
    fn issue10_tables_show_the_lock_and_the_reopen_and_drop_counters() {
        let hub = HubStatus {
            device_state: DeviceState::Open {
                tty: "/dev/pts/3".into(),
            },
            device_since: "2026-01-01T00:00:00Z".into(),
            bytes_from_device: 5,
            bytes_to_device: 7,
            dropped: 0,
            kicked: 0,
            refused: 0,
            transactions: 0,
            timeouts: 0,
            reopens: 4,
            lock_waits: 9,
            traffic_log_dropped: 11,
            requests_dropped: 0,
            reset_lost: 0,
            unsolicited_dropped: 0,
            bad_replies: 0,
            replies_discarded: 0,
            settings_changed_by: None,
            write_lock: Some("operator (control socket)".into()),
            clients: Vec::new(),
        };
        let port = PortStatus::new(
            "lab1",
            "sim:echo".into(),
            "9600 8N1".into(),
            "merge",
            vec![],
            &hub,
        );
        let text = tables(&[port]);
        assert!(
            text.contains(
                "write lock operator (control socket), lock waits 9; device reopens 4; \
                 traffic log dropped 11"
            ),
            "{text}"
        );
    }

    /// Issue 20: the drops the hub counts, each client's, and where the
    /// metrics are served, are in the tables.
    #[test]
    fn issue20_tables_show_every_drop_and_the_metrics_address() {
        let client = ClientStatus {
            id: 3,
            peer: "modbus-tcp:127.0.0.1:40522".into(),
            connected_since: "2026-01-01T00:00:00Z".into(),
            bytes_in: 1,
            bytes_out: 2,
            queued: 0,
            dropped: 0,
            discarded: 17,
            transactions: 19,
            timeouts: 23,
            reset_lost: 29,
            bad_replies: 31,
            identity: Some("cn:alice".into()),
        };
        let hub = HubStatus {
            device_state: DeviceState::Opening,
            device_since: "2026-01-01T00:00:00Z".into(),
            bytes_from_device: 0,
            bytes_to_device: 0,
            dropped: 0,
            kicked: 0,
            refused: 0,
            transactions: 0,
            timeouts: 0,
            reopens: 0,
            lock_waits: 0,
            traffic_log_dropped: 0,
            requests_dropped: 0,
            reset_lost: 41,
            unsolicited_dropped: 43,
            bad_replies: 47,
            replies_discarded: 53,
            settings_changed_by: None,
            write_lock: None,
            clients: vec![client],
        };
        let mut port = PortStatus::new(
            "lab1",
            "sim:modbus".into(),
            "19200 8E1".into(),
            "transaction",
            vec![],
            &hub,
        );
        port.metrics = Some("127.0.0.1:9108".into());
        port.refusals = Refusals {
            max_clients: 2,
            network: 5,
            ..Refusals::default()
        };
        port.endpoint_refusals = vec![
            super::super::EndpointRefusals {
                endpoint: "rfc2217:0.0.0.0:2217".into(),
                refusals: Refusals {
                    network: 5,
                    ..Refusals::default()
                },
            },
            super::super::EndpointRefusals {
                endpoint: "tcp:127.0.0.1:7000".into(),
                refusals: Refusals::default(),
            },
        ];
        let text = tables(&[port]);
        assert!(
            text.contains("connections refused: max_clients 2, network 5\n    by rfc2217:0.0.0.0:2217: network 5\n  "),
            "{text}"
        );
        assert!(!text.contains("by tcp:127.0.0.1:7000"), "{text}");
        assert!(
            text.contains(
                "unsolicited bytes dropped 43; bad replies 47; reply bytes of departed \
                 clients discarded 53; client bytes lost to resets 41"
            ),
            "{text}"
        );
        assert!(
            text.contains("metrics: http://127.0.0.1:9108/metrics"),
            "{text}"
        );
        let header = text.lines().find(|l| l.contains("CLIENT")).unwrap();
        let row = text.lines().find(|l| l.contains("modbus-tcp:")).unwrap();
        let cells: Vec<(&str, &str)> = header
            .split_whitespace()
            .zip(row.split_whitespace())
            .collect();
        for (column, want) in [
            ("DISCARDED", "17"),
            ("LOST", "29"),
            ("TXNS", "19"),
            ("TIMEOUTS", "23"),
            ("BAD", "31"),
            ("IDENTITY", "cn:alice"),
        ] {
            assert!(cells.contains(&(column, want)), "{column}: {text}");
        }
    }
}
