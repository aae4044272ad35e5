//! Modbus RTU framing (placeholder until the full codec lands).
pub mod rtu;
