//! `status`, `kick`, `lock`, `unlock`, `reload`: one request to a running
//! serialhub's control socket, or to every serialhub of the user, and its
//! answer printed.

use std::path::Path;

use crate::control::{Request, client, show};

use super::Error;

/// Sends `request` to the daemon at `socket` (`--control`), or without one
/// to the daemon(s) it is for; prints the answer as tables, or as JSON.
pub(crate) fn run(request: &Request, json: bool, socket: Option<&Path>) -> Result<(), Error> {
    let Some(path) = socket else {
        return found(request, json);
    };
    let r = client::request(path, request).map_err(Error::Control)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r.ports).unwrap_or_default()
        );
    } else {
        print!("{}", show::tables(&r.ports));
        if let Some(done) = r.done {
            println!("{done}");
        }
    }
    Ok(())
}

/// A control command without `--control`: to every serialhub of the user
/// (`status`), or the one the request is for. Each daemon's tables come
/// under a line naming it; `--json` gives every port, each with its
/// daemon's `control` socket and `pid`.
fn found(request: &Request, json: bool) -> Result<(), Error> {
    let answers = client::request_found(request).map_err(Error::Control)?;
    if json {
        let ports: Vec<_> = answers.iter().flat_map(|a| &a.response.ports).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&ports).unwrap_or_default()
        );
        return Ok(());
    }
    for a in &answers {
        if let Request::Status { .. } = request {
            println!("serialhub {}", a.origin());
        }
        print!("{}", show::tables(&a.response.ports));
        if let Some(done) = &a.response.done {
            println!("{done}");
        }
    }
    Ok(())
}
