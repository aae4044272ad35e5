//! What a serialhub process sets up around its commands: log output, the
//! file descriptor limit, and the shutdown signals.

use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

/// Log to stderr at the level `-v` and `-q` ask for; RUST_LOG overrides.
/// Once per process: a second call panics (tracing's global default).
pub fn init_tracing(verbose: u8, quiet: u8) {
    let level = match i16::from(verbose) - i16::from(quiet) {
        ..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // async-nats logs every connection event at info, once a second while
    // a broker is away; the fleet logs what matters of it itself.
    let directives = match level {
        "info" => "info,async_nats=warn",
        other => other,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(directives));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Every client costs a file descriptor; the default soft limit (often 1024)
/// is far below what the hard limit allows, so raise it as servers do.
pub(crate) fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// First SIGINT or SIGTERM: graceful shutdown. Second: exit at once, with
/// status 130; the one exit that does not go through the binary's mapping,
/// since the graceful shutdown it cuts short may never return.
pub(crate) async fn on_signal(shutdown: CancellationToken) {
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
