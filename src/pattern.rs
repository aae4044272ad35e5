//! The counter test pattern that `sim:source` sends and `sim:sink` checks.
//!
//! The stream is a sequence of 9-byte records: a counter as 8 lowercase hex
//! digits followed by `\n`, counting up from 0 and wrapping at 2^32:
//!
//! ```text
//! 00000000
//! 00000001
//! 00000002
//! ```
//!
//! It reads well in a terminal, and any lost, duplicated, reordered or corrupted
//! byte shows up as a malformed record or a counter that does not follow its
//! predecessor. The checker accepts a stream that starts at any record
//! boundary, so a client that connects late can still verify what it gets.

/// Bytes per record: 8 hex digits and a newline.
pub const RECORD_LEN: usize = 9;

/// Produces the pattern as a continuous byte stream, in chunks of any size.
#[derive(Debug, Default, Clone)]
pub struct Generator {
    /// Absolute byte offset of the next byte in the stream.
    offset: u64,
}

impl Generator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            *b = byte_at(self.offset);
            self.offset += 1;
        }
    }

    /// The next `n` bytes of the stream.
    pub fn take(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        self.fill(&mut v);
        v
    }
}

/// The byte at absolute `offset` of the pattern.
pub fn byte_at(offset: u64) -> u8 {
    let record = (offset / RECORD_LEN as u64) as u32;
    let pos = (offset % RECORD_LEN as u64) as usize;
    if pos == RECORD_LEN - 1 {
        b'\n'
    } else {
        let nibble = (record >> (4 * (7 - pos))) & 0xf;
        b"0123456789abcdef"[nibble as usize]
    }
}

/// Verifies a pattern stream fed in chunks split anywhere.
#[derive(Debug, Default, Clone)]
pub struct Checker {
    line: Vec<u8>,
    /// Counter expected next; `None` until the first whole record.
    expected: Option<u32>,
    /// Bytes before the first newline are skipped: a late joiner may start
    /// mid-record.
    synced: bool,
    pub bytes: u64,
    pub records: u64,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Checker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A checker that requires the stream to start at record 0, byte 0.
    pub fn from_start() -> Self {
        Self {
            expected: Some(0),
            synced: true,
            ..Self::default()
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        self.bytes += data.len() as u64;
        for &b in data {
            if !self.synced {
                self.synced = b == b'\n';
                continue;
            }
            if b != b'\n' {
                if self.line.len() < RECORD_LEN {
                    self.line.push(b);
                } else {
                    // Overlong: keep the length over the limit to flag it.
                    self.line.truncate(RECORD_LEN);
                }
                continue;
            }
            self.end_record();
        }
    }

    fn end_record(&mut self) {
        let parsed = (self.line.len() == RECORD_LEN - 1)
            .then(|| std::str::from_utf8(&self.line).ok())
            .flatten()
            .and_then(|s| u32::from_str_radix(s, 16).ok());
        match (parsed, self.expected) {
            (Some(n), Some(e)) if n == e => self.records += 1,
            (Some(_), None) => self.records += 1,
            (Some(n), Some(e)) => self.error(format!("expected record {e:08x}, got {n:08x}")),
            (None, _) => {
                let line = String::from_utf8_lossy(&self.line).into_owned();
                self.error(format!("malformed record {line:?}"));
            }
        }
        self.expected = parsed.map(|n| n.wrapping_add(1)).or(self.expected);
        self.line.clear();
    }

    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("after {} records: {what}", self.records));
        }
    }

    /// The next counter expected, once synchronised.
    pub fn next_record(&self) -> Option<u32> {
        self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_produces_documented_records() {
        let mut g = Generator::new();
        assert_eq!(g.take(27), b"00000000\n00000001\n00000002\n");
        let mut g = Generator {
            offset: 0xabcdef * 9,
        };
        assert_eq!(g.take(9), b"00abcdef\n");
    }

    #[test]
    fn checker_accepts_stream_split_anywhere() {
        let data = Generator::new().take(9 * 1000);
        for split in [1, 2, 7, 9, 10, 4096] {
            let mut c = Checker::from_start();
            for chunk in data.chunks(split) {
                c.feed(chunk);
            }
            assert_eq!((c.records, c.errors), (1000, 0), "split {split}");
            assert_eq!(c.next_record(), Some(1000));
        }
    }

    #[test]
    fn checker_detects_lost_byte() {
        let mut data = Generator::new().take(9 * 10);
        data.remove(40);
        let mut c = Checker::from_start();
        c.feed(&data);
        assert!(c.errors >= 1, "{c:?}");
        assert!(c.first_error.unwrap().contains("malformed"));
    }

    #[test]
    fn checker_detects_lost_record_and_reorder() {
        let mut g = Generator::new();
        let a = g.take(9);
        let b = g.take(9);
        let c3 = g.take(9);
        let mut c = Checker::from_start();
        c.feed(&a);
        c.feed(&c3);
        c.feed(&b);
        assert_eq!(c.errors, 2);
        assert!(c.first_error.unwrap().contains("expected record 00000001"));
    }

    #[test]
    fn late_joiner_syncs_at_next_record() {
        let data = Generator::new().take(9 * 100);
        let mut c = Checker::new();
        c.feed(&data[13..]);
        assert_eq!(c.errors, 0);
        assert_eq!(c.records, 98);
        assert_eq!(c.next_record(), Some(100));
    }
}
