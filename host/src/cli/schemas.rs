//! `scarab schema ...`: register, inspect, set policies (and `migrate`, in
//! [`super::migrate`]).

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use clap::Subcommand;
use comfy_table::Table;

use scarab_client::SchemaUpload;
use scarab_client::types::{SchemaPolicy, WritePolicy};

use super::output::{print_json, print_rows};
use super::{ClientOpts, Output};

#[derive(Subcommand)]
pub enum SchemaCmd {
    /// Register a schema version (JSON Schema plus optional plugin).
    Push {
        name: String,
        version: u32,
        /// The JSON Schema file.
        #[arg(long)]
        schema: PathBuf,
        /// The plugin component (.wasm).
        #[arg(long)]
        plugin: Option<PathBuf>,
        /// Register even if configs stored at the previous version would not survive the
        /// upgrade (the compatibility report).
        #[arg(long)]
        force: bool,
        /// Only print the compatibility report; register nothing.
        #[arg(long, conflicts_with = "force")]
        check: bool,
        /// Refuse a JSON Schema with no schema keyword at its top level (one that every
        /// document satisfies, such as a config document given by mistake); without it, a
        /// warning.
        #[arg(long)]
        strict: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Rewrite every config of a schema to one version, showing progress.
    Migrate {
        name: String,
        /// The version to migrate to.
        #[arg(long)]
        to: u32,
        /// Convert everything but write nothing; print what would fail.
        #[arg(long)]
        dry_run: bool,
        /// Start it and return; follow it with `scarab schema migrations NAME`.
        #[arg(long, conflicts_with = "dry_run")]
        no_wait: bool,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// A schema's storage migrations and their progress.
    Migrations {
        name: String,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show or set a schema's policy (which versions accept writes).
    Policy {
        name: String,
        /// `latest`: writes only at the highest version; `any`: at any registered version.
        #[arg(long, value_parser = ["any", "latest"])]
        writes: Option<String>,
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// List schemas and their versions.
    List {
        #[command(flatten)]
        opts: ClientOpts,
    },
    /// Show a schema's versions, or one version with its JSON Schema.
    Show {
        name: String,
        version: Option<u32>,
        #[command(flatten)]
        opts: ClientOpts,
    },
}

/// A file's bytes; the error names the file.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Every answer prints as JSON, whatever `-o` says, except `list`'s.
pub async fn run(cmd: SchemaCmd) -> anyhow::Result<()> {
    match cmd {
        SchemaCmd::Push {
            name,
            version,
            schema,
            plugin,
            force,
            check,
            strict,
            opts,
        } => {
            let client = opts.client()?;
            let text = read_file(&schema)?;
            if let Some(doc) = serde_json::from_slice::<serde_json::Value>(&text)
                .ok()
                .filter(|doc| !has_schema_keyword(doc))
            {
                let found = match &doc {
                    serde_json::Value::Object(m) => {
                        let keys: Vec<&str> = m.keys().take(5).map(String::as_str).collect();
                        format!("its top-level keys are {}", keys.join(", "))
                    }
                    _ => "it is not an object".into(),
                };
                let message = format!(
                    "{} has no JSON Schema keyword at its top level ({found}): every document would be valid against it. Is it a config document? A schema says, for example, \"type\", \"properties\" and \"required\"",
                    schema.display()
                );
                if strict {
                    return Err(super::output::InputError(message).into());
                }
                eprintln!("warning: {message} (--strict refuses it)");
            }
            let mut upload = SchemaUpload::from_bytes(text);
            if let Some(p) = &plugin {
                upload = upload.plugin(read_file(p)?);
            }
            if check {
                let checked = client.check_compatibility(&name, version, &upload).await?;
                super::output::print_as(opts.output, &checked, |c| {
                    let r = &c.compatibility;
                    print_rows(&[
                        ("name", r.name.clone()),
                        ("version", r.version.to_string()),
                        (
                            "checked",
                            match r.from_version {
                                Some(from) => format!("{} config(s) at version {from}", r.checked),
                                None => "nothing to check".into(),
                            },
                        ),
                        ("compatible", r.compatible.to_string()),
                        ("failed", r.failed.to_string()),
                    ]);
                    if !r.failures.is_empty() {
                        println!("{}", super::output::failures_table(r));
                    }
                });
                let report = &checked.compatibility;
                if !report.compatible {
                    return Err(anyhow!(
                        "{name} version {version} is not compatible: it would break {} of the {} config(s) at version {} (the report is above); fix them or the plugin, or register with --force",
                        report.failed,
                        report.checked,
                        report.from_version.unwrap_or_default()
                    ));
                }
            } else {
                if force {
                    upload = upload.force();
                }
                let registered = client.register_schema(&name, version, &upload).await?;
                let created = registered.created;
                super::output::print_as(opts.output, &*registered, |r| {
                    let mut rows = version_rows(&r.version);
                    rows.insert(
                        0,
                        (
                            "result",
                            if created {
                                "registered".into()
                            } else {
                                "already registered (same content)".into()
                            },
                        ),
                    );
                    let c = &r.compatibility;
                    rows.push((
                        "compatibility",
                        match c.from_version {
                            Some(from) => format!(
                                "{} config(s) at version {from} checked, {} would fail",
                                c.checked, c.failed
                            ),
                            None => "nothing to check".into(),
                        },
                    ));
                    print_rows(&rows);
                });
            }
        }
        SchemaCmd::Migrate {
            name,
            to,
            dry_run,
            no_wait,
            opts,
        } => super::migrate::run(&opts.client()?, opts.output, &name, to, dry_run, no_wait).await?,
        SchemaCmd::Migrations { name, opts } => {
            let list = opts.client()?.migrations(&name).await?;
            super::output::print_as(opts.output, &*list, |l| {
                super::migrate::print_migrations(&l.migrations)
            });
        }
        SchemaCmd::Policy { name, writes, opts } => {
            let client = opts.client()?;
            match writes {
                Some(w) => {
                    // `any` or `latest` (clap checked), spelt as on the wire.
                    let writes: WritePolicy = serde_json::from_value(w.into())?;
                    let set = client.set_policy(&name, &SchemaPolicy { writes }).await?;
                    super::output::print_as(opts.output, &set, |p| {
                        print_rows(&[
                            ("name", p.name.clone()),
                            ("writes", super::output::wire_text(&p.policy.writes)),
                            ("revision", p.revision.to_string()),
                        ])
                    });
                }
                None => {
                    let view = client.policy(&name).await?;
                    super::output::print_as(opts.output, &*view, |p| {
                        print_rows(&[
                            ("name", p.name.clone()),
                            ("writes", super::output::wire_text(&p.policy.writes)),
                        ])
                    });
                }
            }
        }
        SchemaCmd::List { opts } => {
            let list = opts.client()?.schemas().await?.into_inner();
            match opts.output {
                Output::Json | Output::Yaml => print_json(&list),
                Output::Table => {
                    let mut t = Table::new();
                    t.set_header(["name", "versions"]);
                    for s in &list.schemas {
                        let versions =
                            serde_json::to_string(&s.versions).expect("numbers serialise");
                        t.add_row([s.name.clone(), versions]);
                    }
                    println!("{t}");
                }
            }
        }
        SchemaCmd::Show {
            name,
            version,
            opts,
        } => {
            let client = opts.client()?;
            match version {
                Some(v) => {
                    let sv = client.schema_version(&name, v).await?;
                    super::output::print_as(opts.output, &*sv, |sv| {
                        print_rows(&version_rows(sv));
                        if let Some(schema) = &sv.schema {
                            println!(
                                "{}",
                                serde_json::to_string_pretty(schema).unwrap_or_default()
                            );
                        }
                    });
                }
                None => {
                    let versions = client.schema_versions(&name).await?;
                    super::output::print_as(opts.output, &*versions, |vs| {
                        let mut t = Table::new();
                        t.set_header([
                            "version",
                            "plugin_digest",
                            "revision",
                            "registered_at",
                            "registered_by",
                        ]);
                        for v in &vs.versions {
                            t.add_row([
                                v.version.to_string(),
                                v.plugin_digest.clone().unwrap_or_else(|| "-".into()),
                                v.revision.to_string(),
                                v.registered_at.clone(),
                                v.registered_by.clone(),
                            ]);
                        }
                        println!("{t}");
                    });
                }
            }
        }
    }
    Ok(())
}

/// A schema version's metadata as `name | value` rows.
fn version_rows(v: &scarab_client::types::SchemaVersion) -> Vec<(&'static str, String)> {
    vec![
        ("name", v.name.clone()),
        ("version", v.version.to_string()),
        (
            "plugin_digest",
            v.plugin_digest.clone().unwrap_or_else(|| "-".into()),
        ),
        ("revision", v.revision.to_string()),
        ("registered_at", v.registered_at.clone()),
        ("registered_by", v.registered_by.clone()),
    ]
}

/// The keywords of JSON Schema draft 2020-12 (core, applicator, validation, unevaluated,
/// format, content and meta-data vocabularies).
const SCHEMA_KEYWORDS: &[&str] = &[
    "$schema",
    "$id",
    "$ref",
    "$defs",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "$vocabulary",
    "$comment",
    "definitions",
    "allOf",
    "anyOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentSchemas",
    "prefixItems",
    "items",
    "contains",
    "properties",
    "patternProperties",
    "additionalProperties",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "type",
    "enum",
    "const",
    "multipleOf",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "maxContains",
    "minContains",
    "maxProperties",
    "minProperties",
    "required",
    "dependentRequired",
    "format",
    "contentEncoding",
    "contentMediaType",
    "contentSchema",
    "title",
    "description",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
    "examples",
];

/// Whether `doc` says anything as a JSON Schema: `true`/`false`, or an object with at
/// least one keyword (`{}` says nothing: every document is valid).
fn has_schema_keyword(doc: &serde_json::Value) -> bool {
    match doc {
        serde_json::Value::Bool(_) => true,
        serde_json::Value::Object(m) => m.keys().any(|k| SCHEMA_KEYWORDS.contains(&k.as_str())),
        _ => false,
    }
}

#[cfg(test)]
mod keyword_tests {
    use super::has_schema_keyword;
    use serde_json::json;

    #[test]
    fn a_config_document_is_not_a_schema() {
        assert!(!has_schema_keyword(
            &json!({"store_id": "orders", "timeout_ms": 5})
        ));
        assert!(!has_schema_keyword(&json!({})));
        assert!(!has_schema_keyword(&json!([1])));
        assert!(has_schema_keyword(&json!({"type": "object"})));
        assert!(has_schema_keyword(
            &json!({"$ref": "scarab:schemas/common/versions/1"})
        ));
        assert!(has_schema_keyword(&json!(true)));
    }
}
