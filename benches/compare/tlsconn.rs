//! The client side of the TLS rows: a certificate made here for every tool
//! to serve, and a connection that is plain TCP or TLS over it (rustls, ring
//! provider), so the latency, bulk and flood code runs unchanged over both.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::proxy::TlsFiles;

/// A CA, the server certificate it signed (`localhost`, 127.0.0.1; rcgen's
/// default key, ECDSA P-256) and a client that trusts the CA.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    connector: TlsConnector,
    config: Arc<rustls::ClientConfig>,
    /// The client's largest record, when it is not rustls's 16 KiB.
    pub record: Option<usize>,
    _dir: Arc<tempfile::TempDir>,
}

impl Tls {
    pub fn new() -> Result<Tls, String> {
        let e = |e: rcgen::Error| e.to_string();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ca_key = KeyPair::generate().map_err(e)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        ca.distinguished_name
            .push(DnType::CommonName, "serialhub bench CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().map_err(e)?;
        let mut server = CertificateParams::new(vec!["localhost".to_owned()]).map_err(e)?;
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server = server.signed_by(&key, &issuer).map_err(e)?;
        let (cert_path, key_path) = (dir.path().join("server.pem"), dir.path().join("server.key"));
        let io = |e: io::Error| e.to_string();
        std::fs::write(&cert_path, server.pem()).map_err(io)?;
        std::fs::write(&key_path, key.serialize_pem()).map_err(io)?;

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca_cert.der().to_vec()))
            .map_err(|e| e.to_string())?;
        // ring, as serialhub uses (deprecated in rustls 0.23.48 for lacking
        // post-quantum key exchange; see src/tls/config.rs).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // Every handshake a full one: the handshake rate measures those.
        config.resumption = rustls::client::Resumption::disabled();
        let config = Arc::new(config);
        Ok(Tls {
            cert: cert_path,
            key: key_path,
            connector: TlsConnector::from(config.clone()),
            config,
            record: None,
            _dir: Arc::new(dir),
        })
    }

    /// The same, with a client that sends records of at most `bytes` of
    /// data.
    pub fn with_records(&self, bytes: usize) -> Tls {
        let mut config = (*self.config).clone();
        config.max_fragment_size = Some(bytes);
        let config = Arc::new(config);
        Tls {
            cert: self.cert.clone(),
            key: self.key.clone(),
            connector: TlsConnector::from(config.clone()),
            config,
            record: Some(bytes),
            _dir: self._dir.clone(),
        }
    }

    /// What a server needs: the certificate and key files.
    pub fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// TLS 1.3's bytes per record beyond the data: the 5-byte header, the inner
/// content type and the 16-byte AEAD tag (rustls adds no padding).
const TLS13_RECORD_OVERHEAD: u64 = 22;

/// A client connection, plain or TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream<Counted>>),
}

impl Conn {
    /// Connects to `addr` (with Nagle off if `nodelay`), then makes the TLS
    /// handshake if `tls` is given.
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<&Tls>,
        nodelay: bool,
    ) -> Result<Conn, String> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        tcp.set_nodelay(nodelay).map_err(|e| e.to_string())?;
        Conn::over(tcp, tls).await
    }

    /// The TLS handshake over `tcp` if `tls` is given, else `tcp` itself.
    pub async fn over(tcp: TcpStream, tls: Option<&Tls>) -> Result<Conn, String> {
        let Some(tls) = tls else {
            return Ok(Conn::Plain(tcp));
        };
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let counted = Counted {
            tcp,
            scan: RecordScan::default(),
        };
        let handshake = tls.connector.connect(name, counted);
        let mut s = tokio::time::timeout(std::time::Duration::from_secs(10), handshake)
            .await
            .map_err(|_| "TLS handshake timed out".to_owned())?
            .map_err(|e| format!("TLS handshake: {e}"))?;
        if s.get_ref().1.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
            return Err("the server did not negotiate TLS 1.3".into());
        }
        // Count the data's records only.
        s.get_mut().0.scan = RecordScan::default();
        Ok(Conn::Tls(Box::new(s)))
    }

    /// Makes closing send a reset (`SO_LINGER` 0) rather than a FIN.
    pub fn reset_on_close(&self) -> io::Result<()> {
        let tcp = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.get_ref().0.tcp,
        };
        socket2::SockRef::from(tcp).set_linger(Some(std::time::Duration::ZERO))
    }

    /// Caps the plaintext rustls holds while the socket is full, as a small
    /// send buffer caps a plain socket's.
    pub fn limit_buffer(&mut self, bytes: usize) {
        if let Conn::Tls(s) = self {
            s.get_mut().1.set_buffer_limit(Some(bytes));
        }
    }

    /// Of `written` data bytes the stream accepted, those that have left the
    /// client's socket: written minus `SIOCOUTQ` for plain TCP; for TLS, the
    /// records' bytes sent minus `SIOCOUTQ`, less the records' overhead in
    /// proportion (within a few bytes: the overhead of the one or two
    /// records that are partly sent is spread over all).
    pub fn left_client(&self, written: u64) -> io::Result<u64> {
        match self {
            Conn::Plain(s) => Ok(written.saturating_sub(serialhub::measure::unacked(s)? as u64)),
            Conn::Tls(s) => {
                let c = &s.get_ref().0;
                let sent = c.scan.bytes;
                if sent == 0 {
                    return Ok(0);
                }
                let gone = sent.saturating_sub(serialhub::measure::unacked(&c.tcp)? as u64);
                let data = sent.saturating_sub(c.scan.records * TLS13_RECORD_OVERHEAD);
                Ok((gone as f64 * data as f64 / sent as f64) as u64)
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, b),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TCP stream under TLS, counting the records it sends.
pub struct Counted {
    tcp: TcpStream,
    scan: RecordScan,
}

/// Bytes and records (counted as each one's header starts) sent so far.
#[derive(Default)]
struct RecordScan {
    bytes: u64,
    records: u64,
    /// Bytes of the current record's header seen, and its length field.
    header: usize,
    len: [u8; 2],
    /// Body bytes of the current record still to come.
    body: usize,
}

impl RecordScan {
    fn feed(&mut self, mut sent: &[u8]) {
        self.bytes += sent.len() as u64;
        while !sent.is_empty() {
            if self.body > 0 {
                let k = self.body.min(sent.len());
                self.body -= k;
                sent = &sent[k..];
                continue;
            }
            if self.header == 0 {
                self.records += 1;
            }
            if self.header == 3 || self.header == 4 {
                self.len[self.header - 3] = sent[0];
            }
            self.header += 1;
            sent = &sent[1..];
            if self.header == 5 {
                self.header = 0;
                self.body = u16::from_be_bytes(self.len) as usize;
            }
        }
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        let r = Pin::new(&mut me.tcp).poll_write(cx, b);
        if let Poll::Ready(Ok(n)) = r {
            me.scan.feed(&b[..n]);
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
