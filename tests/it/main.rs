//! Integration tests: the real binary, real ptys, real TCP on port 0.

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
mod hostile;
mod hostile_peers;
mod hotplug;
mod keepalive;
mod lifecycle;
mod limits;
mod metrics;
mod modbus;
mod modbus_sim;
mod newcomer;
mod options;
mod packaging;
mod pty;
mod pty_settings;
mod reload;
mod remote_control;
mod rfc2217;
mod sharing;
mod slow_reader;
mod startup_errors;
mod traffic;
mod traffic_reset;
mod transactions;
