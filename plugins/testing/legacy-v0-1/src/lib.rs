//! A validator built directly against the first released contract, `scarab:plugin@0.1.0`
//! (`wit/0.1.0`), as a plugin compiled before 0.2.0 existed would be. The host must keep
//! accepting it. It reports one violation (code `legacy`) when `legacy_reject` is `true`.

wit_bindgen::generate!({
    path: "../../../wit/0.1.0",
    world: "validator-plugin",
});

use exports::scarab::plugin::validator::Guest;
use scarab::plugin::types::{Context, Violation};

struct Legacy;

impl Guest for Legacy {
    fn validate(_ctx: Context, document: String) -> Result<Vec<Violation>, String> {
        // No JSON parser: the contract promises valid JSON, and a substring is enough here.
        let compact: String = document.chars().filter(|c| !c.is_whitespace()).collect();
        Ok(if compact.contains("\"legacy_reject\":true") {
            vec![Violation {
                path: "/legacy_reject".into(),
                message: "rejected by a scarab:plugin@0.1.0 validator".into(),
                code: Some("legacy".into()),
            }]
        } else {
            vec![]
        })
    }
}

export!(Legacy);
