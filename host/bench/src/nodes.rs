//! The benchmarked nodes: `scarab serve` processes of the server binary on loopback ports,
//! started, waited for, stopped and killed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use scarab_client::{Client, ClientBuilder};

/// With `--tls`, the directory of the development CA and the nodes' certificates. Set once
/// at start, for the whole run (like the server binary): every node and every client of
/// every measurement then uses TLS without each function passing it along.
static TLS: OnceLock<PathBuf> = OnceLock::new();

/// Makes a CA and certificates for up to 5 nodes in `dir` (with `server`'s `scarab cert`),
/// and has every node and client of this run use them.
pub fn use_tls(server: &Path, dir: &Path) -> Result<()> {
    let run = |args: &[&str]| -> Result<()> {
        let out = Command::new(server)
            .arg("cert")
            .args(args)
            .output()
            .context("scarab cert")?;
        if !out.status.success() {
            bail!(
                "scarab cert {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    };
    let d = dir.display().to_string();
    run(&["ca", "--out", &d, "--force"])?;
    for id in 1..=5 {
        run(&[
            "node",
            "--ca",
            &d,
            "--node-id",
            &id.to_string(),
            "--host",
            "127.0.0.1",
            "--out",
            &d,
            "--force",
        ])?;
    }
    TLS.set(dir.to_path_buf())
        .map_err(|_| anyhow!("TLS is set up already"))
}

/// With `--tls`, the directory of the run's CA (`ca.pem`) and node certificates
/// (`node-N.pem`, `node-N-key.pem`, for 127.0.0.1).
pub fn tls_dir() -> Option<&'static Path> {
    TLS.get().map(PathBuf::as_path)
}

/// A client builder that trusts the run's CA when `--tls` is on.
pub fn client_builder() -> ClientBuilder {
    let builder = match TLS.get() {
        Some(dir) => Client::builder().ca_cert_file(dir.join("ca.pem")),
        None => Client::builder(),
    };
    match token() {
        Some(t) => builder.token(t),
        None => builder,
    }
}

/// The `scarab` binary: `explicit` (`--scarab-bin`, `SCARAB_BIN`), else `scarab` next to this
/// executable (`target/<profile>/scarab`, where Cargo puts both).
pub fn server_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        if !path.is_file() {
            bail!(
                "the server binary {} (--scarab-bin, SCARAB_BIN) does not exist",
                path.display()
            );
        }
        return Ok(path.to_path_buf());
    }
    let exe = std::env::current_exe().context("cannot locate this executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("{} has no directory", exe.display()))?;
    let path = dir.join(format!("scarab{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        let build = if dir.file_name().is_some_and(|d| d == "debug") {
            "cargo build -p scarab"
        } else {
            "cargo build --release -p scarab"
        };
        bail!(
            "the server binary {} does not exist: build it with `{build}`, or name one with \
             --scarab-bin (or SCARAB_BIN)",
            path.display()
        );
    }
    Ok(path)
}

/// With `--auth`: the root token every node bootstraps from its token file, and every client
/// of the benchmark sends.
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Runs the nodes with `--auth` and every client with a root token made here.
pub fn enable_auth() -> Result<()> {
    use base64::Engine as _;
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    getrandom::fill(&mut id)
        .and_then(|()| getrandom::fill(&mut secret))
        .map_err(|e| anyhow!("no randomness for a token: {e}"))?;
    let token = format!(
        "scarab_{}_{}",
        hex::encode(id),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    );
    TOKEN
        .set(token)
        .map_err(|_| anyhow!("authentication is on already"))
}

/// The clients' token, with `--auth`.
pub fn token() -> Option<&'static str> {
    TOKEN.get().map(String::as_str)
}

/// The benchmarked `scarab serve` processes; killed when dropped.
pub struct Nodes {
    children: Vec<Option<Child>>,
    /// Each node's client API URL (node `i + 1` at index `i`).
    pub apis: Vec<String>,
}

impl Nodes {
    /// The process id of node `i` (0-based).
    pub fn pid(&self, i: usize) -> Result<u32> {
        self.children[i]
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))
    }

    /// Stops node `i` with SIGTERM (a graceful shutdown) and waits for it.
    pub fn stop(&mut self, i: usize) -> Result<()> {
        let mut child = self.children[i]
            .take()
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))?;
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("kill -TERM")?;
        child.wait().context("waiting for a stopped node")?;
        Ok(())
    }

    /// Kills node `i` with SIGKILL; returns, once it has exited, when the signal was sent.
    pub fn kill(&mut self, i: usize) -> Result<Instant> {
        let mut child = self.children[i]
            .take()
            .ok_or_else(|| anyhow!("node {} is not running", i + 1))?;
        child.kill().context("kill -9")?;
        let killed = Instant::now();
        let _ = child.wait();
        Ok(killed)
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `n` free loopback ports, all different: every listener is held until all are picked (two
/// picks in a row may return the same port once the first is dropped, and a node given the
/// same port for its API and its peer listener does not start).
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("no free port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// `n` pairs of free loopback ports (an API and a peer port for each node), all different.
pub fn free_port_pairs(n: usize) -> Result<Vec<(u16, u16)>> {
    Ok(free_ports(2 * n)?.chunks(2).map(|p| (p[0], p[1])).collect())
}

/// Starts `n` nodes of `server` (one bootstrapped node, or `n` nodes with
/// --bootstrap-expect), node `i` with its data in `data_dir/n{i}` and its log in
/// `data_dir/n{i}.log`.
pub fn start_nodes(server: &Path, n: usize, data_dir: &Path) -> Result<Nodes> {
    start_nodes_with(server, n, data_dir, &[], true)
}

/// [`start_nodes`], with `extra` flags for every node, and without a peer listener of its
/// own unless `peer_port` (a node then sizes its connection limit for one listener only).
pub fn start_nodes_with(
    server: &Path,
    n: usize,
    data_dir: &Path,
    extra: &[String],
    peer_port: bool,
) -> Result<Nodes> {
    let ports = free_port_pairs(n)?;
    let scheme = if TLS.get().is_some() { "https" } else { "http" };
    let apis: Vec<String> = ports
        .iter()
        .map(|(a, _)| format!("{scheme}://127.0.0.1:{a}"))
        .collect();
    let mut nodes = Nodes {
        children: Vec::new(),
        apis: apis.clone(),
    };
    std::fs::create_dir_all(data_dir).with_context(|| format!("{}", data_dir.display()))?;
    for (i, (api, peer)) in ports.iter().enumerate() {
        let mut cmd = Command::new(server);
        cmd.args(["serve", "--node-id", &(i + 1).to_string()])
            .args(["--listen", &format!("127.0.0.1:{api}")]);
        if peer_port {
            cmd.args(["--peer-listen", &format!("127.0.0.1:{peer}")]);
        }
        cmd.arg("--data-dir")
            .arg(data_dir.join(format!("n{}", i + 1)))
            .args(extra);
        if let Some(token) = token() {
            let file = data_dir.join(format!("n{}.root-token", i + 1));
            std::fs::write(&file, format!("{token}\n")).context("writing a root token file")?;
            cmd.arg("--auth").arg("--root-token-file").arg(file);
        }
        if let Some(pki) = TLS.get() {
            let cert = pki.join(format!("node-{}.pem", i + 1));
            let key = pki.join(format!("node-{}-key.pem", i + 1));
            cmd.arg("--tls-cert").arg(&cert).arg("--tls-key").arg(&key);
            if n > 1 {
                cmd.arg("--peer-tls-cert")
                    .arg(&cert)
                    .arg("--peer-tls-key")
                    .arg(&key)
                    .arg("--peer-tls-ca")
                    .arg(pki.join("ca.pem"));
            }
        }
        if n > 1 {
            cmd.args([
                "--bootstrap-expect",
                &n.to_string(),
                "--join",
                &apis.join(","),
            ]);
        }
        let log = std::fs::File::create(data_dir.join(format!("n{}.log", i + 1)))
            .context("cannot create the node log")?;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", server.display()))?;
        nodes.children.push(Some(child));
    }
    Ok(nodes)
}

/// A client of the node at `api` that sends each request once: a benchmark counts a failure
/// as a failure, and a failover measurement must not wait out the client's backoff.
pub fn once_client(api: &str, timeout: Duration) -> Result<Client> {
    Ok(client_builder()
        .endpoint(api)
        .actor("bench")
        .max_attempts(1)
        .timeout(timeout)
        .build()?)
}

/// Waits until every node agrees on one leader; returns its index in `nodes.apis`.
pub async fn wait_leader(nodes: &Nodes, timeout: Duration) -> Result<usize> {
    let clients = nodes
        .apis
        .iter()
        .map(|api| once_client(api, Duration::from_secs(2)))
        .collect::<Result<Vec<_>>>()?;
    let deadline = Instant::now() + timeout;
    loop {
        let mut leaders = Vec::with_capacity(clients.len());
        for c in &clients {
            leaders.push(c.status().await.ok().and_then(|s| s.body.leader));
        }
        if let Some(Some(l)) = leaders.first()
            && leaders.iter().all(|x| *x == Some(*l))
        {
            return Ok(*l as usize - 1);
        }
        if Instant::now() > deadline {
            bail!("no agreed leader after {timeout:?}: {leaders:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills the leader with SIGKILL during a stream of writes of `key` through another node and
/// returns the time from the kill to the first write that succeeds afterwards.
pub async fn failover(
    nodes: &mut Nodes,
    leader: usize,
    key: &str,
    put: &crate::workload::Put,
) -> Result<Duration> {
    let other = (leader + 1) % nodes.apis.len();
    let client = once_client(&nodes.apis[other], Duration::from_secs(30))?;
    let killed = nodes.kill(leader)?;
    loop {
        if client.put(key, put).await.is_ok() {
            return Ok(killed.elapsed());
        }
        if killed.elapsed() > Duration::from_secs(30) {
            bail!("no successful write within 30 s of the kill");
        }
    }
}
