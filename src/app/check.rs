//! `check-config FILE`: everything `serve --config FILE` checks before it
//! binds anything, and a summary of the ports on stdout.

use std::path::Path;

use crate::config;
use crate::traffic::rotate;

use super::Error;

pub(crate) fn run(file: &Path) -> Result<(), Error> {
    let cfg = config::load(file).map_err(Error::File)?;
    // What serve checks before it binds anything, beyond the file: each
    // traffic log directory.
    for port in &cfg.ports {
        if let Some(Err(error)) = port.traffic.as_ref().map(|t| rotate::check_dir(&t.dir)) {
            return Err(Error::LogDir {
                file: file.to_owned(),
                port: port.name.clone(),
                error,
            });
        }
    }
    print!("{}", cfg.summary());
    Ok(())
}
