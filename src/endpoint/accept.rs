//! The accept loop shared by stream endpoints (TCP, unix).
//!
//! A connection permit is taken *before* `accept`, so the number of clients
//! over all endpoints stays within `--max-clients`; a client past the limit
//! waits in the kernel's backlog instead of being accepted and dropped.

use std::future::Future;
use std::sync::Arc;

use tokio::io::AsyncWrite;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info_span, warn};

use super::EndpointOptions;
use super::client::{self, ClientSource};
use crate::hub::Hub;

/// A listener that yields split connections and a name for each peer.
pub trait Accept: Send + 'static {
    type Source: ClientSource + Send + Sync + 'static;
    type Sink: AsyncWrite + Unpin + Send + 'static;
    fn accept(
        &self,
    ) -> impl Future<Output = std::io::Result<(Self::Source, Self::Sink, String)>> + Send;
}

/// What every accept loop needs from `serve`.
#[derive(Clone, Debug)]
pub struct Context {
    pub hub: Arc<Hub>,
    pub clients: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

/// Accepts clients until shutdown, running each on the tracker.
pub async fn serve<L: Accept>(listener: L, options: EndpointOptions, cx: Context) {
    let options = Arc::new(options);
    let policy = options.slow_reader.unwrap_or(cx.hub.config().slow_reader);
    loop {
        let permit = tokio::select! {
            p = cx.clients.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            () = cx.shutdown.cancelled() => return,
        };
        let (source, sink, name) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = cx.shutdown.cancelled() => return,
        };
        let handle = cx.hub.attach_with(name.clone(), policy);
        let span = info_span!("client", id = handle.id(), peer = %name);
        let (options, shutdown) = (options.clone(), cx.shutdown.clone());
        cx.tracker.spawn(
            async move {
                client::run(handle, source, sink, &options, client::LINGER, shutdown).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}
