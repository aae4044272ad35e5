//! Finding the end of a reply in the device's output, without I/O.
//!
//! While a transaction runs, the device's bytes are the reply to one
//! client's request. The [`ReplyRule`] chosen from the request's framing says
//! where that reply ends: at a delimiter (`framing=line`), at the length that
//! the Modbus function code implies (`framing=modbus-rtu`), or only when the
//! device falls silent (`framing=gap`, and the fallback of the others). The
//! silence itself is timed by the arbiter; a [`ReplyDetector`] only splits
//! the bytes it is fed into "part of the reply" and "after it".

use crate::proto::modbus::rtu::{self, FrameLen};

/// How the end of a reply is recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReplyRule {
    /// The reply ends when the device has been silent for the reply gap.
    Gap,
    /// The reply ends with this byte (included).
    Delimiter(u8),
    /// A Modbus RTU reply to function `func`, whose length the function
    /// code (or an exception) implies.
    ModbusRtu { func: u8 },
    /// No reply is expected (a Modbus broadcast): the transaction ends once
    /// the request is on the wire.
    None,
}

/// Tracks one reply as the device's bytes arrive.
#[derive(Debug)]
pub(crate) struct ReplyDetector {
    rule: ReplyRule,
    /// The reply so far, kept only for Modbus, whose length needs its head.
    head: Vec<u8>,
    /// Bytes taken into the reply.
    taken: usize,
    complete: bool,
    /// The reply's length cannot be known from its bytes (not the Modbus
    /// reply expected), so only silence ends it.
    unknown: bool,
}

impl ReplyDetector {
    pub(crate) fn new(rule: ReplyRule) -> Self {
        Self {
            rule,
            head: Vec::new(),
            taken: 0,
            complete: matches!(rule, ReplyRule::None),
            unknown: false,
        }
    }

    /// Whether the reply is known to be complete (not counting a gap).
    pub(crate) fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether silence after the reply's first byte ends it: the rule says
    /// so, or the reply turned out not to be what the rule expected.
    pub(crate) fn ends_by_silence(&self) -> bool {
        self.rule == ReplyRule::Gap || self.unknown
    }

    /// Bytes taken into the reply so far.
    pub(crate) fn taken(&self) -> usize {
        self.taken
    }

    /// Feeds device bytes; returns how many of them, from the front, belong
    /// to the reply. The rest came after it.
    pub(crate) fn feed(&mut self, data: &[u8]) -> usize {
        if self.complete {
            return 0;
        }
        if self.unknown {
            self.taken += data.len();
            return data.len();
        }
        let n = match self.rule {
            ReplyRule::None => 0,
            ReplyRule::Gap => data.len(),
            ReplyRule::Delimiter(d) => match data.iter().position(|b| *b == d) {
                Some(i) => {
                    self.complete = true;
                    i + 1
                }
                None => data.len(),
            },
            ReplyRule::ModbusRtu { func } => self.feed_modbus(func, data),
        };
        self.taken += n;
        n
    }

    fn feed_modbus(&mut self, func: u8, data: &[u8]) -> usize {
        let mut used = 0;
        while used < data.len() {
            if self.head.len() >= rtu::MAX_FRAME {
                self.unknown = true;
                self.head.clear();
                return data.len();
            }
            match rtu::reply_len(func, &self.head) {
                FrameLen::Complete(len) if self.head.len() >= len => {
                    self.complete = true;
                    self.head.clear();
                    return used;
                }
                // Not Modbus after all: the rest of it is framed by silence,
                // and none of it needs keeping.
                FrameLen::Unknown => {
                    self.unknown = true;
                    self.head.clear();
                    return data.len();
                }
                FrameLen::Complete(len) | FrameLen::NeedMore(len) => {
                    let want = len.clamp(self.head.len() + 1, rtu::MAX_FRAME);
                    let take = (want - self.head.len()).min(data.len() - used);
                    self.head.extend_from_slice(&data[used..used + take]);
                    used += take;
                }
            }
        }
        if let FrameLen::Complete(len) = rtu::reply_len(func, &self.head)
            && self.head.len() >= len
        {
            self.complete = true;
            self.head.clear();
        }
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_ends_the_reply_and_leaves_the_rest() {
        let mut d = ReplyDetector::new(ReplyRule::Delimiter(b'\n'));
        assert_eq!(d.feed(b"OK 12"), 5);
        assert!(!d.is_complete());
        assert_eq!(d.feed(b"3\nRING\n"), 2);
        assert!(d.is_complete());
        assert_eq!(d.feed(b"more"), 0);
        assert_eq!(d.taken(), 7);
    }

    #[test]
    fn gap_takes_everything() {
        let mut d = ReplyDetector::new(ReplyRule::Gap);
        assert_eq!(d.feed(b"abc"), 3);
        assert!(!d.is_complete());
    }

    #[test]
    fn no_reply_is_complete_at_once() {
        let mut d = ReplyDetector::new(ReplyRule::None);
        assert!(d.is_complete());
        assert_eq!(d.feed(b"x"), 0);
    }

    /// `01 03 04 00 01 00 02 CRC`: a read of two registers, split anywhere,
    /// then a byte that is not part of it.
    #[test]
    fn modbus_reply_length_comes_from_its_head_split_anywhere() {
        let mut reply = vec![0x01, 0x03, 0x04, 0x00, 0x01, 0x00, 0x02];
        rtu::append_crc(&mut reply);
        reply.push(0xEE);
        for cut in 0..reply.len() {
            let mut d = ReplyDetector::new(ReplyRule::ModbusRtu { func: 3 });
            let a = d.feed(&reply[..cut]);
            let b = d.feed(&reply[cut..]);
            assert_eq!(a + b, 9, "cut at {cut}");
            assert!(d.is_complete());
        }
    }

    #[test]
    fn modbus_exception_is_five_bytes() {
        let mut reply = vec![0x01, 0x83, 0x02];
        rtu::append_crc(&mut reply);
        let mut d = ReplyDetector::new(ReplyRule::ModbusRtu { func: 3 });
        assert_eq!(d.feed(&[reply.as_slice(), b"zz"].concat()), 5);
        assert!(d.is_complete());
    }

    #[test]
    fn unknown_modbus_reply_falls_back_to_silence() {
        let mut d = ReplyDetector::new(ReplyRule::ModbusRtu { func: 3 });
        assert_eq!(d.feed(&[0x01, 0x44, 1, 2, 3]), 5);
        assert!(!d.is_complete());
        assert!(d.ends_by_silence());
        assert_eq!(d.feed(&[4, 5]), 2);
    }
}
