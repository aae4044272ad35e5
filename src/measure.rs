//! Measurement helpers for the integration tests and the benchmarks: how much
//! a socket still holds, and how much memory a process uses.

use std::os::fd::AsRawFd;

nix::ioctl_read_bad!(siocoutq, libc::TIOCOUTQ, libc::c_int);

/// Bytes written to a TCP socket that the peer's kernel has not yet
/// acknowledged (Linux `SIOCOUTQ`). On loopback, acknowledged means "in the
/// peer's receive buffer", so `written - unacked(socket)` is what has left the
/// sender.
pub fn unacked(socket: &impl AsRawFd) -> std::io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ writes one c_int through the pointer.
    unsafe { siocoutq(socket.as_raw_fd(), &mut n) }?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// A process's peak and current resident set size, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    pub peak_kib: u64,
    pub current_kib: u64,
    /// The anonymous part of `current_kib` (heap, stacks): what the process
    /// allocated, without the pages of its executable and libraries, which
    /// vary by a few hundred KiB from run to run with the page cache.
    pub anon_kib: u64,
}

/// Reads `VmHWM`, `VmRSS` and `RssAnon` from `/proc/PID/status`.
pub fn memory(pid: u32) -> std::io::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Memory {
        peak_kib: field("VmHWM:"),
        current_kib: field("VmRSS:"),
        anon_kib: field("RssAnon:"),
    })
}

/// CPU time (user + system) a process has used, in seconds.
///
/// To the nanosecond where the kernel keeps scheduler statistics: the sum
/// of `/proc/PID/task/*/schedstat` over the live threads (a thread that
/// exits takes its time with it, so measure long-lived threads). Otherwise
/// from `/proc/PID/stat`, in clock ticks (10 ms), which would make a
/// window's figure for a light load a count of a few ticks.
pub fn cpu_seconds(pid: u32) -> std::io::Result<f64> {
    match scheduled_ns(pid) {
        Ok(ns) => Ok(ns as f64 / 1e9),
        Err(_) => cpu_ticks_seconds(pid),
    }
}

/// Time on CPU of all a process's live threads, in nanoseconds.
fn scheduled_ns(pid: u32) -> std::io::Result<u64> {
    let mut total = 0u64;
    let mut threads = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may exit between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(task?.path().join("schedstat")) else {
            continue;
        };
        let ns = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        total += ns.ok_or_else(|| std::io::Error::other("unreadable schedstat"))?;
        threads += 1;
    }
    if threads == 0 {
        return Err(std::io::Error::other("no thread has schedstat"));
    }
    Ok(total)
}

/// CPU time from `/proc/PID/stat`, in whole clock ticks.
fn cpu_ticks_seconds(pid: u32) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    // SAFETY: sysconf has no preconditions.
    let hz = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as f64,
        _ => 100.0,
    };
    Ok((ticks(11) + ticks(12)) as f64 / hz)
}

/// Context switches (voluntary and involuntary) of all a process's threads
/// so far: each is a thread going to sleep or being preempted, so a process
/// that nothing wakes adds none. Threads that have exited are not counted.
pub fn context_switches(pid: u32) -> std::io::Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        // A thread may exit between the listing and the read.
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Ok(total)
}

/// What a flooding client saw.
#[derive(Debug, Clone, Copy, Default)]
pub struct FloodReport {
    /// Bytes the client's socket accepted.
    pub written: u64,
    /// Bytes the device received during the flood.
    pub line_bytes: u64,
    pub secs: f64,
    /// Most bytes seen between the client's socket and the wire at once.
    pub max_inflight: u64,
    pub mean_inflight: f64,
}

/// Writes the counter pattern into `stream` as fast as it will take it, for
/// `duration`, sampling after every write (or every 20 ms while blocked) the
/// bytes that have left the client (`written - unacked`) but not reached the
/// device (`device_rx()`).
pub async fn flood(
    stream: &mut tokio::net::TcpStream,
    device_rx: impl Fn() -> u64,
    duration: std::time::Duration,
) -> std::io::Result<FloodReport> {
    let left =
        |s: &tokio::net::TcpStream, written: u64| Ok(written.saturating_sub(unacked(s)? as u64));
    flood_via(stream, left, device_rx, duration).await
}

/// [`flood`] through any stream, a TLS one for instance, whose bytes that
/// have left the client `left_client(stream, written)` tells, given the
/// bytes the stream has accepted.
pub async fn flood_via<S: tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    left_client: impl Fn(&S, u64) -> std::io::Result<u64>,
    device_rx: impl Fn() -> u64,
    duration: std::time::Duration,
) -> std::io::Result<FloodReport> {
    use tokio::io::AsyncWriteExt;
    let mut generator = crate::pattern::Generator::new();
    let mut buf = vec![0u8; 4096];
    let mut pending = 0..0;
    let (mut r, mut samples, mut sum) = (FloodReport::default(), 0u64, 0u64);
    let rx0 = device_rx();
    let start = std::time::Instant::now();
    while start.elapsed() < duration {
        if pending.is_empty() {
            generator.fill(&mut buf);
            pending = 0..buf.len();
        }
        let wait = std::time::Duration::from_millis(20);
        if let Ok(n) = tokio::time::timeout(wait, stream.write(&buf[pending.clone()])).await {
            let n = n?;
            r.written += n as u64;
            pending.start += n;
        }
        let inflight = left_client(stream, r.written)?.saturating_sub(device_rx() - rx0);
        r.max_inflight = r.max_inflight.max(inflight);
        sum += inflight;
        samples += 1;
    }
    r.secs = start.elapsed().as_secs_f64();
    r.line_bytes = device_rx() - rx0;
    r.mean_inflight = sum as f64 / samples.max(1) as f64;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_and_cpu() {
        let m = memory(std::process::id()).unwrap();
        assert!(m.peak_kib >= m.current_kib && m.current_kib > 0, "{m:?}");
        assert!(m.anon_kib > 0 && m.anon_kib <= m.current_kib, "{m:?}");
        // CPU burnt here shows: the count grows (it cannot go below 0 anyway).
        let before = cpu_seconds(std::process::id()).unwrap();
        let start = std::time::Instant::now();
        let mut spin = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            spin = std::hint::black_box(spin.wrapping_add(1));
        }
        let after = cpu_seconds(std::process::id()).unwrap();
        assert!(after > before, "{before} -> {after} after a 50 ms spin");
        // The harness's main thread sleeps while the tests run.
        assert!(context_switches(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn unacked_is_zero_on_idle_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        assert_eq!(unacked(&s).unwrap(), 0);
    }
}
