//! TLS material of this node: certificates and keys loaded from PEM files, the rustls server
//! configuration of each listener (client API, peer), the identity it presents on outgoing
//! peer connections, and reloading all of them from disk on request (SIGHUP in the binary).
//!
//! Owns: reading PEM, building rustls configs (ring provider, ALPN http/1.1), the swap on
//! reload, and naming the subject of a verified client certificate ([`ClientIdentity`]).
//! Does not own: accepting connections (`crate::serve`), what an identity may do (the API's
//! authentication, the peer guard in `crate::cluster`), nor outgoing clients
//! (`crate::transport`). Why it is built this way: `tls/DESIGN.md`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Who a verified client certificate names: its subject's common name (CN). Inserted into
/// the extensions of every request of a connection whose client presented a certificate the
/// listener's CA verified; absent otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    pub name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("the {what} {path} holds no PEM certificate")]
    NoCertificate { what: &'static str, path: PathBuf },
    #[error("the certificate {cert} and the key {key} do not make a usable identity: {source}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the CA {path} cannot verify client certificates: {source}")]
    Verifier {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    #[error("the CA file {path} holds an invalid certificate: {source}")]
    Ca {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// The one crypto provider of the process: ring (no C toolchain needed, unlike aws-lc).
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Every certificate of a PEM file (a leaf and its intermediates, or CA roots).
pub fn load_certs(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read = |source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(read)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            what,
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Read {
        what: "private key",
        path: path.to_path_buf(),
        source,
    })
}

/// The CA roots of a PEM file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs("CA file", path)? {
        roots.add(cert).map_err(|source| TlsError::Ca {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}

/// A certificate chain and its key, checked to match.
pub fn load_identity(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs("certificate", cert)?;
    let der = load_key(key)?;
    CertifiedKey::from_der(chain, der, &provider())
        .map(Arc::new)
        .map_err(|source| TlsError::Identity {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            source,
        })
}

/// Where a listener's TLS material lives, and whether clients must present a certificate.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that client certificates must chain to; `None`: no client certificates asked.
    pub client_ca: Option<PathBuf>,
    /// Refuse, at the handshake, a client without a certificate signed by `client_ca` (the
    /// peer listener); otherwise such a client is served without an identity (the API).
    pub require_client_cert: bool,
}

/// One listener's TLS: the configuration new connections get, swapped whole on reload, and
/// the identity it holds (also presented on outgoing peer connections, see
/// [`ServerTls::client_cert_resolver`]).
pub struct ServerTls {
    files: TlsFiles,
    config: ArcSwap<ServerConfig>,
    identity: Arc<ArcSwap<CertifiedKey>>,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    pub fn load(files: TlsFiles) -> Result<Self, TlsError> {
        let (config, identity) = build(&files)?;
        Ok(ServerTls {
            files,
            config: ArcSwap::from(config),
            identity: Arc::new(ArcSwap::from(identity)),
        })
    }

    /// Reads the files again. On success, connections accepted from now on (and outgoing
    /// peer connections opened from now on) use the new material; connections already
    /// established keep theirs. On failure nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let (config, identity) = build(&self.files)?;
        self.config.store(config);
        self.identity.store(identity);
        Ok(())
    }

    /// The configuration for the next accepted connection.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config.load_full()
    }

    pub fn files(&self) -> &TlsFiles {
        &self.files
    }

    /// Presents this listener's current certificate as a client certificate (outgoing peer
    /// connections), following reloads.
    pub fn client_cert_resolver(&self) -> Arc<dyn ResolvesClientCert> {
        Arc::new(CurrentIdentity(self.identity.clone()))
    }
}

fn build(files: &TlsFiles) -> Result<(Arc<ServerConfig>, Arc<CertifiedKey>), TlsError> {
    let identity = load_identity(&files.cert, &files.key)?;
    let verifier = match &files.client_ca {
        None => WebPkiClientVerifier::no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(load_roots(ca)?);
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
            let builder = if files.require_client_cert {
                builder
            } else {
                builder.allow_unauthenticated()
            };
            builder.build().map_err(|source| TlsError::Verifier {
                path: ca.clone(),
                source,
            })?
        }
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(Fixed(identity.clone())));
    // The server speaks HTTP/1.1 only (serve.rs).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), identity))
}

/// The server certificate of one configuration (a reload builds a new configuration).
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The client certificate of outgoing peer connections: whatever the peer listener holds now.
#[derive(Debug)]
struct CurrentIdentity(Arc<ArcSwap<CertifiedKey>>);

impl ResolvesClientCert for CurrentIdentity {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The identity of a connection's verified client certificate, if it presented one (rustls
/// only reports certificates its verifier accepted).
pub fn client_identity(conn: &rustls::ServerConnection) -> Option<ClientIdentity> {
    let leaf = conn.peer_certificates()?.first()?;
    common_name(leaf).map(|name| ClientIdentity { name })
}

/// The subject CN of a DER certificate.
pub fn common_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// Asks a running node to reload its certificates and keys from disk (the binary triggers it
/// on SIGHUP). Cloneable; a default handle is never triggered unless someone calls
/// [`Reload::trigger`].
#[derive(Clone, Debug)]
pub struct Reload {
    tx: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            tx: Arc::new(tokio::sync::watch::channel(0).0),
        }
    }
}

impl Reload {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reloads every listener's TLS material (a failure is logged and keeps the old one).
    pub fn trigger(&self) {
        self.tx.send_modify(|n| *n += 1);
    }

    /// Changes whenever a reload is triggered.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_with_cn(cn: &str) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn a_certificate_names_its_subject_common_name() {
        assert_eq!(
            common_name(&cert_with_cn("scarab-node-3")).as_deref(),
            Some("scarab-node-3")
        );
    }

    #[test]
    fn a_certificate_without_a_common_name_names_no_one() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let der = params.self_signed(&key).unwrap().der().clone();
        assert_eq!(common_name(&der), None);
    }

    #[test]
    fn a_reload_that_fails_keeps_the_configuration_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let files = TlsFiles {
            cert: dir.path().join("c.pem"),
            key: dir.path().join("k.pem"),
            client_ca: None,
            require_client_cert: false,
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        let tls = ServerTls::load(files.clone()).unwrap();
        let before = tls.config();
        std::fs::write(&files.key, "not a key").unwrap();
        assert!(tls.reload().is_err());
        assert!(Arc::ptr_eq(&before, &tls.config()));
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        tls.reload().unwrap();
        assert!(!Arc::ptr_eq(&before, &tls.config()));
    }
}
