//! What the `serialhub` binary runs. The binary parses the flags, sets up
//! log output ([`init_tracing`]), calls [`run`] and maps the [`Error`] it
//! returns to an exit status; everything between is here.
//!
//! - `serve`: from flags or a configuration file to a running daemon;
//! - `request`: `status`, `kick`, `lock`, `unlock` and `reload`, sent to
//!   running daemons;
//! - `check`: `check-config`;
//! - `process`: log output, the file descriptor limit, the shutdown signals;
//! - `error`: the one error type, and which errors are usage errors.
//!
//! The commands that only print (`log`, `check-config`, `print-config`, the
//! control commands, `completions`, `man`) run without a runtime or signal
//! handlers, so Ctrl-C simply ends them (`log --follow`). `serve` and `sim`
//! run in a runtime, with a shutdown token that the first SIGINT or SIGTERM
//! cancels.

mod check;
mod error;
mod fleet;
mod passwd;
mod process;
mod request;
mod serve;

use std::future::Future;

use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, ManArgs, SimArgs};
use crate::control::Request;
use crate::{config, docgen};

pub use error::Error;
pub use process::init_tracing;

/// Runs the command `cli` names, to its end.
pub fn run(cli: Cli) -> Result<(), Error> {
    let control = cli.control_socket().cloned();
    // `--metrics` is the old name of `--http`: one listener.
    let http = cli.http_addr();
    let http = match (http.http.as_ref(), http.metrics.as_ref()) {
        (Some(h), Some(m)) if h != m => {
            return Err(Error::Settings(config::ConfigError::HttpTwice {
                http: h.clone(),
                metrics: m.clone(),
            }));
        }
        (Some(h), _) => Some((h.clone(), config::http::HttpName::Http)),
        (None, Some(m)) => Some((m.clone(), config::http::HttpName::Metrics)),
        (None, None) => None,
    };
    let ask = |request, json| request::run(&request, json, control.as_deref());
    match cli.command {
        Command::Serve(args) => {
            in_runtime(|shutdown| serve::run(args, control.clone(), http, shutdown))
        }
        Command::Sim(args) => in_runtime(|shutdown| sim(args, shutdown)),
        Command::Passwd => passwd::run(),
        Command::Log(args) => crate::logcmd::run(&args).map_err(Error::Log),
        Command::Status(a) => ask(Request::Status { port: a.port }, a.json),
        Command::Kick(a) => ask(
            Request::Kick {
                port: a.port,
                client: a.client,
            },
            false,
        ),
        Command::Lock(a) => ask(Request::Lock { port: a.port }, false),
        Command::Unlock(a) => ask(Request::Unlock { port: a.port }, false),
        Command::Reload(_) => ask(Request::Reload, false),
        Command::Completions(args) => {
            docgen::print(&docgen::completions(args.shell)).map_err(Error::Docgen)
        }
        Command::Man(args) => man(&args).map_err(Error::Docgen),
        Command::CheckConfig(args) => check::run(&args.file),
        Command::Fleet(args) => fleet::run(args),
        Command::PrintConfig => {
            print!("{}", config::file::EXAMPLE);
            Ok(())
        }
    }
}

/// Runs a long-lived command: more file descriptors, a runtime, and a
/// shutdown token that the first SIGINT or SIGTERM cancels.
fn in_runtime<F>(command: impl FnOnce(CancellationToken) -> F) -> Result<(), Error>
where
    F: Future<Output = Result<(), Error>>,
{
    process::raise_fd_limit();
    let runtime = tokio::runtime::Runtime::new().map_err(Error::Runtime)?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(process::on_signal(shutdown.clone()));
        command(shutdown).await
    })
}

/// `sim`: a simulated device on a pty until `shutdown`.
async fn sim(args: SimArgs, shutdown: CancellationToken) -> Result<(), Error> {
    let line = config::sim_line(args.baud).map_err(Error::Settings)?;
    let spec = config::sim_spec(args.mode.into(), args.reply_delay).map_err(Error::Settings)?;
    crate::sim::run(spec, line, &args.link, shutdown)
        .await
        .map_err(Error::Sim)
}

/// `man`: one page on stdout, or every page written into `--dir`.
fn man(args: &ManArgs) -> Result<(), docgen::DocgenError> {
    match &args.dir {
        Some(dir) => {
            for page in docgen::write_man_pages(dir)? {
                println!("{}", page.display());
            }
            Ok(())
        }
        None => docgen::print(&docgen::man_page(args.command.as_deref())?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration file that cannot be read is the user's to fix (exit
    /// status 2); a daemon that does not answer is not (1).
    #[test]
    fn usage_errors_are_told_from_failures() {
        let dir = tempfile::tempdir().unwrap();
        let e = check::run(&dir.path().join("absent.toml")).unwrap_err();
        assert!(matches!(e, Error::File(_)) && e.is_usage(), "{e:?}");
        assert!(e.to_string().contains("absent.toml: cannot read it"), "{e}");

        let socket = dir.path().join("nobody.sock");
        let e = request::run(&Request::Status { port: None }, false, Some(&socket)).unwrap_err();
        assert!(matches!(e, Error::Control(_)) && !e.is_usage(), "{e:?}");
        let at = format!("no serialhub at {}: ", socket.display());
        assert!(e.to_string().starts_with(&at), "{e}");
    }
}
