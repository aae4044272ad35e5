//! A TCP proxy in front of the broker that can cut one client off: its
//! connections are dropped and new ones refused until it is restored,
//! while everyone else keeps the broker.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub(super) struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

struct State {
    up: bool,
    links: JoinSet<()>,
}

impl Proxy {
    pub(super) async fn start(broker: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            up: true,
            links: JoinSet::new(),
        }));
        let s = state.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut st = s.lock().expect("proxy state");
                if !st.up {
                    continue;
                }
                st.links.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(broker).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Proxy { addr, state }
    }

    pub(super) fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub(super) fn cut(&self) {
        let mut st = self.state.lock().expect("proxy state");
        st.up = false;
        st.links.abort_all();
    }

    pub(super) fn restore(&self) {
        self.state.lock().expect("proxy state").up = true;
    }
}
