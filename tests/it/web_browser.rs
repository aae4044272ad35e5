//! Issue 23: the web console in a real browser. Each test starts the real
//! serialhub with `--http 127.0.0.1:0` (the address read back from
//! `status --json`) and runs a selenium script from `tests/web/` that drives
//! headless Chromium through Debian's chromedriver (scripts/test installs
//! both and selenium). A script stops at named steps, where the test does
//! what only it can (send device bytes, flood the port, read `status`), then
//! lets it go on; its last line is what it measured.
//!
//! One browser test runs at a time (Chromium takes most of a core), and a
//! flood runs `SERIALHUB_WEB_FLOOD_SECS` seconds (default 60, as the issue
//! says). `SERIALHUB_WEB_SCREENSHOTS=docs` saves the README's screenshots
//! (tests/web/screenshots.py) into docs/ (else into a temp dir, where they
//! are only checked).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::browser::{
    FLOOD_LINE, FLOOD_SHARE, Flood, Script, assert_png, flood_secs, one_browser, require_browser,
    screenshot_dir, serve_web, wait_for, web, web_clients,
};
use crate::common::{PtyDevice, Server, finish, status};

#[test]
fn issue23_browser_opens_the_terminal_from_the_dashboard_and_sees_its_typing_echoed() {
    let _one = one_browser();
    let server = serve_web("sim:echo", &[]);
    let (http, name) = web(&server);
    let mut script = Script::start("terminal_echo", &[&http, &name]);

    script.step("dashboard");
    // A TCP client puts a line through the port: the dashboard shows it live.
    let mut tcp = TcpStream::connect(server.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    tcp.write_all(b"a line from a tcp client\r\n").unwrap();
    read_until(&mut tcp, b"tcp client\r\n");
    script.go();

    script.step("typed");
    // The browser's keys went through the device: the TCP client saw the echo.
    read_until(&mut tcp, b"hello\r");
    let s = status(&server.control);
    let web = web_clients(&s[0]);
    assert_eq!(web.len(), 1, "one browser client: {s:#}");
    assert!(web[0]["bytes_in"].as_u64() >= Some(6), "{s:#}");
    script.go();

    let result = script.result();
    assert!(
        result["rows"].as_str().unwrap_or("").contains("hello"),
        "{result}"
    );
}

/// The README's screenshots, as `tests/web/screenshots.py` takes them from
/// a real serialhub (this build): into a temp dir, or into docs/ with
/// `SERIALHUB_WEB_SCREENSHOTS=docs`.
#[test]
fn issue23_the_readme_screenshots_are_taken_from_a_real_serialhub() {
    let _one = one_browser();
    require_browser();
    let (shots, _tmp) = screenshot_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web/screenshots.py");
    let child = Command::new("python3")
        .arg(&script)
        .arg(crate::common::BIN)
        .arg(&shots)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let (ok, out) = finish(child, Duration::from_secs(120));
    assert!(ok, "screenshots.py: {out}");
    assert_png(&shots.join("web-dashboard.png"));
    assert_png(&shots.join("web-terminal.png"));
}

/// Reads a blocking stream until `needle` came; panics with what came instead.
fn read_until(s: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        match s.read(&mut buf) {
            Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!(
                "no {:?} before {other:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            ),
        }
    }
    got
}

/// `printf 'PASSWORD\n' | serialhub passwd`: an argon2id PHC string.
fn password_hash(password: &str) -> String {
    let mut child = crate::common::command()
        .arg("passwd")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serialhub passwd");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "serialhub passwd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    hash
}

#[test]
fn issue23_two_tabs_see_the_device_and_a_read_only_tab_cannot_type() {
    let _one = one_browser();
    let device = PtyDevice::new();
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("serialhub.toml");
    let toml = format!(
        "[control]\nsocket = \"{sock}\"\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n\
         [[http.user]]\nname = \"alice\"\npassword-hash = \"{rw}\"\nrole = \"rw\"\n\n\
         [[http.user]]\nname = \"bob\"\npassword-hash = \"{ro}\"\nrole = \"ro\"\n\n\
         [[port]]\nname = \"lab1\"\ndevice = \"{dev}\"\nbaud = 115200\nlisten = [\"tcp:127.0.0.1:0\"]\n",
        sock = dir.path().join("control.sock").display(),
        rw = password_hash("alice's secret"),
        ro = password_hash("bob's secret"),
        dev = device.path,
    );
    std::fs::write(&conf, toml).unwrap();
    let server = Server::start(&["serve", "--config", conf.to_str().unwrap()]);
    let (http, name) = web(&server);
    assert_eq!(name, "lab1");
    let mut script = Script::start(
        "two_tabs",
        &[&http, &name, "alice:alice's secret", "bob:bob's secret"],
    );

    script.step("both");
    let s = status(&server.control);
    assert_eq!(web_clients(&s[0]).len(), 2, "two browser clients: {s:#}");
    device.send(b"line-from-the-device 42\r\n");
    script.go();

    script.step("ro-typed");
    // The server counts the read-only tab's keys as discarded.
    server.wait_status("the read-only tab's typing discarded and counted", |p| {
        web_clients(p)
            .iter()
            .any(|c| c["discarded"].as_u64() >= Some(14))
    });
    script.go();

    script.step("rw-typed");
    assert!(
        wait_for(Duration::from_secs(20), || device
            .received()
            .windows(14)
            .any(|w| w == b"rw-typed-keys\r")),
        "the read-write tab's keys did not reach the device: {:?}",
        String::from_utf8_lossy(&device.received())
    );
    // The read-only tab typed first; what it typed never came.
    let got = device.received();
    assert!(
        !got.windows(6).any(|w| w == b"ro-typ"),
        "the read-only tab's keys reached the device: {:?}",
        String::from_utf8_lossy(&got)
    );
    script.go();
    let result = script.result();
    assert!(
        result["upgrades"]["foreign"]
            .as_str()
            .is_some_and(|s| s.contains(" 403 "))
    );
}

#[test]
fn issue23_a_flood_keeps_the_tabs_heap_bounded_and_typed_keys_echo() {
    let _one = one_browser();
    let server = serve_web("sim:echo", &[]);
    let (http, name) = web(&server);
    let secs = flood_secs().to_string();
    let mut script = Script::start("flood", &[&http, &name, &secs]);
    script.step("connected");
    let flood = Flood::start(&server, FLOOD_SHARE);
    script.go();
    script.step("flooded");
    let (sent, got) = flood.stop();
    let s = status(&server.control);
    script.go();
    let result = script.result();

    // The flood went through the device at about the line rate.
    let secs: f64 = secs.parse().unwrap();
    assert!(
        sent as f64 > secs * 11_520.0 * 0.5,
        "flooded only {sent} bytes"
    );
    assert!(got as f64 > sent as f64 * 0.8, "{got} of {sent} came back");
    // The tab kept up: no drop and no kick for it.
    assert_eq!(s[0]["kicked"], 0, "{s:#}");
    let web = web_clients(&s[0]);
    assert_eq!(web.len(), 1, "{s:#}");
    assert_eq!(web[0]["dropped"], 0, "{s:#}");
    assert_eq!(result["counters"]["dropped"], 0, "{result}");

    // Every typed key came back.
    let echoes = result["echoes_ms"].as_array().expect("echo times");
    assert!(echoes.len() >= 3, "{result}");
    // The tab's live JS heap (after a forced GC). xterm keeps 5000 lines
    // of scrollback (web/terminal.js): one flood line each, about 5 MB of
    // buffer at most, full after 5000 lines. Bounded: never more than that
    // and some room; and once the scrollback is full (when the flood is
    // long enough to see it), flat: the flood's bytes are not kept.
    let heaps: Vec<(f64, f64)> = result["heaps"]
        .as_array()
        .expect("heap samples")
        .iter()
        .map(|h| (h[0].as_f64().unwrap(), h[1].as_f64().unwrap()))
        .collect();
    let (first, end) = (heaps[0].1, heaps[heaps.len() - 1].1);
    const MIB: f64 = 1024.0 * 1024.0;
    assert!(
        end - first < 24.0 * MIB,
        "the JS heap grew by {:.1} MiB: {heaps:?}",
        (end - first) / MIB
    );
    let full = 5000.0 * FLOOD_LINE as f64 / (11_520.0 * FLOOD_SHARE) + 5.0;
    let flat: Vec<f64> = heaps.iter().filter(|h| h.0 > full).map(|h| h.1).collect();
    if flat.len() >= 3 {
        let (lo, hi) = flat
            .iter()
            .fold((f64::MAX, 0.0f64), |(lo, hi), &h| (lo.min(h), hi.max(h)));
        assert!(
            hi - lo < 2.0 * MIB,
            "the JS heap still grew by {:.1} MiB after the scrollback was full ({full:.0} s): {heaps:?}",
            (hi - lo) / MIB
        );
    }
}

#[test]
fn issue23_a_frozen_tab_meets_the_slow_reader_policy_and_the_others_never_notice() {
    let _one = one_browser();
    let server = serve_web("sim:echo", &[]);
    let (http, name) = web(&server);
    let mut script = Script::start("frozen", &[&http, &name]);
    script.step("open");
    let s = status(&server.control);
    assert_eq!(web_clients(&s[0]).len(), 2, "two browser clients: {s:#}");
    let flood = Flood::start(&server, FLOOD_SHARE);
    script.go();

    script.step("frozen");
    // The frozen tab stops acking: past the window and its client queue the
    // port's policy (disconnect, the default) cuts it.
    assert!(
        wait_for(Duration::from_secs(60), || {
            let p = &status(&server.control)[0];
            p["kicked"].as_u64() >= Some(1) && web_clients(p).len() == 1
        }),
        "the frozen tab was not kicked: {:#}",
        status(&server.control)
    );
    let s = status(&server.control);
    script.go();
    let result = script.result();
    let (sent, got) = flood.stop();

    // Only the frozen tab: the flooding TCP client and the other tab stayed.
    assert_eq!(s[0]["kicked"], 1, "{s:#}");
    assert_eq!(s[0]["clients"].as_array().map(Vec::len), Some(2), "{s:#}");
    assert!(got as f64 > sent as f64 * 0.8, "{got} of {sent} came back");
    assert!(result["live_received"].as_u64() > Some(0), "{result}");
    assert!(result["thawed"].is_string(), "{result}");
}

#[test]
fn issue23_closing_the_tab_or_killing_the_browser_frees_the_slot_within_10s() {
    let _one = one_browser();
    let server = serve_web("sim:echo", &[]);
    let (http, name) = web(&server);
    let mut script = Script::start("slot", &[&http, &name]);
    let count = |server: &Server| web_clients(&status(&server.control)[0]).len();
    for gone in ["tab-closed", "killed"] {
        script.step("opened");
        server.wait_status("the terminal's client in the status", |p| {
            web_clients(p).len() == 1
        });
        script.go();
        script.step(gone);
        let t0 = Instant::now();
        while count(&server) > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{gone}: the browser's slot still taken after 10 s: {:#}",
                status(&server.control)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        script.go();
    }
    script.result();
}
