//! The serialhub binary: parse the flags, set up log output, run the
//! command ([`serialhub::app`]), and turn its result into an exit status.

use std::process::ExitCode;

use clap::Parser;

use serialhub::app::{self, Error};
use serialhub::cli::Cli;

fn main() -> ExitCode {
    // Bad flags: clap prints why and exits with status 2 itself.
    let cli = Cli::parse();
    app::init_tracing(cli.verbose, cli.quiet);
    let result = app::run(cli);
    if let Err(e) = &result {
        eprintln!("serialhub: error: {e}");
    }
    exit_code(&result)
}

/// The one place that decides the exit status: 0 when the command did what
/// it was asked; 2 for a usage error (settings out of range, a bad
/// configuration file), like the ones clap reports; 1 for anything else
/// that stopped it.
fn exit_code(result: &Result<(), Error>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_usage() => ExitCode::from(2),
        Err(_) => ExitCode::FAILURE,
    }
}

/// The only C math function the program calls is `pow`, from tokio's
/// multi-thread scheduler (its poll-time average). Defining it here, from the
/// pure-Rust `libm` crate, lets the linker leave `libm.so.6` out: loading that
/// library costs about 550 KiB of resident memory (its start-up relocations
/// touch most of its pages), 8 KiB per port of a daemon serving 64. If another
/// libm function is ever needed, libm.so is linked again and this one still
/// serves `pow`, with the same results to within an ulp.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}
