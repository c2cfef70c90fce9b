//! `scarab plugin check`: run a plugin (and optionally a JSON Schema) on a document offline,
//! through exactly the validation path the server uses.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use comfy_table::Table;
use serde_json::Value;

use scarab::config::parse_size;
use scarab::plugins::{CallContext, PluginHost, PluginLimits, digest};
use scarab::schema::{check_document, compile_json_schema};

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Validate DOC.json with PLUGIN.wasm (and --schema), with no server. Exit code 0 when the
    /// document is valid, 1 when it has violations, 2 when the plugin or an input is bad.
    Check {
        plugin: PathBuf,
        document: PathBuf,
        /// A JSON Schema to check first, as the server does.
        #[arg(long)]
        schema: Option<PathBuf>,
        /// The config key the plugin is told about.
        #[arg(long, default_value = "")]
        key: String,
        /// The schema name the plugin is told about.
        #[arg(long, default_value = "check")]
        name: String,
        #[arg(long = "schema-version", default_value_t = 1)]
        schema_version: u32,
        #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[arg(long, default_value = "32MiB", value_parser = parse_size)]
        memory: usize,
        /// Print the verdict as JSON.
        #[arg(long)]
        json: bool,
    },
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

pub fn run(cmd: PluginCmd) -> ExitCode {
    let PluginCmd::Check {
        plugin,
        document,
        schema,
        key,
        name,
        schema_version,
        timeout,
        memory,
        json,
    } = cmd;
    let bytes = match std::fs::read(&plugin) {
        Ok(b) => b,
        Err(e) => return fail(format!("{}: {e}", plugin.display())),
    };
    let doc: Value = match std::fs::read(&document)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("not JSON: {e}")))
    {
        Ok(d) => d,
        Err(e) => return fail(format!("{}: {e}", document.display())),
    };
    let validator = match schema {
        None => None,
        Some(path) => {
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    serde_json::from_slice::<Value>(&b).map_err(|e| format!("not JSON: {e}"))
                });
            match parsed.map(|s| compile_json_schema(&s).map_err(|e| e.to_string())) {
                Ok(Ok(v)) => Some(v),
                Ok(Err(e)) | Err(e) => return fail(format!("{}: {e}", path.display())),
            }
        }
    };
    let limits = PluginLimits {
        timeout,
        memory_bytes: memory,
        max_instances: 4,
        ..PluginLimits::default()
    };
    let host = match PluginHost::new(
        limits,
        std::env::temp_dir().join("scarab-plugin-check-cache"),
    ) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let digest = digest(&bytes);
    let loaded = match host.load(&digest, &bytes) {
        Ok(l) => l,
        Err(e) => return fail(format!("{}: {e}", plugin.display())),
    };
    let text = serde_json::to_string(&doc).expect("JSON serialises");
    let ctx = CallContext {
        key: &key,
        schema_name: &name,
        schema_version,
    };
    let violations = match check_document(
        &host,
        validator.as_ref(),
        Some(&loaded),
        &ctx,
        &doc,
        &text,
        scarab::schema::DEFAULT_MAX_VIOLATIONS,
    ) {
        Ok(v) => v,
        Err(failure) => return fail(format!("plugin {digest} {failure}")),
    };
    if json {
        let out = serde_json::json!({"valid": violations.is_empty(), "violations": violations, "plugin_digest": digest});
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("json prints")
        );
    } else if violations.is_empty() {
        println!("valid ({digest})");
    } else {
        let mut t = Table::new();
        t.set_header(["source", "path", "code", "message"]);
        for v in &violations {
            t.add_row([
                serde_json::to_value(v.source)
                    .ok()
                    .and_then(|s| s.as_str().map(String::from))
                    .unwrap_or_default(),
                v.path.clone(),
                v.code.clone().unwrap_or_default(),
                v.message.clone(),
            ]);
        }
        println!("{t}");
    }
    if violations.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
