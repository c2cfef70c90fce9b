//! A `scarab dev` process, as the README starts it: from the repository root, with the
//! example schemas and plugins, on a free loopback port and a fresh data directory.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use super::{free_port, scarab_bin, workspace_root};

/// Killed (and its directory removed) on drop.
pub struct DevNode {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    _dir: tempfile::TempDir,
}

impl DevNode {
    /// Starts it and waits until it says it is ready: schemas are listed while it is still
    /// registering them, so their presence is no sign.
    pub fn start() -> Result<DevNode> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let mut child = Command::new(scarab_bin())
            .current_dir(workspace_root())
            .args([
                "dev",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path().join("dev"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn scarab dev")?;
        let stdout = child.stdout.take().context("dev stdout")?;
        let node = DevNode {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("dev node ready") {
                    let _ = tx.send(());
                }
            }
        });
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            bail!("scarab dev did not say it was ready within 60 s");
        }
        Ok(node)
    }
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
