//! `serialhub fleet ls`: every live port of the fleet, read from the
//! registry bucket in one pass.
//!
//! One ordered consumer delivers the latest value of every key (a KV watch
//! with history, last per subject) until it is caught up (`delta` 0), so a
//! listing costs a round trip and the bucket's size, not a request per
//! key: 256 ports of 16 hosts come in one stream. A port is listed while
//! its own record and its host's are younger than 3 of their heartbeats
//! and both are of the same process (`instance`): a host killed with
//! SIGKILL disappears within 3 heartbeats, a restarted one shows only the
//! ports it has now.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use serde::Serialize;

use super::FleetError;
use super::config::{Broker, Label, Labels};
use super::connect::{CONNECT_WAIT, connect_within};
use super::records::{BUCKET, HostRecord, PortRecord, age, is_live, port_key};

/// A caught-up watch delivers without pause; a stream this quiet for this
/// long has nothing more (its last entries expired while it was read).
const QUIET: Duration = Duration::from_secs(2);
/// Entries read at most: far more than any fleet's ports and hosts, so a
/// broker that keeps writing cannot keep a listing going.
const MAX_ENTRIES: usize = 1 << 20;

/// One row of the listing; `--json` prints these as they are.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Listed {
    #[serde(flatten)]
    pub(crate) record: PortRecord,
    /// RFC 3339, UTC: when the port's record was last written.
    pub(crate) last_seen: String,
    pub(crate) age_ms: u64,
}

/// Lists the fleet of `broker`, the ports with every label of `labels`;
/// as a table, or JSON.
pub(crate) async fn run(broker: &Broker, labels: &[Label], json: bool) -> Result<(), FleetError> {
    let conn = connect_within(broker, "serialhub fleet ls", CONNECT_WAIT).await?;
    let js = jetstream::new(conn.client.clone());
    let listed = match js.get_key_value(BUCKET).await {
        Ok(store) => read(&store).await?,
        // No bucket: no host ever joined.
        Err(e) if e.kind() == jetstream::context::KeyValueErrorKind::GetBucket => Vec::new(),
        Err(e) => return Err(FleetError::Registry(e.to_string())),
    };
    let listed: Vec<Listed> = listed
        .into_iter()
        .filter(|l| {
            labels
                .iter()
                .all(|want| l.record.labels.get(&want.key) == Some(&want.value))
        })
        .collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&listed).unwrap_or_default()
        );
    } else {
        print!("{}", table(&listed));
    }
    Ok(())
}

/// The live ports in the bucket, by name.
pub(crate) async fn read(store: &kv::Store) -> Result<Vec<Listed>, FleetError> {
    let err = |e: &dyn std::fmt::Display| FleetError::Registry(e.to_string());
    let status = store.status().await.map_err(|e| err(&e))?;
    let mut latest: HashMap<String, kv::Entry> = HashMap::new();
    if status.values() > 0 {
        let mut watch = store.watch_with_history(">").await.map_err(|e| err(&e))?;
        while latest.len() < MAX_ENTRIES {
            let Ok(next) = tokio::time::timeout(QUIET, watch.next()).await else {
                break;
            };
            let Some(entry) = next else { break };
            let entry = entry.map_err(|e| err(&e))?;
            let done = entry.delta == 0;
            if entry.operation == kv::Operation::Put {
                latest.insert(entry.key.clone(), entry);
            } else {
                latest.remove(&entry.key);
            }
            if done {
                break;
            }
        }
    }
    Ok(live(&latest))
}

/// The live ports among the latest entries, sorted by name.
fn live(latest: &HashMap<String, kv::Entry>) -> Vec<Listed> {
    let hosts: HashMap<&str, (HostRecord, Duration)> = latest
        .iter()
        .filter_map(|(key, e)| {
            let host = key.strip_prefix("host.")?;
            let rec: HostRecord = serde_json::from_slice(&e.value).ok()?;
            Some((host, (rec, age(e.created))))
        })
        .collect();
    let mut out: Vec<Listed> = latest
        .iter()
        .filter(|(key, _)| key.starts_with("port."))
        .filter_map(|(key, e)| {
            let rec: PortRecord = serde_json::from_slice(&e.value).ok()?;
            // A record under another host's key (or naming another port)
            // is no host's own: anyone may write the bucket.
            if *key != port_key(&rec.host, &rec.port)
                || rec.name != format!("{}/{}", rec.host, rec.port)
            {
                return None;
            }
            let (host, host_age) = hosts.get(rec.host.as_str())?;
            let port_age = age(e.created);
            let alive = host.instance == rec.instance
                && is_live(*host_age, host.heartbeat_ms)
                && is_live(port_age, rec.heartbeat_ms);
            alive.then(|| Listed {
                last_seen: e
                    .created
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                age_ms: u64::try_from(port_age.as_millis()).unwrap_or(u64::MAX),
                record: rec,
            })
        })
        .collect();
    out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
    out
}

/// The listing as a table: NAME DEVICE STATE LINE CLIENTS LABELS SEEN.
pub(crate) fn table(listed: &[Listed]) -> String {
    let rows: Vec<[String; 7]> = listed
        .iter()
        .map(|l| {
            let r = &l.record;
            [
                r.name.clone(),
                r.device.clone(),
                r.state.clone(),
                r.line.clone(),
                r.clients.to_string(),
                labels_text(&r.labels),
                age_text(Duration::from_millis(l.age_ms)),
            ]
            .map(|cell| printable(&cell))
        })
        .collect();
    let head = [
        "NAME", "DEVICE", "STATE", "LINE", "CLIENTS", "LABELS", "SEEN",
    ]
    .map(String::from);
    let mut widths = head.clone().map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `cell` with every control character (a terminal escape, a newline
/// from a forged record) shown as `?`, so a listing cannot drive the
/// terminal it is printed on.
fn printable(cell: &str) -> String {
    cell.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `board=rpi4,rack=3`, or `-` for none.
fn labels_text(labels: &Labels) -> String {
    if labels.is_empty() {
        return "-".into();
    }
    let parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join(",")
}

/// `1.2s` under a minute, then `3m4s`, then `2h5m`.
pub(crate) fn age_text(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{}h{}m", s / 3600, s % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, value: &impl Serialize, ago: Duration) -> kv::Entry {
        kv::Entry {
            bucket: BUCKET.into(),
            key: key.into(),
            value: serde_json::to_vec(value).unwrap().into(),
            revision: 1,
            delta: 0,
            created: time::OffsetDateTime::now_utc() - ago,
            operation: kv::Operation::Put,
            seen_current: true,
        }
    }

    fn host(name: &str, instance: &str) -> HostRecord {
        HostRecord {
            host: name.into(),
            instance: instance.into(),
            pid: 1,
            version: "0.1.0".into(),
            heartbeat_ms: 1000,
            started: String::new(),
        }
    }

    fn port(host: &str, name: &str, instance: &str) -> PortRecord {
        PortRecord {
            name: format!("{host}/{name}"),
            host: host.into(),
            port: name.into(),
            device: "sim:echo".into(),
            state: "open".into(),
            error: None,
            line: "9600 8N1".into(),
            clients: 0,
            labels: Labels::new(),
            version: "0.1.0".into(),
            heartbeat_ms: 1000,
            instance: instance.into(),
        }
    }

    fn renamed(mut p: PortRecord) -> PortRecord {
        p.name = "b/other".into();
        p
    }

    #[test]
    fn a_forged_record_cannot_drive_the_terminal() {
        let mut p = port("lab1", "ttyUSB0", "i");
        p.device = "sim:echo\u{1b}]0;owned\u{7}\n\rfake row".into();
        p.labels.insert("k".into(), "v\u{1b}[2J".into());
        let t = table(&[Listed {
            record: p,
            last_seen: String::new(),
            age_ms: 0,
        }]);
        assert_eq!(t.lines().count(), 2, "{t:?}");
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert!(t.contains("sim:echo?]0;owned???fake row"), "{t:?}");
    }

    #[test]
    fn only_live_ports_of_live_hosts_of_the_same_process_are_listed() {
        let s = Duration::from_millis;
        let entries = [
            entry("host.a", &host("a", "i1"), s(100)),
            entry("port.a.p.1", &port("a", "p.1", "i1"), s(200)),
            entry("port.a.old", &port("a", "old", "i1"), s(3500)),
            entry("port.a.other", &port("a", "other", "i0"), s(100)),
            entry("host.dead", &host("dead", "i2"), s(3100)),
            entry("port.dead.p", &port("dead", "p", "i2"), s(100)),
            entry("port.orphan.p", &port("orphan", "p", "i3"), s(100)),
            // Forged: a record under a key that is not its own.
            entry("port.a.forged", &port("a", "p.1", "i1"), s(100)),
            entry("port.a.named", &renamed(port("a", "named", "i1")), s(100)),
            entry("port.a.junk", &"not a record", s(100)),
            entry("host.junk", &[1, 2, 3], s(100)),
        ];
        let latest = entries.into_iter().map(|e| (e.key.clone(), e)).collect();
        let listed = live(&latest);
        let names: Vec<&str> = listed.iter().map(|l| l.record.name.as_str()).collect();
        assert_eq!(names, ["a/p.1"]);
        assert!(
            (150..1000).contains(&listed[0].age_ms),
            "{}",
            listed[0].age_ms
        );
        let json = serde_json::to_value(&listed[0]).unwrap();
        for field in [
            "name",
            "host",
            "port",
            "device",
            "state",
            "line",
            "clients",
            "labels",
            "last_seen",
            "age_ms",
        ] {
            assert!(json.get(field).is_some(), "{field} missing: {json}");
        }
    }

    #[test]
    fn the_table_has_its_columns() {
        let mut p = port("lab1", "ttyUSB0", "i");
        p.labels.insert("board".into(), "rpi4".into());
        let t = table(&[Listed {
            record: p,
            last_seen: String::new(),
            age_ms: 1234,
        }]);
        let mut lines = t.lines();
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            [
                "NAME", "DEVICE", "STATE", "LINE", "CLIENTS", "LABELS", "SEEN"
            ]
        );
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("lab1/ttyUSB0  sim:echo  open   9600 8N1"),
            "{row}"
        );
        assert!(row.ends_with("board=rpi4  1.2s"), "{row}");
        assert_eq!(age_text(Duration::from_secs(75)), "1m15s");
        assert_eq!(age_text(Duration::from_secs(7500)), "2h5m");
    }
}
