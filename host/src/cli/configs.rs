//! `scarab config ...`: read, write, list, delete, history, rollback (and `watch`, in
//! [`super::watch`]).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Subcommand;
use comfy_table::Table;
use serde_json::Value;

use scarab_client::types::PutConfig;
use scarab_client::{HistoryOptions, ListOptions, ReadOptions, WatchOptions, WriteOptions};

use super::output::{META_COLUMNS, meta_cells, meta_rows, print_json, print_rows};
use super::{ClientOpts, Output};

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Create or replace a config.
    Put {
        key: String,
        /// The schema: by default the key's current one (required to create a key).
        #[arg(long)]
        schema: Option<String>,
        /// The schema version: by default the key's current one when the schema stays, else
        /// the latest registered version of the schema.
        #[arg(long = "schema-version")]
        schema_version: Option<u32>,
        /// The value as JSON text.
        #[arg(long, conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from a JSON file (`-` for stdin).
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Only if the key's current revision is this (compare-and-set).
        #[arg(long)]
        if_match: Option<u64>,
        /// Only if the key does not exist.
        #[arg(long, conflicts_with = "if_match")]
        create: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Read a config.
    Get {
        key: String,
        /// Serve from the node's local state (may be behind).
        #[arg(long)]
        stale: bool,
        /// Read the value converted to this version of its schema.
        #[arg(long = "schema-version")]
        schema_version: Option<u32>,
        /// Read the key as it was at this revision.
        #[arg(long)]
        revision: Option<u64>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// A key's revisions, newest first (deletes included).
    History {
        key: String,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only revisions older than this one (the previous page's `next_before`).
        #[arg(long)]
        before: Option<u64>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Write a key's value at an earlier revision as a new revision (validated like a write).
    Rollback {
        key: String,
        /// The revision whose value comes back.
        #[arg(long)]
        to: u64,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Follow the changes under a prefix, one JSON line per change, until interrupted
    /// (reconnects and resumes from the last revision seen).
    Watch {
        #[arg(long, default_value = "")]
        prefix: String,
        /// Start at this revision (default: changes from now on).
        #[arg(long)]
        from_revision: Option<u64>,
        /// Only configs of this schema.
        #[arg(long)]
        schema: Option<String>,
        /// Values converted to this version of --schema.
        #[arg(long = "schema-version", requires = "schema")]
        schema_version: Option<u32>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List configs under a prefix (follows pages).
    List {
        #[arg(long, default_value = "")]
        prefix: String,
        /// Stop after this many configs.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Delete a config.
    Delete {
        key: String,
        #[arg(long)]
        if_match: Option<u64>,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

/// A value given as `--value TEXT`, or `--file PATH` (`-`: stdin), parsed as JSON (numbers
/// as written).
pub fn read_value(value: Option<String>, file: Option<&Path>) -> anyhow::Result<Value> {
    let text = match (value, file) {
        (Some(v), _) => v,
        (None, Some(f)) if f.as_os_str() == "-" => {
            std::io::read_to_string(std::io::stdin()).map_err(|e| anyhow!("stdin: {e}"))?
        }
        (None, Some(f)) => {
            std::fs::read_to_string(f).map_err(|e| anyhow!("{}: {e}", f.display()))?
        }
        (None, None) => return Err(anyhow!("give the value with --value or --file")),
    };
    serde_json::from_str(&text).map_err(|e| anyhow!("the value is not JSON: {e}"))
}

/// The schema and version of `config put`: the flags, else the key's current ones, else (a
/// new key, or another schema) the latest registered version of the schema.
async fn schema_of_write(
    client: &scarab_client::Client,
    key: &str,
    schema: Option<String>,
    version: Option<u32>,
) -> anyhow::Result<(String, u32)> {
    if let (Some(s), Some(v)) = (&schema, version) {
        return Ok((s.clone(), v));
    }
    let current = match client.get(key).await {
        Ok(entry) => Some(entry.into_inner().meta),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let schema = match (schema, &current) {
        (Some(s), _) => s,
        (None, Some(m)) => m.schema.clone(),
        (None, None) => {
            return Err(super::output::InputError(format!(
                "{key} does not exist: give its schema with --schema (and --schema-version, by default the latest)"
            ))
            .into());
        }
    };
    let version = match (version, &current) {
        (Some(v), _) => v,
        (None, Some(m)) if m.schema == schema => m.schema_version,
        (None, _) => {
            let versions = client.schema_versions(&schema).await?.into_inner();
            versions
                .versions
                .iter()
                .map(|v| v.version)
                .max()
                .ok_or_else(|| anyhow!("schema {schema} has no registered version"))?
        }
    };
    Ok((schema, version))
}

/// A limit flag as the API takes it (it refuses more than 1000 itself).
fn limit(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub async fn run(cmd: ConfigCmd) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Put {
            key,
            schema,
            schema_version,
            value,
            file,
            if_match,
            create,
            opts,
        } => {
            let value = read_value(value, file.as_deref())?;
            let client = opts.client()?;
            let (schema, schema_version) =
                schema_of_write(&client, &key, schema, schema_version).await?;
            let mut write = WriteOptions::new();
            if let Some(rev) = if_match {
                write = write.if_match(rev);
            }
            if create {
                write = write.if_none_match_any();
            }
            let meta = client
                .put_with(&key, &PutConfig::new(schema, schema_version, value), &write)
                .await?
                .into_inner();
            match opts.output {
                Output::Json | Output::Yaml => print_json(&meta),
                Output::Table => print_rows(&meta_rows(&meta)),
            }
        }
        ConfigCmd::Get {
            key,
            stale,
            schema_version,
            revision,
            opts,
        } => {
            let mut read = ReadOptions::new();
            if stale {
                read = read.stale();
            }
            if let Some(v) = schema_version {
                read = read.schema_version(v);
            }
            if let Some(r) = revision {
                read = read.revision(r);
            }
            let entry = opts.client()?.get_with(&key, &read).await?.into_inner();
            match opts.output {
                Output::Json | Output::Yaml => print_json(&entry),
                Output::Table => {
                    print_rows(&meta_rows(&entry.meta));
                    print_json(&entry.value);
                }
            }
        }
        ConfigCmd::History {
            key,
            limit: n,
            before,
            opts,
        } => {
            let mut history = HistoryOptions::new().limit(limit(n));
            if let Some(b) = before {
                history = history.before(b);
            }
            let page = opts.client()?.history(&key, &history).await?.into_inner();
            super::output::print_as(opts.output, &page, |page| {
                let mut t = Table::new();
                t.set_header([
                    "revision",
                    "key_version",
                    "schema_version",
                    "updated_at",
                    "updated_by",
                    "value",
                ]);
                for e in &page.items {
                    let mut value = if e.deleted {
                        "(deleted)".to_string()
                    } else {
                        e.value.to_string()
                    };
                    if value.len() > 60 {
                        let cut = (0..=57)
                            .rev()
                            .find(|i| value.is_char_boundary(*i))
                            .unwrap_or(0);
                        value.truncate(cut);
                        value.push_str("...");
                    }
                    t.add_row([
                        e.meta.revision.to_string(),
                        e.meta.key_version.to_string(),
                        e.meta.schema_version.to_string(),
                        e.meta.updated_at.clone(),
                        e.meta.updated_by.clone(),
                        value,
                    ]);
                }
                println!("{t}");
                if let Some(b) = page.next_before {
                    println!("older revisions: --before {b}");
                }
            });
        }
        ConfigCmd::Rollback { key, to, opts } => {
            let rolled = opts.client()?.rollback(&key, to).await?.into_inner();
            match opts.output {
                Output::Json | Output::Yaml => print_json(&rolled),
                Output::Table => print_rows(&meta_rows(&rolled.meta)),
            }
        }
        ConfigCmd::Watch {
            prefix,
            from_revision,
            schema,
            schema_version,
            opts,
        } => {
            let mut watch = WatchOptions::prefix(prefix);
            if let Some(r) = from_revision {
                watch = watch.from_revision(r);
            }
            if let Some(s) = schema {
                watch = watch.schema(s);
            }
            if let Some(v) = schema_version {
                watch = watch.schema_version(v);
            }
            super::watch::follow(&opts.client()?, watch).await?;
        }
        ConfigCmd::List {
            prefix,
            limit: n,
            opts,
        } => {
            let client = opts.client()?;
            let mut page_opts = ListOptions::prefix(prefix).limit(limit(n.min(1000)));
            let mut items = Vec::new();
            loop {
                let page = client.list_page(&page_opts).await?.into_inner();
                items.extend(page.items);
                match page.next {
                    Some(next) if items.len() < n => page_opts = page_opts.after(next),
                    _ => break,
                }
            }
            items.truncate(n);
            match opts.output {
                Output::Json | Output::Yaml => print_json(&items),
                Output::Table => {
                    let mut t = Table::new();
                    t.set_header(META_COLUMNS);
                    for entry in &items {
                        t.add_row(meta_cells(&entry.meta));
                    }
                    println!("{t}");
                }
            }
        }
        ConfigCmd::Delete {
            key,
            if_match,
            opts,
        } => {
            let mut write = WriteOptions::new();
            if let Some(rev) = if_match {
                write = write.if_match(rev);
            }
            let deleted = opts.client()?.delete_with(&key, &write).await?;
            match opts.output {
                Output::Json | Output::Yaml => print_json(&deleted),
                Output::Table => print_rows(&[
                    ("key", deleted.key.clone()),
                    ("revision", deleted.revision.to_string()),
                ]),
            }
        }
    }
    Ok(())
}
