//! A client's writes as requests, in transaction mode (`--writers
//! transaction`).
//!
//! The endpoint's request framing cuts what the client sends into requests,
//! each queued for the hub's arbiter, which runs one at a time and routes
//! its reply back to this client:
//! - `gap`: what the client writes until it pauses for the gap (3.5
//!   characters at the line rate by default, as Modbus RTU frames are
//!   delimited); a request longer than `max-request` is split, and logged;
//! - `line`: up to the delimiter; a line held longer than the reply timeout
//!   without one is logged, since the client is likely not line-based;
//! - `modbus-rtu`: one RTU frame, by the length its function code implies;
//!   a frame that fails its CRC is not sent (a real bus ignores it too), but
//!   counted and logged.
//!
//! With `lock=inband`, `DLE L` queues a lock turn; when it starts, the
//! client receives `DLE L` back, and from then on every byte it receives is
//! the device's answer to it, until it sends `DLE U`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::framing::LineAssembler;
use super::inband::{DLE, InbandParser, Piece};
use super::source::{ClientSource, End, read_failed, read_queued, settle};
use super::{EndpointOptions, Framing};
use crate::hub::{ClientHandle, ReplyRule};
use crate::proto::modbus::rtu::{self, RtuEvent, RtuFramer};

/// Cuts a client's byte stream into requests. Sans-I/O: the caller supplies
/// the time of each read, and calls [`on_silence`](Self::on_silence) at the
/// [`deadline`](Self::deadline).
#[derive(Debug)]
pub(crate) enum RequestFramer {
    Gap {
        gap: Duration,
        max: usize,
        buf: BytesMut,
        last: Option<Instant>,
    },
    Line {
        lines: LineAssembler,
        delimiter: u8,
        /// When the partial line started, to warn about one held too long.
        since: Option<Instant>,
    },
    Rtu {
        framer: RtuFramer,
        gap: Duration,
        last: Option<Instant>,
    },
}

/// What framing found in a client's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framed {
    /// A request, with the rule that finds the end of its reply.
    Request(Bytes, ReplyRule),
    /// A request longer than the limit was split here.
    Split,
    /// A Modbus frame that failed its CRC, not sent.
    BadCrc(Bytes),
}

impl RequestFramer {
    /// The framer for an endpoint; `gap` is the port's default request gap.
    pub(crate) fn new(options: &EndpointOptions, gap: Duration) -> Self {
        let gap = options.gap.unwrap_or(gap);
        match options.framing {
            Framing::Line => RequestFramer::Line {
                lines: LineAssembler::new(options.delimiter, options.max_line),
                delimiter: options.delimiter,
                since: None,
            },
            Framing::ModbusRtu => RequestFramer::Rtu {
                framer: RtuFramer::new(),
                gap,
                last: None,
            },
            Framing::None | Framing::Gap => RequestFramer::Gap {
                gap,
                max: options.max_request.max(1),
                buf: BytesMut::new(),
                last: None,
            },
        }
    }

    /// Most bytes worth reading now: what fits before the held request
    /// reaches its limit (at least 1, so input is never refused).
    pub(crate) fn room(&self) -> usize {
        match self {
            RequestFramer::Gap { max, buf, .. } => max.saturating_sub(buf.len()).max(1),
            RequestFramer::Line { lines, .. } => lines.room().max(1),
            RequestFramer::Rtu { .. } => rtu::MAX_FRAME,
        }
    }

    /// When the held bytes should be looked at again: the end of the gap
    /// (gap, and RTU frames of unknown length), or the time a line has been
    /// held for `hold` without its delimiter.
    pub(crate) fn deadline(&self, hold: Duration) -> Option<Instant> {
        match self {
            RequestFramer::Gap { gap, buf, last, .. } => {
                last.filter(|_| !buf.is_empty()).map(|t| t + *gap)
            }
            RequestFramer::Line { since, .. } => since.map(|t| t + hold),
            RequestFramer::Rtu { framer, gap, last } => {
                last.filter(|_| !framer.is_empty()).map(|t| t + *gap)
            }
        }
    }

    /// Takes bytes read at `now`; returns what they completed.
    pub(crate) fn push(&mut self, data: &[u8], now: Instant, out: &mut Vec<Framed>) {
        match self {
            RequestFramer::Gap {
                gap,
                max,
                buf,
                last,
            } => {
                // The silence passed before these bytes were read.
                if last.is_some_and(|t| now >= t + *gap) && !buf.is_empty() {
                    out.push(gap_request(buf.split().freeze()));
                }
                let mut rest = data;
                while !rest.is_empty() {
                    let take = (*max - buf.len()).min(rest.len());
                    buf.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    // A whole Modbus RTU request goes at once: no need to
                    // wait for the silence, and two read together (a
                    // client that gave up waiting and sent the next) are
                    // never merged into one frame no slave would answer.
                    while let Some(n) = whole_modbus_request(buf) {
                        out.push(gap_request(buf.split_to(n).freeze()));
                    }
                    if buf.len() >= *max {
                        out.push(gap_request(buf.split().freeze()));
                        out.push(Framed::Split);
                    }
                }
                *last = Some(now);
            }
            RequestFramer::Line {
                lines,
                delimiter,
                since,
            } => {
                let (complete, cut) = lines.push(data);
                for line in complete {
                    out.push(Framed::Request(line, ReplyRule::Delimiter(*delimiter)));
                }
                if cut {
                    out.push(Framed::Split);
                }
                *since = if lines.room() < lines.max_line() {
                    Some(since.unwrap_or(now))
                } else {
                    None
                };
            }
            RequestFramer::Rtu { framer, gap, last } => {
                let mut events = Vec::new();
                if last.is_some_and(|t| now >= t + *gap) {
                    framer.flush(&mut events);
                }
                framer.push(data, &mut events);
                *last = Some(now);
                rtu_events(events, out);
            }
        }
    }

    /// The gap has passed (or the line was held too long): returns what
    /// that completes. `true` if a line is being held too long.
    pub(crate) fn on_silence(&mut self, out: &mut Vec<Framed>) -> bool {
        match self {
            RequestFramer::Gap { buf, last, .. } => {
                if !buf.is_empty() {
                    out.push(gap_request(buf.split().freeze()));
                }
                *last = None;
                false
            }
            RequestFramer::Line { since, .. } => since.take().is_some(),
            RequestFramer::Rtu { framer, last, .. } => {
                let mut events = Vec::new();
                framer.flush(&mut events);
                *last = None;
                rtu_events(events, out);
                false
            }
        }
    }

    /// End of input: whatever is held goes as a last request.
    pub(crate) fn finish(&mut self, out: &mut Vec<Framed>) {
        match self {
            RequestFramer::Line {
                lines, delimiter, ..
            } => {
                if let Some(rest) = lines.finish() {
                    out.push(Framed::Request(rest, ReplyRule::Delimiter(*delimiter)));
                }
            }
            _ => {
                self.on_silence(out);
            }
        }
    }
}

/// The length of the whole Modbus RTU request at the start of `buf`, if
/// there is one: the length its function code implies, and a correct CRC
/// (a chance of 1 in 65536 for other data).
fn whole_modbus_request(buf: &[u8]) -> Option<usize> {
    match rtu::request_len(buf) {
        rtu::FrameLen::Complete(n) if buf.len() >= n && rtu::crc_ok(&buf[..n]) => Some(n),
        _ => None,
    }
}

/// A request framed by silence. One that is a whole Modbus RTU request (its
/// length is the one its function code implies, and its CRC is right: a
/// chance of 1 in 65536 for other data) gets a Modbus reply rule, so its
/// reply ends at its own length rather than at a silence, which a device or
/// a loaded machine can leave in the middle of a reply.
fn gap_request(request: Bytes) -> Framed {
    let modbus = rtu::crc_ok(&request)
        && rtu::request_len(&request) == rtu::FrameLen::Complete(request.len());
    let rule = match (modbus, request.first(), request.get(1)) {
        (true, Some(0), _) => ReplyRule::None,
        (true, Some(_), Some(func)) => ReplyRule::ModbusRtu { func: *func },
        _ => ReplyRule::Gap,
    };
    Framed::Request(request, rule)
}

fn rtu_events(events: Vec<RtuEvent>, out: &mut Vec<Framed>) {
    for e in events {
        out.push(match e {
            RtuEvent::Frame(f) => {
                let f = Bytes::from(f);
                let rule = match (f.first(), f.get(1)) {
                    // Unit 0 is a broadcast: no slave answers it.
                    (Some(0), _) | (None, _) | (_, None) => ReplyRule::None,
                    (Some(_), Some(func)) => ReplyRule::ModbusRtu { func: *func },
                };
                Framed::Request(f, rule)
            }
            // Sent as it is: it may be a protocol serialhub does not know.
            RtuEvent::Truncated(f) | RtuEvent::Oversized(f) => {
                Framed::Request(Bytes::from(f), ReplyRule::Gap)
            }
            RtuEvent::BadCrc(f) => Framed::BadCrc(Bytes::from(f)),
        });
    }
}

/// Moves a client's requests to the arbiter. `Ok` on end of input.
///
/// As in the merged path, shutdown and a kick are noticed only between
/// reads; then what the kernel already holds is taken too.
pub(super) async fn to_arbiter(
    handle: &ClientHandle,
    source: &impl ClientSource,
    options: &EndpointOptions,
    gap: Duration,
    hold: Duration,
    shutdown: &CancellationToken,
) -> Result<(), End> {
    let mut r = Requests::new(handle, options, gap);
    let kicked = handle.kicked();
    loop {
        let deadline = r.framer.deadline(hold);
        tokio::select! {
            res = source.readable() => res.map_err(|e| End::Error(read_failed(handle, source, e)))?,
            () = sleep_until(deadline) => {
                r.silence(hold).await?;
                continue;
            }
            () = shutdown.cancelled() => {
                r.flush(source).await?;
                return Err(End::Shutdown);
            }
            () = kicked.cancelled() => {
                r.flush(source).await?;
                return Err(End::Kicked);
            }
        }
        let mut buf = vec![0u8; r.framer.room()];
        match source.try_read(&mut buf) {
            Ok(0) => {
                r.finish().await?;
                return settle(handle, source).await;
            }
            Ok(n) => r.take(&buf[..n]).await?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                r.finish().await?;
                return Err(End::Error(read_failed(handle, source, e)));
            }
        }
        settle(handle, source).await?;
    }
}

/// Sleeps until `deadline`, or forever if there is none. Cancel safe.
pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// One client's request path: in-band commands, framing, queueing. The
/// RFC 2217 endpoint feeds it the data inside the Telnet stream.
pub(super) struct Requests<'a> {
    handle: &'a ClientHandle,
    options: &'a EndpointOptions,
    framer: RequestFramer,
    inband: InbandParser,
    warned_split: bool,
    warned_crc: bool,
    warned_hold: bool,
}

impl<'a> Requests<'a> {
    pub(super) fn new(
        handle: &'a ClientHandle,
        options: &'a EndpointOptions,
        gap: Duration,
    ) -> Self {
        Self {
            handle,
            options,
            framer: RequestFramer::new(options, gap),
            inband: InbandParser::default(),
            warned_split: false,
            warned_crc: false,
            warned_hold: false,
        }
    }

    /// When the request held ends by silence (see [`RequestFramer::deadline`]).
    pub(super) fn deadline(&self, hold: Duration) -> Option<Instant> {
        self.framer.deadline(hold)
    }

    /// The deadline came: the request held is complete.
    pub(super) async fn silence(&mut self, hold: Duration) -> Result<(), End> {
        let mut out = Vec::new();
        if self.framer.on_silence(&mut out) && !self.warned_hold {
            self.warned_hold = true;
            warn!(
                delimiter = format_args!("{:#04x}", self.options.delimiter),
                "framing=line: a request has waited {hold:?} for its delimiter; \
                 is this client line-based? (framing=gap frames by silence)"
            );
        }
        self.send(out).await
    }

    pub(super) async fn take(&mut self, data: &[u8]) -> Result<(), End> {
        let pieces = if self.options.inband_lock {
            let pieces = self.inband.feed(data);
            if let Some(s) = self.inband.news() {
                warn!("{}", s.message());
            }
            pieces
        } else {
            vec![Piece::Data(Bytes::copy_from_slice(data))]
        };
        let now = Instant::now();
        let mut out = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Data(d) => self.framer.push(&d, now, &mut out),
                Piece::Lock => {
                    // What came before the command is a request of its own.
                    self.framer.on_silence(&mut out);
                    self.send(std::mem::take(&mut out)).await?;
                    self.handle
                        .txn_lock(Some(Bytes::from_static(&[DLE, b'L'])))
                        .await
                        .map_err(|_| End::Hub)?;
                }
                Piece::Unlock => {
                    self.framer.on_silence(&mut out);
                    self.send(std::mem::take(&mut out)).await?;
                    self.handle.txn_unlock().await.map_err(|_| End::Hub)?;
                }
            }
        }
        self.send(out).await
    }

    /// Queues the requests found, and reports what framing found wrong.
    async fn send(&mut self, framed: Vec<Framed>) -> Result<(), End> {
        for f in framed {
            match f {
                Framed::Request(data, rule) => {
                    self.handle
                        .request(data, rule, None)
                        .await
                        .map_err(|_| End::Hub)?;
                }
                Framed::Split if !self.warned_split => {
                    self.warned_split = true;
                    warn!(
                        max_request = self.options.max_request,
                        max_line = self.options.max_line,
                        "a request longer than the limit (max-request, or max-line for framing=line) \
                         was sent in pieces"
                    );
                }
                Framed::Split => {}
                Framed::BadCrc(frame) => {
                    self.handle
                        .stats()
                        .discarded
                        .fetch_add(frame.len() as u64, Relaxed);
                    if !self.warned_crc {
                        self.warned_crc = true;
                        warn!(
                            len = frame.len(),
                            "framing=modbus-rtu: a request failed its CRC \
                            and was not sent (further ones are counted as discarded)"
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Takes what the kernel already holds from the client, then finishes.
    async fn flush(&mut self, source: &impl ClientSource) -> Result<(), End> {
        let held = read_queued(source);
        self.take(&held).await?;
        self.finish().await
    }

    /// End of input: nothing the client sent is held back.
    pub(super) async fn finish(&mut self) -> Result<(), End> {
        let mut out = Vec::new();
        if let Some(dle) = self.inband.finish() {
            self.framer.push(&dle, Instant::now(), &mut out);
        }
        self.framer.finish(&mut out);
        self.send(out).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(s: &str) -> EndpointOptions {
        format!("tcp:h:1,{s}")
            .parse::<super::super::EndpointSpec>()
            .unwrap()
            .options
    }

    fn requests(out: &[Framed]) -> Vec<&[u8]> {
        out.iter()
            .filter_map(|f| match f {
                Framed::Request(b, _) => Some(&b[..]),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn gap_frames_by_silence_and_splits_long_requests() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut f = RequestFramer::new(&opts("framing=gap,max-request=4"), ms(2));
        let mut out = Vec::new();
        f.push(b"ab", t0, &mut out);
        f.push(b"c", t0 + ms(1), &mut out);
        assert!(out.is_empty());
        assert_eq!(f.deadline(ms(0)), Some(t0 + ms(3)));
        // A read after the silence ends the request before taking the bytes.
        f.push(b"d", t0 + ms(5), &mut out);
        assert_eq!(requests(&out), [b"abc"]);
        out.clear();
        f.push(b"efghij", t0 + ms(6), &mut out);
        assert_eq!(requests(&out), [b"defg"]);
        assert!(out.contains(&Framed::Split));
        out.clear();
        f.on_silence(&mut out);
        assert_eq!(requests(&out), [b"hij"]);
        assert_eq!(f.deadline(ms(0)), None);
    }

    #[test]
    fn gap_framing_splits_modbus_requests_read_together() {
        let t0 = Instant::now();
        let mut f = RequestFramer::new(&opts("framing=gap"), Duration::from_millis(2));
        let mut a = vec![0x01, 0x03, 0x00, 0x00, 0x00, 0x02];
        rtu::append_crc(&mut a);
        let mut b = vec![0x02, 0x04, 0x00, 0x10, 0x00, 0x03];
        rtu::append_crc(&mut b);
        let mut out = Vec::new();
        // Both in one read, then half of a third: the two whole ones go at
        // once, without waiting for the silence.
        f.push(&[a.as_slice(), &b, &a[..3]].concat(), t0, &mut out);
        assert_eq!(
            out,
            [
                Framed::Request(Bytes::from(a.clone()), ReplyRule::ModbusRtu { func: 3 }),
                Framed::Request(Bytes::from(b), ReplyRule::ModbusRtu { func: 4 }),
            ]
        );
        out.clear();
        f.push(&a[3..], t0, &mut out);
        assert_eq!(
            out,
            [Framed::Request(
                Bytes::from(a),
                ReplyRule::ModbusRtu { func: 3 }
            )]
        );
    }

    #[test]
    fn gap_framed_modbus_requests_expect_modbus_replies() {
        let t0 = Instant::now();
        let mut f = RequestFramer::new(&opts("framing=gap"), Duration::from_millis(2));
        let mut read = vec![0x02, 0x04, 0x00, 0x10, 0x00, 0x03];
        rtu::append_crc(&mut read);
        let mut out = Vec::new();
        f.push(&read, t0, &mut out);
        f.on_silence(&mut out);
        f.push(b"ATI\r", t0, &mut out);
        f.on_silence(&mut out);
        assert_eq!(
            out,
            [
                Framed::Request(Bytes::from(read), ReplyRule::ModbusRtu { func: 4 }),
                Framed::Request(Bytes::from_static(b"ATI\r"), ReplyRule::Gap),
            ]
        );
    }

    #[test]
    fn line_requests_end_at_the_delimiter_and_expect_a_line() {
        let t0 = Instant::now();
        let mut f = RequestFramer::new(&opts("framing=line"), Duration::from_millis(2));
        let mut out = Vec::new();
        f.push(b"AT\r\nATI", t0, &mut out);
        assert_eq!(
            out,
            [Framed::Request(
                Bytes::from_static(b"AT\r\n"),
                ReplyRule::Delimiter(b'\n')
            )]
        );
        let hold = Duration::from_secs(1);
        assert_eq!(f.deadline(hold), Some(t0 + hold));
        assert!(f.on_silence(&mut out));
        out.clear();
        f.finish(&mut out);
        assert_eq!(requests(&out), [b"ATI"]);
    }

    #[test]
    fn modbus_frames_by_length_and_drops_bad_crc() {
        let t0 = Instant::now();
        let mut f = RequestFramer::new(&opts("framing=modbus-rtu"), Duration::from_millis(2));
        let mut good = vec![0x01, 0x03, 0x00, 0x00, 0x00, 0x02];
        rtu::append_crc(&mut good);
        let mut bad = good.clone();
        bad[3] ^= 1;
        let mut broadcast = vec![0x00, 0x06, 0x00, 0x01, 0x00, 0x07];
        rtu::append_crc(&mut broadcast);
        let stream = [good.as_slice(), &bad, &broadcast].concat();
        let mut out = Vec::new();
        for b in &stream {
            f.push(&[*b], t0, &mut out);
        }
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(
            out[0],
            Framed::Request(Bytes::from(good), ReplyRule::ModbusRtu { func: 3 })
        );
        assert!(matches!(out[1], Framed::BadCrc(_)));
        assert_eq!(
            out[2],
            Framed::Request(Bytes::from(broadcast), ReplyRule::None)
        );
    }
}
