//! Issue 8: a byte the kernel acknowledged to a client reaches the device,
//! however the client leaves: close while the device talks, half-close then
//! read, or reset in the middle of a flood.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::common::{PtyDevice, Server};

/// A device that talks all the time, so writes toward clients that have
/// closed fail while their commands still wait to be written.
fn chatter(device: &Arc<PtyDevice>, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let (device, stop) = (device.clone(), stop.clone());
    std::thread::spawn(move || {
        while !stop.load(Relaxed) {
            device.send(b"device-chatter-0123456789\n");
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// A client that writes the counter pattern as fast as it is let and reads
/// and discards everything, keeping the write path busy.
fn flooder(addr: SocketAddr, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let stop = stop.clone();
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let mut r = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
        });
        let mut pattern = serialhub::pattern::Generator::new();
        let mut buf = vec![0u8; 900];
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        while !stop.load(Relaxed) {
            pattern.fill(&mut buf);
            let _ = s.write_all(&buf);
        }
    })
}

/// Bytes the client's kernel still holds unsent (`SIOCOUTQ`).
fn unsent(s: &TcpStream) -> usize {
    nix::ioctl_read_bad!(siocoutq, libc::TIOCOUTQ, libc::c_int);
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (== TIOCOUTQ) writes one c_int.
    unsafe { siocoutq(s.as_raw_fd(), &mut n) }.expect("SIOCOUTQ");
    usize::try_from(n).unwrap()
}

/// Closes with a reset (SO_LINGER 0) instead of a FIN.
fn reset(s: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER");
    drop(s);
}

fn token(i: usize) -> Vec<u8> {
    format!("ONESHOT-{i:04}\n").into_bytes()
}

/// Waits until the device has received every token; returns the ones missing.
fn missing_tokens(device: &PtyDevice, n: usize, timeout: Duration) -> Vec<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let got = device.received();
        let missing: Vec<usize> = (0..n)
            .filter(|&i| {
                let t = token(i);
                got.windows(t.len()).filter(|w| *w == t.as_slice()).count() != 1
            })
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            return missing;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn issue8_one_shot_commands_reach_a_chatty_device() {
    const CLIENTS: usize = 1000;
    const WORKERS: usize = 8;
    let device = Arc::new(PtyDevice::new());
    let server = Server::serve(&device.path, 115_200, &["--max-clients", "1024"]);
    let addr = server.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let talker = chatter(&device, &stop);
    let flood = flooder(addr, &stop);

    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            std::thread::spawn(move || {
                for i in (w..CLIENTS).step_by(WORKERS) {
                    let mut s = TcpStream::connect(addr).unwrap();
                    s.write_all(&token(i)).unwrap();
                    if i % 2 == 1 {
                        // Half-close, then read as a request/response
                        // client does: it must still get data.
                        s.shutdown(Shutdown::Write).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                        let mut buf = [0u8; 64];
                        let n = s.read(&mut buf).expect("a half-closed client still reads");
                        assert!(n > 0, "client {i} got EOF instead of device data");
                    }
                    // Unread device data makes this close a reset.
                    drop(s);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let missing = missing_tokens(&device, CLIENTS, Duration::from_secs(60));
    stop.store(true, Relaxed);
    talker.join().unwrap();
    flood.join().unwrap();
    assert!(
        missing.is_empty(),
        "{} of {CLIENTS} acknowledged commands never reached the device \
         (or arrived more than once), e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        server.log()
    );
}

#[test]
fn issue8_flooding_client_that_resets_delivers_what_was_acknowledged() {
    for round in 0..3 {
        let device = Arc::new(PtyDevice::new());
        let server = Server::serve(&device.path, 115_200, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let talker = chatter(&device, &stop);

        let mut s = TcpStream::connect(server.addr()).unwrap();
        s.set_nonblocking(true).unwrap();
        let mut pattern = serialhub::pattern::Generator::new();
        let mut sent = Vec::new();
        let mut buf = vec![0u8; 1000];
        let start = Instant::now();
        // Flood for a while, never reading: the device's chatter piles up
        // unread, so the close below is a reset either way.
        while start.elapsed() < Duration::from_millis(700 + 300 * round) {
            pattern.fill(&mut buf);
            let mut rest = &buf[..];
            while !rest.is_empty() && start.elapsed() < Duration::from_secs(3) {
                match s.write(rest) {
                    Ok(n) => {
                        sent.extend_from_slice(&rest[..n]);
                        rest = &rest[n..];
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("flood write: {e}"),
                }
            }
        }
        let acked = sent.len() - unsent(&s);
        reset(s);

        let ok = {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let flood = device.received();
                if flood.len() >= acked || Instant::now() > deadline {
                    break flood;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        };
        stop.store(true, Relaxed);
        talker.join().unwrap();
        assert!(
            ok.len() >= acked,
            "round {round}: the device got {} of the {acked} acknowledged bytes\n{}",
            ok.len(),
            server.log()
        );
        assert_eq!(
            ok[..],
            sent[..ok.len()],
            "round {round}: the device got other bytes than were sent"
        );
    }
}

/// splitmix64: a small, seedable generator, so a failing case is named by
/// its seed and reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Client `c`'s byte at stream offset `o`: the top two bits name the
/// client, so the device's stream can be split back into clients; the rest
/// vary pseudo-randomly, so a lost or repeated run of bytes shows.
fn stream_byte(seed: u64, c: usize, o: usize) -> u8 {
    let mut r = Rng(seed ^ ((c as u64) << 56) ^ o as u64);
    ((c as u8) << 6) | (r.next() as u8 & 63)
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    /// close(): a FIN, or a reset if device data is unread.
    Close,
    /// SO_LINGER 0, then close(): always a reset.
    Reset,
    /// shutdown(SHUT_WR), read for a while, then close().
    HalfClose,
}

/// Runs one client's random life; returns (bytes written, bytes
/// acknowledged: written less what its own kernel still held at the end).
fn random_client(addr: SocketAddr, seed: u64, c: usize) -> (Vec<u8>, usize) {
    let mut rng = Rng(seed.wrapping_add(c as u64 * 7919));
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nonblocking(true).unwrap();
    let mut sent = Vec::new();
    for _ in 0..=rng.below(6) {
        match rng.below(3) {
            0 => std::thread::sleep(Duration::from_millis(rng.below(40))),
            1 => {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
            }
            _ => {
                let n = 1 + rng.below(6000) as usize;
                let data: Vec<u8> = (sent.len()..sent.len() + n)
                    .map(|o| stream_byte(seed, c, o))
                    .collect();
                let mut rest = &data[..];
                let start = Instant::now();
                while !rest.is_empty() && start.elapsed() < Duration::from_millis(300) {
                    match s.write(rest) {
                        Ok(n) => {
                            sent.extend_from_slice(&rest[..n]);
                            rest = &rest[n..];
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2))
                        }
                        Err(e) => panic!("seed {seed}: client {c} write: {e}"),
                    }
                }
            }
        }
    }
    let ending = [Ending::Close, Ending::Reset, Ending::HalfClose][rng.below(3) as usize];
    let acked = sent.len() - unsent(&s);
    match ending {
        Ending::Close => drop(s),
        Ending::Reset => reset(s),
        Ending::HalfClose => {
            s.shutdown(Shutdown::Write).unwrap();
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let mut buf = [0u8; 4096];
            for _ in 0..rng.below(6) {
                let _ = s.read(&mut buf);
            }
        }
    }
    (sent, acked)
}

#[test]
fn issue8_random_client_lives_deliver_every_acknowledged_byte() {
    for case in 0..24u64 {
        let seed = 0x5EED_0000 + case;
        let mut rng = Rng(seed);
        let clients = 1 + rng.below(4) as usize;
        let chatty = rng.below(4) != 0;
        let device = Arc::new(PtyDevice::new());
        // A small write budget, so clients' bytes wait in their sockets
        // while the device talks to them.
        let server = Server::serve(&device.path, 460_800, &["--max-inflight", "100ms"]);
        let addr = server.addr();
        let stop = Arc::new(AtomicBool::new(false));
        let talker = chatty.then(|| chatter(&device, &stop));
        let lives: Vec<_> = (0..clients)
            .map(|c| std::thread::spawn(move || random_client(addr, seed, c)))
            .collect();
        let lives: Vec<(Vec<u8>, usize)> = lives.into_iter().map(|t| t.join().unwrap()).collect();

        let split = |got: &[u8]| -> Vec<Vec<u8>> {
            (0..clients)
                .map(|c| {
                    got.iter()
                        .copied()
                        .filter(|b| usize::from(b >> 6) == c)
                        .collect()
                })
                .collect()
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let per_client = loop {
            let per_client = split(&device.received());
            let done = per_client
                .iter()
                .zip(&lives)
                .all(|(got, (_, acked))| got.len() >= *acked);
            if done || Instant::now() > deadline {
                break per_client;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        stop.store(true, Relaxed);
        if let Some(t) = talker {
            t.join().unwrap();
        }
        for (c, (got, (sent, acked))) in per_client.iter().zip(&lives).enumerate() {
            assert!(
                got.len() >= *acked && got.len() <= sent.len() && got[..] == sent[..got.len()],
                "seed {seed:#x} (chatty: {chatty}): client {c} sent {}, {acked} acknowledged; \
                 the device got {} bytes, {}\n{}",
                sent.len(),
                got.len(),
                if got[..] == sent[..got.len().min(sent.len())] {
                    "in order"
                } else {
                    "NOT the bytes sent"
                },
                server.log()
            );
        }
    }
}
