//! Line framing: cuts a client's byte stream into whole lines.
//!
//! With `framing=line`, a client's bytes reach the device only as complete
//! lines, each written as one chunk, so two clients' commands never interleave
//! inside a line. A partial line waits here (bounded by `max_line`); a line
//! longer than that is passed on in `max_line` pieces rather than lost, and
//! whatever is left when the client closes is passed on too.

use bytes::{Bytes, BytesMut};

#[derive(Debug)]
pub struct LineAssembler {
    delimiter: u8,
    max_line: usize,
    pending: BytesMut,
}

impl LineAssembler {
    pub fn new(delimiter: u8, max_line: usize) -> Self {
        Self {
            delimiter,
            max_line: max_line.max(1),
            pending: BytesMut::new(),
        }
    }

    pub(crate) fn max_line(&self) -> usize {
        self.max_line
    }

    /// Room left before the pending partial line reaches `max_line`.
    pub(crate) fn room(&self) -> usize {
        self.max_line.saturating_sub(self.pending.len())
    }

    /// Adds bytes; returns the whole lines now complete, and whether a line
    /// had to be cut at `max_line`.
    pub fn push(&mut self, data: &[u8]) -> (Vec<Bytes>, bool) {
        let mut lines = Vec::new();
        let mut cut = false;
        for piece in data.split_inclusive(|b| *b == self.delimiter) {
            let mut piece = piece;
            while !piece.is_empty() {
                let take = piece.len().min(self.room());
                self.pending.extend_from_slice(&piece[..take]);
                piece = &piece[take..];
                let ended = self.pending.last() == Some(&self.delimiter);
                if ended || self.pending.len() >= self.max_line {
                    cut |= !ended;
                    lines.push(self.pending.split().freeze());
                }
            }
        }
        (lines, cut)
    }

    /// The unterminated remainder, at end of input.
    pub(crate) fn finish(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_only_whole_lines_across_pushes() {
        let mut a = LineAssembler::new(b'\n', 64);
        assert_eq!(a.push(b"AT+"), (vec![], false));
        assert_eq!(
            a.push(b"GMR\nATI"),
            (vec![Bytes::from_static(b"AT+GMR\n")], false)
        );
        let (lines, _) = a.push(b"\nA\nB\n");
        assert_eq!(lines, vec!["ATI\n", "A\n", "B\n"]);
        assert_eq!(a.finish(), None);
    }

    #[test]
    fn overlong_line_is_cut_not_lost() {
        let mut a = LineAssembler::new(b'\n', 4);
        let (lines, cut) = a.push(b"abcdefghij\n");
        assert!(cut);
        assert_eq!(lines, vec!["abcd", "efgh", "ij\n"]);
        let (lines, cut) = a.push(b"xy");
        assert_eq!((lines.len(), cut), (0, false));
        assert_eq!(a.room(), 2);
        assert_eq!(a.finish().unwrap(), "xy");
    }

    #[test]
    fn custom_delimiter() {
        let mut a = LineAssembler::new(b'\r', 64);
        assert_eq!(a.push(b"ATZ\rATE0\r").0, vec!["ATZ\r", "ATE0\r"]);
    }
}
