//! `scarab plugin ...`: the plugin author's commands, all offline (no server): `new` makes a
//! project, `check` validates one document, `test` runs a plugin over a schema's examples
//! (validator and migrator), each through exactly the code path the server uses.

mod check;
mod new;
mod test;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use scarab::config::parse_size;
use scarab::plugins::{LoadedPlugin, PluginHost, PluginLimits, digest};
use scarab::schema::{SchemaValidator, compile_json_schema};

#[derive(Subcommand)]
pub enum PluginCmd {
    /// Validate DOC.json with PLUGIN.wasm (and --schema), with no server. Exit code 0 when the
    /// document is valid, 1 when it has violations, 2 when the plugin or an input is bad.
    Check(check::CheckArgs),
    /// Run PLUGIN.wasm over a schema's examples file, as the server would: every valid
    /// example must pass, every invalid one must give exactly the violations it lists; a
    /// migrator must upgrade the previous version's valid examples to documents valid here,
    /// and (if it downgrades) back to the same documents. Exit code 0 when all pass, 1 when
    /// one fails, 2 when the plugin or an input is bad.
    Test(test::TestArgs),
    /// Make a new plugin project (the plugin, its JSON Schema, examples that pass and fail,
    /// a test) in Rust, Python or JavaScript, that builds on its own.
    New(new::NewArgs),
}

pub fn run(cmd: PluginCmd) -> std::process::ExitCode {
    match cmd {
        PluginCmd::Check(args) => check::run(args),
        PluginCmd::Test(args) => test::run(args),
        PluginCmd::New(args) => new::run(args),
    }
}

/// The sandbox a command runs the plugin in: the server's defaults.
#[derive(Args, Clone)]
pub struct SandboxArgs {
    /// Time budget of one call, in CPU time of the thread running it.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Memory cap of the plugin.
    #[arg(long, default_value = "32MiB", value_parser = parse_size)]
    memory: usize,
    /// Core module instances the component may contain (the server's --plugin-core-instances).
    #[arg(long, default_value_t = scarab::plugins::DEFAULT_CORE_INSTANCES)]
    core_instances: u32,
}

/// Which schema version a command plays: `--name`/`--schema-version`, or what the schema
/// file's path says (`schemas/NAME/vN.json`).
#[derive(Args, Clone)]
pub struct VersionArgs {
    /// The JSON Schema, checked before the plugin as the server does. A path
    /// `.../NAME/vN.json` also gives the schema name and version.
    #[arg(long)]
    schema: Option<PathBuf>,
    /// The schema name the plugin is told (default: from --schema's directory).
    #[arg(long)]
    name: Option<String>,
    /// The schema version the plugin is told (default: from --schema's file name, vN.json).
    #[arg(long = "schema-version")]
    schema_version: Option<u32>,
}

/// What a `.../NAME/vN.json` (or `vN.examples.json`) path names.
pub fn name_and_version(path: &Path) -> Option<(String, u32)> {
    let file = path.file_name()?.to_str()?;
    let version = file
        .strip_prefix('v')?
        .split('.')
        .next()?
        .parse::<u32>()
        .ok()
        .filter(|v| *v > 0)?;
    let name = path.parent()?.file_name()?.to_str()?.to_string();
    scarab_client::types::validate_schema_name(&name).ok()?;
    Some((name, version))
}

impl VersionArgs {
    /// The schema name and version, given or derived; an error saying how to give them.
    fn resolve(&self) -> anyhow::Result<(String, u32)> {
        let derived = self.schema.as_deref().and_then(name_and_version);
        let name = self
            .name
            .clone()
            .or_else(|| derived.as_ref().map(|(n, _)| n.clone()));
        let version = self.schema_version.or(derived.map(|(_, v)| v));
        match (name, version) {
            (Some(name), Some(version)) => {
                scarab_client::types::validate_schema_name(&name).map_err(|e| anyhow!("{e}"))?;
                Ok((name, version))
            }
            _ => bail!(
                "which schema version is this? Give --name and --schema-version, or a --schema \
                 file at .../NAME/vN.json"
            ),
        }
    }
}

/// A plugin loaded in an offline sandbox, with the JSON Schema it is checked beside.
pub struct Offline {
    pub host: PluginHost,
    pub plugin: Arc<LoadedPlugin>,
    pub digest: String,
    pub validator: Option<SchemaValidator>,
}

impl Offline {
    pub fn load(
        plugin: &Path,
        schema: Option<&Path>,
        sandbox: &SandboxArgs,
    ) -> anyhow::Result<Self> {
        let bytes = std::fs::read(plugin).with_context(|| plugin.display().to_string())?;
        let validator = match schema {
            None => None,
            Some(path) => Some(
                compile_json_schema(&read_json(path)?)
                    .with_context(|| path.display().to_string())?,
            ),
        };
        let limits = PluginLimits {
            timeout: sandbox.timeout,
            memory_bytes: sandbox.memory,
            max_instances: 4,
            core_instances: sandbox.core_instances,
            ..PluginLimits::default()
        };
        let host = PluginHost::new(
            limits,
            std::env::temp_dir().join("scarab-plugin-check-cache"),
        )?;
        let digest = digest(&bytes);
        let plugin = host
            .load(&digest, &bytes)
            .with_context(|| plugin.display().to_string())?;
        Ok(Self {
            host,
            plugin,
            digest,
            validator,
        })
    }
}

/// A JSON file; the error names it.
pub fn read_json(path: &Path) -> anyhow::Result<Value> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not JSON", path.display()))
}
