//! serialhub's line settings as COM-PORT-OPTION values, for the server that
//! answers with them and the client that asks for them.

use super::rfc2217::{self, Command, Control, DataSize, StopSize};
use crate::line::{FlowControl, LineSettings, Parity};

pub(crate) fn parity(p: Parity) -> rfc2217::Parity {
    match p {
        Parity::None => rfc2217::Parity::None,
        Parity::Odd => rfc2217::Parity::Odd,
        Parity::Even => rfc2217::Parity::Even,
    }
}

pub(crate) fn stop_size(stop_bits: u8) -> StopSize {
    if stop_bits == 2 {
        StopSize::Two
    } else {
        StopSize::One
    }
}

/// SET-CONTROL's value for the (outbound) flow control.
pub(crate) fn flow(f: FlowControl) -> Control {
    match f {
        FlowControl::None => Control::FlowNone,
        FlowControl::Xonxoff => Control::FlowXonXoff,
        FlowControl::Rtscts => Control::FlowHardware,
    }
}

/// SET-BAUDRATE, SET-DATASIZE, SET-PARITY and SET-STOPSIZE stating `line`.
pub(crate) fn commands(line: &LineSettings) -> [Command; 4] {
    [
        Command::SetBaudrate(line.baud),
        Command::SetDatasize(DataSize::from(line.data_bits)),
        Command::SetParity(parity(line.parity)),
        Command::SetStopsize(stop_size(line.stop_bits)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_states_itself_in_four_commands() {
        let mut line = LineSettings::with_baud(19200);
        line.parity = Parity::Even;
        line.data_bits = 7;
        line.stop_bits = 2;
        assert_eq!(
            commands(&line),
            [
                Command::SetBaudrate(19200),
                Command::SetDatasize(DataSize::Seven),
                Command::SetParity(rfc2217::Parity::Even),
                Command::SetStopsize(StopSize::Two),
            ]
        );
        assert_eq!(flow(FlowControl::Rtscts), Control::FlowHardware);
    }
}
