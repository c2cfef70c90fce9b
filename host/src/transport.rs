//! How this node reaches its peers: the one builder of every outgoing peer HTTP client (Raft
//! RPCs, forwarded requests, membership probes, joining), so that each carries the same
//! source address and the same peer credentials: the node's certificate and the cluster CA
//! (peer mutual TLS), or the cluster secret.
//!
//! Owns: the client side of the peer boundary and the cluster secret itself. Does not own:
//! what is sent (the callers in [`crate::raft::network`] and [`crate::cluster`]) nor the server
//! side (`crate::serve`, the peer guard in `crate::cluster`).

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};

/// The header that carries the cluster secret on every peer request.
pub const SECRET_HEADER: &str = "x-scarab-cluster-secret";

/// Fewest bytes a cluster secret may have (after trimming): 256 bits.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot read the cluster secret {path}: {source}")]
    ReadSecret {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the cluster secret in {path} has {len} bytes; it must have at least {MIN_SECRET_BYTES} (e.g. `head -c 32 /dev/urandom | base64 > {path}`)"
    )]
    ShortSecret { path: PathBuf, len: usize },
    #[error(
        "the cluster secret in {path} cannot be sent as an HTTP header (use printable ASCII, e.g. base64)"
    )]
    SecretNotHeader { path: PathBuf },
    #[error("peer TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// The shared secret every peer request carries when the peer port is not protected by
/// mutual TLS (`--cluster-secret-file`).
#[derive(Clone)]
pub struct ClusterSecret(Arc<[u8]>);

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// The file's content without surrounding whitespace (a trailing newline is usual).
    pub fn load(path: &Path) -> Result<Self, TransportError> {
        let bytes = std::fs::read(path).map_err(|source| TransportError::ReadSecret {
            path: path.to_path_buf(),
            source,
        })?;
        let trimmed = bytes.trim_ascii();
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(TransportError::ShortSecret {
                path: path.to_path_buf(),
                len: trimmed.len(),
            });
        }
        if HeaderValue::from_bytes(trimmed).is_err() {
            return Err(TransportError::SecretNotHeader {
                path: path.to_path_buf(),
            });
        }
        Ok(ClusterSecret(trimmed.into()))
    }

    /// Whether `given` is the secret, in time that does not depend on where they differ.
    pub fn matches(&self, given: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        // The length is not secret (at least 32 bytes whatever it is); the content is.
        self.0.len() == given.len() && bool::from(self.0.ct_eq(given))
    }
}

/// What every outgoing peer connection of this node shares.
#[derive(Clone, Debug, Default)]
pub struct PeerTransport {
    /// The address outgoing peer connections come from (the peer listener's IP when it is a
    /// specific one), so that peers and firewalls see a stable source.
    local_ip: Option<IpAddr>,
    /// Peer mutual TLS: trusts only the cluster CA, presents this node's certificate.
    tls: Option<Arc<rustls::ClientConfig>>,
    secret: Option<ClusterSecret>,
    /// When each peer last answered a Raft RPC of this node.
    contacts: Contacts,
}

/// When each peer last answered this node over the peer port (any answer: an HTTP response
/// came back). The leader sends every member a heartbeat each 100 ms, so on the leader this
/// says which members are reachable; a follower only hears from the leader.
#[derive(Clone, Debug, Default)]
pub struct Contacts(Arc<std::sync::Mutex<std::collections::HashMap<u64, std::time::Instant>>>);

impl Contacts {
    pub fn answered(&self, node: u64) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(node, std::time::Instant::now());
    }

    /// How long ago `node` last answered; `None` if it never has (since this node started).
    pub fn since(&self, node: u64) -> Option<Duration> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&node).map(|at| at.elapsed())
    }
}

impl PeerTransport {
    pub fn new(local_ip: Option<IpAddr>) -> Self {
        PeerTransport {
            local_ip,
            ..Default::default()
        }
    }

    /// Peer connections trust only the CA in `ca` and present `identity` (which follows
    /// the peer listener's reloads).
    pub fn with_tls(
        mut self,
        ca: &Path,
        identity: Arc<dyn rustls::client::ResolvesClientCert>,
    ) -> Result<Self, TransportError> {
        let roots = crate::tls::load_roots(ca)?;
        let mut config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TransportError::Tls(crate::tls::TlsError::Config(e)))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(identity);
        // The server side speaks HTTP/1.1 only (serve.rs).
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        self.tls = Some(Arc::new(config));
        Ok(self)
    }

    /// Every peer request carries `secret`.
    pub fn with_secret(mut self, secret: ClusterSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    pub fn contacts(&self) -> &Contacts {
        &self.contacts
    }

    pub fn local_ip(&self) -> Option<IpAddr> {
        self.local_ip
    }

    /// A client for peer requests (with the peer credentials); each request sets its own
    /// overall timeout.
    pub fn client(&self, connect_timeout: Duration) -> reqwest::Client {
        let mut headers = HeaderMap::new();
        if let Some(secret) = &self.secret {
            let mut value = HeaderValue::from_bytes(&secret.0).expect("checked when loaded");
            value.set_sensitive(true);
            headers.insert(SECRET_HEADER, value);
        }
        self.builder(connect_timeout)
            .default_headers(headers)
            .build()
            .expect("build peer http client")
    }

    /// A client for another node's client API (`GET /v1/cluster/self` when joining or probing
    /// a new member): the same TLS trust, but never the cluster secret, since an API URL may
    /// be anything an operator typed.
    pub fn api_client(&self, connect_timeout: Duration) -> reqwest::Client {
        self.builder(connect_timeout)
            .build()
            .expect("build peer http client")
    }

    fn builder(&self, connect_timeout: Duration) -> reqwest::ClientBuilder {
        let builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .local_address(self.local_ip);
        match &self.tls {
            Some(tls) => builder.use_preconfigured_tls((**tls).clone()),
            None => builder,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> Result<ClusterSecret, TransportError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, text).unwrap();
        ClusterSecret::load(&path)
    }

    #[test]
    fn a_secret_has_at_least_32_bytes_without_surrounding_whitespace() {
        let short = format!("  {}\n", "a".repeat(31));
        assert!(matches!(
            secret(&short),
            Err(TransportError::ShortSecret { len: 31, .. })
        ));
        let s = secret(&format!("{}\n", "a".repeat(32))).unwrap();
        assert!(s.matches("a".repeat(32).as_bytes()));
        assert!(!s.matches(format!("{}\n", "a".repeat(32)).as_bytes()));
        assert!(!s.matches("b".repeat(32).as_bytes()));
        assert!(!s.matches(b""));
    }

    #[test]
    fn a_secret_that_is_no_header_value_is_refused() {
        let bad = format!("{}\u{7f}{}", "a".repeat(20), "a".repeat(20));
        assert!(matches!(
            secret(&bad),
            Err(TransportError::SecretNotHeader { .. })
        ));
    }
}
