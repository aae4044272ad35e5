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
        let _ = writeln!(
            out,
            "port {}: {} {} [{}], {}{} since {}",
            p.name,
            p.device,
            p.line,
            p.writers,
            state,
            detail,
            field("device_since").as_str().unwrap_or("?"),
        );
        let _ = writeln!(
            out,
            "  bytes from device {}, to device {}; dropped {}, kicked {}, refused {}; \
             transactions {}, timeouts {}; write lock {}",
            num("bytes_from_device"),
            num("bytes_to_device"),
            num("dropped"),
            num("kicked"),
            num("refused"),
            num("transactions"),
            num("timeouts"),
            field("write_lock").as_str().unwrap_or("-"),
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
