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
//! The contract is the WIT world `validator-plugin` of package `scarab:plugin@0.1.0`
//! (`wit/plugin.wit`). This crate hides it: you write one `impl` and one macro call.
//!
//! ## The sandbox
//!
//! A plugin must be a pure function of its input. It runs with **no capabilities**: no
//! filesystem, no network, no clock, no random numbers, no environment variables or arguments
//! (standard output and error go nowhere). Every call runs under a time budget (50 ms by
//! default) and a memory cap (32 MiB by default); a plugin that exceeds either, traps or panics
//! makes the write fail with a plugin error, never with a verdict. Plugins see **every**
//! document, including ones that already fail the JSON Schema: treat every field as possibly
//! missing or of the wrong type, and skip a rule whose inputs are absent. Never panic on input.
//!
//! Use `BTreeMap`/`BTreeSet` (or a `HashMap` with a fixed hasher) rather than `std`'s default
//! `HashMap`/`HashSet`: their `RandomState` makes the component import `wasi:random`, which the
//! sandbox does not grant.
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
//! scarab plugin check target/wasm32-wasip2/plugin/store_v1.wasm doc.json --schema schemas/store/v1.json
//! ```
//!
//! runs the same checks the server runs (JSON Schema and plugin, same sandbox and limits) and
//! prints every violation.
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

/// Exports a [`Validator`] as the plugin's `scarab:plugin/validator` interface.
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

            impl $crate::__private::Guest for __ScarabValidatorExport {
                fn validate(
                    ctx: $crate::__private::WitContext,
                    document: ::std::string::String,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::__private::WitViolation>,
                    ::std::string::String,
                > {
                    $crate::__private::call::<$validator>(ctx, &document)
                }
            }

            $crate::__private::__export_validator_plugin!(
                __ScarabValidatorExport with_types_in $crate::__private
            );
        };
    };
}

/// The generated bindings and the glue [`register_validator!`] expands to. Not a stable API.
#[doc(hidden)]
pub mod __private {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "validator-plugin",
        export_macro_name: "__export_validator_plugin",
        pub_export_macro: true,
        default_bindings_module: "::scarab_plugin_sdk::__private",
        runtime_path: "::scarab_plugin_sdk::__private::wit_bindgen::rt",
    });

    pub use wit_bindgen;

    pub use self::exports::scarab::plugin::validator::Guest;
    pub use self::scarab::plugin::types::{Context as WitContext, Violation as WitViolation};

    // `generate!` also defines `__export_validator_plugin` here (a `pub use` of a
    // `#[macro_export]` macro): `register_validator!` names it as `$crate::__private::..`.

    use crate::{Context, Validator, Violation};

    impl From<WitContext> for Context {
        fn from(ctx: WitContext) -> Self {
            Context {
                key: ctx.key,
                schema_name: ctx.schema_name,
                schema_version: ctx.schema_version,
            }
        }
    }

    impl From<Violation> for WitViolation {
        fn from(v: Violation) -> Self {
            WitViolation {
                path: v.path,
                message: v.message,
                code: v.code,
            }
        }
    }

    /// The body of the exported `validate`.
    pub fn call<V: Validator>(
        ctx: WitContext,
        document: &str,
    ) -> Result<Vec<WitViolation>, String> {
        let ctx = Context::from(ctx);
        crate::validate_document::<V>(&ctx, document)
            .map(|violations| violations.into_iter().map(WitViolation::from).collect())
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
        let ctx = __private::WitContext {
            key: "stores/orders".into(),
            schema_name: "store".into(),
            schema_version: 3,
        };
        let out = __private::call::<Echo>(ctx, &json!({"x": "v"}).to_string()).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, "/x");
        assert_eq!(out[0].message, "stores/orders: v");
        assert_eq!(out[0].code.as_deref(), Some("echo"));
        assert!(
            __private::call::<Echo>(
                __private::WitContext {
                    key: String::new(),
                    schema_name: String::new(),
                    schema_version: 1
                },
                "not json"
            )
            .is_err()
        );
    }
}
