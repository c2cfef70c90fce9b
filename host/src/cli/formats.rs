//! The static configuration formats `import`, `export` (and the agent) read and write: JSON,
//! TOML, YAML, and environment variables (`APP_DB__PORT=5432`: nested by `__`, typed by the
//! JSON Schema).
//!
//! Owns: parsing a file by its extension into a JSON value, rendering a value in a format,
//! and turning environment variables into one document. YAML is serde-saphyr (maintained,
//! pure Rust, with a budget against alias bombs); TOML the `toml` crate.

use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use clap::ValueEnum;
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Toml,
    Yaml,
    Env,
}

impl Format {
    /// The format a file's extension says (`.json`, `.toml`, `.yaml`/`.yml`, `.env`).
    pub fn of(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            "env" => Some(Self::Env),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Toml => "toml",
            Self::Yaml => "yaml",
            Self::Env => "env",
        }
    }
}

/// The document in `text`, as `format`. `Env` reads `NAME=value` lines (nested by `__`, values
/// typed by `schema` when given, as [`from_env`]).
pub fn parse(text: &str, format: Format, schema: Option<&Value>) -> anyhow::Result<Value> {
    Ok(match format {
        Format::Json => serde_json::from_str(text)?,
        Format::Toml => toml::from_str(text)?,
        Format::Yaml => serde_saphyr::from_str(text).map_err(|e| anyhow!("{e}"))?,
        Format::Env => {
            let vars = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| {
                    let (name, value) = l
                        .split_once('=')
                        .with_context(|| format!("not NAME=value: {l:?}"))?;
                    Ok((name.trim().to_string(), unquote(value.trim())))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            from_env(vars, "", schema)?
        }
    })
}

/// A file's document, by its extension.
pub fn read(path: &Path, schema: Option<&Value>) -> anyhow::Result<Value> {
    let format = Format::of(path)
        .with_context(|| format!("{}: not .json, .toml, .yaml, .yml or .env", path.display()))?;
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    parse(&text, format, schema).with_context(|| path.display().to_string())
}

/// A JSON value for a serializer other than serde_json's. The binary builds serde_json with
/// `arbitrary_precision`, whose numbers serialise as a private one-field map anywhere else;
/// here they are integers when they fit, else doubles.
pub struct Plain<'a>(pub &'a Value);

impl serde::Serialize for Plain<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    s.serialize_u64(u)
                } else if let Some(i) = n.as_i64() {
                    s.serialize_i64(i)
                } else {
                    s.serialize_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(t) => s.serialize_str(t),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Plain(item))?;
                }
                seq.end()
            }
            Value::Object(map) => {
                let mut m = s.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    m.serialize_entry(k, &Plain(v))?;
                }
                m.end()
            }
        }
    }
}

/// `value` as `format` (JSON pretty-printed; each ends with a newline).
pub fn render(value: &Value, format: Format) -> anyhow::Result<String> {
    let mut text = match format {
        Format::Json => serde_json::to_string_pretty(value)?,
        Format::Toml => {
            if !value.is_object() {
                bail!("TOML holds a table at the top, not {}", kind(value));
            }
            if let Some(at) = null_at(value, String::new()) {
                bail!("TOML has no null (at {at:?})");
            }
            toml::to_string(&Plain(value))?
        }
        Format::Yaml => serde_saphyr::to_string(&Plain(value)).map_err(|e| anyhow!("{e}"))?,
        Format::Env => {
            let mut lines = Vec::new();
            flatten(value, String::new(), &mut lines)?;
            lines.join("\n")
        }
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn null_at(value: &Value, at: String) -> Option<String> {
    match value {
        Value::Null => Some(at),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| null_at(v, format!("{at}/{i}"))),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| null_at(v, format!("{at}/{k}"))),
        _ => None,
    }
}

/// `NAME__SUB=value` lines: objects nest by `__`, names upper-cased; strings as they are
/// (quoted when they hold spaces or quotes), other values as JSON.
fn flatten(value: &Value, name: String, out: &mut Vec<String>) -> anyhow::Result<()> {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let k = k.to_ascii_uppercase();
                if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    bail!("{k:?} cannot be an environment variable name");
                }
                let next = if name.is_empty() {
                    k
                } else {
                    format!("{name}__{k}")
                };
                flatten(v, next, out)?;
            }
        }
        _ if name.is_empty() => bail!("environment variables hold an object, not {}", kind(value)),
        // Plain when nothing in it means anything to a shell; else single-quoted (`'` as
        // `'\''`), so that a file sourced by `sh` never expands `$(...)` or backticks.
        Value::String(s)
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c)) =>
        {
            out.push(format!("{name}={s}"));
        }
        Value::String(s) => out.push(format!("{name}='{}'", s.replace('\'', r"'\''"))),
        other => out.push(format!("{name}={other}")),
    }
    Ok(())
}

fn unquote(value: &str) -> String {
    // 'single quoted', with '\'' for a quote inside (as `render` writes it).
    if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        return value[1..value.len() - 1].replace(r"'\''", "'");
    }
    if value.len() >= 2
        && value.starts_with('"')
        && value.ends_with('"')
        && let Ok(Value::String(s)) = serde_json::from_str(value)
    {
        return s;
    }
    value.to_string()
}

/// One document from environment variables named `prefix...`: the rest of the name, lower
/// case, split at `__` into nested members (`APP_DB__PORT` → `{"db": {"port": ...}}`). Each
/// value is typed by the JSON Schema's `type` at its place (integer, number, boolean, array
/// or object as JSON, else a string); without a schema, or where it says nothing, a string.
pub fn from_env(
    vars: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
    schema: Option<&Value>,
) -> anyhow::Result<Value> {
    let mut doc = Map::new();
    let mut vars: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| name.starts_with(prefix) && name.len() > prefix.len())
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[prefix.len()..]
            .split("__")
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            bail!("{name}: an empty name between `__`s");
        }
        let types = schema.map(|s| types_at(s, s, &path)).unwrap_or_default();
        let value = typed(&raw, &types).with_context(|| format!("{name}={raw:?}"))?;
        let mut at = &mut doc;
        for (i, segment) in path.iter().enumerate() {
            if i + 1 == path.len() {
                at.insert(segment.clone(), value);
                break;
            }
            let next = at
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            at = next
                .as_object_mut()
                .with_context(|| format!("{name}: {segment} is both a value and a group"))?;
        }
    }
    Ok(Value::Object(doc))
}

/// The `type`s the schema gives at `path` (following `properties` and local `$ref`s).
fn types_at(root: &Value, schema: &Value, path: &[String]) -> Vec<String> {
    let mut here = schema;
    for _ in 0..16 {
        match here.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with('#') => match root.pointer(&r[1..]) {
                Some(target) => here = target,
                None => return Vec::new(),
            },
            _ => break,
        }
    }
    match path.split_first() {
        None => match here.get("type") {
            Some(Value::String(t)) => vec![t.clone()],
            Some(Value::Array(ts)) => ts
                .iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        },
        Some((first, rest)) => match here.get("properties").and_then(|p| p.get(first)) {
            Some(next) => types_at(root, next, rest),
            None => Vec::new(),
        },
    }
}

/// `raw` as the first of `types` it parses as; a string when none is given or fits.
fn typed(raw: &str, types: &[String]) -> anyhow::Result<Value> {
    for t in types {
        let parsed = match t.as_str() {
            "integer" => raw.parse::<i64>().ok().map(Value::from),
            "number" => serde_json::from_str::<serde_json::Number>(raw)
                .ok()
                .map(Value::Number),
            "boolean" => match raw.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Some(Value::Bool(true)),
                "false" | "0" | "no" => Some(Value::Bool(false)),
                _ => None,
            },
            "array" | "object" => serde_json::from_str::<Value>(raw)
                .ok()
                .filter(|v| (t == "array") == v.is_array() && (t == "object") == v.is_object()),
            "string" => Some(Value::String(raw.to_string())),
            "null" if raw.is_empty() || raw == "null" => Some(Value::Null),
            _ => None,
        };
        if let Some(v) = parsed {
            return Ok(v);
        }
    }
    if types.is_empty() || types.iter().any(|t| t == "string") {
        return Ok(Value::String(raw.to_string()));
    }
    bail!("not a valid {}", types.join(" or "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Numbers come out as numbers in YAML and TOML, not as serde_json's private
    /// `arbitrary_precision` map.
    #[test]
    fn numbers_are_numbers_in_every_format() {
        let value: Value = serde_json::from_str(r#"{"count": 1, "neg": -2, "f": 1.5}"#).unwrap();
        let yaml = render(&value, Format::Yaml).unwrap();
        assert!(
            yaml.contains("count: 1") && yaml.contains("neg: -2") && yaml.contains("f: 1.5"),
            "{yaml}"
        );
        let toml = render(&value, Format::Toml).unwrap();
        assert!(
            toml.contains("count = 1") && toml.contains("f = 1.5"),
            "{toml}"
        );
    }
    use serde_json::json;

    #[test]
    fn environment_variables_nest_by_double_underscore_and_are_typed_by_the_schema() {
        let schema = json!({"properties": {
            "port": {"type": "integer"}, "debug": {"type": "boolean"},
            "db": {"$ref": "#/$defs/db"}, "ratio": {"type": "number"}},
            "$defs": {"db": {"properties": {"hosts": {"type": "array"}, "name": {"type": "string"}}}}});
        let vars = [
            ("APP_PORT", "8080"),
            ("APP_DEBUG", "true"),
            ("APP_DB__HOSTS", "[\"a\",\"b\"]"),
            ("APP_DB__NAME", "0042"),
            ("APP_RATIO", "0.5"),
            ("APP_EXTRA", "12"),
            ("OTHER", "x"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let doc = from_env(vars, "APP_", Some(&schema)).unwrap();
        assert_eq!(
            doc,
            json!({"port": 8080, "debug": true, "db": {"hosts": ["a", "b"], "name": "0042"},
                   "ratio": 0.5, "extra": "12"})
        );
        let bad = [("APP_PORT".to_string(), "eighty".to_string())];
        assert!(from_env(bad, "APP_", Some(&schema)).is_err());
    }

    #[test]
    fn every_format_reads_back_what_it_writes() {
        let doc = json!({"name": "orders", "port": 8080, "ratio": 0.5, "on": true,
                         "tags": ["a", "b"], "db": {"host": "db.internal", "pool": 4}});
        for format in [Format::Json, Format::Toml, Format::Yaml] {
            let text = render(&doc, format).unwrap();
            assert_eq!(
                parse(&text, format, None).unwrap(),
                doc,
                "{format:?}:\n{text}"
            );
        }
        let env = render(&json!({"port": 8080, "db": {"host": "h"}}), Format::Env).unwrap();
        assert_eq!(env, "PORT=8080\nDB__HOST=h\n");
        let risky = json!({"cmd": "$(reboot) `id` it's"});
        let text = render(&risky, Format::Env).unwrap();
        assert_eq!(text, "CMD='$(reboot) `id` it'\\''s'\n");
        assert_eq!(parse(&text, Format::Env, None).unwrap(), risky);
        let schema = json!({"properties": {"port": {"type": "integer"}}});
        assert_eq!(
            parse(&env, Format::Env, Some(&schema)).unwrap(),
            json!({"port": 8080, "db": {"host": "h"}})
        );
    }

    #[test]
    fn toml_refuses_what_it_cannot_hold() {
        assert!(render(&json!([1]), Format::Toml).is_err());
        assert!(render(&json!({"a": null}), Format::Toml).is_err());
    }
}
