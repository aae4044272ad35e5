//! TCP clients that each read a whole counter-pattern stream, counting its
//! bytes and checking it, for the fan-out and ports scenarios.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use serialhub::pattern::Checker;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// One reader task per connection. The tasks are aborted when dropped.
pub struct Readers {
    counts: Vec<Arc<AtomicU64>>,
    errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Readers {
    /// Connects one reader to each address, in order.
    pub async fn connect(addrs: &[SocketAddr]) -> Result<Readers, String> {
        let mut r = Readers {
            counts: Vec::new(),
            errors: Arc::new(AtomicU64::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
        };
        for &addr in addrs {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect to {addr}: {e}"))?;
            let count = Arc::new(AtomicU64::new(0));
            r.counts.push(count.clone());
            let (errors, stop) = (r.errors.clone(), r.stop.clone());
            r.tasks
                .push(tokio::spawn(read(stream, count, errors, stop)));
        }
        Ok(r)
    }

    /// Bytes each reader has received so far.
    pub fn bytes(&self) -> Vec<u64> {
        self.counts.iter().map(|c| c.load(Relaxed)).collect()
    }

    /// Stops the readers and returns the pattern errors they saw.
    pub async fn finish(mut self) -> u64 {
        self.stop.store(true, Relaxed);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
        self.errors.load(Relaxed)
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn read(
    mut stream: TcpStream,
    count: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let mut checker = Checker::new();
    let mut buf = vec![0u8; 8192];
    while !stop.load(Relaxed) {
        // Wakes at least every 200 ms to see `stop`.
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(k)) => {
                checker.feed(&buf[..k]);
                count.fetch_add(k as u64, Relaxed);
            }
            Err(_) => {}
        }
    }
    errors.fetch_add(checker.errors, Relaxed);
}
