//! The TLS layer against a real rustls client over real TCP: the handshake
//! and the identity, plaintext handed out under a read budget (and counted
//! by `queued`), sending bounded by the buffer limit while the client does
//! not read, and close_notify at the end.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::config::{TlsFiles, provider, server_config};
use super::handshake::{Handshaken, handshake};
use crate::endpoint::sink::SocketHalf;
use crate::endpoint::source::ClientSource;

/// A CA, a server certificate for localhost, and alice's, written to `dir`;
/// returns the client config that trusts the CA and presents alice.
fn pki(dir: &std::path::Path) -> (TlsFiles, Arc<rustls::ClientConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let alice_key = KeyPair::generate().unwrap();
    let mut alice = CertificateParams::new(Vec::<String>::new()).unwrap();
    alice.distinguished_name.push(DnType::CommonName, "alice");
    let alice = alice.signed_by(&alice_key, &issuer).unwrap();
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write("ca.pem", ca_cert.pem());
    write("server.pem", server.pem());
    write("server.key", server_key.serialize_pem());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![alice.der().clone()],
            rustls_pki_types::PrivateKeyDer::try_from(alice_key.serialize_der()).unwrap(),
        )
        .unwrap();
    let files = TlsFiles {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        client_ca: Some(dir.join("ca.pem")),
        crls: vec![],
    };
    (files, Arc::new(client))
}

type Server = Handshaken<OwnedReadHalf, OwnedWriteHalf>;

/// A handshaken server side and the rustls client talking to it; the
/// server's sending side may hold `limit` bytes of ciphertext.
async fn pair(limit: usize) -> (Server, tokio_rustls::client::TlsStream<TcpStream>) {
    let dir = tempfile::tempdir().unwrap();
    let (files, client) = pki(dir.path());
    let config = server_config(&files).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connect = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tokio_rustls::TlsConnector::from(client)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    };
    let accept = async {
        let (tcp, _) = listener.accept().await.unwrap();
        let (r, w) = tcp.into_split();
        handshake(config, r, w, limit, Duration::from_secs(5))
            .await
            .unwrap()
    };
    let (client, server) = tokio::join!(connect, accept);
    (server, client)
}

/// Reads up to `max` plaintext bytes as the client loop does: waits for
/// readiness, then reads without blocking.
async fn read(source: &impl ClientSource, max: usize) -> Vec<u8> {
    loop {
        source.readable().await.unwrap();
        let mut buf = vec![0u8; max];
        match source.try_read(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return buf;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn the_client_certificate_names_the_client() {
    let (server, _client) = pair(4096).await;
    let id = server.identity.expect("an identity");
    assert_eq!(id.to_string(), "cn:alice");
}

#[tokio::test]
async fn plaintext_is_handed_out_within_the_budget_and_counted_as_queued() {
    let (server, mut client) = pair(4096).await;
    let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let writer = tokio::spawn({
        let sent = sent.clone();
        async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            client
        }
    });
    let mut got = Vec::new();
    let mut checked_queued = false;
    loop {
        // A small budget, as for a slow line: rustls keeps the rest.
        let chunk = read(&server.source, 7).await;
        if chunk.is_empty() {
            break;
        }
        assert!(chunk.len() <= 7);
        got.extend_from_slice(&chunk);
        if !checked_queued && got.len() < sent.len() {
            // Plaintext held by rustls counts, so a drain finds it.
            assert!(server.source.queued() > 0);
            checked_queued = true;
        }
    }
    assert_eq!(got, sent);
    assert!(checked_queued);
    writer.await.unwrap();
}

#[tokio::test]
async fn a_client_that_does_not_read_is_refused_more_after_a_bounded_amount() {
    let limit = 4096;
    let (server, mut client) = pair(limit).await;
    let data = vec![0x55u8; 1024];
    let mut accepted = 0usize;
    // Until WouldBlock: the socket buffers and the buffer limit are full.
    loop {
        match server.sink.try_write(&data) {
            Ok(n) => accepted += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
        assert!(accepted < 64 << 20, "no end to what it takes");
    }
    // Ready again only once the client reads; then all of it arrives.
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        let mut buf = vec![0u8; 65536];
        while got < accepted {
            let n = client.read(&mut buf).await.unwrap();
            assert!(n > 0);
            assert!(buf[..n].iter().all(|b| *b == 0x55));
            got += n;
        }
        client
    });
    std::future::poll_fn(|cx| server.sink.poll_write_ready(cx))
        .await
        .unwrap();
    let mut client = reader.await.unwrap();
    // close_notify, then FIN: a clean end of input for the client.
    server.sink.shutdown_write().unwrap();
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn garbage_fails_the_handshake_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (files, _) = pki(dir.path());
    let config = server_config(&files).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut peer = TcpStream::connect(addr).await.unwrap();
    peer.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let (r, w) = tcp.into_split();
    let e = handshake(config, r, w, 4096, Duration::from_secs(5))
        .await
        .err()
        .expect("a failed handshake");
    assert!(!e.is_revoked());
    assert!(matches!(e, super::handshake::HandshakeError::Tls(_)), "{e}");
}

/// A handshake with `acceptor`'s current configuration, from `client`.
async fn connect_with(
    acceptor: &super::TlsAcceptor,
    client: Arc<rustls::ClientConfig>,
) -> (Server, tokio_rustls::client::TlsStream<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connect = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        tokio_rustls::TlsConnector::from(client)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    };
    let config = acceptor.config();
    let accept = async {
        let (tcp, _) = listener.accept().await.unwrap();
        let (r, w) = tcp.into_split();
        handshake(config, r, w, 4096, Duration::from_secs(5))
            .await
            .unwrap()
    };
    let (client, server) = tokio::join!(connect, accept);
    (server, client)
}

#[tokio::test]
async fn a_reload_serves_new_handshakes_and_leaves_open_sessions_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (files, old_client) = pki(dir.path());
    let acceptor = super::TlsAcceptor::new(files).unwrap();
    let (old_server, mut old) = connect_with(&acceptor, old_client).await;
    let old_cert = old.get_ref().1.peer_certificates().unwrap()[0].clone();
    // New files on disk (a new CA, server certificate and key), re-read.
    let (_, new_client) = pki(dir.path());
    acceptor.reload().unwrap();
    let (_, new) = connect_with(&acceptor, new_client).await;
    let new_cert = new.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_ne!(old_cert, new_cert);
    // The session opened before goes on.
    old.write_all(b"still here").await.unwrap();
    let mut got = Vec::new();
    while got.len() < 10 {
        got.extend(read(&old_server.source, 64).await);
    }
    assert_eq!(got, b"still here");
}
