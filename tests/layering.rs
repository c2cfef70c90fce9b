//! The server's modules form layers (README, "Inside the server"): a module uses modules of
//! its own layer or below, never one above. Data flows one way, api → schema → raft → store,
//! and a helper both sides need lives below both. This test reads the sources of
//! `host/src`, so that a new `use` that points upward fails CI instead of slowly tangling
//! the crate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// From the top (the command line) down. A module may use its own layer and the ones after it.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["node", "serve", "restore"],
    &["datadir"],
    &["api"],
    &["migrate"],
    &["schema", "plugins"],
    &["propose"],
    &["cluster"],
    &["raft"],
    &["store"],
    &[
        "config",
        "json",
        "failpoint",
        "clock",
        "transport",
        "tls",
        "metrics",
    ],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read host/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a source file belongs to (`store` for `store/history.rs`).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    Some(first.trim_end_matches(".rs").to_string())
}

/// The modules a file's code names as `crate::x` (comments and the tests module excluded).
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("#[cfg(test)]") {
            break;
        }
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let root: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !root.is_empty() {
                        found.push((n + 1, root));
                    }
                }
            } else {
                let root: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((n + 1, root));
            }
        }
    }
    found
}

#[test]
fn no_module_of_the_server_uses_a_module_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut upward = Vec::new();
    let mut unknown = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(from) = layer_of(&module) else {
            unknown.insert(module.clone(), file.display().to_string());
            continue;
        };
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (line, used) in uses(&text) {
            match layer_of(&used) {
                Some(to) if to < from => upward.push(format!(
                    "{}:{line}: `{module}` uses `crate::{used}`, a layer above it",
                    file.strip_prefix(&src).unwrap_or(file).display()
                )),
                Some(_) => {}
                None => {
                    unknown.insert(used, file.display().to_string());
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS (add them where they belong): {unknown:?}"
    );
    assert!(upward.is_empty(), "upward uses:\n{}", upward.join("\n"));
}

/// Handlers take `Query` and `Path` from `api/extract.rs`, whose rejections are the one JSON
/// error shape; axum's own answer in plain text.
#[test]
fn handlers_take_query_and_path_from_the_api_extractors() {
    let api = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut files = Vec::new();
    sources(&api, &mut files);
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("extract.rs")) {
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            let axum_extract = code.contains("axum::extract::Query")
                || code.contains("axum::extract::Path")
                || (code.starts_with("use axum::extract::{")
                    && (code.contains("Query")
                        || code.contains(" Path")
                        || code.contains("{Path")));
            if axum_extract {
                found.push(format!("{}:{}: {code}", file.display(), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "use super::extract::{{Query, Path}} instead:\n{}",
        found.join("\n")
    );
}
