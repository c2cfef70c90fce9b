//! The bindings of the world `migrator-plugin` of `scarab:plugin@0.2.0`, for
//! `scarab-plugin-sdk` (which re-exports them as `__private::migrator_world`). Use the SDK.
//!
//! They live in their own crate because wit-bindgen names the exported macros of an
//! interface after the interface: the SDK's `validator-plugin` world and this world both
//! export `scarab:plugin/validator@0.2.0`, and two such macros cannot share one crate.

wit_bindgen::generate!({
    path: "wit/0.2.0",
    world: "migrator-plugin",
    export_macro_name: "__export_migrator_plugin",
    pub_export_macro: true,
    default_bindings_module: "::scarab_plugin_sdk::__private::migrator_world",
});

pub use wit_bindgen;
