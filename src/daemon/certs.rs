//! Reading the TLS files again on reload: the certificate, key, client CA
//! and CRLs of every running port that keeps running, and of the HTTPS
//! metrics listener. New handshakes use the new files; open sessions go on
//! with the ones they began with. Files that do not load (a broken
//! certificate, a key that is not the certificate's) leave the old ones in
//! force, and the reload says so and fails.

use crate::port::Port;
use crate::tls::TlsAcceptor;

/// What re-reading the TLS files did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Certificates {
    /// Acceptors (a port's endpoints, the metrics listener) now on the
    /// files as they are on disk.
    pub(crate) reread: usize,
    /// Why the others kept their old files: each error once, in the order
    /// met (ports share their files, so they fail alike).
    pub(crate) kept: Vec<String>,
}

impl Certificates {
    /// Whether no acceptor had TLS files to read.
    pub(crate) fn none(&self) -> bool {
        self.reread == 0 && self.kept.is_empty()
    }
}

impl std::fmt::Display for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.kept.is_empty() {
            f.write_str("read anew")
        } else {
            write!(f, "old ones kept: {}", self.kept.join("; "))
        }
    }
}

/// Re-reads the TLS files of `ports` and of the metrics listener's
/// `metrics` acceptor.
pub(crate) fn reread<'a>(
    ports: impl IntoIterator<Item = &'a Port>,
    metrics: Option<&TlsAcceptor>,
) -> Certificates {
    let mut done = Certificates::default();
    let results = ports
        .into_iter()
        .filter_map(Port::reload_tls)
        .chain(metrics.map(TlsAcceptor::reload));
    for result in results {
        match result {
            Ok(()) => done.reread += 1,
            Err(e) => {
                let e = e.to_string();
                if !done.kept.contains(&e) {
                    done.kept.push(e);
                }
            }
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_what_happened_to_the_files() {
        let fine = Certificates {
            reread: 3,
            kept: vec![],
        };
        assert!(!fine.none());
        assert_eq!(fine.to_string(), "read anew");
        let broken = Certificates {
            reread: 0,
            kept: vec!["a.pem: no certificate in it".into(), "b.key: bad".into()],
        };
        assert_eq!(
            broken.to_string(),
            "old ones kept: a.pem: no certificate in it; b.key: bad"
        );
        assert!(Certificates::default().none());
    }

    #[test]
    fn nothing_to_read_without_tls() {
        assert!(reread(std::iter::empty(), None).none());
    }
}
