//! The README's API tour, run as written (`tests/tour.sh`) against a fresh `scarab dev` node
//! from the repository root: every documented status must be the real one, so the README
//! cannot drift from the server again.

mod harness;

use std::process::Command;

use anyhow::{Context as _, Result};

use harness::dev::DevNode;
use harness::{scarab_bin, workspace_root};

#[test]
fn the_readme_tour_runs_as_written_against_a_fresh_dev_node() -> Result<()> {
    let root = workspace_root();
    let dev = DevNode::start()?;
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
        .env("S", &dev.base)
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
