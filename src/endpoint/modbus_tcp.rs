//! Modbus TCP endpoint (`modbus-tcp:HOST:PORT`): a Modbus TCP to RTU
//! gateway, as mbusd is, sharing the serial bus with every other client.
//!
//! Each request (an MBAP header and a PDU) becomes an RTU frame, CRC added,
//! and is queued as a transaction with every other client's. Its reply,
//! routed to this client alone, goes back with the client's own transaction
//! id, CRC checked and stripped. No reply within the reply timeout, or a
//! reply that fails its CRC, is answered with exception 0x0B (gateway target
//! device failed to respond) and counted. Requests to unit 0 are broadcasts:
//! they go out, and nothing comes back.
//!
//! A client may pipeline requests: up to [`PIPELINE`] wait their turn, and
//! the replies come back in order; past that, the client is not read
//! (backpressure). A header no Modbus TCP client sends (protocol id not 0,
//! length outside 2 to 254) closes the connection with a logged reason,
//! since the stream cannot be resynchronised; the replies to its earlier
//! requests are sent first.
//!
//! A read-only client (`access=ro`, or an `ro` identity) may send only the
//! read functions, 01 to 04; any other request is discarded and counted as
//! the client's discarded bytes, and answered with exception 01 (illegal
//! function) in its turn, or not at all if it was a broadcast.

use std::sync::atomic::Ordering::Relaxed;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::Access;
use super::slot::{Slot, chat, output_error};
use super::source::{ClientSource, discard};
use crate::hub::txn::PIPELINE;
use crate::hub::{ClientHandle, Outcome, ReplyRule};
use crate::proto::modbus::tcp::{self, MAX_ADU};
use crate::proto::modbus::{GATEWAY_TARGET_FAILED, ILLEGAL_FUNCTION};

/// A request sent to the bus, waiting for its reply, or refused.
struct Pending {
    transaction: u16,
    unit: u8,
    func: u8,
    /// `None`: not sent, since the client is read-only and this is no read.
    done: Option<oneshot::Receiver<Outcome>>,
}

/// The functions a read-only client may send: read coils, discrete
/// inputs, holding registers, input registers.
pub(crate) fn is_read(func: u8) -> bool {
    matches!(func, 0x01..=0x04)
}

/// Why the client's requests ended.
#[derive(Debug)]
enum End {
    Closed,
    Shutdown,
    Kicked,
    BadHeader(tcp::MbapError),
    Hub,
    Error(std::io::Error),
}

/// Runs one Modbus TCP client until it ends. `slot` is its `--max-clients`
/// permit; `access`, what it may send.
pub(crate) async fn run<S, W>(
    handle: ClientHandle,
    source: S,
    mut sink: W,
    access: Access,
    slot: Slot,
    shutdown: CancellationToken,
) where
    S: ClientSource,
    W: AsyncWrite + Unpin,
{
    chat!(slot.loud(), "Modbus TCP client connected");
    handle.replies_only();
    let (tx, rx) = mpsc::channel(PIPELINE);
    let (end, out) = tokio::join!(
        requests(&handle, &source, tx, access, &shutdown),
        replies(&handle, &mut sink, rx)
    );
    let _ = sink.shutdown().await;
    let (txns, timeouts) = handle.transactions();
    let stats = handle.stats();
    let (rx_bytes, tx_bytes) = (
        stats.to_client.load(Relaxed),
        stats.from_client.load(Relaxed),
    );
    let output_error = output_error(Some(&out));
    match end {
        End::BadHeader(e) => warn!(error = %e, txns, timeouts,
            "closing Modbus TCP connection: not Modbus TCP"),
        End::Error(e) => chat!(slot.loud(), error = %e, output_error, txns, timeouts,
            rx_bytes, tx_bytes, "Modbus TCP client disconnected"),
        end => chat!(slot.loud(), reason = ?end, output_error, txns, timeouts, rx_bytes,
            tx_bytes, "Modbus TCP client disconnected"),
    }
    // The connection is closed (the hub's fan-out holds the socket too,
    // until the client detaches) before its place is free.
    drop((source, sink, handle));
    drop(slot);
}

/// Reads requests and queues them, each after its place in `pending`.
async fn requests(
    handle: &ClientHandle,
    source: &impl ClientSource,
    pending: mpsc::Sender<Pending>,
    access: Access,
    shutdown: &CancellationToken,
) -> End {
    let mut buf = BytesMut::with_capacity(MAX_ADU);
    let kicked = handle.kicked();
    let mut warned_ro = false;
    loop {
        // Queue every whole request already read.
        loop {
            let (h, func, rtu, used) = match tcp::parse_adu(&buf) {
                Err(e) => return End::BadHeader(e),
                Ok(None) => break,
                Ok(Some((h, pdu, used))) => {
                    let func = pdu.first().copied().unwrap_or(0);
                    (h, func, tcp::to_rtu(h.unit, pdu), used)
                }
            };
            let _ = buf.split_to(used);
            let refused = access == Access::ReadOnly && !is_read(func);
            if refused {
                discard(handle, used, &mut warned_ro);
                if h.unit == 0 {
                    // A broadcast is answered by nobody, refused or not.
                    continue;
                }
            }
            let rule = match h.unit {
                0 => ReplyRule::None,
                _ => ReplyRule::ModbusRtu { func },
            };
            let (done_tx, done) = oneshot::channel();
            let p = Pending {
                transaction: h.transaction,
                unit: h.unit,
                func,
                done: (!refused).then_some(done),
            };
            // The replies wait here while the client does not read them:
            // a kick must still end the connection.
            tokio::select! {
                r = pending.send(p) => if r.is_err() {
                    return End::Hub;
                },
                () = kicked.cancelled() => return End::Kicked,
            }
            if refused {
                continue;
            }
            if handle
                .request(Bytes::from(rtu), rule, Some(done_tx))
                .await
                .is_err()
            {
                return End::Hub;
            }
        }
        tokio::select! {
            r = source.readable() => if let Err(e) = r {
                return End::Error(e);
            },
            () = shutdown.cancelled() => return End::Shutdown,
            () = kicked.cancelled() => return End::Kicked,
        }
        let mut chunk = vec![0u8; MAX_ADU - buf.len().min(MAX_ADU - 1)];
        match source.try_read(&mut chunk) {
            Ok(0) => return End::Closed,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return End::Error(e),
        }
    }
}

/// Sends each request's reply, in order, with its transaction id.
async fn replies(
    handle: &ClientHandle,
    sink: &mut (impl AsyncWrite + Unpin),
    mut pending: mpsc::Receiver<Pending>,
) -> std::io::Result<()> {
    let mut routed = BytesMut::new();
    let mut warned_crc = false;
    while let Some(p) = pending.recv().await {
        let Some(done) = p.done else {
            let adu = tcp::exception(p.transaction, p.unit, p.func, ILLEGAL_FUNCTION);
            tokio::select! {
                r = sink.write_all(&adu) => r?,
                () = handle.kicked().cancelled() => return Ok(()),
            }
            continue;
        };
        // A request the hub dropped unanswered failed like a timeout.
        let outcome = done.await.unwrap_or(Outcome::TimedOut { partial: 0 });
        let len = match outcome {
            Outcome::Replied(n) | Outcome::TimedOut { partial: n } => n,
            Outcome::Sent => 0,
        };
        // The hub routed exactly these bytes to this client, and no others.
        while routed.len() < len {
            match handle.next_output().await {
                Some(chunk) => routed.extend_from_slice(&chunk),
                None => return Ok(()),
            }
        }
        let reply = routed.split_to(len);
        let failed = tcp::exception(p.transaction, p.unit, p.func, GATEWAY_TARGET_FAILED);
        let adu = match outcome {
            Outcome::Sent => continue,
            Outcome::TimedOut { .. } => failed,
            Outcome::Replied(_) => match tcp::from_rtu(p.transaction, &reply) {
                Ok(adu) => adu,
                Err(e) => {
                    handle.count_bad_reply();
                    if !warned_crc {
                        warned_crc = true;
                        warn!(error = %e, "bad reply from the bus; answered with exception 0x0B \
                            (further ones are counted)");
                    }
                    failed
                }
            },
        };
        // A client that does not read is left behind when it is kicked.
        tokio::select! {
            r = sink.write_all(&adu) => r?,
            () = handle.kicked().cancelled() => return Ok(()),
        }
    }
    Ok(())
}
