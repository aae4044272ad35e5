//! Identifiers that several modules share. A leaf module, so that the
//! observers of the data path (the traffic log) need not import the hub.

/// A client's id, unique in the process over all its ports.
pub(crate) type ClientId = u64;
