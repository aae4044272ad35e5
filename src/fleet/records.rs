//! The fleet registry's vocabulary: one JetStream key-value bucket,
//! [`BUCKET`], with a host record under `host.HOST` and a port record
//! under `port.HOST.PORT` (a port name may hold dots: fine in a key, never
//! in a subject token). Records are JSON; the time of a record is its
//! entry's server timestamp, so a listing needs no clock of the hosts.
//!
//! The bucket keeps one value per key (history 1), on file, for at most
//! [`MAX_AGE`]: a host that died without deleting its keys leaves nothing
//! behind after that (listings hide it much sooner, see [`is_live`]).

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use serde::{Deserialize, Serialize};

use super::config::Labels;

/// The registry's bucket.
pub(crate) const BUCKET: &str = "serialhub_fleet";
/// Keys not refreshed for this long are dropped by the broker.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(300);
/// The largest record the bucket takes: a port's record with 32 labels at
/// their longest and a long device path is under 40 KiB.
pub(crate) const MAX_RECORD: i32 = 64 * 1024;
/// The bucket's size: thousands of hosts' ports, and a bound on what
/// `fleet ls` reads, whoever writes the bucket.
pub(crate) const MAX_BUCKET: i64 = 256 * 1024 * 1024;
/// A record older than this many of its heartbeats is a dead host's.
pub(crate) const LIVE_HEARTBEATS: u64 = 3;

/// `host.HOST`.
pub(crate) fn host_key(host: &str) -> String {
    format!("host.{host}")
}

/// `port.HOST.PORT`.
pub(crate) fn port_key(host: &str, port: &str) -> String {
    format!("port.{host}.{port}")
}

/// One serialhub process in the fleet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HostRecord {
    pub(crate) host: String,
    /// Random per process: tells a restarted or second process from this one.
    pub(crate) instance: String,
    pub(crate) pid: u32,
    pub(crate) version: String,
    pub(crate) heartbeat_ms: u64,
    /// RFC 3339, UTC.
    pub(crate) started: String,
}

/// One port of a host, as `fleet ls` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PortRecord {
    /// `HOST/PORT`.
    pub(crate) name: String,
    pub(crate) host: String,
    pub(crate) port: String,
    pub(crate) device: String,
    /// The device's state as status shows it: `open`, `waiting`,
    /// `reconnecting`, ...
    pub(crate) state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// `115200 8N1`.
    pub(crate) line: String,
    pub(crate) clients: usize,
    #[serde(default)]
    pub(crate) labels: Labels,
    pub(crate) version: String,
    pub(crate) heartbeat_ms: u64,
    pub(crate) instance: String,
}

/// Whether a record of `heartbeat_ms` written `age` ago is still alive.
pub(crate) fn is_live(age: Duration, heartbeat_ms: u64) -> bool {
    let limit = Duration::from_millis(heartbeat_ms.saturating_mul(LIVE_HEARTBEATS));
    age < limit
}

/// How long ago `created` (a server timestamp) was; zero if it is ahead
/// of this machine's clock.
pub(crate) fn age(created: time::OffsetDateTime) -> Duration {
    let d = time::OffsetDateTime::now_utc() - created;
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}

/// The registry's bucket, made if it is missing (as the first host to
/// come does); one that exists is used as it is.
///
/// Made as the stream a KV bucket is (`KV_serialhub_fleet` on subjects
/// `$KV.serialhub_fleet.>`, what async-nats's `create_key_value` would
/// make), because that function first reads the account's info in a shape
/// nats-server 2.9 does not send (it has no `reserved_memory`).
pub(crate) async fn open_or_create(
    js: &jetstream::Context,
) -> Result<kv::Store, async_nats::Error> {
    if let Ok(store) = js.get_key_value(BUCKET).await {
        return Ok(store);
    }
    use jetstream::stream::{Config, DiscardPolicy, StorageType};
    let made = js
        .create_stream(Config {
            name: format!("KV_{BUCKET}"),
            description: Some("serialhub fleet registry: host.HOST and port.HOST.PORT".to_owned()),
            subjects: vec![format!("$KV.{BUCKET}.>")],
            max_messages_per_subject: 1,
            max_age: MAX_AGE,
            max_message_size: MAX_RECORD,
            max_bytes: MAX_BUCKET,
            storage: StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            num_replicas: 1,
            discard: DiscardPolicy::New,
            // Deduplication is for retried publishes; two minutes, or the
            // keys' lifetime if that is shorter, as KV buckets have.
            duplicate_window: MAX_AGE.min(Duration::from_secs(120)),
            ..Config::default()
        })
        .await;
    match (made, js.get_key_value(BUCKET).await) {
        (_, Ok(store)) => Ok(store),
        (Err(e), Err(_)) => Err(e.into()),
        (Ok(_), Err(e)) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_liveness() {
        assert_eq!(host_key("lab1"), "host.lab1");
        assert_eq!(port_key("lab1", "tty.USB0"), "port.lab1.tty.USB0");
        assert!(is_live(Duration::from_millis(2999), 1000));
        assert!(!is_live(Duration::from_millis(3000), 1000));
        assert!(!is_live(Duration::ZERO, 0));
        assert!(is_live(Duration::from_secs(1), u64::MAX));
    }

    #[test]
    fn port_records_read_back() {
        let r = PortRecord {
            name: "lab1/ttyUSB0".into(),
            host: "lab1".into(),
            port: "ttyUSB0".into(),
            device: "/dev/ttyUSB0".into(),
            state: "open".into(),
            error: None,
            line: "115200 8N1".into(),
            clients: 2,
            labels: [("board".to_owned(), "rpi4".to_owned())].into(),
            version: "0.1.0".into(),
            heartbeat_ms: 5000,
            instance: "abc".into(),
        };
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("error"), "{json}");
        assert_eq!(serde_json::from_str::<PortRecord>(&json).unwrap(), r);
    }
}
