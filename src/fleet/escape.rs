//! The escape of `serialhub fleet connect` at a terminal, as ssh and cu
//! have it: `~.` at the start of a line (after Enter, or first thing)
//! quits, `~~` sends one `~`, and a `~` followed by anything else is sent
//! as it was typed. Pure: keystrokes in, bytes for the device out.

/// What typing does.
#[derive(Debug, Default)]
pub(crate) struct Escape {
    /// Not at the start of a line (no Enter since the last key).
    mid_line: bool,
    /// A `~` typed at the start of a line, held to see what follows.
    tilde: bool,
}

/// What [`Escape::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Typed {
    /// Bytes for the device (maybe none).
    Send(Vec<u8>),
    /// `~.`: quit, after sending these bytes (typed before it).
    Quit(Vec<u8>),
}

impl Escape {
    /// Takes keystrokes; says what goes to the device, and whether to quit.
    pub(crate) fn feed(&mut self, keys: &[u8]) -> Typed {
        let mut out = Vec::with_capacity(keys.len());
        for &k in keys {
            if self.tilde {
                self.tilde = false;
                match k {
                    b'.' => return Typed::Quit(out),
                    b'~' => {
                        out.push(b'~');
                        self.mid_line = true;
                        continue;
                    }
                    _ => out.push(b'~'),
                }
            } else if k == b'~' && !self.mid_line {
                self.tilde = true;
                continue;
            }
            out.push(k);
            self.mid_line = !matches!(k, b'\r' | b'\n');
        }
        Typed::Send(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(e: &mut Escape, keys: &[u8]) -> Vec<u8> {
        match e.feed(keys) {
            Typed::Send(b) => b,
            Typed::Quit(_) => panic!("quit on {keys:?}"),
        }
    }

    #[test]
    fn tilde_dot_quits_only_at_the_start_of_a_line() {
        assert_eq!(Escape::default().feed(b"~."), Typed::Quit(vec![]));
        let mut e = Escape::default();
        assert_eq!(send(&mut e, b"ls ~.x"), b"ls ~.x");
        assert_eq!(e.feed(b"\r~."), Typed::Quit(b"\r".to_vec()));
        let mut e = Escape::default();
        assert_eq!(send(&mut e, b"a\n"), b"a\n");
        assert_eq!(e.feed(b"~.rest"), Typed::Quit(vec![]));
    }

    #[test]
    fn a_held_tilde_is_sent_when_no_dot_follows_even_split_across_reads() {
        let mut e = Escape::default();
        assert_eq!(send(&mut e, b"~"), b"");
        assert_eq!(send(&mut e, b"x"), b"~x");
        let mut e = Escape::default();
        assert_eq!(send(&mut e, b"~~"), b"~");
        // After `~~` the line has started: `~.` is sent as it is.
        assert_eq!(send(&mut e, b"~."), b"~.");
        let mut e = Escape::default();
        assert_eq!(send(&mut e, b"\r~"), b"\r");
        assert_eq!(e.feed(b"."), Typed::Quit(vec![]));
    }
}
