//! Issue 10.6: TCP keepalive on client connections, so a peer that vanished
//! without a FIN is found in about a minute.
//!
//! A test cannot read the server's socket options from the client side, and
//! making a peer vanish needs a network namespace. Instead it reads the
//! kernel's view of serialhub's side of each connection in `/proc/net/tcp`:
//! on an idle established socket, timer 2 is armed only with keepalive on,
//! and its expiry is at most the configured idle time away (the kernel's
//! default, without serialhub setting it, would be two hours).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::common::{Server, eventually, read_until};

/// `/proc/net/tcp` times are in USER_HZ, which Linux fixes at 100.
const TICKS_PER_SEC: u64 = 100;
/// Socket state ESTABLISHED.
const ESTABLISHED: &str = "01";
/// `timer_active` for the keepalive timer.
const KEEPALIVE_TIMER: &str = "02";

/// The timer (`timer_active`, ticks until it fires) on the IPv4 socket with
/// local port `local` and remote port `remote`, if it is established.
fn timer(local: u16, remote: u16) -> Option<(String, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("read /proc/net/tcp");
    let port = |field: &str| {
        field
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6
            || port(f[1]) != Some(local)
            || port(f[2]) != Some(remote)
            || f[3] != ESTABLISHED
        {
            return None;
        }
        let (active, when) = f[5].split_once(':')?;
        Some((active.to_owned(), u64::from_str_radix(when, 16).ok()?))
    })
}

/// Connects to `addr` and waits for the echo of a line, so the server has
/// accepted the connection (and set its options) before this returns.
async fn connect_and_echo(addr: SocketAddr, tag: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let line = format!("{tag}\n");
    s.write_all(line.as_bytes()).await.unwrap();
    read_until(&mut s, line.as_bytes(), Duration::from_secs(10)).await;
    s
}

/// Waits until serialhub's side of `client`'s connection has its keepalive
/// timer armed, and returns the seconds until it fires.
async fn keepalive_armed(server: SocketAddr, client: &TcpStream) -> Option<u64> {
    let remote = client.local_addr().unwrap().port();
    let mut when = None;
    eventually(Duration::from_secs(10), || {
        when = timer(server.port(), remote)
            .filter(|(active, _)| active == KEEPALIVE_TIMER)
            .map(|(_, ticks)| ticks);
        when.is_some()
    })
    .await;
    when.map(|ticks| ticks.div_ceil(TICKS_PER_SEC))
}

#[tokio::test]
async fn issue10_tcp_clients_get_keepalive_unless_turned_off() {
    let server = Server::start(&[
        "serve",
        "-d",
        "sim:echo",
        "-b",
        "115200",
        "-l",
        "tcp:127.0.0.1:0,keepalive=5s",
        "-l",
        "tcp:127.0.0.1:0",
        "-l",
        "tcp:127.0.0.1:0,keepalive=off",
    ]);
    let [short, default, off] = [server.addrs[0], server.addrs[1], server.addrs[2]];
    let short_client = connect_and_echo(short, "short").await;
    let default_client = connect_and_echo(default, "default").await;
    let off_client = connect_and_echo(off, "off").await;

    let secs = keepalive_armed(short, &short_client).await;
    assert!(
        secs.is_some_and(|s| s <= 5),
        "keepalive=5s: timer {secs:?} s"
    );
    let secs = keepalive_armed(default, &default_client).await;
    assert!(
        secs.is_some_and(|s| s <= 30),
        "default keepalive (30s): timer {secs:?} s"
    );

    // The connection was accepted and served before the others were even
    // made, so its options are long set: no keepalive timer, nor any other
    // on an idle connection.
    let remote = off_client.local_addr().unwrap().port();
    let t = timer(off.port(), remote);
    assert!(
        t.as_ref()
            .is_some_and(|(active, _)| active != KEEPALIVE_TIMER),
        "keepalive=off: {t:?}"
    );
}
