//! Two sessions through a channel that loses, duplicates and reorders
//! frames: every byte written arrives once, in order, and neither end ever
//! holds more than its window.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::frame::Frame;
use super::*;
use crate::pattern::byte_at;

/// A small deterministic generator, seeded by proptest, so one case is
/// thousands of random choices without thousands of shrink dimensions.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u8) -> bool {
        self.below(100) < usize::from(percent)
    }
}

struct End {
    session: Session,
    written: u64,
    read: u64,
    window: usize,
}

impl End {
    fn pump_writes(&mut self, total: u64, rng: &mut Rng) {
        let want = usize::try_from(total - self.written)
            .unwrap_or(0)
            .min(1 + rng.below(3000));
        let buf: Vec<u8> = (0..want as u64)
            .map(|i| byte_at(self.written + i))
            .collect();
        let n = self.session.write(&buf);
        self.written += n as u64;
        if self.written == total {
            self.session.close();
        }
    }

    fn pump_reads(&mut self, rng: &mut Rng, now: Instant) {
        let mut buf = vec![0; 1 + rng.below(4000)];
        let n = self.session.read(&mut buf, now);
        for (i, b) in buf[..n].iter().enumerate() {
            assert_eq!(
                *b,
                byte_at(self.read + i as u64),
                "byte {}",
                self.read + i as u64
            );
        }
        self.read += n as u64;
    }
}

struct Lossy {
    loss: u8,
    dup: u8,
    reorder: u8,
}

fn run(seed: u64, total: u64, windows: (usize, usize), max_frame: usize, net: Lossy) {
    let mut rng = Rng(seed | 1);
    let mut now = Instant::now();
    let start = now;
    let mut ends = [
        End {
            session: Session::new(windows.0, windows.1, max_frame),
            written: 0,
            read: 0,
            window: windows.0,
        },
        End {
            session: Session::new(windows.1, windows.0, max_frame),
            written: 0,
            read: 0,
            window: windows.1,
        },
    ];
    // Frames in flight towards end 0 and end 1.
    let mut wire: [Vec<Frame>; 2] = [Vec::new(), Vec::new()];
    for _step in 0..50_000 {
        for (i, end) in ends.iter_mut().enumerate() {
            end.pump_writes(total, &mut rng);
            if rng.chance(1) {
                // The broker connection came back: resend at once.
                end.session.on_reconnect(now);
            }
            if rng.chance(70) {
                end.pump_reads(&mut rng, now);
            }
            while let Some(f) = end.session.poll_transmit(now) {
                if rng.chance(net.loss) {
                    continue;
                }
                if rng.chance(net.dup) {
                    wire[1 - i].push(f.clone());
                }
                wire[1 - i].push(f);
            }
            // The invariants: a writer is at most the peer's window ahead
            // of the peer's reader; a receiver buffers at most its own.
            assert!(end.session.unread() <= ends_window(windows, 1 - i));
            assert!(end.session.buffered() <= end.window);
        }
        for i in 0..2 {
            let unread = ends[i].written - ends[1 - i].read;
            assert!(
                unread <= ends_window(windows, 1 - i) as u64,
                "{unread} unread"
            );
        }
        for (i, frames) in wire.iter_mut().enumerate() {
            while !frames.is_empty() {
                let pick = if rng.chance(net.reorder) {
                    rng.below(frames.len())
                } else {
                    0
                };
                let f = frames.remove(pick);
                // Through the codec, as on the wire.
                let f = Frame::decode(&f.encode()).expect("own frames decode");
                ends[i].session.handle(f, now);
                if rng.chance(30) {
                    break;
                }
            }
        }
        if ends
            .iter()
            .all(|e| e.read == total && e.session.at_end() && e.session.sent_all())
        {
            return;
        }
        // Idle or not, time moves: sometimes a little, sometimes to the
        // next timer.
        let next = ends.iter().filter_map(|e| e.session.next_timeout()).min();
        now = match next {
            Some(t) if rng.chance(20) && wire.iter().all(Vec::is_empty) => t.max(now),
            _ => now + Duration::from_millis(rng.below(5) as u64),
        };
        assert!(
            now - start < Duration::from_secs(3600),
            "no progress in an hour"
        );
    }
    panic!(
        "not done: read {} and {} of {total}",
        ends[0].read, ends[1].read
    );
}

fn ends_window(windows: (usize, usize), i: usize) -> usize {
    if i == 0 { windows.0 } else { windows.1 }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn lossy_channel_delivers_every_byte_once_in_order(
        seed in any::<u64>(),
        total in 1u64..20_000,
        w0 in 256usize..20_000,
        w1 in 256usize..20_000,
        max_frame in 16usize..2048,
        loss in 0u8..30,
        dup in 0u8..30,
        reorder in 0u8..50,
    ) {
        run(seed, total, (w0, w1), max_frame, Lossy { loss, dup, reorder });
    }
}

#[test]
fn a_perfect_channel_delivers() {
    run(
        7,
        100_000,
        (8192, 8192),
        1024,
        Lossy {
            loss: 0,
            dup: 0,
            reorder: 0,
        },
    );
}

#[test]
fn reset_ends_both_directions() {
    let now = Instant::now();
    let mut a = Session::new(100, 100, 10);
    let mut b = Session::new(100, 100, 10);
    a.reset("bye");
    let f = a.poll_transmit(now).expect("the reset");
    b.handle(f, now);
    assert_eq!(b.reset_reason(), Some("bye"));
    assert_eq!(b.write(b"x"), 0);
    assert_eq!(b.poll_transmit(now), None);
}

#[test]
fn window_follows_the_line_rate() {
    assert_eq!(window_for(Some(11_520), 16 * 1024), 32 * 1024);
    assert_eq!(window_for(Some(960), 1024), MIN_WINDOW);
    assert_eq!(window_for(Some(200_000), 16 * 1024), 100_000);
    assert_eq!(window_for(Some(1_000_000), 16 * 1024), MAX_WINDOW);
    assert_eq!(window_for(None, 16 * 1024), MAX_WINDOW);
}
