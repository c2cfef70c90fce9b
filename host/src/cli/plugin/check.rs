//! `scarab plugin check`: run a plugin (and optionally a JSON Schema) on one document offline,
//! through exactly the validation path the server uses.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use comfy_table::Table;

use scarab::plugins::CallContext;
use scarab::schema::check_document;

use super::{Offline, SandboxArgs, VersionArgs, read_json};

#[derive(Args)]
pub struct CheckArgs {
    plugin: PathBuf,
    document: PathBuf,
    /// The config key the plugin is told (plugins check rules on keys). Required, unless
    /// --no-key says to validate as `POST .../validate` without a key does.
    #[arg(long, required_unless_present = "no_key")]
    key: Option<String>,
    /// Tell the plugin no key (an empty one).
    #[arg(long, conflicts_with = "key")]
    no_key: bool,
    #[command(flatten)]
    version: VersionArgs,
    #[command(flatten)]
    sandbox: SandboxArgs,
    /// Print the verdict as JSON.
    #[arg(long)]
    json: bool,
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

pub fn run(args: CheckArgs) -> ExitCode {
    let (name, schema_version) = match args.version.resolve() {
        Ok(v) => v,
        Err(e) => return fail(e),
    };
    let doc = match read_json(&args.document) {
        Ok(d) => d,
        Err(e) => return fail(format!("{e:#}")),
    };
    let offline = match Offline::load(&args.plugin, args.version.schema.as_deref(), &args.sandbox) {
        Ok(o) => o,
        Err(e) => return fail(format!("{e:#}")),
    };
    let key = args.key.unwrap_or_default();
    let text = serde_json::to_string(&doc).expect("JSON serialises");
    let ctx = CallContext {
        key: &key,
        schema_name: &name,
        schema_version,
    };
    let violations = match check_document(
        &offline.host,
        offline.validator.as_ref(),
        Some(&offline.plugin),
        &ctx,
        &doc,
        &text,
        scarab::schema::DEFAULT_MAX_VIOLATIONS,
    ) {
        Ok(v) => v,
        Err(failure) => return fail(format!("plugin {} {failure}", offline.digest)),
    };
    let digest = &offline.digest;
    if args.json {
        let out = serde_json::json!({"valid": violations.is_empty(), "violations": violations, "plugin_digest": digest});
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("json prints")
        );
    } else if violations.is_empty() {
        println!("valid ({name} v{schema_version}, key {key:?}, plugin {digest})");
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
