//! Modbus RTU and Modbus TCP framing.
//!
//! [`rtu`] finds where an RTU frame ends (from its function code, or by
//! silence when the code is unknown) and checks its CRC; [`tcp`] parses MBAP
//! headers and converts requests and replies between the two encodings, so a
//! Modbus TCP client can be answered by an RTU device.

pub mod rtu;
pub mod tcp;

/// Exception code: the function code is not supported.
pub(crate) const ILLEGAL_FUNCTION: u8 = 0x01;
/// Exception code: the address (or address plus quantity) is out of range.
pub(crate) const ILLEGAL_DATA_ADDRESS: u8 = 0x02;
/// Exception code: a value in the request (a quantity, a byte count) is not allowed.
pub(crate) const ILLEGAL_DATA_VALUE: u8 = 0x03;
/// Exception code: the gateway has no path to the target device.
pub const GATEWAY_PATH_UNAVAILABLE: u8 = 0x0A;
/// Exception code: the target device behind the gateway did not respond.
pub const GATEWAY_TARGET_FAILED: u8 = 0x0B;

/// Bit set in the function code of an exception reply.
pub(crate) const EXCEPTION_BIT: u8 = 0x80;
