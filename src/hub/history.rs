//! A port's scrollback: the last bytes the device said, with their offsets,
//! so a viewer that joins sees what came before it, and one that comes back
//! after a network blip resumes where it left off.
//!
//! Offsets count every byte the device said on the port since it started
//! (as `device_rx` does), whether or not it is still kept. The ring keeps at
//! most `capacity` bytes (0: none, offsets are still counted). Sans-I/O and
//! synchronous: the hub appends under the same lock under which a viewer's
//! attach takes its snapshot (see [`Hub::attach_with_history`]), so each
//! byte is either in the snapshot or in the viewer's queue, never both or
//! neither.
//!
//! [`Hub::attach_with_history`]: super::Hub::attach_with_history

use std::collections::VecDeque;

use std::sync::Arc;

use bytes::Bytes;

use super::client::Slot;
use super::{ClientHandle, Hub, SlowReaderPolicy};

/// The scrollback a port keeps unless told otherwise.
pub(crate) const DEFAULT_SCROLLBACK: usize = 64 << 10;
/// The most a port may keep (`--scrollback`): the snapshot is copied for
/// every viewer that joins, so it stays a few megabytes at most.
pub(crate) const MAX_SCROLLBACK: usize = 16 << 20;

/// The last `capacity` device bytes and the offset of the next one.
#[derive(Debug)]
pub(crate) struct History {
    capacity: usize,
    kept: VecDeque<u8>,
    /// The offset just past the last byte the device said.
    end: u64,
}

/// What a viewer is given when it joins: history from `from` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The device offset of `data`'s first byte.
    pub(crate) from: u64,
    pub(crate) data: Bytes,
    /// Bytes the viewer asked for (`since`) that are no longer kept.
    pub(crate) gap: u64,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            kept: VecDeque::with_capacity(capacity.min(4096)),
            end: 0,
        }
    }

    /// The device said `data`.
    pub(crate) fn push(&mut self, data: &[u8]) {
        self.end += data.len() as u64;
        if self.capacity == 0 {
            return;
        }
        let data = &data[data.len().saturating_sub(self.capacity)..];
        let over = (self.kept.len() + data.len()).saturating_sub(self.capacity);
        self.kept.drain(..over);
        self.kept.extend(data);
    }

    /// The offset of the oldest byte kept.
    pub(crate) fn start(&self) -> u64 {
        self.end - self.kept.len() as u64
    }

    /// The offset of the next byte the device will say.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// What is kept from offset `since` on (everything kept if `None`).
    /// A `since` older than what is kept starts at the oldest kept byte and
    /// says how much is missing; one past the end (a port that restarted
    /// since) starts now.
    pub(crate) fn since(&self, since: Option<u64>) -> Snapshot {
        let start = self.start();
        let (from, gap) = match since {
            None => (start, 0),
            Some(s) if s < start => (start, start - s),
            Some(s) if s > self.end => (self.end, 0),
            Some(s) => (s, 0),
        };
        // `from` lies within [start, end], so the skip fits the ring.
        let skip = usize::try_from(from - start).unwrap_or(self.kept.len());
        let data: Vec<u8> = self.kept.iter().skip(skip).copied().collect();
        Snapshot {
            from,
            data: Bytes::from(data),
            gap,
        }
    }
}

impl Hub {
    fn history(&self) -> std::sync::MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps `data` in the scrollback and returns the clients it goes to,
    /// both under the history's lock, so that an attach with a snapshot
    /// sees it in exactly one of the two.
    pub(super) fn record_history(&self, data: &[u8]) -> Arc<Vec<Arc<Slot>>> {
        let mut history = self.history();
        history.push(data);
        self.clients()
    }

    /// Registers a client (like [`attach_with`](Hub::attach_with)) and
    /// gives it the scrollback from `since`: every device byte from the
    /// snapshot's start on is either in the snapshot or queued for it.
    pub(crate) fn attach_with_history(
        self: &Arc<Self>,
        name: impl Into<Arc<str>>,
        policy: SlowReaderPolicy,
        since: Option<u64>,
    ) -> (ClientHandle, Snapshot) {
        let history = self.history();
        let handle = self.attach_with(name, policy);
        let snapshot = history.since(since);
        drop(history);
        (handle, snapshot)
    }

    /// The offset of the next byte the device will say.
    pub(crate) fn device_offset(&self) -> u64 {
        self.history().end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keeps_the_last_capacity_bytes_with_their_offsets() {
        let mut h = History::new(4);
        h.push(b"abc");
        assert_eq!(h.since(None).data, &b"abc"[..]);
        h.push(b"defgh");
        assert_eq!((h.start(), h.end()), (4, 8));
        let s = h.since(None);
        assert_eq!((s.from, &s.data[..], s.gap), (4, &b"efgh"[..], 0));
        let s = h.since(Some(6));
        assert_eq!((s.from, &s.data[..], s.gap), (6, &b"gh"[..], 0));
        let s = h.since(Some(1));
        assert_eq!((s.from, &s.data[..], s.gap), (4, &b"efgh"[..], 3));
        let s = h.since(Some(8));
        assert_eq!((s.from, s.data.len(), s.gap), (8, 0, 0));
        let s = h.since(Some(100));
        assert_eq!((s.from, s.data.len(), s.gap), (8, 0, 0));
    }

    #[test]
    fn off_keeps_nothing_but_counts() {
        let mut h = History::new(0);
        h.push(b"hello");
        let s = h.since(None);
        assert_eq!((s.from, s.data.len(), s.gap), (5, 0, 0));
        assert_eq!(h.since(Some(2)).gap, 3);
    }

    #[tokio::test]
    async fn a_viewer_gets_each_byte_once_from_the_snapshot_or_its_queue() {
        use crate::hub::HubConfig;
        let mut config = HubConfig::for_tests(SlowReaderPolicy::Drop, 1024, 64);
        config.scrollback = 8;
        let (hub, _writes) = crate::hub::Hub::new(config);
        hub.publish(Bytes::from_static(b"0123456789")).await;
        let (first, snap) = hub.attach_with_history("a", SlowReaderPolicy::Drop, None);
        assert_eq!((snap.from, &snap.data[..]), (2, &b"23456789"[..]));
        hub.publish(Bytes::from_static(b"ab")).await;
        assert_eq!(&first.next_output().await.unwrap()[..], b"ab");
        let (_second, snap) = hub.attach_with_history("b", SlowReaderPolicy::Drop, Some(9));
        assert_eq!((snap.from, &snap.data[..], snap.gap), (9, &b"9ab"[..], 0));
        assert_eq!(hub.device_offset(), 12);
    }

    proptest! {
        /// A viewer that saw the stream up to `cut` and resumes with
        /// `since = cut` gets exactly the rest, when the ring still holds
        /// it, or the rest less a gap it is told of: never a duplicate.
        #[test]
        fn resume_has_no_gap_and_no_duplicate(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..30),
            capacity in 0usize..100,
            cut in 0usize..1200,
        ) {
            let mut h = History::new(capacity);
            let all: Vec<u8> = chunks.concat();
            for c in &chunks {
                h.push(c);
            }
            let cut = cut.min(all.len());
            let s = h.since(Some(cut as u64));
            prop_assert_eq!(s.from, cut as u64 + s.gap);
            prop_assert_eq!(&s.data[..], &all[cut + s.gap as usize..]);
            prop_assert!(s.data.len() <= capacity);
            if all.len() - cut <= capacity {
                prop_assert_eq!(s.gap, 0);
            }
            let whole = h.since(None);
            prop_assert_eq!(whole.from + whole.data.len() as u64, all.len() as u64);
        }
    }
}
