//! The `modbus` simulator: a Modbus RTU slave with units 1, 2 and 3.
//!
//! [`Slave`] is the sans-I/O part: one whole frame in, what to answer out,
//! with the register state. [`serve`] is the line side: like a real RTU
//! device it ends a request at 3.5 character times of silence (1.75 ms above
//! 19200 baud), so requests sent back to back merge into one frame, which
//! fails its CRC and gets no reply. It waits a reply delay (the slave's
//! processing time) and sends the reply at line rate.
//!
//! Register rule (docs/simulator.md quotes it): each unit has holding and input
//! registers 0 to 9999. Holding register `a` of unit `u` starts at
//! `u * 1000 + a` and is writable; input register `a` is `(u << 12) ^ a`.

use std::ops::RangeInclusive;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::Interest;
use tokio::time::Instant;

use crate::timer::PreciseTimer;

use super::{Master, SimStats, send};
use crate::proto::modbus::rtu::{self, MAX_FRAME};
use crate::proto::modbus::{ILLEGAL_DATA_ADDRESS, ILLEGAL_DATA_VALUE, ILLEGAL_FUNCTION};

/// The unit ids that answer; others get no reply, as on a shared bus.
pub(crate) const UNITS: RangeInclusive<u8> = 1..=3;
/// Registers per unit and kind: addresses 0 to 9999.
pub(crate) const REGISTERS: u16 = 10_000;
/// Most registers one read may ask for (Modbus: 125).
pub(crate) const MAX_READ: u16 = 125;
/// Most registers one write-multiple may carry (Modbus: 123).
pub(crate) const MAX_WRITE: u16 = 123;
/// Inter-frame silence above 19200 baud, where Modbus fixes it.
const MIN_SILENCE: Duration = Duration::from_micros(1750);

/// Initial value of holding register `addr` of `unit`.
pub fn holding_initial(unit: u8, addr: u16) -> u16 {
    (u16::from(unit) * 1000).wrapping_add(addr)
}

/// Value of input register `addr` of `unit`.
pub(crate) fn input_register(unit: u8, addr: u16) -> u16 {
    (u16::from(unit) << 12) ^ addr
}

/// What the slave does with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A normal reply (a whole RTU frame).
    Reply(Vec<u8>),
    /// An exception reply (a whole RTU frame).
    Exception(Vec<u8>),
    /// A good frame for another unit: no reply.
    Ignored,
    /// A frame that fails its CRC, or is too short or too long: no reply.
    BadFrame,
}

/// The register state of units 1 to 3, and the request handling.
#[derive(Debug)]
pub(crate) struct Slave {
    /// Holding registers, `REGISTERS` per unit, unit 1 first.
    holding: Vec<u16>,
}

impl Default for Slave {
    fn default() -> Self {
        Self::new()
    }
}

impl Slave {
    pub(crate) fn new() -> Self {
        let holding = UNITS
            .flat_map(|u| (0..REGISTERS).map(move |a| holding_initial(u, a)))
            .collect();
        Slave { holding }
    }

    /// Holding register `addr` of `unit`, if both exist.
    #[cfg(test)]
    pub(crate) fn holding(&self, unit: u8, addr: u16) -> Option<u16> {
        self.holding.get(index(unit, addr)?).copied()
    }

    /// Answers one whole frame (unit, PDU, CRC).
    pub(crate) fn handle(&mut self, frame: &[u8]) -> Outcome {
        if frame.len() > MAX_FRAME || !rtu::crc_ok(frame) {
            return Outcome::BadFrame;
        }
        let unit = frame[0];
        if !UNITS.contains(&unit) {
            return Outcome::Ignored;
        }
        let pdu = &frame[1..frame.len() - 2];
        let func = pdu[0];
        let result = match func {
            0x03 | 0x04 => self.read(unit, pdu),
            0x06 => self.write_single(unit, pdu).map(|()| frame.to_vec()),
            0x10 => self.write_multiple(unit, pdu),
            _ => Err(ILLEGAL_FUNCTION),
        };
        match result {
            Ok(reply) => Outcome::Reply(reply),
            Err(code) => Outcome::Exception(rtu::exception(unit, func, code)),
        }
    }

    /// 03 read holding registers, 04 read input registers.
    fn read(&self, unit: u8, pdu: &[u8]) -> Result<Vec<u8>, u8> {
        let [func, a0, a1, q0, q1] = *pdu else {
            return Err(ILLEGAL_DATA_VALUE);
        };
        let (addr, qty) = (u16::from_be_bytes([a0, a1]), u16::from_be_bytes([q0, q1]));
        if !(1..=MAX_READ).contains(&qty) {
            return Err(ILLEGAL_DATA_VALUE);
        }
        let range = registers(unit, addr, qty)?;
        // qty <= 125, so the byte count fits.
        let mut reply = vec![unit, func, (qty * 2) as u8];
        for (i, a) in (addr..addr + qty).enumerate() {
            let v = match func {
                0x03 => self.holding[range.start + i],
                _ => input_register(unit, a),
            };
            reply.extend_from_slice(&v.to_be_bytes());
        }
        rtu::append_crc(&mut reply);
        Ok(reply)
    }

    /// 06 write single register; the reply echoes the request.
    fn write_single(&mut self, unit: u8, pdu: &[u8]) -> Result<(), u8> {
        let [_, a0, a1, v0, v1] = *pdu else {
            return Err(ILLEGAL_DATA_VALUE);
        };
        let range = registers(unit, u16::from_be_bytes([a0, a1]), 1)?;
        self.holding[range.start] = u16::from_be_bytes([v0, v1]);
        Ok(())
    }

    /// 16 (0x10) write multiple registers.
    fn write_multiple(&mut self, unit: u8, pdu: &[u8]) -> Result<Vec<u8>, u8> {
        let Some(&[func, a0, a1, q0, q1, count]) = pdu.get(..6) else {
            return Err(ILLEGAL_DATA_VALUE);
        };
        let (addr, qty) = (u16::from_be_bytes([a0, a1]), u16::from_be_bytes([q0, q1]));
        let values = &pdu[6..];
        if !(1..=MAX_WRITE).contains(&qty)
            || usize::from(count) != usize::from(qty) * 2
            || values.len() != usize::from(count)
        {
            return Err(ILLEGAL_DATA_VALUE);
        }
        let range = registers(unit, addr, qty)?;
        for (slot, v) in self.holding[range].iter_mut().zip(values.chunks_exact(2)) {
            *slot = u16::from_be_bytes([v[0], v[1]]);
        }
        let mut reply = vec![unit, func, a0, a1, q0, q1];
        rtu::append_crc(&mut reply);
        Ok(reply)
    }
}

fn index(unit: u8, addr: u16) -> Option<usize> {
    if !UNITS.contains(&unit) || addr >= REGISTERS {
        return None;
    }
    Some(usize::from(unit - UNITS.start()) * usize::from(REGISTERS) + usize::from(addr))
}

/// Indices of `qty` registers of `unit` from `addr`, or illegal data address.
fn registers(unit: u8, addr: u16, qty: u16) -> Result<std::ops::Range<usize>, u8> {
    let end = u32::from(addr) + u32::from(qty);
    if end > u32::from(REGISTERS) {
        return Err(ILLEGAL_DATA_ADDRESS);
    }
    let start = index(unit, addr).ok_or(ILLEGAL_DATA_ADDRESS)?;
    Ok(start..start + usize::from(qty))
}

/// The silence that ends a frame at `rate` characters per second: 3.5
/// character times, but at least 1.75 ms (Modbus fixes it there above 19200
/// baud).
pub fn silence(rate: f64) -> Duration {
    if rate.is_finite() && rate > 0.0 {
        Duration::from_secs_f64(3.5 / rate).max(MIN_SILENCE)
    } else {
        MIN_SILENCE
    }
}

/// Line time of `n` characters at `rate` characters per second.
fn line_time(n: usize, rate: f64) -> Duration {
    if rate.is_finite() && rate > 0.0 {
        Duration::from_secs_f64(n as f64 / rate)
    } else {
        Duration::ZERO
    }
}

/// Runs the slave on the pty master until an I/O error.
///
/// The bytes of one read are taken to arrive back to back at line rate after
/// the bytes before them; a frame ends when the line has been quiet for
/// [`silence`] since its last byte arrived. The slave is half duplex: while
/// it waits and replies, what the master sends waits in the kernel and is
/// framed after.
pub(super) async fn serve(
    master: Master,
    rate: f64,
    reply_delay: Duration,
    stats: Arc<SimStats>,
) -> std::io::Result<()> {
    let quiet = silence(rate);
    // A device's UART keeps time to the bit; tokio's millisecond timer
    // would add a millisecond or so to each silence and delay.
    let timer = PreciseTimer::new();
    let mut slave = Slave::new();
    // One byte over MAX_FRAME is kept, so an overlong frame is seen as such
    // (and fails) without buffering all of it.
    let mut frame = Vec::with_capacity(MAX_FRAME + 1);
    let mut buf = [0u8; 512];
    // When the last byte read so far has finished arriving on the line.
    let mut line_free = Instant::now();
    loop {
        let frame_end = line_free + quiet;
        let in_frame = !frame.is_empty();
        tokio::select! {
            // Bytes already waiting belong to the frame in progress: read
            // them before deciding the line was quiet.
            biased;
            // Cancel safe: `async_io` reads only once the fd is readable,
            // and then synchronously.
            got = master.async_io(Interest::READABLE, |m| {
                nix::unistd::read(m.as_fd(), &mut buf).map_err(std::io::Error::from)
            }) => {
                let n = got?;
                stats.rx_bytes.fetch_add(n as u64, Relaxed);
                line_free = line_free.max(Instant::now()) + line_time(n, rate);
                let room = (MAX_FRAME + 1).saturating_sub(frame.len());
                frame.extend_from_slice(&buf[..n.min(room)]);
            }
            () = timer.sleep_until(frame_end), if in_frame => {
                let reply = match slave.handle(&frame) {
                    Outcome::Reply(r) => Some(r),
                    Outcome::Exception(r) => {
                        stats.modbus_exceptions.fetch_add(1, Relaxed);
                        Some(r)
                    }
                    Outcome::Ignored => {
                        stats.modbus_ignored.fetch_add(1, Relaxed);
                        None
                    }
                    Outcome::BadFrame => {
                        tracing::debug!(len = frame.len(), "modbus sim: bad frame");
                        stats.modbus_crc_errors.fetch_add(1, Relaxed);
                        None
                    }
                };
                frame.clear();
                if let Some(reply) = reply {
                    timer.sleep_until(Instant::now() + reply_delay).await;
                    send_at_line_rate(&master, &reply, rate, &stats, &timer).await?;
                    stats.modbus_answered.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// Sends `reply` as a UART would: each character once its stop bit has
/// gone out, one character time after the one before. A reply then takes its
/// line time to arrive, as on a real bus, instead of arriving at once from a
/// full token bucket; a benchmark against the bus's physical limit needs
/// that. Deadlines are absolute, so a late timer wake-up sends the
/// characters that are due together rather than slowing the reply down.
async fn send_at_line_rate(
    master: &Master,
    reply: &[u8],
    rate: f64,
    stats: &SimStats,
    timer: &PreciseTimer,
) -> std::io::Result<()> {
    let start = Instant::now();
    let mut sent = 0;
    while sent < reply.len() {
        let due = if rate.is_finite() && rate > 0.0 {
            let chars = start.elapsed().as_secs_f64() * rate;
            (chars as usize).min(reply.len())
        } else {
            reply.len()
        };
        if due > sent {
            send(master, &reply[sent..due]).await?;
            stats.tx_bytes.fetch_add((due - sent) as u64, Relaxed);
            sent = due;
        } else {
            timer.sleep_until(start + line_time(sent + 1, rate)).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &[u8]) -> Vec<u8> {
        let mut f = body.to_vec();
        rtu::append_crc(&mut f);
        f
    }

    fn reply(slave: &mut Slave, body: &[u8]) -> Vec<u8> {
        match slave.handle(&req(body)) {
            Outcome::Reply(r) => {
                assert!(rtu::crc_ok(&r), "reply CRC");
                assert_eq!(
                    rtu::reply_len(body[1], &r),
                    rtu::FrameLen::Complete(r.len()),
                    "reply length agrees with the codec"
                );
                r[..r.len() - 2].to_vec()
            }
            other => panic!("{body:02x?}: expected a reply, got {other:?}"),
        }
    }

    fn exception(slave: &mut Slave, body: &[u8]) -> u8 {
        match slave.handle(&req(body)) {
            Outcome::Exception(r) => {
                assert!(rtu::crc_ok(&r));
                assert_eq!(r.len(), 5);
                assert_eq!(r[..2], [body[0], body[1] | 0x80]);
                r[2]
            }
            other => panic!("{body:02x?}: expected an exception, got {other:?}"),
        }
    }

    #[test]
    fn reads_follow_the_register_rule() {
        let mut s = Slave::new();
        // Unit 1, holding 0..3: 1000, 1001, 1002.
        assert_eq!(
            reply(&mut s, &[1, 3, 0, 0, 0, 3]),
            [1, 3, 6, 0x03, 0xE8, 0x03, 0xE9, 0x03, 0xEA]
        );
        // Unit 3, holding 9999: 12999.
        assert_eq!(
            reply(&mut s, &[3, 3, 0x27, 0x0F, 0, 1]),
            [3, 3, 2, 0x32, 0xC7]
        );
        // Unit 2, input 5: 0x2000 ^ 5.
        assert_eq!(reply(&mut s, &[2, 4, 0, 5, 0, 1]), [2, 4, 2, 0x20, 0x05]);
        // The most one read may ask for.
        let r = reply(&mut s, &[1, 4, 0, 0, 0, 125]);
        assert_eq!(r.len(), 3 + 250);
        assert_eq!(r[3 + 2 * 124..], input_register(1, 124).to_be_bytes());
    }

    #[test]
    fn writes_change_holding_registers() {
        let mut s = Slave::new();
        let body = [2, 6, 0, 7, 0xAB, 0xCD];
        assert_eq!(reply(&mut s, &body), body, "06 echoes the request");
        assert_eq!(s.holding(2, 7), Some(0xABCD));
        assert_eq!(reply(&mut s, &[2, 3, 0, 7, 0, 1]), [2, 3, 2, 0xAB, 0xCD]);
        // Another unit's register is untouched.
        assert_eq!(s.holding(1, 7), Some(1007));
        assert_eq!(
            reply(&mut s, &[1, 0x10, 0, 10, 0, 2, 4, 0, 1, 0, 2]),
            [1, 0x10, 0, 10, 0, 2]
        );
        assert_eq!(
            reply(&mut s, &[1, 3, 0, 9, 0, 4]),
            [1, 3, 8, 0x03, 0xF1, 0, 1, 0, 2, 0x03, 0xF4]
        );
        // Input registers are not writable state.
        assert_eq!(reply(&mut s, &[1, 4, 0, 10, 0, 1]), [1, 4, 2, 0x10, 0x0A]);
    }

    #[test]
    fn exceptions_for_bad_requests() {
        let mut s = Slave::new();
        assert_eq!(exception(&mut s, &[1, 3, 0, 0, 0, 0]), ILLEGAL_DATA_VALUE);
        assert_eq!(exception(&mut s, &[1, 3, 0, 0, 0, 126]), ILLEGAL_DATA_VALUE);
        assert_eq!(
            exception(&mut s, &[1, 4, 0x27, 0x0F, 0, 2]),
            ILLEGAL_DATA_ADDRESS
        );
        assert_eq!(
            exception(&mut s, &[1, 3, 0xFF, 0xFF, 0, 1]),
            ILLEGAL_DATA_ADDRESS
        );
        assert_eq!(
            exception(&mut s, &[1, 6, 0x27, 0x10, 0, 1]),
            ILLEGAL_DATA_ADDRESS
        );
        // Byte count disagrees with the quantity, or with the data.
        assert_eq!(
            exception(&mut s, &[1, 0x10, 0, 0, 0, 2, 2, 0, 1]),
            ILLEGAL_DATA_VALUE
        );
        assert_eq!(
            exception(&mut s, &[1, 0x10, 0, 0, 0, 1, 2, 0]),
            ILLEGAL_DATA_VALUE
        );
        assert_eq!(
            exception(&mut s, &[1, 0x10, 0, 0, 0, 0, 0]),
            ILLEGAL_DATA_VALUE
        );
        assert_eq!(
            exception(&mut s, &[1, 0x10, 0x27, 0x0F, 0, 2, 4, 0, 1, 0, 2]),
            ILLEGAL_DATA_ADDRESS
        );
        // A request of the wrong length for its function.
        assert_eq!(exception(&mut s, &[1, 3, 0, 0, 0]), ILLEGAL_DATA_VALUE);
        assert_eq!(
            exception(&mut s, &[1, 6, 0, 0, 0, 1, 9]),
            ILLEGAL_DATA_VALUE
        );
        for f in [1, 2, 5, 0x0F, 0x11, 0x2B, 0x41, 0x83] {
            assert_eq!(
                exception(&mut s, &[2, f, 0, 0, 0, 1]),
                ILLEGAL_FUNCTION,
                "function {f:#04x}"
            );
        }
        // Failed writes change nothing.
        assert_eq!(s.holding(1, 0), Some(1000));
        assert_eq!(s.holding(1, 9999), Some(10999));
    }

    #[test]
    fn other_units_and_bad_frames_get_no_reply() {
        let mut s = Slave::new();
        for unit in [0, 4, 247, 255] {
            assert_eq!(s.handle(&req(&[unit, 3, 0, 0, 0, 1])), Outcome::Ignored);
        }
        let good = req(&[1, 3, 0, 0, 0, 1]);
        let mut bad = good.clone();
        bad[3] ^= 1;
        assert_eq!(s.handle(&bad), Outcome::BadFrame);
        // Two requests back to back are one frame, which fails its CRC.
        assert_eq!(
            s.handle(&[good.clone(), good.clone()].concat()),
            Outcome::BadFrame
        );
        assert_eq!(s.handle(&good[..3]), Outcome::BadFrame);
        assert_eq!(s.handle(&[]), Outcome::BadFrame);
        let mut long = vec![1, 0x10];
        long.resize(MAX_FRAME - 1, 0);
        assert_eq!(s.handle(&req(&long)), Outcome::BadFrame);
    }

    proptest::proptest! {
        /// Any frame, with a good CRC or not: no panic, and a reply is a
        /// whole frame the codec agrees on.
        #[test]
        fn any_frame_never_panics(
            unit in 0u8..5,
            func in proptest::prop_oneof![
                proptest::strategy::Just(3u8),
                proptest::strategy::Just(4),
                proptest::strategy::Just(6),
                proptest::strategy::Just(0x10),
                proptest::prelude::any::<u8>(),
            ],
            rest in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            crc in proptest::prelude::any::<bool>(),
        ) {
            let mut s = Slave::new();
            let body = [&[unit, func][..], &rest].concat();
            let frame = if crc { req(&body) } else { body };
            match s.handle(&frame) {
                Outcome::Reply(r) | Outcome::Exception(r) => {
                    proptest::prop_assert!(rtu::crc_ok(&r));
                    // A function code with the exception bit has no reply
                    // length to agree on.
                    if frame[1] < 0x80 {
                        proptest::prop_assert_eq!(
                        rtu::reply_len(frame[1], &r),
                        rtu::FrameLen::Complete(r.len())
                    );
                    }
                }
                Outcome::Ignored | Outcome::BadFrame => {}
            }
        }
    }

    #[test]
    fn silence_is_three_and_a_half_characters() {
        // 9600 8N1: 960 characters a second, 3.65 ms.
        assert_eq!(silence(960.0), Duration::from_secs_f64(3.5 / 960.0));
        assert_eq!(silence(3840.0), MIN_SILENCE);
        assert_eq!(silence(f64::INFINITY), MIN_SILENCE);
    }

    /// A reply comes out at line rate, as from a UART, not in one burst:
    /// its last character arrives at least 24 character times after its
    /// first (a lower bound only, so a loaded machine cannot fail it).
    #[tokio::test]
    async fn a_reply_takes_its_line_time() {
        use std::io::{Read, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let spec = crate::device::SimSpec {
            mode: crate::device::SimMode::Modbus,
            reply_delay: Duration::ZERO,
        };
        let line = crate::line::LineSettings::with_baud(19_200);
        let sim = crate::device::Sim::spawn_spec(spec, &line).unwrap();
        let path = sim.path().to_owned();
        let read = tokio::task::spawn_blocking(move || {
            let mut port = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY)
                .open(&path)
                .unwrap();
            port.write_all(&req(&[1, 3, 0, 0, 0, 10])).unwrap();
            let (mut buf, mut got, mut first) = ([0u8; 25], 0, None);
            while got < buf.len() {
                let n = port.read(&mut buf[got..]).unwrap();
                assert!(n > 0, "the pty closed");
                first.get_or_insert((std::time::Instant::now(), n));
                got += n;
            }
            assert!(rtu::crc_ok(&buf), "{buf:02x?}");
            let (at, n) = first.unwrap();
            // Bytes after the first read cannot come faster than the line:
            // if this thread read late, the first read holds more of them.
            (at.elapsed(), buf.len() - n)
        });
        let (spread, later) = tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("no reply within 10 s")
            .unwrap();
        let chars = later.saturating_sub(1) as f64;
        let least = Duration::from_secs_f64(chars / line.bytes_per_sec())
            .saturating_sub(Duration::from_millis(1));
        assert!(
            spread >= least,
            "the reply came in {spread:?}, faster than the line allows"
        );
    }
}
