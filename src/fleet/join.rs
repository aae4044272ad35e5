//! Joining the fleet under a host name: the host record is created only if
//! no live serialhub holds the name.
//!
//! `create` writes `host.HOST` only where there is none (or a deleted
//! one). If there is one, it is taken over only when it is this process's
//! own (its `instance`) or a dead host's: older than 3 of its heartbeats.
//! The take-over is an `update` at the revision read, so two processes
//! racing for a dead host's name cannot both win. A live holder refuses the
//! join, with a message that names it.

use std::time::Duration;

use async_nats::jetstream::kv;
use bytes::Bytes;

use super::records::{HostRecord, age, host_key, is_live};

/// Rounds of create, read and update before giving up on a name whose
/// record changes under us each time (a busy race; the next heartbeat
/// tries again).
const ROUNDS: usize = 3;

/// How a join ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// The host record is ours, at this revision.
    Yes(u64),
    /// Another live serialhub holds the name; why, for people.
    Refused(String),
}

/// What to do about a host record that is already there.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Take,
    Refuse(String),
}

/// Takes the name, or is refused; an error if the broker could not be
/// asked (it is asked again later).
pub(crate) async fn join(store: &kv::Store, me: &HostRecord) -> Result<Joined, String> {
    let key = host_key(&me.host);
    let value = Bytes::from(serde_json::to_vec(me).unwrap_or_default());
    for _ in 0..ROUNDS {
        match store.create(&key, value.clone()).await {
            Ok(revision) => return Ok(Joined::Yes(revision)),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("registering {key}: {e}")),
        }
        let entry = match store.entry(&key).await {
            Ok(Some(e)) if e.operation == kv::Operation::Put => e,
            // Deleted or gone meanwhile: create again.
            Ok(_) => continue,
            Err(e) => return Err(format!("reading {key}: {e}")),
        };
        let holder = serde_json::from_slice::<HostRecord>(&entry.value).ok();
        match decide(holder.as_ref(), age(entry.created), me) {
            Decision::Refuse(why) => return Ok(Joined::Refused(why)),
            Decision::Take => match store.update(&key, value.clone(), entry.revision).await {
                Ok(revision) => return Ok(Joined::Yes(revision)),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                Err(e) => return Err(format!("registering {key}: {e}")),
            },
        }
    }
    Err(format!("{key} changed under us {ROUNDS} times"))
}

/// Whether `me` may take the name from `holder`, whose record was written
/// `age` ago. A record that does not parse is no live serialhub's.
pub(crate) fn decide(holder: Option<&HostRecord>, age: Duration, me: &HostRecord) -> Decision {
    let Some(h) = holder else {
        return Decision::Take;
    };
    if h.instance == me.instance || !is_live(age, h.heartbeat_ms) {
        return Decision::Take;
    }
    Decision::Refuse(format!(
        "fleet host name {:?} is in use: another serialhub (pid {}) sent a heartbeat {:.1} s ago; give this one another --fleet-host",
        me.host,
        h.pid,
        age.as_secs_f64()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(instance: &str, pid: u32) -> HostRecord {
        HostRecord {
            host: "lab1".into(),
            instance: instance.into(),
            pid,
            version: "0.1.0".into(),
            heartbeat_ms: 1000,
            started: String::new(),
        }
    }

    #[test]
    fn a_live_holder_refuses_and_a_dead_or_own_one_does_not() {
        let me = record("mine", 2);
        let ms = Duration::from_millis;
        assert_eq!(decide(None, ms(0), &me), Decision::Take);
        assert_eq!(
            decide(Some(&record("mine", 1)), ms(10), &me),
            Decision::Take
        );
        assert_eq!(
            decide(Some(&record("other", 7)), ms(3000), &me),
            Decision::Take
        );
        assert_eq!(
            decide(Some(&record("other", 7)), ms(1234), &me),
            Decision::Refuse(
                "fleet host name \"lab1\" is in use: another serialhub (pid 7) sent a heartbeat 1.2 s ago; give this one another --fleet-host".into()
            )
        );
    }
}
