//! Sans-I/O protocol codecs: pure functions and small state machines that
//! turn bytes into frames and back, with every length capped and no panic on
//! any input. The endpoints and the hub drive them; they never do I/O.
//!
//! - [`modbus`]: Modbus RTU framing and CRC, Modbus TCP (MBAP) headers, and
//!   the conversions between the two.
//! - [`telnet`]: Telnet framing and option negotiation, and the RFC 2217
//!   COM-PORT-OPTION commands.

pub mod modbus;
pub mod telnet;
