//! Asking the daemon task that owns the ports, as the control socket does:
//! a request and its answer by message, within [`ASK_TIMEOUT`].

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::control::server::Asked;
use crate::control::{PortStatus, Request, Response as Answer};

/// Time the daemon task has to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `request` to the daemon task and waits for its answer.
pub(crate) async fn ask(daemon: &mpsc::Sender<Asked>, request: Request) -> Result<Answer, String> {
    let (tx, rx) = oneshot::channel();
    let go = async {
        daemon
            .send((request, tx))
            .await
            .map_err(|_| "the daemon is shutting down".to_owned())?;
        rx.await
            .map_err(|_| "the daemon is shutting down".to_owned())
    };
    tokio::time::timeout(ASK_TIMEOUT, go)
        .await
        .map_err(|_| format!("the daemon did not answer within {ASK_TIMEOUT:?}"))?
}

/// Every port's status.
pub(crate) async fn ports(daemon: &mpsc::Sender<Asked>) -> Result<Vec<PortStatus>, String> {
    match ask(daemon, Request::Status { port: None }).await? {
        Answer {
            ok: true, ports, ..
        } => Ok(ports),
        Answer { error, .. } => Err(error.unwrap_or_else(|| "status failed".into())),
    }
}

/// The status document as `status --json` prints it: the ports, pretty.
pub(crate) fn document(ports: &[PortStatus]) -> String {
    serde_json::to_string_pretty(ports).unwrap_or_default()
}
