//! # Scarab plugin SDK
//!
//! A Scarab **plugin** is a WebAssembly component attached to one version of one schema (for
//! example `store` v1). Before every write of a config of that schema version, and for
//! `POST /v1/schemas/{name}/versions/{n}/validate`, the server checks the document twice: against
//! the version's JSON Schema, and by calling the plugin. Both run on every document, so a client
//! sees every violation at once. The plugin is where the rules live that JSON Schema cannot say:
//! cross-field constraints, "this path must not be a system directory", "the id must match the
//! key", and so on.
//!
//! The contract is the WIT package `scarab:plugin@0.2.0` (`wit/0.2.0/plugin.wit`): the world
//! `validator-plugin`, or `migrator-plugin` for a plugin that also converts documents from the
//! previous schema version (see [`Migrator`]). This crate hides it: you write one `impl` (two
//! for a migrator) and one macro call. Plugins built against `scarab:plugin@0.1.0` keep working.
//!
//! ## The sandbox
//!
//! A plugin must be a pure function of its input. It runs with **no capabilities**: no
//! filesystem, no network, no environment variables or arguments (standard output and error
//! go nowhere). Its clock stands still at the Unix epoch and its random numbers are the same
//! on every call (so a runtime that seeds itself as it starts still loads); timers trap. Every call runs under a time budget (50 ms of CPU
//! time by default) and a memory cap (32 MiB by default); a plugin that exceeds either, traps or panics
//! makes the write fail with a plugin error, never with a verdict. Plugins see **every**
//! document, including ones that already fail the JSON Schema: treat every field as possibly
//! missing or of the wrong type, and skip a rule whose inputs are absent. Never panic on input.
//!
//! Use `BTreeMap`/`BTreeSet` (or a `HashMap` with a fixed hasher) rather than `std`'s default
//! `HashMap`/`HashSet` when the order of a result depends on them: their `RandomState` keys
//! move on with each new map within an instance, and instances are reused between calls, so
//! iteration order would depend on which calls an instance served before.
//!
//! ## Writing a plugin
//!
//! Make a `cdylib` crate depending on `scarab-plugin-sdk` and `serde_json`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! scarab-plugin-sdk = { path = "../../sdk" }
//! serde_json = "1"
//! ```
//!
//! and implement [`Validator`]:
//!
//! ```
//! use scarab_plugin_sdk::{Context, Validator, Violation, register_validator};
//! use serde_json::Value;
//!
//! struct StoreRules;
//!
//! impl Validator for StoreRules {
//!     fn validate(_ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
//!         let mut violations = Vec::new();
//!         // Skip the rule when the field is missing or not a string: the JSON Schema reports that.
//!         if let Some(dir) = doc.get("data_dir").and_then(Value::as_str) {
//!             if !dir.starts_with('/') {
//!                 violations.push(
//!                     Violation::new("/data_dir", "must be an absolute path")
//!                         .with_code("data-dir-not-absolute"),
//!                 );
//!             }
//!         }
//!         Ok(violations)
//!     }
//! }
//!
//! register_validator!(StoreRules);
//! # fn main() {}
//! ```
//!
//! * [`Context`] says where the document is going: the config `key` (empty for a validation
//!   without a key), the `schema_name` and `schema_version`.
//! * A [`Violation`] has a `path` (a JSON Pointer, RFC 6901, into the document: `""` is the whole
//!   document, `/resource_limits/max_connections` a nested field, `/routes/2/upstream` an array
//!   element), a `message` for a human and an optional stable `code` for machines. Use
//!   [`json_pointer`] to build a path from keys that may contain `/` or `~`. The host refuses
//!   an answer whose path is not a JSON Pointer.
//! * Return `Ok(vec![])` to accept the document, `Ok(violations)` to refuse it, and `Err(..)`
//!   only when the plugin cannot reach a verdict (a bug): the write then fails with a plugin
//!   error instead of a list of violations.
//!
//! Keep your rules as plain functions and test them natively with `cargo test`; to test the
//! whole path from JSON text, call [`validate_document`].
//!
//! ## Building
//!
//! ```sh
//! rustup target add wasm32-wasip2        # once
//! cargo build --profile plugin --target wasm32-wasip2 -p my-plugin
//! cargo plugins                          # alias: every plugin in the workspace
//! ```
//!
//! A `cdylib` built for `wasm32-wasip2` already is a component. The result is
//! `target/wasm32-wasip2/plugin/<crate name with - replaced by _>.wasm`, e.g. `store_v1.wasm`.
//!
//! ## Checking offline
//!
//! ```sh
//! scarab plugin check target/wasm32-wasip2/plugin/store_v1.wasm doc.json \
//!     --schema schemas/store/v1.json --key stores/orders
//! scarab plugin test target/wasm32-wasip2/plugin/store_v1.wasm --schema schemas/store/v1.json
//! ```
//!
//! `check` runs the same checks the server runs (JSON Schema and plugin, same sandbox and
//! limits) on one document and prints every violation; the schema name and version come from
//! the schema file's path (`.../NAME/vN.json`, or `--name` and `--schema-version`), and the key
//! the plugin is told is required (`--no-key` for none). `test` runs the plugin over the
//! schema's examples file (`vN.examples.json` beside it): each valid example must pass, each
//! invalid one must give exactly the violations it lists, and a migrator must upgrade the
//! previous version's valid examples into valid documents and back.
//!
//! `scarab plugin new NAME [--lang rust|python|js] [--migrator]` makes a project of its own,
//! outside any workspace: the plugin, its JSON Schema, examples and a test.
//!
//! ## Registering
//!
//! Upload the schema and the plugin together as a new schema version:
//!
//! ```sh
//! curl -X PUT \
//!   -F 'schema=@schemas/store/v1.json;type=application/json' \
//!   -F 'plugin=@target/wasm32-wasip2/plugin/store_v1.wasm;type=application/wasm' \
//!   http://127.0.0.1:7070/v1/schemas/store/versions/1
//! ```
//!
//! The server refuses a component that does not export the `scarab:plugin/validator` interface.

use std::fmt;

pub use serde_json;
use serde_json::Value;

/// Where the document is going.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Context {
    /// The config key, e.g. `stores/orders`. Empty for a validation without a key.
    pub key: String,
    /// The schema the document claims, e.g. `store`.
    pub schema_name: String,
    /// The schema version the document claims (from 1).
    pub schema_version: u32,
}

impl Context {
    /// A context, mostly for tests.
    pub fn new(
        key: impl Into<String>,
        schema_name: impl Into<String>,
        schema_version: u32,
    ) -> Self {
        Context {
            key: key.into(),
            schema_name: schema_name.into(),
            schema_version,
        }
    }
}

/// One reason why a document is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Violation {
    /// JSON Pointer (RFC 6901) to the offending value: `""` is the whole document.
    pub path: String,
    /// A sentence for a human.
    pub message: String,
    /// A stable, machine-readable code, e.g. `data-dir-not-absolute`.
    pub code: Option<String>,
}

impl Violation {
    /// A violation at `path` (a JSON Pointer) with a human-readable `message` and no code.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Violation {
            path: path.into(),
            message: message.into(),
            code: None,
        }
    }

    /// Sets the stable, machine-readable code.
    #[must_use]
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(document)"
        } else {
            &self.path
        };
        match &self.code {
            Some(code) => write!(f, "{path}: {} [{code}]", self.message),
            None => write!(f, "{path}: {}", self.message),
        }
    }
}

/// A plugin's rules. Implement it on a unit struct and pass that to [`register_validator!`].
pub trait Validator {
    /// Checks `doc` and returns every violation found (an empty list accepts the document).
    ///
    /// `doc` may fail the JSON Schema: any field may be missing or of another type. `Err` means
    /// the plugin could not reach a verdict; it fails the write with a plugin error.
    fn validate(ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String>;
}

/// Builds a JSON Pointer (RFC 6901) from reference tokens, escaping `~` and `/`.
///
/// ```
/// assert_eq!(scarab_plugin_sdk::json_pointer(["routes", "2", "upstream"]), "/routes/2/upstream");
/// assert_eq!(scarab_plugin_sdk::json_pointer(["a/b", "c~d"]), "/a~1b/c~0d");
/// assert_eq!(scarab_plugin_sdk::json_pointer::<[&str; 0], &str>([]), "");
/// ```
pub fn json_pointer<I, S>(tokens: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut pointer = String::new();
    for token in tokens {
        pointer.push('/');
        for c in token.as_ref().chars() {
            match c {
                '~' => pointer.push_str("~0"),
                '/' => pointer.push_str("~1"),
                c => pointer.push(c),
            }
        }
    }
    pointer
}

/// What the host's call does: parses `document` (JSON text) and runs `V` on it.
///
/// Text that is not JSON gives `Err` (the host only sends valid JSON, so that is a bug
/// somewhere). Call it from native tests to exercise a validator from JSON text.
pub fn validate_document<V: Validator>(
    ctx: &Context,
    document: &str,
) -> Result<Vec<Violation>, String> {
    let doc: Value = serde_json::from_str(document)
        .map_err(|e| format!("the document is not valid JSON: {e}"))?;
    V::validate(ctx, &doc)
}

/// A plugin's migration between the previous version of its schema and its own. Implement it
/// besides [`Validator`] on the same type, and pass that type to [`register_migrator!`].
///
/// The host calls [`Migrator::upgrade`] to move a config from version `FROM_VERSION` to this
/// plugin's version (`FROM_VERSION + 1`), and [`Migrator::downgrade`] (if `DOWNGRADE`) to move
/// it back: for reads at another version (`?schema_version=N`, one step at a time through a
/// chain of plugins), for the compatibility check when this version is registered (every
/// stored config of the previous version is upgraded and validated, and, with a downgrade,
/// must come back unchanged), and for storage migrations.
///
/// Both get the whole document and return the whole converted document. Treat every field as
/// possibly missing (the previous version's plugin accepted the input, but its JSON Schema
/// may have allowed more than you expect), and return `Err` with a sentence when a document
/// cannot be converted: that config's read or migration fails with the reason, nothing else.
pub trait Migrator {
    /// The version documents are upgraded from. The host refuses this plugin unless it is
    /// registered as version `FROM_VERSION + 1` and version `FROM_VERSION` exists.
    const FROM_VERSION: u32;
    /// Whether [`Migrator::downgrade`] is implemented.
    const DOWNGRADE: bool;

    /// Converts a document of version `FROM_VERSION` to this plugin's version.
    /// `ctx.schema_version` is this plugin's version.
    fn upgrade(ctx: &Context, doc: Value) -> Result<Value, String>;

    /// Converts a document of this plugin's version back to `FROM_VERSION`
    /// (`ctx.schema_version`). Called only when `DOWNGRADE` is true.
    fn downgrade(ctx: &Context, doc: Value) -> Result<Value, String> {
        let _ = (ctx, doc);
        Err("this plugin does not downgrade".to_string())
    }
}

/// What the host's `upgrade` call does: parses `document`, runs `M::upgrade`, serialises the
/// result. Call it from native tests.
pub fn upgrade_document<M: Migrator>(ctx: &Context, document: &str) -> Result<String, String> {
    let doc: Value = serde_json::from_str(document)
        .map_err(|e| format!("the document is not valid JSON: {e}"))?;
    M::upgrade(ctx, doc).map(|v| v.to_string())
}

/// What the host's `downgrade` call does (see [`upgrade_document`]).
pub fn downgrade_document<M: Migrator>(ctx: &Context, document: &str) -> Result<String, String> {
    let doc: Value = serde_json::from_str(document)
        .map_err(|e| format!("the document is not valid JSON: {e}"))?;
    M::downgrade(ctx, doc).map(|v| v.to_string())
}

/// Exports a [`Validator`] as the plugin's `scarab:plugin/validator` interface (world
/// `validator-plugin`).
///
/// Use it once per plugin crate, at the top level:
///
/// ```
/// # use scarab_plugin_sdk::{Context, Validator, Violation};
/// # struct MyRules;
/// # impl Validator for MyRules {
/// #     fn validate(_: &Context, _: &serde_json::Value) -> Result<Vec<Violation>, String> {
/// #         Ok(vec![])
/// #     }
/// # }
/// scarab_plugin_sdk::register_validator!(MyRules);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! register_validator {
    ($validator:ty) => {
        const _: () = {
            struct __ScarabValidatorExport;

            impl $crate::__private::validator_world::exports::scarab::plugin::validator::Guest
                for __ScarabValidatorExport
            {
                fn validate(
                    ctx: $crate::__private::validator_world::scarab::plugin::types::Context,
                    document: ::std::string::String,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<
                        $crate::__private::validator_world::scarab::plugin::types::Violation,
                    >,
                    ::std::string::String,
                > {
                    $crate::__private::validate::<$validator, _, _>(ctx, &document)
                }
            }

            $crate::__private::validator_world::__export_validator_plugin!(
                __ScarabValidatorExport with_types_in $crate::__private::validator_world
            );
        };
    };
}

/// Exports a type that implements both [`Validator`] and [`Migrator`] as the plugin's
/// `scarab:plugin/validator` and `scarab:plugin/migrator` interfaces (world
/// `migrator-plugin`).
///
/// ```
/// # use scarab_plugin_sdk::{Context, Migrator, Validator, Violation};
/// # use serde_json::Value;
/// struct StoreV2;
/// # impl Validator for StoreV2 {
/// #     fn validate(_: &Context, _: &Value) -> Result<Vec<Violation>, String> {
/// #         Ok(vec![])
/// #     }
/// # }
///
/// impl Migrator for StoreV2 {
///     const FROM_VERSION: u32 = 1;
///     const DOWNGRADE: bool = false;
///
///     fn upgrade(_ctx: &Context, mut doc: Value) -> Result<Value, String> {
///         if let Some(obj) = doc.as_object_mut() {
///             obj.insert("tier".into(), "standard".into());
///         }
///         Ok(doc)
///     }
/// }
///
/// scarab_plugin_sdk::register_migrator!(StoreV2);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! register_migrator {
    ($plugin:ty) => {
        const _: () = {
            struct __ScarabMigratorExport;

            impl $crate::__private::migrator_world::exports::scarab::plugin::validator::Guest
                for __ScarabMigratorExport
            {
                fn validate(
                    ctx: $crate::__private::migrator_world::scarab::plugin::types::Context,
                    document: ::std::string::String,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<
                        $crate::__private::migrator_world::scarab::plugin::types::Violation,
                    >,
                    ::std::string::String,
                > {
                    $crate::__private::validate::<$plugin, _, _>(ctx, &document)
                }
            }

            impl $crate::__private::migrator_world::exports::scarab::plugin::migrator::Guest
                for __ScarabMigratorExport
            {
                fn describe()
                -> $crate::__private::migrator_world::exports::scarab::plugin::migrator::Migration
                {
                    $crate::__private::migrator_world::exports::scarab::plugin::migrator::Migration {
                        from_version: <$plugin as $crate::Migrator>::FROM_VERSION,
                        downgrade: <$plugin as $crate::Migrator>::DOWNGRADE,
                    }
                }

                fn upgrade(
                    ctx: $crate::__private::migrator_world::scarab::plugin::types::Context,
                    document: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    $crate::upgrade_document::<$plugin>(&ctx.into(), &document)
                }

                fn downgrade(
                    ctx: $crate::__private::migrator_world::scarab::plugin::types::Context,
                    document: ::std::string::String,
                ) -> ::std::result::Result<::std::string::String, ::std::string::String> {
                    $crate::downgrade_document::<$plugin>(&ctx.into(), &document)
                }
            }

            $crate::__private::migrator_world::__export_migrator_plugin!(
                __ScarabMigratorExport with_types_in $crate::__private::migrator_world
            );
        };
    };
}

/// The generated bindings (`wit/0.2.0`, one module per world; the migrator world's come from
/// `scarab-plugin-sdk-migrator-world`) and the glue the macros expand to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    pub mod validator_world {
        wit_bindgen::generate!({
            path: "wit/0.2.0",
            world: "validator-plugin",
            export_macro_name: "__export_validator_plugin",
            pub_export_macro: true,
            default_bindings_module: "::scarab_plugin_sdk::__private::validator_world",
            runtime_path: "::scarab_plugin_sdk::__private::wit_bindgen::rt",
        });
    }

    /// In its own crate: see its docs.
    pub use scarab_plugin_sdk_migrator_world as migrator_world;

    use crate::{Context, Validator, Violation};

    /// Each world has its own copy of the WIT types: the same conversions for both.
    macro_rules! conversions {
        ($world:ident) => {
            const _: () = {
                impl From<$world::scarab::plugin::types::Context> for Context {
                    fn from(ctx: $world::scarab::plugin::types::Context) -> Self {
                        Context {
                            key: ctx.key,
                            schema_name: ctx.schema_name,
                            schema_version: ctx.schema_version,
                        }
                    }
                }

                impl From<Violation> for $world::scarab::plugin::types::Violation {
                    fn from(v: Violation) -> Self {
                        $world::scarab::plugin::types::Violation {
                            path: v.path,
                            message: v.message,
                            code: v.code,
                        }
                    }
                }
            };
        };
    }
    conversions!(validator_world);
    conversions!(migrator_world);

    /// The body of the exported `validate`, for either world.
    pub fn validate<V: Validator, C: Into<Context>, W: From<Violation>>(
        ctx: C,
        document: &str,
    ) -> Result<Vec<W>, String> {
        let ctx = ctx.into();
        crate::validate_document::<V>(&ctx, document)
            .map(|violations| violations.into_iter().map(W::from).collect())
    }
}

// `::scarab_plugin_sdk::...` paths in the generated code must resolve inside this crate too.
extern crate self as scarab_plugin_sdk;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Echo;

    /// Reports every top-level string field as a violation; refuses a document that is not an
    /// object.
    impl Validator for Echo {
        fn validate(ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
            let obj = doc.as_object().ok_or("expected an object")?;
            Ok(obj
                .iter()
                .filter_map(|(k, v)| {
                    v.as_str().map(|s| {
                        Violation::new(json_pointer([k]), format!("{}: {s}", ctx.key))
                            .with_code("echo")
                    })
                })
                .collect())
        }
    }

    #[test]
    fn builder_sets_fields() {
        let v = Violation::new("/data_dir", "must be an absolute path");
        assert_eq!(v.path, "/data_dir");
        assert_eq!(v.message, "must be an absolute path");
        assert_eq!(v.code, None);
        let v = v.with_code("data-dir-not-absolute");
        assert_eq!(v.code.as_deref(), Some("data-dir-not-absolute"));
        assert_eq!(
            v.to_string(),
            "/data_dir: must be an absolute path [data-dir-not-absolute]"
        );
        assert_eq!(Violation::new("", "bad").to_string(), "(document): bad");
    }

    #[test]
    fn context_new() {
        let ctx = Context::new("stores/orders", "store", 1);
        assert_eq!(ctx.key, "stores/orders");
        assert_eq!(ctx.schema_name, "store");
        assert_eq!(ctx.schema_version, 1);
    }

    #[test]
    fn pointer_escapes() {
        assert_eq!(json_pointer(["a", "b"]), "/a/b");
        assert_eq!(json_pointer(["a/b~c"]), "/a~1b~0c");
        assert_eq!(json_pointer([""]), "/");
        assert_eq!(json_pointer(Vec::<String>::new()), "");
    }

    #[test]
    fn parses_and_runs_the_validator() {
        let ctx = Context::new("k", "echo", 1);
        let got = validate_document::<Echo>(&ctx, r#"{"a": "x", "n": 1, "b/c": "y"}"#).unwrap();
        assert_eq!(
            got,
            vec![
                Violation::new("/a", "k: x").with_code("echo"),
                Violation::new("/b~1c", "k: y").with_code("echo"),
            ]
        );
        assert_eq!(
            validate_document::<Echo>(&ctx, "{}").unwrap(),
            Vec::<Violation>::new()
        );
    }

    #[test]
    fn invalid_json_is_an_error() {
        let ctx = Context::default();
        for text in ["", "{", "{\"a\": }", "nul", "1 2"] {
            let err = validate_document::<Echo>(&ctx, text).unwrap_err();
            assert!(
                err.starts_with("the document is not valid JSON"),
                "{text:?}: {err}"
            );
        }
    }

    #[test]
    fn validator_errors_pass_through() {
        let err = validate_document::<Echo>(&Context::default(), "[1]").unwrap_err();
        assert_eq!(err, "expected an object");
    }

    #[test]
    fn glue_converts_both_ways() {
        use __private::validator_world::scarab::plugin::types as wit;
        let ctx = wit::Context {
            key: "stores/orders".into(),
            schema_name: "store".into(),
            schema_version: 3,
        };
        let out: Vec<wit::Violation> =
            __private::validate::<Echo, _, _>(ctx, &json!({"x": "v"}).to_string()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, "/x");
        assert_eq!(out[0].message, "stores/orders: v");
        assert_eq!(out[0].code.as_deref(), Some("echo"));
        let bad: Result<Vec<wit::Violation>, _> = __private::validate::<Echo, _, _>(
            wit::Context {
                key: String::new(),
                schema_name: String::new(),
                schema_version: 1,
            },
            "not json",
        );
        assert!(bad.is_err());
    }

    struct Rename;

    /// Renames `a` to `b`, and back.
    impl Migrator for Rename {
        const FROM_VERSION: u32 = 1;
        const DOWNGRADE: bool = true;

        fn upgrade(_: &Context, mut doc: Value) -> Result<Value, String> {
            let obj = doc.as_object_mut().ok_or("expected an object")?;
            if let Some(v) = obj.remove("a") {
                obj.insert("b".into(), v);
            }
            Ok(doc)
        }

        fn downgrade(_: &Context, mut doc: Value) -> Result<Value, String> {
            let obj = doc.as_object_mut().ok_or("expected an object")?;
            if let Some(v) = obj.remove("b") {
                obj.insert("a".into(), v);
            }
            Ok(doc)
        }
    }

    #[test]
    fn migrations_round_trip_through_json_text() {
        let ctx = Context::new("k", "r", 2);
        let up = upgrade_document::<Rename>(&ctx, r#"{"a": 1}"#).unwrap();
        assert_eq!(up, r#"{"b":1}"#);
        let down = downgrade_document::<Rename>(&Context::new("k", "r", 1), &up).unwrap();
        assert_eq!(down, r#"{"a":1}"#);
        assert!(upgrade_document::<Rename>(&ctx, "[]").is_err());
        assert!(upgrade_document::<Rename>(&ctx, "not json").is_err());
    }
}
