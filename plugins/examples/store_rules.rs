// The rules that `store` v1 and v2 share, `include!`d by both plugins (each is its own
// component, so they cannot share a library crate without both exporting the same functions).
// The including crate imports `scarab_plugin_sdk::Violation`.

/// Directories (and everything under them) that a store must not write into.
pub const SYSTEM_DIRS: &[&str] = &[
    "etc", "bin", "sbin", "usr", "boot", "dev", "proc", "sys", "lib", "lib64",
];

/// `data_dir` is absolute, has no `..` segment and is not (inside) a system directory.
pub fn data_dir(dir: &str) -> Option<Violation> {
    const PATH: &str = "/data_dir";
    if !dir.starts_with('/') {
        return Some(
            Violation::new(PATH, format!("data_dir {dir:?} must be an absolute path"))
                .with_code("data-dir-not-absolute"),
        );
    }
    // Lexical normalisation: `//` and `.` segments are harmless, `..` could escape anywhere.
    let segments: Vec<&str> = dir
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if segments.contains(&"..") {
        return Some(
            Violation::new(
                PATH,
                format!("data_dir {dir:?} must not contain '..' segments"),
            )
            .with_code("data-dir-not-normalized"),
        );
    }
    match segments.first() {
        None => Some(
            Violation::new(PATH, "data_dir must not be the root directory")
                .with_code("data-dir-in-system-dir"),
        ),
        Some(top) if SYSTEM_DIRS.contains(top) => Some(
            Violation::new(
                PATH,
                format!("data_dir {dir:?} is inside the system directory /{top}"),
            )
            .with_code("data-dir-in-system-dir"),
        ),
        Some(_) => None,
    }
}

/// A store that does not start by itself must have priority `low`.
pub fn auto_start_priority(auto_start: bool, priority: &str) -> Option<Violation> {
    (!auto_start && priority != "low").then(|| {
        Violation::new(
            "/priority",
            format!("a store with auto_start false must have priority \"low\", not {priority:?}"),
        )
        .with_code("auto-start-priority")
    })
}

/// When the key is not empty, its last `/`-separated segment is the store id.
pub fn store_id_matches_key(store_id: &str, key: &str) -> Option<Violation> {
    if key.is_empty() {
        return None;
    }
    let last = key.rsplit('/').next().unwrap_or(key);
    (store_id != last).then(|| {
        Violation::new(
            "/store_id",
            format!(
                "store_id {store_id:?} must equal the last segment of the key {key:?} ({last:?})"
            ),
        )
        .with_code("store-id-key-mismatch")
    })
}
