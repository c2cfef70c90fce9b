// Shared by the example plugins' unit tests (`include!`d): checks a plugin against the samples
// of `schemas/<name>/v<N>.examples.json`. Each sample's `plugin` violations must be exactly what
// the plugin returns (as a multiset of path and code); valid samples must get none. The `schema`
// violations are the host's business and are checked by its tests.

use scarab_plugin_sdk::serde_json::{self, Value};
use scarab_plugin_sdk::{Context, Validator};

pub fn check_plugin_violations<V: Validator>(schema_name: &str, examples_json: &str) {
    let examples: Value = serde_json::from_str(examples_json).expect("examples file is JSON");
    let mut checked = 0;
    for (group, must_be_valid) in [("valid", true), ("invalid", false)] {
        let samples = examples[group]
            .as_array()
            .expect("`valid` and `invalid` arrays");
        assert!(samples.len() >= 2, "too few {group} samples");
        for sample in samples {
            let name = sample["name"].as_str().expect("sample name");
            let key = sample["key"].as_str().expect("sample key");
            let ctx = Context::new(key, schema_name, 1);
            let text = serde_json::to_string(&sample["value"]).unwrap();
            let got = scarab_plugin_sdk::validate_document::<V>(&ctx, &text)
                .unwrap_or_else(|e| panic!("{name}: plugin error {e}"));
            let mut got: Vec<(String, String)> = got
                .into_iter()
                .map(|v| (v.path, v.code.expect("plugin violations have codes")))
                .collect();
            got.sort();
            let mut want: Vec<(String, String)> = if must_be_valid {
                assert!(
                    sample.get("violations").is_none(),
                    "{name}: valid with violations"
                );
                vec![]
            } else {
                let listed = sample["violations"].as_array().expect("violations");
                assert!(
                    !listed.is_empty(),
                    "{name}: invalid sample lists no violation"
                );
                listed
                    .iter()
                    .filter(|v| v["source"] == "plugin")
                    .map(|v| {
                        (
                            v["path"].as_str().unwrap().to_owned(),
                            v["code"].as_str().expect("plugin code").to_owned(),
                        )
                    })
                    .collect()
            };
            want.sort();
            assert_eq!(got, want, "sample {name:?}");
            checked += 1;
        }
    }
    assert!(checked >= 8);
}
