//! Integration tests: the real binary, real ptys, real TCP on port 0.
//!
//! # Naming
//! A test is named after the behaviour it checks, as a sentence:
//! `merged_writers_keep_their_own_order`. A test written for a filed issue
//! (a bug it reported, or something it asked for) starts with `issueN_`,
//! no underscore between `issue` and the number: `issue18_…`, never
//! `issue_18_…`. `cargo test issue18_` then runs that tests, here
//! and in the unit tests of `src/`, which follow the same scheme.
//!
//! # Waiting
//! A test never sleeps and then asserts that something did not happen: it
//! waits for an event that must come first (a `status --json` counter, a
//! later byte, a log line) and then checks. A sleep that paces a writer or
//! plays a slow peer on purpose says so.

mod common;

mod control;

mod acked;
mod backpressure;
mod bulk;
mod config;
mod counters;
mod discovery;
mod docs;
mod fanout;
mod fleet_registry;
mod fleet_stream;
mod hostile;
mod hostile_peers;
mod hotplug;
mod keepalive;
mod lifecycle;
mod limits;
mod metrics;
mod modbus;
mod modbus_ro;
mod modbus_sim;
mod network;
mod newcomer;
mod options;
mod packaging;
mod pty;
mod pty_settings;
mod reload;
mod remote_control;
mod remote_unpaced;
mod rfc2217;
mod sharing;
mod slow_reader;
mod startup_errors;
mod tls;
mod tls_admission;
mod tls_reload;
mod tls_tunnel;
mod traffic;
mod traffic_reset;
mod transactions;
mod web_assets;
mod web_attack;
mod web_browser;
mod web_http;
mod web_terminal;
