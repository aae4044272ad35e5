//! Where the peer's TLS records end, from the bytes read so far (sans-I/O).
//!
//! rustls decrypts whole records only, and keeps the plaintext of every
//! record it was given until it is read. Handed all the ciphertext the
//! kernel holds, it would hold that much plaintext again on top of what
//! the kernel's receive buffer holds: a flooding client would get a second
//! receive buffer's worth in flight (issue 21: 3.4 s of line time at
//! 9600 baud instead of plain text's 1.1 s). So the session reads no
//! further than the end of the record it is in, plus the next record's
//! 5-byte header (which gives that record's length): one read per record,
//! and rustls never holds more than one record beyond what was asked for.
//! The rest waits in the kernel, where TCP's window holds the client back.

/// A TLS record header: type (1), version (2), length (2).
const HEADER: usize = 5;

/// The record boundaries in a stream of TLS records.
#[derive(Debug, Default)]
pub(crate) struct RecordEnds {
    /// Header bytes of the next record read so far.
    header: [u8; HEADER],
    header_len: usize,
    /// Body bytes of the current record still to read.
    body_left: usize,
}

impl RecordEnds {
    /// How many bytes to read next: the rest of the current record and the
    /// next header, or the rest of the header being read.
    pub(crate) fn want(&self) -> usize {
        if self.body_left > 0 {
            self.body_left + HEADER
        } else {
            HEADER - self.header_len
        }
    }

    /// Notes `bytes`, just read from the stream.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER - self.header_len).min(bytes.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&bytes[..n]);
            self.header_len += n;
            bytes = &bytes[n..];
            if self.header_len == HEADER {
                self.header_len = 0;
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(len: u16) -> Vec<u8> {
        let mut r = vec![23, 3, 3];
        r.extend_from_slice(&len.to_be_bytes());
        r.extend(std::iter::repeat_n(0xaa, usize::from(len)));
        r
    }

    #[test]
    fn reads_end_at_record_boundaries() {
        let stream: Vec<u8> = [record(100), record(0), record(3000), record(1)].concat();
        let mut ends = RecordEnds::default();
        let mut at = 0;
        let mut cuts = Vec::new();
        while at < stream.len() {
            let n = ends.want().min(stream.len() - at);
            ends.feed(&stream[at..at + n]);
            at += n;
            cuts.push(at);
        }
        // Header, then each record's body with the next header.
        assert_eq!(cuts, vec![5, 110, 115, 3120, 3121]);
    }

    #[test]
    fn short_reads_resume_where_they_stopped() {
        let stream: Vec<u8> = [record(10), record(20)].concat();
        let mut ends = RecordEnds::default();
        // Two bytes at a time, whatever was wanted.
        for chunk in stream.chunks(2) {
            assert!(ends.want() > 0);
            ends.feed(chunk);
        }
        assert_eq!(ends.want(), HEADER);
    }

    proptest::proptest! {
        #[test]
        fn never_reads_past_the_next_header(
            lens in proptest::collection::vec(0u16..20000, 1..8),
            limits in proptest::collection::vec(1usize..5000, 1..50),
        ) {
            let stream: Vec<u8> = lens.iter().map(|&l| record(l)).collect::<Vec<_>>().concat();
            // Where each header ends: a read may stop there at the latest.
            let mut boundaries = Vec::new();
            let mut at = 0;
            for &l in &lens {
                boundaries.push(at + HEADER);
                at += HEADER + usize::from(l);
            }
            let mut ends = RecordEnds::default();
            let (mut at, mut i) = (0, 0);
            while at < stream.len() {
                let n = ends.want().min(limits[i % limits.len()]).min(stream.len() - at);
                i += 1;
                ends.feed(&stream[at..at + n]);
                at += n;
                // Never past the header that follows the record being read.
                let next = boundaries.iter().find(|&&b| b >= at).copied().unwrap_or(stream.len());
                proptest::prop_assert!(at <= next);
            }
        }
    }
}
