//! Serial line settings: baud rate and character framing.
//!
//! These settings are what the tty is configured with, and they also define the
//! *line rate* (characters per second) that pacing and in-flight bounds are
//! computed from. A character on an asynchronous serial line costs one start
//! bit, the data bits, an optional parity bit and the stop bits, so 8N1 at
//! 9600 baud carries 960 bytes per second.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Lowest and highest baud rates accepted. Linux accepts arbitrary rates via
/// `BOTHER`; outside this range no real UART works and pacing maths degrade.
pub(crate) const MIN_BAUD: u32 = 50;
pub(crate) const MAX_BAUD: u32 = 20_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FlowControl {
    /// No flow control: the line always runs at full rate.
    None,
    /// Hardware flow control with the RTS and CTS lines.
    Rtscts,
    /// Software flow control with in-band XON/XOFF characters.
    Xonxoff,
}

/// Complete framing of one serial line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineSettings {
    pub baud: u32,
    /// 5 to 8.
    pub(crate) data_bits: u8,
    pub(crate) parity: Parity,
    /// 1 or 2.
    pub(crate) stop_bits: u8,
    pub(crate) flow_control: FlowControl,
}

/// A line setting that no serial port can use.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LineError {
    #[error("baud rate {0} is out of range ({MIN_BAUD} to {MAX_BAUD})")]
    Baud(u32),
    #[error("data bits must be 5, 6, 7 or 8, not {0}")]
    DataBits(u8),
    #[error("stop bits must be 1 or 2, not {0}")]
    StopBits(u8),
}

impl Default for LineSettings {
    fn default() -> Self {
        Self {
            baud: 9600,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            flow_control: FlowControl::None,
        }
    }
}

impl LineSettings {
    /// 8N1 without flow control at `baud`.
    pub fn with_baud(baud: u32) -> Self {
        Self {
            baud,
            ..Self::default()
        }
    }

    /// Checks that every field is one a UART can be set to.
    pub(crate) fn validate(&self) -> Result<(), LineError> {
        if !(MIN_BAUD..=MAX_BAUD).contains(&self.baud) {
            return Err(LineError::Baud(self.baud));
        }
        if !(5..=8).contains(&self.data_bits) {
            return Err(LineError::DataBits(self.data_bits));
        }
        if !(1..=2).contains(&self.stop_bits) {
            return Err(LineError::StopBits(self.stop_bits));
        }
        Ok(())
    }

    /// Bits on the wire per character, including start, parity and stop bits.
    pub(crate) fn bits_per_char(&self) -> u32 {
        let parity = u32::from(self.parity != Parity::None);
        1 + u32::from(self.data_bits) + parity + u32::from(self.stop_bits)
    }

    /// Characters per second the line carries at full utilisation.
    pub fn bytes_per_sec(&self) -> f64 {
        f64::from(self.baud) / f64::from(self.bits_per_char())
    }

    /// How many bytes the line sends in `d`, rounded down, at least 1.
    pub(crate) fn bytes_in(&self, d: Duration) -> usize {
        ((self.bytes_per_sec() * d.as_secs_f64()) as usize).max(1)
    }
}

impl std::fmt::Display for LineSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parity = match self.parity {
            Parity::None => 'N',
            Parity::Odd => 'O',
            Parity::Even => 'E',
        };
        write!(
            f,
            "{} {}{}{}",
            self.baud, self.data_bits, parity, self.stop_bits
        )?;
        match self.flow_control {
            FlowControl::None => Ok(()),
            FlowControl::Rtscts => f.write_str(" rtscts"),
            FlowControl::Xonxoff => f.write_str(" xonxoff"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_n_one_at_9600_is_960_bytes_per_second() {
        let l = LineSettings::with_baud(9600);
        assert_eq!(l.bits_per_char(), 10);
        assert!((l.bytes_per_sec() - 960.0).abs() < 1e-9);
        assert_eq!(l.bytes_in(Duration::from_millis(500)), 480);
    }

    #[test]
    fn parity_and_two_stop_bits_lengthen_a_char() {
        let l = LineSettings {
            parity: Parity::Even,
            stop_bits: 2,
            data_bits: 7,
            ..LineSettings::with_baud(1200)
        };
        assert_eq!(l.bits_per_char(), 11);
        assert_eq!(l.to_string(), "1200 7E2");
    }

    #[test]
    fn validate_rejects_impossible_settings() {
        assert_eq!(
            LineSettings::with_baud(0).validate(),
            Err(LineError::Baud(0))
        );
        let l = LineSettings {
            data_bits: 9,
            ..LineSettings::default()
        };
        assert_eq!(l.validate(), Err(LineError::DataBits(9)));
        let l = LineSettings {
            stop_bits: 3,
            ..LineSettings::default()
        };
        assert_eq!(l.validate(), Err(LineError::StopBits(3)));
        assert!(LineSettings::with_baud(115_200).validate().is_ok());
    }
}
