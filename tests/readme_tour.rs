//! The README's API tour, run as written (`tests/tour.sh`) against a fresh `scarab dev` node
//! from the repository root: every documented status must be the real one, so the README
//! cannot drift from the server again.

mod harness;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use harness::{free_port, scarab_bin, workspace_root};

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_readme_tour_runs_as_written_against_a_fresh_dev_node() -> Result<()> {
    let root = workspace_root();
    let dir = tempfile::tempdir()?;
    let port = free_port();
    let mut dev = Child(
        Command::new(scarab_bin())
            .current_dir(&root)
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
            .context("spawn scarab dev")?,
    );
    // Ready once it says so: schemas are listed while it is still registering them.
    let stdout = dev.0.stdout.take().context("dev stdout")?;
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
    let bin_dir = scarab_bin().parent().context("bin dir")?.to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .arg("300")
        .arg("bash")
        .arg(root.join("tests/tour.sh"))
        .arg(root.join("README.md"))
        .current_dir(&root)
        .env("S", format!("http://127.0.0.1:{port}"))
        .env("PATH", path)
        .output()
        .context("run tests/tour.sh")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the README's tour failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let steps = stdout.matches('✓').count();
    assert!(steps >= 40, "only {steps} checked steps ran:\n{stdout}");
    println!("the README's tour: {steps} steps checked");
    Ok(())
}
