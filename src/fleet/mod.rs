//! The fleet: every port of every host, listed and reached by name through
//! a NATS broker (issue 22). Hosts dial out to the broker; none needs an
//! inbound port. See docs/fleet.md for the subjects, the registry bucket and
//! the session protocol.

pub(crate) mod drive;
pub(crate) mod listen;
pub(crate) mod session;
pub(crate) mod stream;
pub(crate) mod wire;
