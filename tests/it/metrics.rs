//! Issue 10: the metrics endpoint, scraped over HTTP and read by a real
//! OpenMetrics parser (the Python `prometheus_client` package's).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Server, expect, run_to_exit};

/// Parses the text on stdin with `prometheus_client`'s OpenMetrics parser
/// (the format `/metrics` is served as) and prints its families as JSON:
/// `{name: {"type": ..., "samples": [[name, labels, value], ...]}}`. The
/// parser raises on anything that is not valid OpenMetrics.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for f in text_string_to_metric_families(sys.stdin.read()):
    out[f.name] = {"type": f.type,
                   "samples": [[s.name, s.labels, s.value] for s in f.samples]}
print(json.dumps(out))
"#;

pub(crate) fn parse(text: &str) -> Value {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "prometheus_client is missing: run the tests with scripts/test, which installs it"
    );
    let mut child = Command::new("python3")
        .args(["-c", PARSE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the parser rejected the text: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `GET path` over a fresh connection: (status line, headers, body).
pub(crate) fn get(addr: &str, path: &str) -> (String, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_lowercase(), body.to_owned())
}

/// The value of the one sample of `family` whose labels include `labels`.
pub(crate) fn sample(families: &Value, family: &str, labels: &[(&str, &str)]) -> f64 {
    let samples = families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family}: {families}"));
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| labels.iter().all(|(k, v)| s[1][*k] == *v))
        .map(|s| s[2].as_f64().unwrap())
        .collect();
    assert_eq!(found.len(), 1, "{family} {labels:?}: {samples:?}");
    found[0]
}

#[test]
fn issue10_metrics_are_scraped_and_parsed_by_a_real_parser() {
    let server = Server::serve_with_metrics("sim:echo", 115_200, &[]);
    let metrics = server.metrics_addr();

    // Two clients; each write is echoed by the device to both.
    let mut a = TcpStream::connect(server.addr()).unwrap();
    let mut b = TcpStream::connect(server.addr()).unwrap();
    for s in [&mut a, &mut b] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    let (from_a, from_b) = (&b"from-a\n"[..], &b"hello-from-b\n"[..]);
    a.write_all(from_a).unwrap();
    expect(&mut a, from_a);
    expect(&mut b, from_a);
    b.write_all(from_b).unwrap();
    expect(&mut a, from_b);
    expect(&mut b, from_b);
    let total = (from_a.len() + from_b.len()) as f64;

    // Malformed requests and oversized heads are refused, and the server
    // goes on serving. (The answer to an oversized head may be lost to the
    // reset that closing on unread bytes causes, so only its form is
    // checked when it comes.)
    for (junk, must_answer) in [
        (b"\x00\xff\r\n\r\n".to_vec(), true),
        (
            [
                &b"GET /metrics HTTP/1.1\r\nX: "[..],
                &[b'a'; 100_000],
                b"\r\n\r\n",
            ]
            .concat(),
            false,
        ),
    ] {
        let mut s = TcpStream::connect(&metrics).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let _ = s.write_all(&junk);
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 4") || (!must_answer && answer.is_empty()),
            "{answer}"
        );
    }
    // (`/` is the web console's dashboard since issue 23.)
    let (status, _, _) = get(&metrics, "/no-such-page");
    assert!(status.contains(" 404 "), "{status}");

    let (status, headers, body) = get(&metrics, "/metrics");
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        headers.contains("content-type: application/openmetrics-text"),
        "{headers}"
    );
    let f = parse(&body);

    let types = [
        ("serialhub_device_read_bytes", "counter"),
        ("serialhub_device_written_bytes", "counter"),
        ("serialhub_device_up", "gauge"),
        ("serialhub_device_state", "gauge"),
        ("serialhub_device_reopens", "counter"),
        ("serialhub_clients", "gauge"),
        ("serialhub_unlisted_clients", "gauge"),
        ("serialhub_dropped_bytes", "counter"),
        ("serialhub_kicked_clients", "counter"),
        ("serialhub_refused_clients", "counter"),
        ("serialhub_refused", "counter"),
        ("serialhub_lock_waits", "counter"),
        ("serialhub_traffic_log_dropped_records", "counter"),
        ("serialhub_transactions", "counter"),
        ("serialhub_reply_timeouts", "counter"),
        ("serialhub_requests_dropped", "counter"),
        ("serialhub_reset_lost_bytes", "counter"),
        ("serialhub_unsolicited_dropped_bytes", "counter"),
        ("serialhub_bad_replies", "counter"),
        ("serialhub_replies_discarded_bytes", "counter"),
        ("serialhub_client_in_bytes", "gauge"),
        ("serialhub_client_out_bytes", "gauge"),
        ("serialhub_client_queued_bytes", "gauge"),
        ("serialhub_client_dropped_bytes", "gauge"),
        ("serialhub_client_discarded_bytes", "gauge"),
        ("serialhub_client_reset_lost_bytes", "gauge"),
        ("serialhub_client_bad_replies", "gauge"),
        ("serialhub_client_transactions", "gauge"),
        ("serialhub_client_reply_timeouts", "gauge"),
    ];
    for (name, ty) in types {
        assert_eq!(f[name]["type"], ty, "{name}: {f}");
    }
    let port = [("port", "sim-echo")];
    assert_eq!(sample(&f, "serialhub_device_read_bytes", &port), total);
    assert_eq!(sample(&f, "serialhub_device_written_bytes", &port), total);
    assert_eq!(sample(&f, "serialhub_device_up", &port), 1.0);
    let open = [("port", "sim-echo"), ("state", "open")];
    assert_eq!(sample(&f, "serialhub_device_state", &open), 1.0);
    assert_eq!(sample(&f, "serialhub_device_reopens", &port), 0.0);
    assert_eq!(sample(&f, "serialhub_clients", &port), 2.0);
    assert_eq!(sample(&f, "serialhub_unlisted_clients", &port), 0.0);
    assert_eq!(sample(&f, "serialhub_dropped_bytes", &port), 0.0);
    assert_eq!(sample(&f, "serialhub_kicked_clients", &port), 0.0);

    // One series per client, named by its id and peer.
    for (s, sent) in [(&a, from_a), (&b, from_b)] {
        let peer = format!("tcp:127.0.0.1:{}", s.local_addr().unwrap().port());
        let labels = [("port", "sim-echo"), ("peer", peer.as_str())];
        assert_eq!(
            sample(&f, "serialhub_client_in_bytes", &labels),
            sent.len() as f64
        );
        assert_eq!(sample(&f, "serialhub_client_out_bytes", &labels), total);
        // Everything was read before the scrape.
        assert_eq!(sample(&f, "serialhub_client_queued_bytes", &labels), 0.0);
        assert_eq!(sample(&f, "serialhub_client_dropped_bytes", &labels), 0.0);
    }
    let ids: Vec<&str> = f["serialhub_client_in_bytes"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s[1]["client"].as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.iter().all(|id| id.parse::<u64>().is_ok()), "{ids:?}");
}

#[test]
fn issue10_a_metrics_address_in_use_fails_start_up_naming_it() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, err, _) = run_to_exit(
        &[
            "--metrics",
            &addr,
            "serve",
            "-d",
            "sim:echo",
            "-l",
            "tcp:127.0.0.1:0",
        ],
        Duration::from_secs(20),
    );
    assert!(!status.success());
    assert!(
        err.contains(&format!("metrics: cannot listen on {addr}")),
        "{err}"
    );
}
