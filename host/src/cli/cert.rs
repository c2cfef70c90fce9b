//! `scarab cert ...`: a development certificate authority and the certificates a cluster
//! needs, so that TLS on both ports takes a few commands (README, "Transport security").
//!
//! Owns: making keys and certificates with rcgen and writing them (keys mode 0600, never
//! over an existing file without `--force`). Does not own: using them (the server's
//! `tls.rs`). A production deployment uses its own PKI; these are ECDSA P-256 certificates
//! valid for a year (the CA for ten).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Subcommand;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use sha2::{Digest, Sha256};

/// The CN prefix the peer port requires of node certificates (`cluster/guard.rs`).
const NODE_CN_PREFIX: &str = "scarab-node-";

#[derive(Subcommand)]
pub enum CertCmd {
    /// Make a development CA: DIR/ca.pem and DIR/ca-key.pem (mode 0600).
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Make a node certificate signed by the CA: CN scarab-node-ID, the hosts as SANs, for
    /// both server and client use (one certificate serves the API, the peer port and
    /// outgoing peer connections). Writes DIR/node-ID.pem and DIR/node-ID-key.pem.
    Node {
        /// Directory holding ca.pem and ca-key.pem.
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        node_id: u64,
        /// A DNS name or IP address the node is reached at (repeat for several).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
    /// Make a client certificate signed by the CA: CN NAME (the principal it authenticates
    /// as). Writes DIR/NAME.pem and DIR/NAME-key.pem.
    Client {
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        name: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        force: bool,
    },
}

pub fn run(cmd: CertCmd) -> anyhow::Result<()> {
    match cmd {
        CertCmd::Ca { out, force } => {
            let key = KeyPair::generate()?;
            let mut params = params(
                "Scarab development CA",
                Vec::new(),
                Duration::from_secs(10 * 365 * 86400),
                &key,
            )?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let cert = params.self_signed(&key)?;
            write_pair(&out, "ca", &cert.pem(), &key.serialize_pem(), force)
        }
        CertCmd::Node {
            ca,
            node_id,
            hosts,
            out,
            force,
        } => {
            if node_id == 0 {
                bail!("--node-id must be at least 1");
            }
            leaf(
                &ca,
                &format!("{NODE_CN_PREFIX}{node_id}"),
                hosts,
                &[
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ],
                &out,
                &format!("node-{node_id}"),
                force,
            )
        }
        CertCmd::Client {
            ca,
            name,
            out,
            force,
        } => {
            if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                bail!("--name must be a principal name usable as a file name");
            }
            leaf(
                &ca,
                &name,
                Vec::new(),
                &[ExtendedKeyUsagePurpose::ClientAuth],
                &out,
                &name,
                force,
            )
        }
    }
}

/// A certificate's parameters: subject CN, SANs, valid from an hour ago (clock skew) for
/// `valid`, with a serial of its own.
fn params(
    cn: &str,
    sans: Vec<String>,
    valid: Duration,
    key: &KeyPair,
) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(sans).context("invalid --host")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::seconds(valid.as_secs() as i64);
    // Unique per certificate (a rotated one is told apart from the old by its serial).
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let mut serial: Vec<u8> = Sha256::new()
        .chain_update(key.public_key_raw())
        .chain_update(nanos.to_be_bytes())
        .finalize()[..16]
        .to_vec();
    serial[0] &= 0x7f; // positive
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    Ok(params)
}

/// A certificate signed by the CA in `ca_dir`.
fn leaf(
    ca_dir: &Path,
    cn: &str,
    sans: Vec<String>,
    usages: &[ExtendedKeyUsagePurpose],
    out: &Path,
    name: &str,
    force: bool,
) -> anyhow::Result<()> {
    let read = |f: &str| {
        let p = ca_dir.join(f);
        std::fs::read_to_string(&p).with_context(|| format!("cannot read {}", p.display()))
    };
    let ca_key = KeyPair::from_pem(&read("ca-key.pem")?).context("ca-key.pem")?;
    let issuer = Issuer::from_ca_cert_pem(&read("ca.pem")?, ca_key).context("ca.pem")?;
    let key = KeyPair::generate()?;
    let mut params = params(cn, sans, Duration::from_secs(365 * 86400), &key)?;
    params.extended_key_usages = usages.to_vec();
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, &issuer)?;
    write_pair(out, name, &cert.pem(), &key.serialize_pem(), force)
}

/// Writes OUT/NAME.pem and OUT/NAME-key.pem (0600), refusing to replace either unless
/// `force`.
fn write_pair(out: &Path, name: &str, cert: &str, key: &str, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let cert_path = out.join(format!("{name}.pem"));
    let key_path = out.join(format!("{name}-key.pem"));
    if !force {
        for p in [&cert_path, &key_path] {
            if p.exists() {
                bail!("{} exists; pass --force to replace it", p.display());
            }
        }
    }
    write(&key_path, key, 0o600)?;
    write(&cert_path, cert, 0o644)?;
    println!("wrote {} and {}", cert_path.display(), key_path.display());
    Ok(())
}

/// Writes a new file and renames it over `path`: a node reloading (SIGHUP) meanwhile reads
/// the old file or the new one, never half of one.
fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("pem.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
