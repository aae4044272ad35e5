//! The serialhub binary: parse flags, set up logging and signals, run.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

use serialhub::cli::{Cli, Command};
use serialhub::config::{self, ConfigError, FileError, PortConfig};
use serialhub::control::{ControlConfig, discover};
use serialhub::daemon::PortPlan;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    if let Command::Status(_)
    | Command::Kick(_)
    | Command::Lock(_)
    | Command::Unlock(_)
    | Command::Reload(_) = &cli.command
    {
        return control_command(&cli);
    }
    if let Command::Log(args) = &cli.command {
        // Synchronous, and Ctrl-C simply ends it (`--follow`): no runtime and
        // no signal handlers.
        return match serialhub::logcmd::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("serialhub: error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match &cli.command {
        Command::CheckConfig(args) => return check_config(&args.file),
        Command::PrintConfig => {
            print!("{}", config::file::EXAMPLE);
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    raise_fd_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("serialhub: error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The error convention (issue 20): every error's own text is
            // complete. A message that includes what caused it (an io error,
            // an inner error) does not also return it from `source()`; the
            // library's errors all include it, so none has a source, and
            // `#[error(transparent)]` wrappers pass the inner one on as it
            // is. `{:#}` then prints this binary's `.context()` followed by
            // the library error, each fact once; the same text is complete
            // where errors are logged with `{}` (reload, a reconnect).
            eprintln!("serialhub: error: {e:#}");
            exit_code(&e)
        }
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

/// `check-config FILE`: the summary on stdout, or the error and status 2.
fn check_config(file: &std::path::Path) -> ExitCode {
    match config::load(file) {
        Ok(cfg) => {
            // What serve checks before it binds anything, beyond the file:
            // each traffic log directory.
            for port in &cfg.ports {
                if let Some(Err(e)) = port
                    .traffic
                    .as_ref()
                    .map(|t| serialhub::traffic::rotate::check_dir(&t.dir))
                {
                    eprintln!(
                        "serialhub: error: {}: port {:?}: {e}",
                        file.display(),
                        port.name
                    );
                    return ExitCode::from(2);
                }
            }
            print!("{}", cfg.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("serialhub: error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Settings out of range and bad configuration files are usage errors,
/// like the ones clap reports (exit status 2); anything else that stops
/// serialhub is 1.
fn exit_code(e: &anyhow::Error) -> ExitCode {
    if e.downcast_ref::<ConfigError>().is_some() || e.downcast_ref::<FileError>().is_some() {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

/// `status`, `kick`, `lock`, `unlock`, `reload`: one request to a running serialhub's control socket.
fn control_command(cli: &Cli) -> ExitCode {
    use serialhub::control::{Request, client, show};
    let (request, json) = match &cli.command {
        Command::Status(a) => (
            Request::Status {
                port: a.port.clone(),
            },
            a.json,
        ),
        Command::Kick(a) => (
            Request::Kick {
                port: a.port.clone(),
                client: a.client,
            },
            false,
        ),
        Command::Lock(a) => (
            Request::Lock {
                port: a.port.clone(),
            },
            false,
        ),
        Command::Unlock(a) => (
            Request::Unlock {
                port: a.port.clone(),
            },
            false,
        ),
        Command::Reload(_) => (Request::Reload, false),
        _ => return ExitCode::FAILURE,
    };
    let Some(path) = cli.control_socket() else {
        return found_command(&request, json);
    };
    match client::request(path, &request) {
        Ok(r) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&r.ports).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(r) => {
            print!("{}", show::tables(&r.ports));
            if let Some(done) = r.done {
                println!("{done}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("serialhub: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A control command without `--control`: to every serialhub of the user
/// (`status`), or the one the request is for. Each daemon's tables come
/// under a line naming it; `--json` gives every port, each with its
/// daemon's `control` socket and `pid`.
fn found_command(request: &serialhub::control::Request, json: bool) -> ExitCode {
    use serialhub::control::{client, show};
    let answers = match client::request_found(request) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("serialhub: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        let ports: Vec<_> = answers.iter().flat_map(|a| &a.response.ports).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&ports).unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    for a in &answers {
        if let serialhub::control::Request::Status { .. } = request {
            println!("serialhub {}", a.origin());
        }
        print!("{}", show::tables(&a.response.ports));
        if let Some(done) = &a.response.done {
            println!("{done}");
        }
    }
    ExitCode::SUCCESS
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    let metrics_flag = cli.metrics_addr().cloned();
    let control = cli.control_socket().cloned().map(|path| ControlConfig {
        path,
        mode: serialhub::control::DEFAULT_MODE,
    });
    match cli.command {
        Command::Serve(args) => {
            let (plans, file_control, file_metrics, https) = match &args.config {
                Some(file) => {
                    let daemon = config::load(file)?;
                    // --metrics overrides the file's, and is checked as it is.
                    if let Some(addr) = &metrics_flag {
                        config::check_metrics(addr).context("invalid settings")?;
                    }
                    // From a file, a port whose device is absent waits for it.
                    let plans = daemon
                        .ports
                        .into_iter()
                        .map(|config| PortPlan {
                            name: config.name.clone(),
                            config,
                            wait_for_device: true,
                        })
                        .collect();
                    let control = daemon.control.unwrap_or(config::ControlConfig {
                        socket: None,
                        mode: serialhub::control::DEFAULT_MODE,
                    });
                    // HTTPS with the file's [tls], as its [metrics] says.
                    let https = match &daemon.metrics {
                        Some(m) if m.tls => daemon.tls.clone(),
                        _ => None,
                    };
                    (
                        plans,
                        Some(control),
                        daemon.metrics.map(|m| m.listen),
                        https,
                    )
                }
                None => {
                    let config = PortConfig::from_args(&args).context("invalid settings")?;
                    let control = control.as_ref().map(|c| c.path.as_path());
                    config::check_flags(&config, control, metrics_flag.as_deref())
                        .context("invalid settings")?;
                    if args.metrics_tls && metrics_flag.is_none() {
                        return Err(ConfigError::NotApplicable {
                            option: "--metrics-tls",
                            only: "--metrics",
                        })
                        .context("invalid settings");
                    }
                    let https = config.tls.clone().filter(|_| args.metrics_tls);
                    let plan = PortPlan {
                        name: config.name.clone(),
                        config,
                        wait_for_device: args.wait_for_device,
                    };
                    (vec![plan], None, None, https)
                }
            };
            // --control wins, then the file's socket; else one of our own in
            // the runtime directory, where the control commands find it.
            let mode = file_control
                .as_ref()
                .map_or(serialhub::control::DEFAULT_MODE, |c| c.mode);
            let named = control.or_else(|| {
                let path = file_control?.socket?;
                Some(ControlConfig { path, mode })
            });
            let control = match named {
                Some(c) => Some(c),
                None => match discover::prepare() {
                    Ok(_) => Some(ControlConfig {
                        path: discover::own_socket(),
                        mode,
                    }),
                    // With flags there was never a socket unless asked for:
                    // serve on without one rather than fail.
                    Err(e) if args.config.is_none() => {
                        tracing::warn!(
                            "{e}; no control socket, so `serialhub status` cannot reach this serve"
                        );
                        None
                    }
                    Err(e) => return Err(e).context("control socket"),
                },
            };
            let metrics = metrics_flag
                .or(file_metrics)
                .map(|addr| serialhub::control::http::MetricsListen { addr, tls: https });
            serialhub::daemon::run(plans, control, metrics, args.config.clone(), shutdown).await?;
        }
        Command::Status(_)
        | Command::Kick(_)
        | Command::Lock(_)
        | Command::Unlock(_)
        | Command::Reload(_) => {}
        Command::Sim(args) => {
            let line = config::sim_line(args.baud).context("invalid settings")?;
            let spec = config::sim_spec(args.mode, args.reply_delay).context("invalid settings")?;
            serialhub::sim::run(spec, line, &args.link, shutdown).await?;
        }
        Command::Log(args) => serialhub::logcmd::run(&args)?,
        Command::Completions(args) => {
            serialhub::docgen::print(&serialhub::docgen::completions(args.shell))?
        }
        Command::Man(args) => match &args.dir {
            Some(dir) => {
                for page in serialhub::docgen::write_man_pages(dir)? {
                    println!("{}", page.display());
                }
            }
            None => {
                serialhub::docgen::print(&serialhub::docgen::man_page(args.command.as_deref())?)?
            }
        },
        // Synchronous, run before the runtime starts.
        Command::CheckConfig(_) | Command::PrintConfig => {}
    }
    Ok(())
}

/// Every client costs a file descriptor; the default soft limit (often 1024)
/// is far below what the hard limit allows, so raise it as servers do.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// First SIGINT or SIGTERM: graceful shutdown. Second: exit at once.
async fn on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if round == 0 {
            shutdown.cancel();
        }
    }
    eprintln!("serialhub: second signal, exiting now");
    std::process::exit(130);
}

fn init_tracing(verbose: u8, quiet: u8) {
    let level = match i16::from(verbose) - i16::from(quiet) {
        ..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
