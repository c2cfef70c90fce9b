//! Certificates for TLS tests, made by the binary under test (`scarab cert`), and HTTPS
//! clients that trust a given CA and present a given identity.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::{POLL_INTERVAL, REQUEST_TIMEOUT, scarab_bin};

/// The CA of the client API of nodes started from now on, when a suite runs whole clusters
/// with client TLS (the nemesis): every harness client then speaks https and trusts only it.
static CLIENT_CA: std::sync::RwLock<Option<PathBuf>> = std::sync::RwLock::new(None);

/// Makes harness clients speak https to node APIs, trusting `ca` alone (`None`: plain http).
pub fn set_client_ca(ca: Option<PathBuf>) {
    *CLIENT_CA.write().expect("CA lock") = ca;
}

pub fn client_ca() -> Option<PathBuf> {
    CLIENT_CA.read().expect("CA lock").clone()
}

/// `https` when harness clients speak TLS to node APIs, else `http`.
pub fn api_scheme() -> &'static str {
    if client_ca().is_some() {
        "https"
    } else {
        "http"
    }
}

/// A directory of certificates: a CA (`ca.pem`, `ca-key.pem`) and what `scarab cert` made
/// with it. Removed with the value.
#[derive(Debug)]
pub struct Pki {
    dir: tempfile::TempDir,
}

/// A certificate and its key.
#[derive(Clone, Debug)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    /// A new development CA (`scarab cert ca`).
    pub fn new() -> Result<Pki> {
        let dir = tempfile::Builder::new().prefix("pki-").tempdir()?;
        cert(&["ca", "--out", &dir.path().display().to_string()])?;
        Ok(Pki { dir })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }

    /// `scarab cert node --node-id ID --host 127.0.0.1 --host localhost` (replacing an
    /// earlier one: a rotation).
    pub fn node(&self, id: u64) -> Result<Pair> {
        self.node_for(id, &["127.0.0.1", "localhost"])
    }

    /// A node certificate valid for `hosts` (e.g. a cluster node's own loopback IP and its
    /// peer proxy's).
    pub fn node_for(&self, id: u64, hosts: &[&str]) -> Result<Pair> {
        let d = self.dir().display().to_string();
        let id = id.to_string();
        let mut args = vec!["node", "--ca", &d, "--node-id", &id, "--out", &d, "--force"];
        for h in hosts {
            args.extend(["--host", h]);
        }
        cert(&args)?;
        Ok(self.pair(&format!("node-{id}")))
    }

    /// The flags of TLS on the client API with `pair`.
    pub fn api_args(&self, pair: &Pair) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            pair.cert.display().to_string(),
            "--tls-key".into(),
            pair.key.display().to_string(),
        ]
    }

    /// The flags of peer mutual TLS with `pair` and this CA (the node also needs
    /// `--peer-listen`).
    pub fn peer_args(&self, pair: &Pair) -> Vec<String> {
        vec![
            "--peer-tls-cert".into(),
            pair.cert.display().to_string(),
            "--peer-tls-key".into(),
            pair.key.display().to_string(),
            "--peer-tls-ca".into(),
            self.ca().display().to_string(),
        ]
    }

    /// `scarab cert client --name NAME`.
    pub fn client(&self, name: &str) -> Result<Pair> {
        let d = self.dir().display().to_string();
        cert(&["client", "--ca", &d, "--name", name, "--out", &d])?;
        Ok(self.pair(name))
    }

    fn pair(&self, name: &str) -> Pair {
        Pair {
            cert: self.dir().join(format!("{name}.pem")),
            key: self.dir().join(format!("{name}-key.pem")),
        }
    }
}

/// Runs `scarab cert ARGS`, failing with its output if it fails.
pub fn cert(args: &[&str]) -> Result<std::process::Output> {
    let out = Command::new(scarab_bin())
        .arg("cert")
        .args(args)
        .output()
        .context("running scarab cert")?;
    if !out.status.success() {
        bail!(
            "scarab cert {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// An HTTPS client trusting only `ca` (when given), presenting `identity` (when given), that
/// reports the server's certificate (`tls_info`). `pool`: keep connections alive (else every
/// request makes a new connection and handshake).
pub fn https_client(
    ca: Option<&Path>,
    identity: Option<&Pair>,
    pool: bool,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .tls_built_in_root_certs(false)
        .tls_info(true)
        .use_rustls_tls();
    if let Some(ca) = ca {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca)?)?);
    }
    if let Some(pair) = identity {
        let mut pem = std::fs::read(&pair.cert)?;
        pem.extend(std::fs::read(&pair.key)?);
        builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
    }
    if !pool {
        builder = builder.pool_max_idle_per_host(0);
    }
    Ok(builder.build()?)
}

/// The DER of the first certificate in a PEM file.
pub fn cert_der(path: &Path) -> Result<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    Ok(CertificateDer::from_pem_file(path)?.as_ref().to_vec())
}

/// The certificate the server presented on this response's connection.
pub fn server_cert(response: &reqwest::Response) -> Option<Vec<u8>> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()?
        .peer_certificate()
        .map(<[u8]>::to_vec)
}

/// Polls `GET url` with `client` until it answers 200 or the deadline passes.
pub async fn wait_200(client: &reqwest::Client, url: &str, within: Duration) -> Result<()> {
    let deadline = Instant::now() + within;
    loop {
        let last = match client.get(url).timeout(Duration::from_secs(2)).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("HTTP {}", r.status()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("{url} did not answer 200 within {within:?}: {last}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
