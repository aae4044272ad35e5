//! The fleet: every port of every host, listed and reached by name through
//! a NATS broker (issue 22). Hosts dial out to the broker; none needs an
//! inbound port. See docs/fleet.md for the subjects, the registry bucket and
//! the session protocol.
//!
//! The session protocol (a reliable, flow-controlled byte stream over core
//! NATS): [`session`] is the sans-I/O state machine, [`wire`] the subjects
//! and JSON requests, [`drive`] the task that runs one session end, [`shared`] what it
//! shares with the halves,
//! [`stream`] the client end ([`stream::open`]) and the two halves endpoints
//! read and write, [`listen`] the host end.

// Until the daemon's wiring (`fleet://` devices, the host's listener,
// `fleet connect`) uses the session protocol, parts of it are unused.
#[allow(dead_code)]
pub(crate) mod drive;
#[allow(dead_code)]
pub(crate) mod listen;
#[allow(dead_code)]
pub(crate) mod session;
#[allow(dead_code)]
pub(crate) mod shared;
#[allow(dead_code)]
pub(crate) mod stream;
#[allow(dead_code)]
pub(crate) mod wire;

#[cfg(test)]
mod tests;
