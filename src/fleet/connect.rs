//! The connection to the broker, which the registry, the session
//! listener, `fleet://` devices, `fleet ls` and `fleet connect` share.
//!
//! async-nats connects in the background and reconnects by itself
//! (`retry_on_initial_connect`, no limit on attempts), re-subscribing what
//! was subscribed; so a broker that is down at start-up or goes away for a
//! while costs local serving nothing. What it reports (connected,
//! disconnected, a failed attempt) is kept in a [`Link`] on a watch
//! channel: status shows it, and a session resends at once when the
//! connection comes back (each connect bumps [`Link::connects`]).
//!
//! Credentials never leave here in text: the URL's user and password go to
//! async-nats as such, never inside an address it might log.

use std::time::Duration;

use async_nats::{ConnectOptions, Event};
use tokio::sync::watch;

use super::config::Broker;
use super::url::Auth;

/// `fleet ls` and `fleet connect` give up on a broker they cannot reach
/// in this long.
pub(crate) const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// A reconnect waits 100 ms more per failed attempt, up to this: a broker
/// that returns is found within a second, and one that stays away costs
/// one attempt a second.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);
/// One attempt to reach a server gives up after this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the connection to the broker is, as async-nats reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Link {
    pub(crate) connected: bool,
    /// Why the last attempt failed or the connection was lost; `None` once
    /// connected.
    pub(crate) error: Option<String>,
    /// Times connected, reconnects included.
    pub(crate) connects: u64,
}

/// A client of the broker, and how its connection is doing.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    pub(crate) client: async_nats::Client,
    pub(crate) link: watch::Receiver<Link>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("fleet credentials {path}: {error}")]
    Creds { path: String, error: std::io::Error },
    #[error("cannot connect to the fleet broker {url}: {error}")]
    Nats {
        url: String,
        error: async_nats::ConnectError,
    },
    #[error("cannot reach the fleet broker {url} within {}s{}", within.as_secs(), last.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Unreachable {
        url: String,
        within: Duration,
        last: Option<String>,
    },
}

/// A client of `broker`, named `name` in the broker's monitoring, that
/// connects in the background and keeps reconnecting.
pub(crate) async fn connect(broker: &Broker, name: &str) -> Result<Connection, ConnectError> {
    let (tx, link) = watch::channel(Link::default());
    let mut options = ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(ATTEMPT_TIMEOUT)
        .reconnect_delay_callback(|attempts| {
            let n = u32::try_from(attempts).unwrap_or(u32::MAX);
            Duration::from_millis(100)
                .saturating_mul(n)
                .min(RECONNECT_MAX_DELAY)
        })
        .event_callback(move |event| {
            note(&tx, event);
            async {}
        });
    match broker.url.auth() {
        Some(Auth::User { user, password }) => {
            options = options.user_and_password(user.clone(), password.clone());
        }
        Some(Auth::Token(token)) => options = options.token(token.clone()),
        None => {}
    }
    if let Some(path) = &broker.creds {
        options = options
            .credentials_file(path)
            .await
            .map_err(|error| ConnectError::Creds {
                path: path.display().to_string(),
                error,
            })?;
    }
    if let Some(ca) = &broker.ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if broker.url.tls() {
        options = options.require_tls(true);
    }
    let client = options
        .connect(broker.url.addresses())
        .await
        .map_err(|error| ConnectError::Nats {
            url: broker.url.to_string(),
            error,
        })?;
    Ok(Connection { client, link })
}

/// As [`connect`], for a command that needs the broker now: an error if
/// it is not reached within `within`, with the last failure's reason.
pub(crate) async fn connect_within(
    broker: &Broker,
    name: &str,
    within: Duration,
) -> Result<Connection, ConnectError> {
    let mut c = connect(broker, name).await?;
    if c.wait_connected(within).await {
        return Ok(c);
    }
    Err(ConnectError::Unreachable {
        url: broker.url.to_string(),
        within,
        last: c.link.borrow().error.clone(),
    })
}

impl Connection {
    /// Whether the client is connected, waiting up to `within` for it.
    pub(crate) async fn wait_connected(&mut self, within: Duration) -> bool {
        tokio::time::timeout(within, self.link.wait_for(|l| l.connected))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Keeps what async-nats reports in `link`.
fn note(link: &watch::Sender<Link>, event: Event) {
    link.send_modify(|l| match event {
        Event::Connected => {
            l.connected = true;
            l.error = None;
            l.connects += 1;
        }
        Event::Disconnected => {
            l.connected = false;
            l.error.get_or_insert_with(|| "disconnected".into());
        }
        Event::Closed => {
            l.connected = false;
            l.error = Some("connection closed".into());
        }
        Event::ClientError(e) if !l.connected => l.error = Some(e.to_string()),
        Event::ServerError(e) => l.error = Some(format!("broker: {e}")),
        _ => {}
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_make_the_link_state() {
        let (tx, rx) = watch::channel(Link::default());
        note(
            &tx,
            Event::ClientError(async_nats::ClientError::Other("refused".into())),
        );
        assert!(!rx.borrow().connected);
        assert!(rx.borrow().error.as_deref().unwrap().contains("refused"));
        note(&tx, Event::Connected);
        assert_eq!(
            *rx.borrow(),
            Link {
                connected: true,
                error: None,
                connects: 1
            }
        );
        note(&tx, Event::Disconnected);
        assert!(!rx.borrow().connected);
        assert_eq!(rx.borrow().error.as_deref(), Some("disconnected"));
        note(&tx, Event::Connected);
        assert_eq!(rx.borrow().connects, 2);
    }

    /// Nothing listens on a port just freed: the error says so in time.
    #[tokio::test]
    async fn an_unreachable_broker_is_a_timely_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let broker = Broker {
            url: format!("nats://u:secret@127.0.0.1:{port}").parse().unwrap(),
            creds: None,
            ca: None,
        };
        let t = std::time::Instant::now();
        let e = connect_within(&broker, "test", Duration::from_millis(500))
            .await
            .unwrap_err()
            .to_string();
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(
            e.starts_with("cannot reach the fleet broker nats://u@127.0.0.1:"),
            "{e}"
        );
        assert!(!e.contains("secret"), "{e}");
    }
}
