//! serialhub shares one serial port among many programs, with end-to-end
//! backpressure: the network may push data only as fast as the wire takes it,
//! and one stalled client never hurts the others.
//!
//! # Layout
//!
//! Data flows one way through the modules: device -> hub -> endpoints for
//! reads, endpoints -> hub -> device for writes.
//!
//! - [`line`](mod@line): baud rate and framing; the line rate everything is paced at.
//! - [`device`]: the tty (termios via `serial2`), the built-in simulator, and
//!   the loops that read the device and write it at line rate.
//! - [`hub`]: fan-out to per-client bounded queues, slow-reader policies, and
//!   the write budget that carries backpressure back to the network.
//! - [`endpoint`]: TCP, unix-socket and pty (virtual serial port) endpoints,
//!   their options (read-only, line framing, the in-band write lock), and the
//!   per-client loops.
//! - [`proto`]: sans-I/O protocol codecs: Modbus RTU framing and CRC, Modbus
//!   TCP headers and the conversions between the two; Telnet and the RFC 2217
//!   COM-PORT-OPTION.
//! - [`traffic`]: the traffic log: records, its two formats, the writer
//!   thread, rotation, and reading logs back; [`logcmd`] prints them.
//! - [`fds`]: the file descriptors held back so clients never starve the
//!   device of one.
//! - [`link`](mod@link): the symlinks that pty endpoints are reached by, which
//!   never replace a file that is not serialhub's.
//! - [`pace`]: the token bucket that models a UART.
//! - [`measure`]: socket and process probes for tests and benches.
//! - [`pattern`]: the counter pattern used by the simulator, tests and benches.
//! - [`cli`] and [`config`]: flags or a configuration file, then validated
//!   settings; [`units`]: sizes and durations as users write them; [`ids`]:
//!   client ids; [`episode`]: recurring conditions (refused clients, failed
//!   accepts) logged once per episode. All are leaves that any module may
//!   import.
//! - [`access`]: who may do what: the roles (`rw`, `ro`) that `--allow`
//!   gives client identities, and the pure matcher; a leaf.
//! - [`tls`]: the TLS layer of network endpoints and the HTTPS metrics
//!   listener: rustls settings read from the PEM files (and re-read on
//!   reload), the handshake, client identities, and the encrypted stream
//!   behind the same source and sink traits as a plain socket.
//! - [`port`]: one port's whole life: device, hub, endpoints, log, tasks.
//! - [`daemon`]: many ports in one process; [`control`]: its control socket,
//!   server and client, and the Prometheus metrics exposition.
//! - [`web`]: the HTTP listener: the metrics, and the web console (pages,
//!   API, WebSockets, logins).
//! - [`sim`] and [`logcmd`]: what the `sim` and `log` subcommands run.
//! - [`docgen`]: shell completions and man pages from the clap definition.
//! - [`app`]: what the binary runs: each subcommand from parsed flags to its
//!   end, and the one error type whose kind decides the exit status.

// The module docs are for people working on serialhub, and link to items
// private to the crate; `cargo doc --document-private-items` shows them.
#![allow(rustdoc::private_intra_doc_links)]
// What the binary, tests and benches do not use is pub(crate), so that the
// compiler flags dead code; a `pub` that nothing outside can reach says so.
#![warn(unreachable_pub)]

pub(crate) mod access;
pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub(crate) mod daemon;
pub mod device;
pub(crate) mod docgen;
pub mod endpoint;
pub mod episode;
pub(crate) mod fds;
pub(crate) mod fleet;
pub mod hub;
pub(crate) mod ids;
pub mod line;
pub(crate) mod link;
pub(crate) mod logcmd;
pub mod measure;
pub(crate) mod modem;
pub(crate) mod pace;
pub mod pattern;
pub(crate) mod port;
pub mod proto;
pub(crate) mod sim;
pub(crate) mod timer;
pub(crate) mod tls;
pub(crate) mod traffic;
pub(crate) mod units;
pub(crate) mod watch;
pub(crate) mod web;
