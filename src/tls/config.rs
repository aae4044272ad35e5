//! From PEM files to a rustls [`ServerConfig`]: the certificate chain and
//! key, and for mutual TLS the client CA bundle and its revocation lists.
//!
//! Only the `ring` provider, and only TLS 1.3 and 1.2: rustls has neither
//! renegotiation nor anything older. Session resumption is rustls's
//! default (a stateful in-memory cache, and TLS 1.3 tickets). Every error
//! names the file and what is wrong with it, for start-up, `check-config`
//! and a reload alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// The files TLS is configured from (`--tls-cert`, `--tls-key`,
/// `--tls-client-ca`, `--tls-crl`; the config file's `[tls]`). Kept as
/// paths, so the same files can be read again on a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// PEM certificate chain, the server's own first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA bundle: with it, clients must present a certificate that
    /// chains to it (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// PEM (or DER) certificate revocation lists for the client CA.
    pub crls: Vec<PathBuf>,
}

/// TLS cannot be configured from the files given.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS: cannot read {}: {reason}", .file.display())]
    Read {
        file: PathBuf,
        reason: std::io::Error,
    },
    #[error("TLS: {}: {what}", .file.display())]
    Content { file: PathBuf, what: String },
    #[error("TLS: the key in {} does not match the certificate in {}: {reason}", .key.display(), .cert.display())]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("TLS: {reason}")]
    Other { reason: String },
}

impl TlsError {
    fn content(file: &Path, what: impl Into<String>) -> Self {
        TlsError::Content {
            file: file.to_owned(),
            what: what.into(),
        }
    }
}

/// The largest PEM file read: a CA bundle of a few hundred certificates is
/// well under it, and nothing larger is read into memory by mistake.
const MAX_FILE: u64 = 16 * 1024 * 1024;

fn read(file: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read;
    let err = |reason| TlsError::Read {
        file: file.to_owned(),
        reason,
    };
    let mut data = Vec::new();
    std::fs::File::open(file)
        .map_err(err)?
        .take(MAX_FILE + 1)
        .read_to_end(&mut data)
        .map_err(err)?;
    if data.len() as u64 > MAX_FILE {
        return Err(TlsError::content(file, "larger than 16MiB; not a PEM file"));
    }
    Ok(data)
}

/// Every certificate in a PEM file; at least one.
pub(crate) fn certificates(file: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = read(file)?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::content(file, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::content(
            file,
            "no certificate in it (expected PEM \"-----BEGIN CERTIFICATE-----\")",
        ));
    }
    Ok(certs)
}

/// The first private key in a PEM file.
pub(crate) fn private_key(file: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = read(file)?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::content(
            file,
            "no private key in it (expected PEM \"-----BEGIN PRIVATE KEY-----\" or an RSA or EC key)",
        ),
        e => TlsError::content(file, format!("bad PEM: {e}")),
    })
}

/// The revocation lists in a file: PEM sections, or one DER list.
fn crls(file: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let data = read(file)?;
    let pem = CertificateRevocationListDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::content(file, format!("bad PEM: {e}")))?;
    if !pem.is_empty() {
        return Ok(pem);
    }
    // DER starts with a SEQUENCE tag.
    if data.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(data)]);
    }
    Err(TlsError::content(
        file,
        "no revocation list in it (expected PEM \"-----BEGIN X509 CRL-----\")",
    ))
}

/// The crypto provider: ring, and nothing else (no C toolchain or cmake
/// to build, unlike aws-lc). rustls 0.23.48 deprecates it for lacking
/// post-quantum key exchange; the classical groups it has are what every
/// client here (OpenSSL, socat, curl, gensio) offers.
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client verifier: none without a client CA; else every client must
/// present a certificate chaining to it that no given CRL revokes.
fn client_verifier(
    files: &TlsFiles,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let Some(ca) = &files.client_ca else {
        if let Some(crl) = files.crls.first() {
            return Err(TlsError::content(
                crl,
                "a revocation list needs a client CA (--tls-client-ca, client-ca)",
            ));
        }
        return Ok(WebPkiClientVerifier::no_client_auth());
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca)? {
        roots
            .add(cert)
            .map_err(|e| TlsError::content(ca, format!("not a usable CA certificate: {e}")))?;
    }
    let mut lists = Vec::new();
    for file in &files.crls {
        for crl in crls(file)? {
            // Parsed here too, so a bad list is named by its file.
            webpki_crl_check(&crl).map_err(|why| TlsError::content(file, why))?;
            lists.push(crl);
        }
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .with_crls(lists)
        // A CRL is optional: a certificate whose issuer has none given is
        // not refused for that (its chain is still checked).
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| TlsError::content(ca, e.to_string()))
}

/// Whether `crl` parses as an X.509 revocation list.
fn webpki_crl_check(crl: &CertificateRevocationListDer<'_>) -> Result<(), String> {
    x509_parser::parse_x509_crl(crl)
        .map(|_| ())
        .map_err(|e| format!("not a usable revocation list: {e}"))
}

/// Reads `files` and builds the server configuration: TLS 1.3 and 1.2,
/// ring, the certificate and key, and the client verifier.
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let chain = certificates(&files.cert)?;
    let key = private_key(&files.key)?;
    let verifier = client_verifier(files, &provider)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Other {
            reason: e.to_string(),
        })?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
                reason: e.to_string(),
            },
            e => TlsError::content(&files.key, format!("unusable key: {e}")),
        })?;
    Ok(Arc::new(config))
}
