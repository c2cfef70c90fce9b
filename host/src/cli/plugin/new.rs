//! `scarab plugin new`: a plugin project that builds on its own, outside this repository: the
//! plugin (Rust with the SDK, Python with componentize-py, or JavaScript with
//! componentize-js), its JSON Schema, examples that pass and fail, and a test, with a README
//! saying how to build, test and register it.
//!
//! The sample rules are those of a `service` config: `replicas` within `max_replicas`, and the
//! key ending with the service's `name`. With `--migrator`, version 2 renames `replicas` to
//! `instances`, and its plugin migrates from version 1 and back.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

/// The WIT every generated project targets (Python and JavaScript builds read it; the Rust
/// SDK carries its own copy).
const WIT: &str = include_str!("../../../../wit/0.2.0/plugin.wit");

/// Where the SDK is in the checkout this binary was built from: the default of `--sdk`.
const SDK_IN_CHECKOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

#[derive(Args)]
pub struct NewArgs {
    /// The schema name: 1 to 64 of `a-z`, `0-9` and `-`, starting with a letter (the rule
    /// the server applies to every schema name).
    name: String,
    #[arg(long, value_enum, default_value = "rust")]
    lang: Lang,
    /// Also a version 2 whose plugin migrates from version 1 and back.
    #[arg(long)]
    migrator: bool,
    /// Where to make the project (default: ./NAME-plugin). It must not exist.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The Rust SDK (`scarab-plugin-sdk`) the project depends on, by path.
    #[arg(long, default_value = SDK_IN_CHECKOUT)]
    sdk: PathBuf,
}

pub fn run(args: NewArgs) -> ExitCode {
    match make(&args) {
        Ok((dir, next)) => {
            println!("made {}", dir.display());
            println!("{next}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The project's files, and what to do next.
fn make(args: &NewArgs) -> anyhow::Result<(PathBuf, String)> {
    scarab_client::types::validate_schema_name(&args.name).map_err(|e| {
        anyhow::anyhow!(
            "{e}: a schema name is 1 to 64 of a-z, 0-9 and -, starting with a letter (e.g. payment-gateway)"
        )
    })?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}-plugin", args.name)));
    if dir.exists() {
        bail!("{} exists: choose another --dir", dir.display());
    }
    let top = if args.migrator { 2 } else { 1 };
    let snake = args.name.replace('-', "_");
    let subst = |text: &str| {
        text.replace("{{name}}", &args.name)
            .replace("{{snake}}", &snake)
            .replace("{{version}}", &top.to_string())
    };
    let mut files: Vec<(String, String)> = vec![
        ("schema/v1.json".into(), subst(SCHEMA_V1)),
        ("schema/v1.examples.json".into(), subst(EXAMPLES_V1)),
    ];
    if args.migrator {
        files.push(("schema/v2.json".into(), subst(SCHEMA_V2)));
        files.push(("schema/v2.examples.json".into(), subst(EXAMPLES_V2)));
    }
    let wasm = match args.lang {
        Lang::Rust => {
            let sdk = std::fs::canonicalize(&args.sdk).with_context(|| {
                format!(
                    "the Rust SDK is not at {} (give --sdk PATH to plugins/sdk of a Scarab checkout)",
                    args.sdk.display()
                )
            })?;
            let lib = if args.migrator {
                RUST_LIB_V2
            } else {
                RUST_LIB_V1
            };
            files.push((
                "Cargo.toml".into(),
                subst(RUST_CARGO).replace("{{sdk}}", &sdk.display().to_string()),
            ));
            files.push((
                "src/lib.rs".into(),
                subst(&lib.replace("{{rules}}", RUST_RULES)),
            ));
            files.push(("README.md".into(), subst(RUST_README)));
            format!("target/wasm32-wasip2/release/{snake}_v{top}.wasm")
        }
        Lang::Python => {
            let app = if args.migrator { PY_APP_V2 } else { PY_APP_V1 };
            files.push(("wit/plugin.wit".into(), WIT.into()));
            files.push(("app.py".into(), subst(app)));
            files.push(("rules.py".into(), subst(PY_RULES)));
            files.push(("build.sh".into(), subst(PY_BUILD)));
            files.push(("README.md".into(), subst(POLYGLOT_README)));
            format!("{snake}_v{top}.wasm")
        }
        Lang::Js => {
            let app = if args.migrator { JS_APP_V2 } else { JS_APP_V1 };
            files.push(("wit/plugin.wit".into(), WIT.into()));
            files.push(("app.js".into(), subst(app)));
            files.push(("package.json".into(), subst(JS_PACKAGE)));
            files.push(("build.sh".into(), subst(JS_BUILD)));
            files.push(("README.md".into(), subst(POLYGLOT_README)));
            format!("{snake}_v{top}.wasm")
        }
    };
    for (path, text) in &files {
        write(&dir.join(path), text)?;
    }
    let build = match args.lang {
        Lang::Rust => "cargo test && cargo build --release --target wasm32-wasip2",
        Lang::Python | Lang::Js => "bash build.sh",
    };
    let next = format!(
        "next:\n  cd {dir}\n  {build}\n  scarab plugin test {wasm} --schema schema/v{top}.json\n  scarab schema push {name} {top} --schema schema/v{top}.json --plugin {wasm}{first}",
        dir = dir.display(),
        name = args.name,
        first = if args.migrator {
            format!(
                "\n  (register version 1 first: scarab schema push {} 1 --schema schema/v1.json)",
                args.name
            )
        } else {
            String::new()
        }
    );
    Ok((dir, next))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    std::fs::write(path, text).with_context(|| path.display().to_string())
}

const SCHEMA_V1: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "{{name}}, version 1",
  "description": "A service: how many replicas run, and at most how many may. The rules across fields are the plugin's.",
  "type": "object",
  "properties": {
    "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$"},
    "replicas": {"type": "integer", "minimum": 1},
    "max_replicas": {"type": "integer", "minimum": 1}
  },
  "required": ["name", "replicas", "max_replicas"],
  "additionalProperties": false,
  "examples": [{"name": "orders", "replicas": 3, "max_replicas": 10}]
}
"#;

const SCHEMA_V2: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "{{name}}, version 2",
  "description": "Version 1 with replicas renamed instances. Its plugin migrates from version 1 and back.",
  "type": "object",
  "properties": {
    "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,62}$"},
    "instances": {"type": "integer", "minimum": 1},
    "max_replicas": {"type": "integer", "minimum": 1}
  },
  "required": ["name", "instances", "max_replicas"],
  "additionalProperties": false,
  "examples": [{"name": "orders", "instances": 3, "max_replicas": 10}]
}
"#;

const EXAMPLES_V1: &str = r#"{
  "valid": [
    {"name": "a small service", "key": "services/orders",
     "value": {"name": "orders", "replicas": 3, "max_replicas": 10}},
    {"name": "at its maximum", "key": "services/billing",
     "value": {"name": "billing", "replicas": 4, "max_replicas": 4}}
  ],
  "invalid": [
    {"name": "more replicas than allowed", "key": "services/orders",
     "value": {"name": "orders", "replicas": 12, "max_replicas": 10},
     "violations": [{"path": "/replicas", "source": "plugin", "code": "replicas-above-max"}]},
    {"name": "stored under another service's key", "key": "services/billing",
     "value": {"name": "orders", "replicas": 1, "max_replicas": 2},
     "violations": [{"path": "/name", "source": "plugin", "code": "key-name-mismatch"}]},
    {"name": "no replicas", "key": "services/orders",
     "value": {"name": "orders", "max_replicas": 2},
     "violations": [{"path": "/replicas", "source": "schema", "code": "required"}]}
  ]
}
"#;

const EXAMPLES_V2: &str = r#"{
  "valid": [
    {"name": "a small service", "key": "services/orders",
     "value": {"name": "orders", "instances": 3, "max_replicas": 10}}
  ],
  "invalid": [
    {"name": "more instances than allowed", "key": "services/orders",
     "value": {"name": "orders", "instances": 12, "max_replicas": 10},
     "violations": [{"path": "/instances", "source": "plugin", "code": "replicas-above-max"}]},
    {"name": "the version 1 field", "key": "services/orders",
     "value": {"name": "orders", "replicas": 3, "max_replicas": 10},
     "violations": [{"path": "/instances", "source": "schema", "code": "required"},
                    {"path": "/replicas", "source": "schema", "code": "additionalProperties"}]}
  ]
}
"#;

const RUST_CARGO: &str = r#"[package]
name = "{{name}}-v{{version}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
# The Scarab plugin SDK, from a Scarab checkout (plugins/sdk).
scarab-plugin-sdk = { path = "{{sdk}}" }
serde_json = "1"

# A plugin is built with `cargo build --release --target wasm32-wasip2`: small, and a panic
# is a trap (the host reports its message).
[profile.release]
opt-level = "s"
lto = true
strip = true
codegen-units = 1
panic = "abort"

# A project of its own, not a member of an enclosing workspace.
[workspace]
"#;

/// The rules both Rust templates carry (each project stands alone).
const RUST_RULES: &str = r#"/// The rules; `count` is where the replica count is.
pub fn rules(ctx: &Context, doc: &Value, count: &str) -> Vec<Violation> {
    let mut found = Vec::new();
    if let (Some(n), Some(max)) = (
        doc.pointer(count).and_then(Value::as_u64),
        doc.get("max_replicas").and_then(Value::as_u64),
    ) && n > max
    {
        found.push(
            Violation::new(count, format!("{n} is more than max_replicas ({max})"))
                .with_code("replicas-above-max"),
        );
    }
    if let Some(name) = doc.get("name").and_then(Value::as_str)
        && !ctx.key.is_empty()
        && ctx.key.rsplit('/').next() != Some(name)
    {
        found.push(
            Violation::new("/name", format!("the key {:?} does not end with /{name}", ctx.key))
                .with_code("key-name-mismatch"),
        );
    }
    found
}
"#;

const RUST_LIB_V1: &str = r#"//! The Scarab plugin of `{{name}}` version 1: the rules its JSON Schema cannot say.
//!
//! The plugin sees every document, also those that fail the JSON Schema: a rule whose inputs
//! are missing or of the wrong type is skipped (the schema reports them).

use scarab_plugin_sdk::{Context, Validator, Violation, register_validator};
use serde_json::Value;

pub struct Plugin;

impl Validator for Plugin {
    fn validate(ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
        Ok(rules(ctx, doc, "/replicas"))
    }
}

register_validator!(Plugin);

{{rules}}
#[cfg(test)]
mod tests {
    use super::*;

    /// Every example's plugin violations are exactly the ones it lists.
    #[test]
    fn the_examples_get_the_violations_they_list() {
        check::<Plugin>(include_str!("../schema/v1.examples.json"), 1);
    }

    pub fn check<V: Validator>(examples: &str, version: u32) {
        let examples: Value = serde_json::from_str(examples).unwrap();
        for (group, valid) in [("valid", true), ("invalid", false)] {
            for ex in examples[group].as_array().unwrap() {
                let ctx = Context::new(ex["key"].as_str().unwrap(), "{{name}}", version);
                let found = scarab_plugin_sdk::validate_document::<V>(&ctx, &ex["value"].to_string())
                    .unwrap();
                let mut got: Vec<(String, String)> =
                    found.into_iter().map(|v| (v.path, v.code.unwrap_or_default())).collect();
                let mut want: Vec<(String, String)> = if valid {
                    vec![]
                } else {
                    ex["violations"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|v| v["source"] == "plugin")
                        .map(|v| (v["path"].as_str().unwrap().into(), v["code"].as_str().unwrap().into()))
                        .collect()
                };
                got.sort();
                want.sort();
                assert_eq!(got, want, "{}", ex["name"]);
            }
        }
    }
}
"#;

const RUST_LIB_V2: &str = r#"//! The Scarab plugin of `{{name}}` version 2: the rules its JSON Schema cannot say, and the
//! migration from version 1 (`replicas` is renamed `instances`) and back.
//!
//! The plugin sees every document, also those that fail the JSON Schema: a rule whose inputs
//! are missing or of the wrong type is skipped (the schema reports them).

use scarab_plugin_sdk::{Context, Migrator, Validator, Violation, register_migrator};
use serde_json::Value;

pub struct Plugin;

impl Validator for Plugin {
    fn validate(ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
        Ok(rules(ctx, doc, "/instances"))
    }
}

impl Migrator for Plugin {
    const FROM_VERSION: u32 = 1;
    const DOWNGRADE: bool = true;

    fn upgrade(_ctx: &Context, doc: Value) -> Result<Value, String> {
        rename(doc, "replicas", "instances")
    }

    fn downgrade(_ctx: &Context, doc: Value) -> Result<Value, String> {
        rename(doc, "instances", "replicas")
    }
}

register_migrator!(Plugin);

fn rename(mut doc: Value, from: &str, to: &str) -> Result<Value, String> {
    let Some(map) = doc.as_object_mut() else {
        return Err("a {{name}} config is a JSON object".to_string());
    };
    if let Some(v) = map.remove(from) {
        map.insert(to.to_string(), v);
    }
    Ok(doc)
}

{{rules}}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrading_then_downgrading_gives_the_document_back() {
        let ctx = Context::new("services/orders", "{{name}}", 2);
        let v1 = serde_json::json!({"name": "orders", "replicas": 3, "max_replicas": 10});
        let v2 = Plugin::upgrade(&ctx, v1.clone()).unwrap();
        assert_eq!(v2["instances"], 3);
        assert_eq!(Plugin::downgrade(&ctx, v2).unwrap(), v1);
    }

    #[test]
    fn too_many_instances_is_a_violation() {
        let ctx = Context::new("services/orders", "{{name}}", 2);
        let doc = serde_json::json!({"name": "orders", "instances": 12, "max_replicas": 10});
        let found = Plugin::validate(&ctx, &doc).unwrap();
        assert_eq!(found[0].code.as_deref(), Some("replicas-above-max"));
    }
}
"#;

const RUST_README: &str = r#"# {{name}}: a Scarab plugin

Made by `scarab plugin new {{name}}`. The JSON Schema and its examples are in `schema/`; the
rules JSON Schema cannot say are in `src/lib.rs` (see the SDK's crate docs: `cargo doc --open`).

```sh
rustup target add wasm32-wasip2                        # once
cargo test                                             # the rules, natively
cargo build --release --target wasm32-wasip2           # target/wasm32-wasip2/release/{{snake}}_v{{version}}.wasm
scarab plugin test target/wasm32-wasip2/release/{{snake}}_v{{version}}.wasm --schema schema/v{{version}}.json
scarab schema push {{name}} {{version}} --schema schema/v{{version}}.json \
  --plugin target/wasm32-wasip2/release/{{snake}}_v{{version}}.wasm
```

`scarab plugin test` runs the plugin over `schema/v{{version}}.examples.json` offline, through
the server's own code: every valid example must pass, every invalid one must give exactly the
violations it lists (schema and plugin), and a migrator must upgrade the previous version's
valid examples to valid documents and back.
"#;

const PY_RULES: &str = r#""""The rules of `{{name}}` that its JSON Schema cannot say, as plain Python: each returns
(path, message, code) triples. The plugin sees every document, also those that fail the JSON
Schema: a rule whose inputs are missing or of the wrong type is skipped."""

import json


def _int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def check(key, document, count_field):
    doc = json.loads(document)
    if not isinstance(doc, dict):
        return []
    found = []
    n, top = _int(doc.get(count_field)), _int(doc.get("max_replicas"))
    if n is not None and top is not None and n > top:
        found.append((f"/{count_field}", f"{n} is more than max_replicas ({top})", "replicas-above-max"))
    name = doc.get("name")
    if isinstance(name, str) and key and key.rsplit("/", 1)[-1] != name:
        found.append(("/name", f"the key {key!r} does not end with /{name}", "key-name-mismatch"))
    return found


def rename(document, old, new):
    doc = json.loads(document)
    if not isinstance(doc, dict):
        raise ValueError("a {{name}} config is an object")
    if old in doc:
        doc[new] = doc.pop(old)
    return json.dumps(doc)
"#;

const PY_APP_V1: &str = r#""""The Scarab plugin of `{{name}}` version 1 (world `validator-plugin` of
`scarab:plugin@0.2.0`). componentize-py generates `wit_world` from `wit/` at build time."""

from wit_world import exports
from wit_world.imports.types import Context, Violation

import rules


class Validator(exports.Validator):
    def validate(self, ctx: Context, document: str) -> list[Violation]:
        return [Violation(path=p, message=m, code=c) for p, m, c in rules.check(ctx.key, document, "replicas")]
"#;

const PY_APP_V2: &str = r#""""The Scarab plugin of `{{name}}` version 2 (world `migrator-plugin` of
`scarab:plugin@0.2.0`): the rules, and the migration from version 1 (`replicas` is renamed
`instances`) and back. componentize-py generates `wit_world` from `wit/` at build time."""

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.migrator import Migration
from wit_world.imports.types import Context, Violation

import rules


class Validator(exports.Validator):
    def validate(self, ctx: Context, document: str) -> list[Violation]:
        return [Violation(path=p, message=m, code=c) for p, m, c in rules.check(ctx.key, document, "instances")]


class Migrator(exports.Migrator):
    def describe(self) -> Migration:
        return Migration(from_version=1, downgrade=True)

    def upgrade(self, ctx: Context, document: str) -> str:
        try:
            return rules.rename(document, "replicas", "instances")
        except ValueError as e:
            raise Err(str(e))

    def downgrade(self, ctx: Context, document: str) -> str:
        try:
            return rules.rename(document, "instances", "replicas")
        except ValueError as e:
            raise Err(str(e))
"#;

const PY_BUILD: &str = r#"#!/usr/bin/env bash
# Builds {{snake}}_v{{version}}.wasm with componentize-py (installed, pinned, into .venv).
set -euo pipefail
cd "$(dirname "$0")"
if [[ ! -x .venv/bin/componentize-py ]]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet componentize-py==0.25.1
fi
world=validator-plugin
[[ {{version}} == 2 ]] && world=migrator-plugin
# --stub-wasi: the component imports only Scarab's types (no WASI at all).
.venv/bin/componentize-py -d wit -w "$world" componentize --stub-wasi app -o {{snake}}_v{{version}}.wasm
"#;

const JS_APP_V1: &str = r#"// The Scarab plugin of `{{name}}` version 1 (world `validator-plugin` of `scarab:plugin@0.2.0`).
// componentize-js maps the WIT export `validator` to the exported object `validator`.

export function check(ctx, document, countField) {
  const doc = JSON.parse(document);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return [];
  const found = [];
  const n = doc[countField];
  const max = doc.max_replicas;
  if (Number.isInteger(n) && Number.isInteger(max) && n > max) {
    found.push({ path: `/${countField}`, message: `${n} is more than max_replicas (${max})`, code: 'replicas-above-max' });
  }
  if (typeof doc.name === 'string' && ctx.key !== '' && ctx.key.split('/').pop() !== doc.name) {
    found.push({ path: '/name', message: `the key ${JSON.stringify(ctx.key)} does not end with /${doc.name}`, code: 'key-name-mismatch' });
  }
  return found;
}

export const validator = {
  validate(ctx, document) {
    return check(ctx, document, 'replicas');
  },
};
"#;

const JS_APP_V2: &str = r#"// The Scarab plugin of `{{name}}` version 2 (world `migrator-plugin` of `scarab:plugin@0.2.0`):
// the rules, and the migration from version 1 (`replicas` is renamed `instances`) and back.
// Returning a string is `ok`; throwing is `err`.

function check(ctx, document, countField) {
  const doc = JSON.parse(document);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return [];
  const found = [];
  const n = doc[countField];
  const max = doc.max_replicas;
  if (Number.isInteger(n) && Number.isInteger(max) && n > max) {
    found.push({ path: `/${countField}`, message: `${n} is more than max_replicas (${max})`, code: 'replicas-above-max' });
  }
  if (typeof doc.name === 'string' && ctx.key !== '' && ctx.key.split('/').pop() !== doc.name) {
    found.push({ path: '/name', message: `the key ${JSON.stringify(ctx.key)} does not end with /${doc.name}`, code: 'key-name-mismatch' });
  }
  return found;
}

function rename(document, from, to) {
  const doc = JSON.parse(document);
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw 'a {{name}} config is an object';
  if (from in doc) {
    doc[to] = doc[from];
    delete doc[from];
  }
  return JSON.stringify(doc);
}

export const validator = {
  validate(ctx, document) {
    return check(ctx, document, 'instances');
  },
};

export const migrator = {
  describe() {
    return { fromVersion: 1, downgrade: true };
  },
  upgrade(ctx, document) {
    return rename(document, 'replicas', 'instances');
  },
  downgrade(ctx, document) {
    return rename(document, 'instances', 'replicas');
  },
};
"#;

const JS_PACKAGE: &str = r#"{
  "name": "{{name}}-plugin",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "scripts": {"build": "bash build.sh"},
  "devDependencies": {"@bytecodealliance/componentize-js": "0.23.0"}
}
"#;

const JS_BUILD: &str = r#"#!/usr/bin/env bash
# Builds {{snake}}_v{{version}}.wasm with componentize-js (installed, pinned, by npm).
set -euo pipefail
cd "$(dirname "$0")"
[[ -x node_modules/.bin/componentize-js ]] || npm install --no-audit --no-fund
world=validator-plugin
[[ {{version}} == 2 ]] && world=migrator-plugin
# --disable ...: the component imports no WASI (no clock, random, stdio or http).
node_modules/.bin/componentize-js app.js --wit wit --world-name "$world" \
    --disable stdio random clocks http fetch-event -o {{snake}}_v{{version}}.wasm
"#;

const POLYGLOT_README: &str = r#"# {{name}}: a Scarab plugin

Made by `scarab plugin new {{name}}`. The JSON Schema and its examples are in `schema/`; the
contract the plugin implements is `wit/plugin.wit` (`scarab:plugin@0.2.0`).

```sh
bash build.sh                                          # {{snake}}_v{{version}}.wasm (installs the pinned tool once)
scarab plugin test {{snake}}_v{{version}}.wasm --schema schema/v{{version}}.json
scarab schema push {{name}} {{version}} --schema schema/v{{version}}.json --plugin {{snake}}_v{{version}}.wasm
```

`scarab plugin test` runs the plugin over `schema/v{{version}}.examples.json` offline, through
the server's own code: every valid example must pass, every invalid one must give exactly the
violations it lists (schema and plugin), and a migrator must upgrade the previous version's
valid examples to valid documents and back. The sandbox has no files, network or timers; its
clock stands at the Unix epoch and its random bytes are the same on every call.
"#;
