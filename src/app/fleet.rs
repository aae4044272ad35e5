//! `serialhub fleet ...`: the fleet commands, each in a runtime of its own
//! (they talk to the broker), ended by Ctrl-C like any command that only
//! prints.

use crate::cli::fleet::{FleetArgs, FleetCommand};

use super::Error;

pub(crate) fn run(args: FleetArgs) -> Result<(), Error> {
    let runtime = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
    runtime.block_on(async {
        match args.command {
            FleetCommand::Ls(a) => {
                let broker = a.broker.broker().map_err(|e| Error::Fleet(e.into()))?;
                crate::fleet::ls::run(&broker, &a.labels, a.json)
                    .await
                    .map_err(Error::Fleet)
            }
            FleetCommand::Connect(a) => {
                let broker = a.broker.broker().map_err(|e| Error::Fleet(e.into()))?;
                crate::fleet::terminal::run(&broker, &a.port)
                    .await
                    .map_err(Error::Fleet)
            }
        }
    })
}
