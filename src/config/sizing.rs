//! How big a port's buffers are: the hub's write budget and client queues,
//! and the client sockets' kernel buffers, from the line rate and the
//! in-flight allowance (or fixed bytes on an unpaced device).

use std::time::Duration;

use super::ranges::{DEFAULT_LOCK_IDLE, DEFAULT_LOCK_MAX};
use crate::device::READ_CHUNK;
use crate::endpoint::tcp::SocketSizing;
use crate::hub::{HubConfig, Sizes, SlowReaderPolicy};
use crate::line::LineSettings;

/// Send buffer per client socket: one second of line time, at least 4 KiB,
/// so a stalled reader fills its queue (and meets its policy) promptly.
pub(super) const SEND_BUFFER_MIN: usize = 4096;
/// Both kernel buffers of a client socket on an unpaced device: as much as
/// the hub's write budget ([`crate::hub::budget::UNPACED_BUDGET`]), so a
/// bulk transfer never waits on a window smaller than the hub's steps
/// (Linux doubles it for its bookkeeping).
pub(super) const UNPACED_SOCKET_BUFFER: usize = 256 << 10;

/// Splits the in-flight allowance between the hub and the socket buffers
/// (a paced line), or gives an unpaced device fixed byte sizes;
/// `client_queue` is the user's, if set.
pub(crate) fn hub_config(
    line: &LineSettings,
    paced: bool,
    max_inflight: Duration,
    client_queue: Option<usize>,
    slow_reader: SlowReaderPolicy,
) -> HubConfig {
    let sizes = Sizes::for_device(line, paced, max_inflight, client_queue);
    HubConfig {
        client_queue: sizes.client_queue.max(READ_CHUNK),
        client_queue_fixed: client_queue.is_some(),
        paced,
        max_inflight,
        slow_reader,
        write_budget: sizes.write_budget,
        write_chunk: sizes.write_chunk,
        lock_idle: DEFAULT_LOCK_IDLE,
        lock_max: DEFAULT_LOCK_MAX,
        txn: None,
        keep_settings: false,
        scrollback: crate::hub::history::DEFAULT_SCROLLBACK,
    }
}

/// A client socket's kernel buffers: the other half of the in-flight
/// allowance on a paced line; on an unpaced device, [`UNPACED_SOCKET_BUFFER`].
pub(crate) fn socket_sizing(
    line: &LineSettings,
    paced: bool,
    max_inflight: Duration,
) -> SocketSizing {
    if !paced {
        return SocketSizing {
            recv_buffer: UNPACED_SOCKET_BUFFER,
            send_buffer: UNPACED_SOCKET_BUFFER,
        };
    }
    SocketSizing {
        recv_buffer: (line.bytes_in(max_inflight) / 2).max(1),
        send_buffer: line.bytes_in(Duration::from_secs(1)).max(SEND_BUFFER_MIN),
    }
}
