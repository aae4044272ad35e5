//! The registry task: keeps this host's records in the fleet bucket.
//!
//! It asks the daemon task for the ports' status over the same channel as
//! the control socket (data flows daemon -> fleet; nothing here reaches
//! into a port), every [`POLL`]. A port whose record changed (state, line,
//! clients, labels) is written at once, so a change shows within about
//! [`POLL`]; every heartbeat all of them are written again, and the host
//! record is updated at the revision we last wrote, so a second process
//! that took the name meanwhile is noticed. Ports that went (a reload)
//! have their keys deleted, and at shutdown all of this host's are.
//!
//! With no broker, nothing is written and local serving goes on: async-nats
//! reconnects in the background, and the host joins when the broker is
//! there. A join refused because another live serialhub holds the name
//! stops `serve` at start-up ([`Registry::start`]); found later, it is
//! logged and shown in status, and this host stays out of the fleet.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::FleetError;
use super::config::FleetConfig;
use super::connect::{Connection, connect};
use super::join::{Joined, join};
use super::records::{HostRecord, PortRecord, host_key, open_or_create, port_key};
use crate::control::server::Asked;
use crate::control::{FleetStatus, PortStatus, Request};

/// How often the ports' status is read for changes: the debounce of a
/// change's update.
const POLL: Duration = Duration::from_millis(100);
/// `serve` waits this long at start-up to learn whether the broker is
/// there (a refused connection is known at once), so that a taken host
/// name stops it before it serves.
const START_WAIT: Duration = Duration::from_secs(3);
/// The broker gets this long to answer a round of writes, and the deletes
/// at shutdown.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// This host's membership of the fleet.
pub(crate) struct Registry {
    conn: Connection,
    config: FleetConfig,
    me: HostRecord,
    status: watch::Sender<FleetStatus>,
    store: Option<kv::Store>,
    /// The host record's revision as we last wrote it; `None` until joined.
    revision: Option<u64>,
    /// Another live serialhub holds the name: we stay out.
    refused: Option<String>,
    /// Why the last attempt to register or write failed.
    problem: Option<String>,
    /// What the bucket holds of our ports, as we last wrote it.
    published: HashMap<String, PortRecord>,
    last_beat: Option<Instant>,
}

impl Registry {
    /// Connects to the broker and, if it is reached within [`START_WAIT`],
    /// joins: a name held by another live serialhub is an error. If it is
    /// not, serving goes on and [`run`](Self::run) joins later.
    pub(crate) async fn start(config: FleetConfig) -> Result<Registry, FleetError> {
        let name = format!("serialhub {}", config.host);
        let conn = connect(&config.broker, &name).await?;
        let me = HostRecord {
            host: config.host.clone(),
            instance: instance_id(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            heartbeat_ms: u64::try_from(config.heartbeat.as_millis()).unwrap_or(u64::MAX),
            started: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        };
        let (status, _) = watch::channel(FleetStatus {
            url: config.broker.url.to_string(),
            host: config.host.clone(),
            state: "connecting".into(),
            error: None,
        });
        let mut registry = Registry {
            conn,
            config,
            me,
            status,
            store: None,
            revision: None,
            refused: None,
            problem: None,
            published: HashMap::new(),
            last_beat: None,
        };
        let mut link = registry.conn.link.clone();
        let known = tokio::time::timeout(
            START_WAIT,
            link.wait_for(|l| l.connected || l.error.is_some()),
        )
        .await;
        let connected = matches!(known, Ok(Ok(ref l)) if l.connected);
        drop(known);
        if connected {
            registry.join().await;
            if let Some(why) = registry.refused.take() {
                return Err(FleetError::Refused(why));
            }
        } else {
            let why = link.borrow().error.clone().unwrap_or_default();
            warn!(
                broker = %registry.config.broker.url,
                "fleet: no broker yet ({why}); serving locally, joining when it comes"
            );
        }
        registry.show();
        Ok(registry)
    }

    /// The broker client and this host's fleet name, which the session
    /// listener and `fleet://` devices share.
    pub(crate) fn sessions(&self) -> (&async_nats::Client, &str) {
        (&self.conn.client, &self.config.host)
    }

    /// The fleet's part of status, kept current.
    pub(crate) fn status(&self) -> watch::Receiver<FleetStatus> {
        self.status.subscribe()
    }

    /// Keeps the records until `shutdown`, then deletes them.
    pub(crate) async fn run(mut self, daemon: mpsc::Sender<Asked>, shutdown: CancellationToken) {
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_connected = self.conn.link.borrow().connected;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = poll.tick() => {}
            }
            let connected = self.conn.link.borrow().connected;
            if connected != was_connected {
                if connected {
                    info!(broker = %self.config.broker.url, "fleet: connected to the broker");
                } else {
                    warn!(broker = %self.config.broker.url, "fleet: lost the broker; serving on locally");
                }
                was_connected = connected;
            }
            if connected && self.refused.is_none() {
                if self.revision.is_none() {
                    self.join().await;
                    if let Some(why) = &self.refused {
                        error!("{why}; this serialhub stays out of the fleet");
                    }
                }
                if self.revision.is_some() {
                    // The daemon stops answering at shutdown.
                    let ports = tokio::select! {
                        () = shutdown.cancelled() => break,
                        ports = ask_status(&daemon) => ports,
                    };
                    if let Some(ports) = ports {
                        self.publish(&ports).await;
                    }
                }
            }
            self.show();
        }
        self.leave().await;
    }

    /// Registers the host record; sets `revision`, or `refused`, or
    /// `problem`.
    async fn join(&mut self) {
        let store = match self.store().await {
            Ok(s) => s,
            Err(e) => {
                self.problem = Some(e);
                return;
            }
        };
        match join(&store, &self.me).await {
            Ok(Joined::Yes(revision)) => {
                info!(host = %self.me.host, broker = %self.config.broker.url, "fleet: joined");
                self.revision = Some(revision);
                self.problem = None;
                // Everything is written again at once.
                self.published.clear();
                self.last_beat = None;
            }
            // Logged by `run`; at start-up, `serve` stops with it.
            Ok(Joined::Refused(why)) => self.refused = Some(why),
            Err(e) => self.problem = Some(e),
        }
    }

    /// The bucket, opened (or made) once.
    async fn store(&mut self) -> Result<kv::Store, String> {
        if let Some(s) = &self.store {
            return Ok(s.clone());
        }
        let mut js = jetstream::new(self.conn.client.clone());
        js.set_timeout(WRITE_TIMEOUT);
        let store = open_or_create(&js)
            .await
            .map_err(|e| format!("the registry bucket: {e}"))?;
        self.store = Some(store.clone());
        Ok(store)
    }

    /// Writes what changed, or everything when a heartbeat is due.
    async fn publish(&mut self, ports: &[PortStatus]) {
        let Some(store) = self.store.clone() else {
            return;
        };
        let records: HashMap<String, PortRecord> = ports
            .iter()
            .map(|p| (p.name.clone(), self.record(p)))
            .collect();
        let beat = self
            .last_beat
            .is_none_or(|t| t.elapsed() >= self.config.heartbeat);
        if beat {
            let value = Bytes::from(serde_json::to_vec(&self.me).unwrap_or_default());
            let key = host_key(&self.me.host);
            let revision = self.revision.unwrap_or(0);
            match tokio::time::timeout(WRITE_TIMEOUT, store.update(&key, value, revision)).await {
                Ok(Ok(r)) => self.revision = Some(r),
                Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    // Deleted, expired, lost with the broker's store, or
                    // taken: join again, which tells which.
                    warn!(%key, "fleet: the host record changed under us; joining again");
                    self.revision = None;
                    return;
                }
                Ok(Err(e)) => return self.failed(format!("heartbeat: {e}")),
                Err(_) => return self.failed("heartbeat: the broker did not answer".into()),
            }
        }
        let mut writes = JoinSet::new();
        for (name, rec) in &records {
            if beat || self.published.get(name) != Some(rec) {
                let (store, key) = (store.clone(), port_key(&self.me.host, name));
                let value = Bytes::from(serde_json::to_vec(rec).unwrap_or_default());
                writes.spawn(async move { store.put(key, value).await.map(|_| ()).is_ok() });
            }
        }
        let gone: Vec<String> = self
            .published
            .keys()
            .filter(|name| !records.contains_key(*name))
            .cloned()
            .collect();
        for name in &gone {
            let (store, key) = (store.clone(), port_key(&self.me.host, name));
            writes.spawn(async move { store.delete(key).await.is_ok() });
        }
        let ok = tokio::time::timeout(WRITE_TIMEOUT, async {
            let mut ok = true;
            while let Some(r) = writes.join_next().await {
                ok &= matches!(r, Ok(true));
            }
            ok
        })
        .await
        .unwrap_or(false);
        if !ok {
            // Written again next round: nothing is marked published.
            return self.failed("writing port records failed or timed out".into());
        }
        self.published = records;
        self.problem = None;
        if beat {
            self.last_beat = Some(Instant::now());
        }
    }

    fn failed(&mut self, why: String) {
        if self.problem.as_ref() != Some(&why) {
            warn!("fleet: {why}");
        }
        self.problem = Some(why);
    }

    /// A port's record from its status.
    fn record(&self, p: &PortStatus) -> PortRecord {
        let state = &p.hub["device_state"];
        PortRecord {
            name: format!("{}/{}", self.me.host, p.name),
            host: self.me.host.clone(),
            port: p.name.clone(),
            device: p.device.clone(),
            state: state["state"].as_str().unwrap_or("unknown").to_owned(),
            error: state["error"].as_str().map(str::to_owned),
            line: p.line.clone(),
            clients: p.hub["clients"].as_array().map_or(0, Vec::len),
            labels: p.labels.clone(),
            version: self.me.version.clone(),
            heartbeat_ms: self.me.heartbeat_ms,
            instance: self.me.instance.clone(),
        }
    }

    /// Status as it is now.
    fn show(&self) {
        let link = self.conn.link.borrow().clone();
        let (state, error) = match (&self.refused, self.revision, link.connected) {
            (Some(why), _, _) => ("refused", Some(why.clone())),
            (None, Some(_), true) => ("connected", self.problem.clone()),
            (None, _, true) => ("connecting", self.problem.clone()),
            (None, _, false) => ("connecting", link.error.or(self.problem.clone())),
        };
        self.status.send_if_modified(|s| {
            let changed = s.state != state || s.error != error;
            s.state = state.to_owned();
            s.error = error;
            changed
        });
    }

    /// Deletes this host's keys (graceful shutdown): it leaves listings at
    /// once instead of after 3 heartbeats.
    async fn leave(self) {
        let (Some(store), Some(_)) = (self.store, self.revision) else {
            return;
        };
        if !self.conn.link.borrow().connected {
            return;
        }
        let mut deletes = JoinSet::new();
        for name in self.published.keys() {
            let (store, key) = (store.clone(), port_key(&self.me.host, name));
            deletes.spawn(async move { store.delete(key).await });
        }
        let host = host_key(&self.me.host);
        let done = tokio::time::timeout(WRITE_TIMEOUT, async move {
            while deletes.join_next().await.is_some() {}
            store.delete(host).await
        })
        .await;
        match done {
            Ok(Ok(())) => info!(host = %self.me.host, "fleet: left"),
            Ok(Err(e)) => warn!("fleet: leaving: {e}"),
            Err(_) => warn!("fleet: leaving: the broker did not answer"),
        }
    }
}

/// The ports' status from the daemon task; `None` if it is gone or busy
/// past a poll's worth of patience.
async fn ask_status(daemon: &mpsc::Sender<Asked>) -> Option<Vec<PortStatus>> {
    let (tx, rx) = oneshot::channel();
    daemon
        .send((Request::Status { port: None }, tx))
        .await
        .ok()?;
    let answer = tokio::time::timeout(WRITE_TIMEOUT, rx).await.ok()?.ok()?;
    Some(answer.ports)
}

/// A random id for this process: 16 hex digits.
fn instance_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // No system randomness: the pid and the time still tell processes
        // apart.
        let t = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let seed = (u128::from(std::process::id()) << 64) ^ t.unsigned_abs();
        bytes = u64::try_from(seed & u128::from(u64::MAX))
            .unwrap_or(0)
            .to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
