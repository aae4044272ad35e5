//! Sans-I/O protocol codecs.
pub mod modbus;
