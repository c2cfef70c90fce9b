//! `scarab dev`: one node on this machine with every schema in `schemas/` registered with its
//! example plugin, ready to try.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use scarab::config::NodeConfig;
use scarab::{Listeners, run};
use scarab_client::types::{ErrorCode, Role};
use scarab_client::{Client, SchemaUpload};

use super::output::{print_error, report};
use super::schemas::read_file;
use super::shutdown_signal;

#[derive(clap::Args)]
pub struct DevArgs {
    /// Where the dev node keeps its data.
    #[arg(long, default_value = ".scarab-dev")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7070")]
    listen: std::net::SocketAddr,
    /// Directory of example schemas: NAME/vN.json.
    #[arg(long, default_value = "schemas")]
    schemas_dir: PathBuf,
    /// Directory of built plugins: NAME_vN.wasm (`-` in NAME becomes `_`).
    #[arg(long, default_value = "target/wasm32-wasip2/plugin")]
    plugins_dir: PathBuf,
    /// Register a schema or plugin again when its file changes (checked twice a second), as
    /// at start: in place when nothing uses the version, else as the next free version.
    #[arg(long)]
    watch: bool,
}

/// One example schema version found on disk.
#[derive(Clone, PartialEq)]
struct Example {
    name: String,
    version: u32,
    schema: PathBuf,
    plugin: Option<PathBuf>,
}

fn find_examples(schemas_dir: &Path, plugins_dir: &Path) -> std::io::Result<Vec<Example>> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(schemas_dir)? {
        let dir = dir?.path();
        let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(String::from) else {
            continue;
        };
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir)? {
            let file = file?.path();
            let Some(stem) = file.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            // vN.json, not vN.examples.json
            let Some(version) = stem
                .strip_prefix('v')
                .and_then(|s| s.strip_suffix(".json"))
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let plugin = plugins_dir.join(format!("{}_v{version}.wasm", name.replace('-', "_")));
            out.push(Example {
                name: name.clone(),
                version,
                schema: file,
                plugin: plugin.exists().then_some(plugin),
            });
        }
    }
    out.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
    Ok(out)
}

pub async fn run_dev(args: DevArgs) -> ExitCode {
    let started = Instant::now();
    let examples = match find_examples(&args.schemas_dir, &args.plugins_dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "error: cannot read {}: {e} (run `scarab dev` from the repository root or pass --schemas-dir)",
                args.schemas_dir.display()
            );
            return ExitCode::from(2);
        }
    };
    let seen = stamps(&examples);
    let mut config = NodeConfig::with_data_dir(args.data_dir.clone());
    config.listen = args.listen;
    let api = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let url = format!("http://{}", api.local_addr().expect("bound"));
    let mut node = tokio::spawn(run(
        config,
        Listeners {
            api,
            peer: None,
            reload: scarab::Reload::default(),
        },
        shutdown_signal(),
    ));
    let client = match Client::builder().endpoint(&url).actor("scarab-dev").build() {
        Ok(c) => c,
        Err(e) => return report(&e.into()),
    };
    // A node that cannot start (its directory in use, a damaged one) says why at once, not
    // after the wait.
    tokio::select! {
        ready = wait_ready(&client, Duration::from_secs(30)) => {
            if let Err(e) = ready {
                let e = anyhow::Error::new(e).context("the dev node did not become ready");
                print_error(e.as_ref());
                return ExitCode::FAILURE;
            }
        }
        ended = &mut node => return node_ended(ended),
    }
    // Built plugins present, and none for a version: it has none by design (like `common`,
    // shared definitions); without any, the plugins were not built, and the examples (and
    // the README's tour) need them: a dev node without them would only mislead.
    let plugins_built = examples.iter().any(|ex| ex.plugin.is_some());
    if !plugins_built && !examples.is_empty() {
        eprintln!(
            "error: no plugins in {}: build them first with `rustup target add wasm32-wasip2 && cargo plugins` (the README's first command does), or pass --plugins-dir",
            args.plugins_dir.display()
        );
        return ExitCode::from(2);
    }
    for ex in &examples {
        if let Err(e) = register(&client, ex).await {
            return report(&e);
        }
    }
    println!(
        "\nScarab dev node ready at {url} in {:.1?} (data in {})",
        started.elapsed(),
        args.data_dir.display()
    );
    println!(
        "Authentication is off: anyone who can reach {url} may read and change everything. \
         The dev server serves loopback addresses only; `scarab serve --auth` is the secure way."
    );
    println!("The web console: {url}/ui/");
    println!("Try:");
    println!(
        "  curl -sX PUT {url}/v1/configs/stores/orders -H 'content-type: application/json' \\\n    -d '{{\"schema\":\"store\",\"schema_version\":1,\"value\":{{\"store_id\":\"orders\",\"data_dir\":\"/var/lib/scarab/orders\",\"timeout_ms\":5000,\"auto_start\":true,\"priority\":\"normal\",\"resource_limits\":{{\"max_memory_mb\":512,\"max_connections\":100}}}}}}'"
    );
    println!("  curl -s {url}/v1/configs/stores/orders");
    if args.watch {
        println!(
            "Watching {} and {}: a changed schema or plugin is registered again.",
            args.schemas_dir.display(),
            args.plugins_dir.display()
        );
        tokio::spawn(watch(
            client.clone(),
            args.schemas_dir.clone(),
            args.plugins_dir.clone(),
            seen,
        ));
    }
    println!("Stop with Ctrl-C.");
    node_ended(node.await)
}

/// The exit of `scarab dev` once its node has stopped.
fn node_ended(ended: Result<Result<(), scarab::NodeError>, tokio::task::JoinError>) -> ExitCode {
    match ended {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            print_error(&e);
            ExitCode::FAILURE
        }
        Err(e) => {
            print_error(&e);
            ExitCode::FAILURE
        }
    }
}

/// Registers one example version and says what it did. The dev node keeps its data between
/// runs, so the version may be registered already with other content (a rebuilt plugin, an
/// edited schema): then it is replaced (deleted and registered again) when no config and no
/// other schema uses it, and otherwise registered as the next free version of its schema.
/// Dev mode only: a real deployment registers a new version.
async fn register(client: &Client, ex: &Example) -> anyhow::Result<()> {
    let upload = || -> anyhow::Result<SchemaUpload> {
        let mut upload = SchemaUpload::from_bytes(read_file(&ex.schema)?);
        if let Some(plugin) = &ex.plugin {
            upload = upload.plugin(read_file(plugin)?);
        }
        Ok(upload)
    };
    let digest = |r: &scarab_client::types::Registered| {
        r.version
            .plugin_digest
            .clone()
            .unwrap_or_else(|| "none".into())
    };
    let first = client
        .register_schema(&ex.name, ex.version, &upload()?)
        .await;
    let conflict = match first {
        Ok(r) => {
            let what = if r.created {
                "registered"
            } else {
                "unchanged:"
            };
            println!("{what} {} v{} (plugin {})", ex.name, ex.version, digest(&r));
            return Ok(());
        }
        Err(e)
            if e.api()
                .is_some_and(|a| a.code == ErrorCode::SchemaVersionConflict) =>
        {
            e
        }
        Err(e) => return Err(e.into()),
    };
    match client.delete_schema(&ex.name, ex.version).await {
        Ok(_) => {
            let r = client
                .register_schema(&ex.name, ex.version, &upload()?)
                .await?;
            println!(
                "replaced {} v{}: its schema or plugin changed (plugin {})",
                ex.name,
                ex.version,
                digest(&r)
            );
            Ok(())
        }
        Err(e) if e.api().is_some_and(|a| a.code == ErrorCode::SchemaInUse) => {
            let latest = client
                .schema_versions(&ex.name)
                .await?
                .versions
                .iter()
                .map(|v| v.version)
                .max()
                .unwrap_or(ex.version);
            let next = latest + 1;
            let r = client
                .register_schema(&ex.name, next, &upload()?.force())
                .await
                .map_err(|e| anyhow::anyhow!("{conflict}; registering it as v{next} too: {e}"))?;
            println!(
                "{} v{} changed but is in use ({}); registered the new content as {} v{next} (plugin {})",
                ex.name,
                ex.version,
                e.api().map(|a| a.message.as_str()).unwrap_or_default(),
                ex.name,
                digest(&r)
            );
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The modification time of a file (`None` if it is gone).
fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// `--watch`: every half second, finds the examples again and registers any whose schema or
/// plugin file is new or changed since it was last seen.
/// When an example's files last changed.
type Stamp = (Option<std::time::SystemTime>, Option<std::time::SystemTime>);

fn stamp(ex: &Example) -> Stamp {
    (
        modified(&ex.schema),
        ex.plugin.as_deref().and_then(modified),
    )
}

/// The stamps of `examples`, taken before they are read for registration: a file changed
/// after that is seen as changed (even while the first registration is under way).
fn stamps(examples: &[Example]) -> std::collections::HashMap<(String, u32), Stamp> {
    examples
        .iter()
        .map(|ex| ((ex.name.clone(), ex.version), stamp(ex)))
        .collect()
}

async fn watch(
    client: Client,
    schemas_dir: PathBuf,
    plugins_dir: PathBuf,
    mut seen: std::collections::HashMap<(String, u32), Stamp>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Ok(examples) = find_examples(&schemas_dir, &plugins_dir) else {
            continue;
        };
        for ex in examples {
            let now = stamp(&ex);
            let key = (ex.name.clone(), ex.version);
            if seen.get(&key) == Some(&now) {
                continue;
            }
            seen.insert(key, now);
            if let Err(e) = register(&client, &ex).await {
                eprintln!("{} v{}: not registered: {e:#}", ex.name, ex.version);
            }
        }
    }
}

/// Why the dev node was not ready in time.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// It answered, but did not lead.
    #[error("after {waited:?} the node is {role:?}, not the leader")]
    NotLeader { waited: Duration, role: Role },
    /// Its last answer was an error.
    #[error("no status after {waited:?}")]
    NoStatus {
        waited: Duration,
        #[source]
        source: scarab_client::Error,
    },
}

/// Polls the node's status until it leads (a one-node cluster), or the deadline passes.
pub async fn wait_ready(client: &Client, timeout: Duration) -> Result<(), NotReady> {
    let started = Instant::now();
    loop {
        let status = client.status().await;
        match status {
            Ok(s) if s.role == Role::Leader => return Ok(()),
            _ if started.elapsed() < timeout => tokio::time::sleep(Duration::from_millis(20)).await,
            Ok(s) => {
                return Err(NotReady::NotLeader {
                    waited: started.elapsed(),
                    role: s.role,
                });
            }
            Err(source) => {
                return Err(NotReady::NoStatus {
                    waited: started.elapsed(),
                    source,
                });
            }
        }
    }
}
