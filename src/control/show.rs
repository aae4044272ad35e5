//! `serialhub status` as tables, for people.

use std::fmt::Write as _;

use super::PortStatus;

/// Renders ports and their clients as text tables.
pub fn tables(ports: &[PortStatus]) -> String {
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
        let _ = writeln!(out, "  endpoints: {}", p.endpoints.join(", "));
        let clients = field("clients");
        let clients = clients.as_array().map(Vec::as_slice).unwrap_or_default();
        if clients.is_empty() {
            let _ = writeln!(out, "  no clients");
            continue;
        }
        let _ = writeln!(
            out,
            "  {:>5}  {:<32} {:<27} {:>10} {:>10} {:>7} {:>8}",
            "ID", "CLIENT", "CONNECTED", "IN", "OUT", "QUEUED", "DROPPED"
        );
        for c in clients {
            let _ = writeln!(
                out,
                "  {:>5}  {:<32} {:<27} {:>10} {:>10} {:>7} {:>8}",
                c["id"].as_u64().unwrap_or(0),
                c["peer"].as_str().unwrap_or("?"),
                c["connected_since"].as_str().unwrap_or("?"),
                c["bytes_in"].as_u64().unwrap_or(0),
                c["bytes_out"].as_u64().unwrap_or(0),
                c["queued"].as_u64().unwrap_or(0),
                c["dropped"].as_u64().unwrap_or(0),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::status::{DeviceState, HubStatus};

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
}
