//! `scarab import`: configs from static files (JSON, TOML, YAML, `.env`) or the environment,
//! each a validated write. A dry run validates every document and prints every violation of
//! every file, writing nothing; a real run writes in transactions of at most `--batch`
//! documents (all or nothing each), creates what is absent, updates what differs, leaves
//! identical values alone (so it is safe to run again) and says which is which.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use serde_json::Value;

use scarab_client::types::{Condition, ErrorCode, TxnOp, TxnRequest};
use scarab_client::{Client, Error};

use super::ClientOpts;
use super::formats::{self, Format};

#[derive(Args)]
pub struct ImportArgs {
    /// Files and directories (searched recursively for .json, .toml, .yaml, .yml, .env).
    paths: Vec<PathBuf>,
    /// The schema every document is written at.
    #[arg(long)]
    schema: String,
    #[arg(long = "schema-version")]
    schema_version: u32,
    /// Prepended to every key (`stores/`).
    #[arg(long, default_value = "")]
    prefix: String,
    /// How a file names its key: `path` (its path below the directory given, without
    /// extension; a file given by name: its stem), `file-stem`, or `field:/pointer` (the
    /// string at that JSON Pointer in the document).
    #[arg(long, default_value = "path")]
    key_from: String,
    /// Also one document from the environment variables starting with this (`APP_`):
    /// `APP_DB__PORT=5432` is `{"db": {"port": 5432}}`, typed by the JSON Schema. Its key is
    /// --env-key.
    #[arg(long, requires = "env_key")]
    from_env: Option<String>,
    /// The key of the --from-env document (after --prefix).
    #[arg(long)]
    env_key: Option<String>,
    /// Validate every document and print every violation; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Documents per transaction (at most the server's --max-txn-ops).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    #[command(flatten)]
    opts: ClientOpts,
}

/// A document to import, and where it came from.
struct Doc {
    key: String,
    origin: String,
    value: Value,
}

/// Every importable file under `path` (itself if it is a file), sorted, with the path its
/// key is named by.
fn files(path: &Path) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    if path.is_file() {
        let stem = PathBuf::from(path.file_stem().context("a file name")?);
        return Ok(vec![(path.to_path_buf(), stem)]);
    }
    let mut out = Vec::new();
    let mut todo = vec![path.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
            let entry = entry?;
            let p = entry.path();
            // Not followed: a link back up would import the same files again and again.
            if entry.file_type()?.is_symlink() && p.is_dir() {
                eprintln!("skipping {} (a link to a directory)", p.display());
            } else if p.is_dir() {
                todo.push(p);
            } else if Format::of(&p).is_some() {
                let relative = p.strip_prefix(path)?.with_extension("");
                out.push((p, relative));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn key_of(args: &ImportArgs, file: &Path, named: &Path, value: &Value) -> anyhow::Result<String> {
    let name = match args.key_from.as_str() {
        "path" => named
            .to_str()
            .with_context(|| format!("{}: not UTF-8", named.display()))?
            .to_string(),
        "file-stem" => file
            .file_stem()
            .and_then(|s| s.to_str())
            .with_context(|| format!("{}: no file stem", file.display()))?
            .to_string(),
        other => {
            let pointer = other.strip_prefix("field:").with_context(|| {
                format!("--key-from {other:?}: path, file-stem or field:/pointer")
            })?;
            value
                .pointer(pointer)
                .and_then(Value::as_str)
                .with_context(|| format!("{}: no string at {pointer}", file.display()))?
                .to_string()
        }
    };
    let key = format!("{}{name}", args.prefix);
    scarab_client::types::validate_key(&key).map_err(|e| anyhow!("{}: {e}", file.display()))?;
    Ok(key)
}

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    if args.paths.is_empty() && args.from_env.is_none() {
        bail!("nothing to import: give files or directories, or --from-env PREFIX");
    }
    let client = args.opts.client()?;
    // The JSON Schema types environment values (and tells early that the version exists).
    let schema = client
        .schema_version(&args.schema, args.schema_version)
        .await
        .with_context(|| format!("schema {} version {}", args.schema, args.schema_version))?
        .body
        .schema;
    let mut docs = Vec::new();
    for path in &args.paths {
        for (file, named) in files(path)? {
            let value = formats::read(&file, schema.as_ref())?;
            let key = key_of(&args, &file, &named, &value)?;
            docs.push(Doc {
                key,
                origin: file.display().to_string(),
                value,
            });
        }
    }
    if let (Some(prefix), Some(key)) = (&args.from_env, &args.env_key) {
        let value = formats::from_env(std::env::vars(), prefix, schema.as_ref())?;
        let key = format!("{}{key}", args.prefix);
        scarab_client::types::validate_key(&key).map_err(|e| anyhow!("--env-key: {e}"))?;
        docs.push(Doc {
            key,
            origin: format!("environment {prefix}*"),
            value,
        });
    }
    let mut seen = BTreeMap::new();
    for d in &docs {
        if let Some(first) = seen.insert(d.key.clone(), d.origin.clone()) {
            bail!("{} and {first} both name key {}", d.origin, d.key);
        }
    }
    if args.dry_run {
        return dry_run(&client, &args, &docs).await;
    }
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    for batch in docs.chunks(args.batch.max(1)) {
        let mut txn = TxnRequest::new();
        let mut written = Vec::new();
        for d in batch {
            let (condition, verb) = match client.get(&d.key).await {
                Ok(current) => {
                    let meta = &current.body.meta;
                    if meta.schema == args.schema
                        && meta.schema_version == args.schema_version
                        && current.body.value == d.value
                    {
                        println!("unchanged {} ({})", d.key, d.origin);
                        unchanged += 1;
                        continue;
                    }
                    (Condition::revision(&d.key, meta.revision), "updated")
                }
                Err(Error::Api(e)) if e.code == ErrorCode::NotFound => {
                    (Condition::exists(&d.key, false), "created")
                }
                Err(e) => return Err(e).with_context(|| format!("reading {}", d.key)),
            };
            txn = txn.when(condition).op(TxnOp::put(
                &d.key,
                &args.schema,
                args.schema_version,
                d.value.clone(),
            ));
            written.push((d, verb));
        }
        if written.is_empty() {
            continue;
        }
        if let Err(e) = client.txn(&txn).await {
            for (i, (d, _)) in written.iter().enumerate() {
                eprintln!("  /ops/{i} is {} ({})", d.key, d.origin);
            }
            return Err(anyhow::Error::new(e).context(format!(
                "a batch of {} was refused and nothing of it written ({created} created, {updated} updated before it)",
                written.len()
            )));
        }
        for (d, verb) in written {
            println!("{verb} {} ({})", d.key, d.origin);
            if verb == "created" {
                created += 1;
            } else {
                updated += 1;
            }
        }
    }
    println!("{created} created, {updated} updated, {unchanged} unchanged");
    Ok(())
}

async fn dry_run(client: &Client, args: &ImportArgs, docs: &[Doc]) -> anyhow::Result<()> {
    let mut invalid = 0;
    for d in docs {
        let verdict = client
            .validate(&args.schema, args.schema_version, &d.value, Some(&d.key))
            .await
            .with_context(|| d.origin.clone())?;
        if verdict.valid {
            println!("valid   {} ({})", d.key, d.origin);
            continue;
        }
        invalid += 1;
        println!("INVALID {} ({})", d.key, d.origin);
        for v in &verdict.violations {
            println!(
                "        {} {} [{}] {}",
                super::output::wire_text(&v.source),
                if v.path.is_empty() { "/" } else { &v.path },
                v.code.as_deref().unwrap_or("-"),
                v.message
            );
        }
    }
    println!(
        "dry run: {} valid, {invalid} invalid, nothing written",
        docs.len() - invalid
    );
    if invalid > 0 {
        bail!("{invalid} document(s) would be refused");
    }
    Ok(())
}
