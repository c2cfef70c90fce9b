//! Fault injection for tests that drive real `scarab` processes (like etcd's gofail, without a
//! special build). It owns nothing but the switch; the code that can fail decides where to ask.
//!
//! Off unless the environment variable `SCARAB_FAILPOINTS_DIR` names a directory when the
//! process starts. Then the point `name` fails while the file `<dir>/<name>` exists, so a test
//! can trigger and clear a fault at any moment without talking to the process. Points:
//!
//! - `fsync`: a Raft log or vote fsync returns an I/O error instead of syncing.
//! - `migration-slow`: the storage-migration worker waits 200 ms before each batch, so that
//!   a test can act while a migration is surely running.

use std::path::PathBuf;
use std::sync::OnceLock;

/// The environment variable that turns failpoints on.
pub const ENV: &str = "SCARAB_FAILPOINTS_DIR";

fn dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os(ENV).map(PathBuf::from))
        .as_ref()
}

/// Whether the failpoint `name` is triggered now. One `stat` when failpoints are on; nothing
/// otherwise.
pub fn triggered(name: &str) -> bool {
    dir().is_some_and(|d| d.join(name).exists())
}

/// An injected I/O error, if the failpoint `name` is triggered.
pub fn io_error(name: &str) -> std::io::Result<()> {
    if triggered(name) {
        return Err(std::io::Error::other(format!(
            "injected by failpoint {name} ({ENV})"
        )));
    }
    Ok(())
}
