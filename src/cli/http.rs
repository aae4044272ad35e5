//! `serve`'s flags of the HTTP listener (the metrics and the web console,
//! issue 23) beyond its address (`--http`, `--metrics`, which the top level
//! takes too).

use clap::Args;

/// `--http ADDR` and its old name `--metrics ADDR`, at the top level (for
/// `serve`) and after `serve`.
#[derive(Clone, Debug, Default, Args)]
pub(crate) struct HttpAddr {
    /// Serve the web console and the Prometheus metrics (/metrics) over
    /// HTTP on ADDR (`127.0.0.1:9108`). Off unless given.
    #[arg(long, value_name = "ADDR")]
    pub(crate) http: Option<String>,
    /// The old name of --http.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics: Option<String>,
}

impl HttpAddr {
    /// Each flag as given here, else as given in `after`.
    pub(crate) fn or(&self, after: &HttpAddr) -> HttpAddr {
        HttpAddr {
            http: self.http.clone().or_else(|| after.http.clone()),
            metrics: self.metrics.clone().or_else(|| after.metrics.clone()),
        }
    }
}

/// `serve`'s HTTP listener flags.
#[derive(Debug, Args)]
pub(crate) struct HttpFlags {
    /// The old name of --http-tls.
    #[arg(long, requires = "tls_cert")]
    pub(crate) metrics_tls: bool,
    /// Serve --http over HTTPS with --tls-cert (and mutual TLS with
    /// --tls-client-ca, whose certificates' identities --allow then gives
    /// roles).
    #[arg(long, requires = "tls_cert")]
    pub(crate) http_tls: bool,
    /// Serve --http as plain HTTP on a network address, with the
    /// configuration file's password users: their passwords cross the
    /// network readable. Refused without it.
    #[arg(long)]
    pub(crate) http_insecure: bool,
}

impl HttpFlags {
    /// HTTPS was asked for, by either name.
    pub(crate) fn tls(&self) -> bool {
        self.metrics_tls || self.http_tls
    }
}
