// The `feature-flag` rules that version 1 and version 2 share (`include!`d by both plugins),
// the same as the Python (`plugins/python/feature_flag_rules.py`) and JavaScript
// (`plugins/js/feature-flag-rules.js`) plugins: the three languages give the same violations
// for every example of `schemas/feature-flag/v<N>.examples.json`.
//
// Every rule skips itself when its inputs are missing or mistyped: the plugin also sees
// documents that failed the JSON Schema, and the schema reports those.

// Uses `Context`, `Violation` and `serde_json::Value`, which the including crate imports.

/// `30` for both 30 and 30.0, as JSON (and JavaScript) print them.
fn show_number(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        _ => n.to_string(),
    }
}

/// `rollout-while-disabled`: a disabled flag must roll out to 0 percent.
fn rollout_while_disabled(doc: &Value, percent: Option<&Value>, name: &str, path: &str) -> Vec<Violation> {
    match (doc.get("enabled"), percent) {
        (Some(Value::Bool(false)), Some(Value::Number(n))) if n.as_f64().is_some_and(|p| p > 0.0) => {
            vec![Violation::new(
                path,
                format!(
                    "{name} is {} but the flag is disabled: set it to 0 or enable the flag",
                    show_number(n)
                ),
            )
            .with_code("rollout-while-disabled")]
        }
        _ => vec![],
    }
}

/// `allow-deny-overlap`: one violation per user of `deny` also in `allow`.
fn allow_deny_overlap(doc: &Value) -> Vec<Violation> {
    let (Some(Value::Array(allow)), Some(Value::Array(deny))) = (doc.get("allow"), doc.get("deny")) else {
        return vec![];
    };
    let allowed: std::collections::BTreeSet<&str> = allow.iter().filter_map(Value::as_str).collect();
    deny.iter()
        .enumerate()
        .filter_map(|(i, user)| {
            let user = user.as_str()?;
            allowed.contains(user).then(|| {
                Violation::new(
                    format!("/deny/{i}"),
                    format!(
                        "user {} is in both allow and deny: remove it from one of them",
                        Value::from(user)
                    ),
                )
                .with_code("allow-deny-overlap")
            })
        })
        .collect()
}

/// `key-outside-flags`: a non-empty key must start with `flags/`.
fn key_outside_flags(key: &str) -> Vec<Violation> {
    if key.is_empty() || key.starts_with("flags/") {
        return vec![];
    }
    vec![Violation::new(
        "",
        format!(
            "key {} is outside flags/: feature flags must be stored under flags/",
            Value::from(key)
        ),
    )
    .with_code("key-outside-flags")]
}

/// The three rules; `version` 1 or 2 says where the percent is.
pub fn check_feature_flag(ctx: &Context, doc: &Value, version: u32) -> Vec<Violation> {
    let mut out = Vec::new();
    if doc.is_object() {
        if version == 1 {
            out.extend(rollout_while_disabled(doc, doc.get("rollout_percent"), "rollout_percent", "/rollout_percent"));
        } else if let Some(rollout @ Value::Object(_)) = doc.get("rollout") {
            out.extend(rollout_while_disabled(doc, rollout.get("percent"), "rollout.percent", "/rollout/percent"));
        }
        out.extend(allow_deny_overlap(doc));
    }
    out.extend(key_outside_flags(&ctx.key));
    out
}
