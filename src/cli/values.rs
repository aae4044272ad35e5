//! The values that flags choose among (`--parity even`, `--slow-reader
//! drop`), as clap lists them in `--help`, the man pages and completions.
//! Each mirrors a domain type, which knows nothing of clap, and converts
//! into it; a variant's doc comment is its help text.

use crate::{config, device, hub, line, traffic};

/// Maps each variant of a CLI value enum to the domain type's, by name.
macro_rules! into_domain {
    ($cli:ident => $domain:path { $($variant:ident),+ $(,)? }) => {
        impl From<$cli> for $domain {
            fn from(v: $cli) -> Self {
                match v {
                    $($cli::$variant => <$domain>::$variant,)+
                }
            }
        }
    };
}

/// `--parity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Parity {
    None,
    Odd,
    Even,
}
into_domain!(Parity => line::Parity { None, Odd, Even });

/// `--flow-control`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum FlowControl {
    /// No flow control: the line always runs at full rate.
    None,
    /// Hardware flow control with the RTS and CTS lines.
    Rtscts,
    /// Software flow control with in-band XON/XOFF characters.
    Xonxoff,
}
into_domain!(FlowControl => line::FlowControl { None, Rtscts, Xonxoff });

/// `--slow-reader`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SlowReaderPolicy {
    /// Disconnect the client and log why.
    Disconnect,
    /// Drop data for that client only, counting every byte.
    Drop,
    /// Wait for the client: lossless for everyone, paced by the slowest
    /// reader. Only sensible with hardware flow control.
    Block,
}
into_domain!(SlowReaderPolicy => hub::SlowReaderPolicy { Disconnect, Drop, Block });

/// `--unsolicited`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Unsolicited {
    /// Every client gets it.
    All,
    /// Nobody gets it (clients that see all still do); it is counted.
    Drop,
    /// The client whose transaction ran last gets it (and those that see all).
    Last,
}
into_domain!(Unsolicited => hub::Unsolicited { All, Drop, Last });

/// `--log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Hex and printable ASCII side by side; reads well in `less`.
    Text,
    /// One JSON object per line.
    Json,
}
into_domain!(Format => traffic::Format { Text, Json });

/// `log --raw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Direction {
    /// From the device to the clients.
    Rx,
    /// From a client to the device.
    Tx,
}
into_domain!(Direction => traffic::Direction { Rx, Tx });

/// `sim --mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SimMode {
    Echo,
    Source,
    Sink,
    Modbus,
    Loopback,
}
into_domain!(SimMode => device::SimMode { Echo, Source, Sink, Modbus, Loopback });

/// `--writers`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Writers {
    Merge,
    Transaction,
}
into_domain!(Writers => config::Writers { Merge, Transaction });

#[cfg(test)]
mod tests {
    use std::fmt::Debug;

    use clap::ValueEnum;
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error, StrDeserializer};

    use super::*;

    /// Every value `C`'s flag offers, by the name `--help` lists.
    fn offered<C: ValueEnum + Copy>() -> Vec<(String, C)> {
        let all: Vec<_> = C::value_variants()
            .iter()
            .map(|v| (v.to_possible_value().unwrap().get_name().to_owned(), *v))
            .collect();
        assert!(!all.is_empty());
        all
    }

    /// A flag's value means what the same word means in a configuration file.
    fn same_as_in_a_file<C, D>()
    where
        C: ValueEnum + Copy + Into<D>,
        D: serde::de::DeserializeOwned + PartialEq + Debug,
    {
        for (name, v) in offered::<C>() {
            let word: StrDeserializer<Error> = name.as_str().into_deserializer();
            assert_eq!(D::deserialize(word).unwrap(), v.into(), "{name}");
        }
    }

    #[test]
    fn flag_values_are_the_file_words() {
        same_as_in_a_file::<Parity, line::Parity>();
        same_as_in_a_file::<FlowControl, line::FlowControl>();
        same_as_in_a_file::<SlowReaderPolicy, hub::SlowReaderPolicy>();
        same_as_in_a_file::<Unsolicited, hub::Unsolicited>();
        same_as_in_a_file::<Format, traffic::Format>();
        same_as_in_a_file::<Writers, config::Writers>();
    }

    /// `sim --mode MODE` and `serve --device sim:MODE` name the same modes.
    #[test]
    fn sim_modes_are_the_device_words() {
        for (name, v) in offered::<SimMode>() {
            let mode: device::SimMode = name.parse().unwrap();
            assert_eq!(mode, v.into(), "{name}");
        }
    }
}
