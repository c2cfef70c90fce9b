//! Validator plugin for `feature-flag` v1 (`schemas/feature-flag/v1.json`), the Rust twin of
//! the Python and JavaScript plugins in `plugins/python` and `plugins/js`.
//!
//! | code | path | rule |
//! | --- | --- | --- |
//! | `rollout-while-disabled` | `/rollout_percent` | a disabled flag rolls out to 0 percent |
//! | `allow-deny-overlap` | `/deny/<i>` | no user is in both `allow` and `deny` |
//! | `key-outside-flags` | `""` | a flag is stored under `flags/` |

use scarab_plugin_sdk::{Context, Validator, Violation, register_validator};
use serde_json::Value;

include!("../../feature_flag_rules.rs");

pub struct FeatureFlag;

impl Validator for FeatureFlag {
    fn validate(ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
        Ok(check_feature_flag(ctx, doc, 1))
    }
}

register_validator!(FeatureFlag);

#[cfg(test)]
mod tests {
    #[test]
    fn schema_examples_agree() {
        let text = include_str!("../../../../schemas/feature-flag/v1.examples.json");
        examples::check_plugin_violations::<super::FeatureFlag>("feature-flag", text);
    }

    mod examples {
        include!("../../examples_check.rs");
    }
}
