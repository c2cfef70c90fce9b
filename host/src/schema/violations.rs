//! What a refused document is told: the JSON Schema errors of `jsonschema` turned into
//! [`Violation`]s that say the truth, each naming the instance path, the keyword and where it
//! is in the schema, and the bounds on all of it.
//!
//! Owns: the list's bounds (at most `--max-violations` entries, then one entry saying how many
//! were left out; messages and paths cut to a few hundred bytes), the work spent listing, and
//! the messages for the keywords whose `jsonschema` error is wrong or vague (`minContains`,
//! `maxContains` and `dependentRequired` arrive as `contains` and `required`; `required`,
//! `additionalProperties` and `unevaluatedProperties` point at the parent object). Does not
//! own: compiling (`super`) or what a plugin says (it is only bounded here).

use scarab_types::VIOLATIONS_LEFT_OUT;
use serde_json::Value;

use super::cost::percent_decode;
use super::{SchemaValidator, Source, Violation};
use crate::plugins::PluginViolation;

pub use crate::config::{DEFAULT_MAX_VIOLATIONS, MAX_MAX_VIOLATIONS};

/// The longest violation message, in bytes: `jsonschema` messages embed the instance, so a
/// 1 MiB value would otherwise make a 1 MiB message. A longer one is cut and ends with "…".
pub const MAX_MESSAGE_BYTES: usize = 256;

/// The longest instance path: a property name is part of the instance, and may be as long as
/// the document. A longer path is cut and ends with "…" (it then points at nothing).
pub const MAX_PATH_BYTES: usize = 1024;

/// A failing document lists every JSON Schema violation while its values × the schema's cost
/// is at most this; beyond, its first violation. Collecting all errors of 8,000 failing
/// numbers (4.6 s, 2.4 GB) was 6.6 million evaluations; this is 300 times less (a cost-2
/// schema lists all for documents of up to 10,000 values).
pub const LIST_ALL_WORK: u64 = 20_000;

/// How many violations a list left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeftOut {
    Count(usize),
    /// Listing stopped at the first (see [`LIST_ALL_WORK`]): the rest were not counted.
    Uncounted,
}

/// `text` written by `Display` until it is `max` bytes (so a huge instance is never formatted
/// whole), cut on a character boundary and ending with "…" when cut.
struct Capped {
    text: String,
    max: usize,
    full: bool,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.full {
            return Err(std::fmt::Error);
        }
        let room = self.max - self.text.len();
        if s.len() <= room {
            self.text.push_str(s);
            return Ok(());
        }
        self.text.push_str(&s[..s.floor_char_boundary(room)]);
        self.full = true;
        Err(std::fmt::Error)
    }
}

impl Capped {
    fn of(message: &dyn std::fmt::Display, max: usize) -> String {
        let mut capped = Capped {
            text: String::new(),
            max,
            full: false,
        };
        // An error here is the writer saying it is full.
        let _ = std::fmt::Write::write_fmt(&mut capped, format_args!("{message}"));
        if capped.full {
            let keep = capped.text.floor_char_boundary(max - "…".len());
            capped.text.truncate(keep);
            capped.text.push('…');
        }
        capped.text
    }
}

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] on a character boundary, ending with "…"
/// when cut.
pub fn cut_message(message: &str) -> String {
    Capped::of(&message, MAX_MESSAGE_BYTES)
}

fn cut_path(path: &str) -> String {
    Capped::of(&path, MAX_PATH_BYTES)
}

/// A JSON Pointer token for `name`.
fn token(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

/// A property name quoted for a message (and cut: it is part of the instance).
fn quoted(name: &str) -> String {
    Capped::of(&format_args!("{name:?}"), 96)
}

/// The list of a document's violations being built, within its bound.
pub(super) struct Listing {
    max: usize,
    list: Vec<Violation>,
    left_out: Option<LeftOut>,
}

impl Listing {
    pub(super) fn new(max: usize) -> Self {
        Self {
            max,
            list: Vec::new(),
            left_out: None,
        }
    }

    fn push(&mut self, v: Violation) {
        if self.list.len() < self.max {
            self.list.push(v);
        } else {
            self.leave_out(LeftOut::Count(1));
        }
    }

    fn leave_out(&mut self, more: LeftOut) {
        self.left_out = Some(match (self.left_out, more) {
            (Some(LeftOut::Uncounted), _) | (_, LeftOut::Uncounted) => LeftOut::Uncounted,
            (Some(LeftOut::Count(a)), LeftOut::Count(b)) => LeftOut::Count(a + b),
            (None, more) => more,
        });
    }

    /// The JSON Schema violations of `doc`, in document order.
    pub(super) fn schema(&mut self, schema: &SchemaValidator, doc: &Value) {
        let validator = &schema.validator;
        // jsonschema 0.61 collects every error before its iterator yields the first
        // (`Validator::iter_errors`), so the work and memory of that collection are bounded
        // only by the schema's cost times the document's values (see
        // MAX_EVALUATIONS_PER_NODE). So: a valid document costs one short-circuiting pass; an
        // invalid one lists every violation only while the worst case of that collection is
        // within LIST_ALL_WORK, and beyond it only its first violation, which `validate`
        // finds without collecting the rest. Measured before this: a 16 KB document of 8,000
        // failing numbers took 4.6 s and 2.4 GB to list.
        if validator.is_valid(doc) {
            return;
        }
        if schema.work(doc, LIST_ALL_WORK) > LIST_ALL_WORK {
            if let Err(e) = validator.validate(doc) {
                self.add(schema, doc, &e);
                self.leave_out(LeftOut::Uncounted);
            }
            return;
        }
        for e in validator.iter_errors(doc) {
            self.add(schema, doc, &e);
        }
    }

    /// The entries one error stands for: as many as there is room for, formatted; the rest
    /// counted without formatting (or even naming) them.
    fn add(&mut self, schema: &SchemaValidator, doc: &Value, e: &jsonschema::ValidationError<'_>) {
        let room = self.max - self.list.len();
        let total = entries(schema, doc, e);
        let listed = if room > 0 {
            views(schema, doc, e, room)
        } else {
            Vec::new()
        };
        let left = total.saturating_sub(listed.len());
        listed.into_iter().for_each(|v| self.push(v));
        if left > 0 {
            self.leave_out(LeftOut::Count(left));
        }
    }

    /// A plugin's violations (already checked by `plugins`), bounded like the rest.
    pub(super) fn plugin(&mut self, found: Vec<PluginViolation>) {
        for v in found {
            if self.list.len() >= self.max {
                self.leave_out(LeftOut::Count(1));
                continue;
            }
            self.push(Violation {
                path: cut_path(&v.path),
                message: cut_message(&v.message),
                code: v.code.map(|c| cut_message(&c)),
                source: Source::Plugin,
                schema_path: None,
            });
        }
    }

    /// The list, ending with an entry that says how many were left out if any were.
    pub(super) fn finish(mut self) -> Vec<Violation> {
        let message = match self.left_out {
            None => return self.list,
            Some(LeftOut::Count(n)) => format!(
                "{n} more violation(s) left out: at most {} are listed (--max-violations)",
                self.max
            ),
            Some(LeftOut::Uncounted) => "more violations may follow: only the first is listed \
                 when listing all of a document this large against this schema would be too \
                 costly"
                .to_string(),
        };
        let source = self.list.last().map_or(Source::Schema, |v| v.source);
        self.list.push(Violation {
            path: String::new(),
            message,
            code: Some(VIOLATIONS_LEFT_OUT.to_string()),
            source,
            schema_path: None,
        });
        self.list
    }
}

/// How many entries an error becomes (see [`views`]).
fn entries(schema: &SchemaValidator, doc: &Value, e: &jsonschema::ValidationError<'_>) -> usize {
    use jsonschema::error::ValidationErrorKind as K;
    match e.kind() {
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            unexpected.len().max(1)
        }
        K::FalseSchema if e.schema_path().as_str().ends_with("/additionalProperties") => {
            unexpected_properties(schema, doc, e, 0).1.max(1)
        }
        _ => 1,
    }
}

/// The value of the keyword an error is about, in the schema or a document it refers to.
fn keyword_value<'s>(
    schema: &'s SchemaValidator,
    e: &jsonschema::ValidationError<'_>,
) -> Option<&'s Value> {
    if let Some(uri) = e.absolute_keyword_location()
        && let Some((base, fragment)) = uri.as_str().split_once('#')
        && let Some(document) = schema.documents.get(base)
    {
        let fragment = percent_decode(fragment);
        return document.pointer(&fragment);
    }
    schema.root.pointer(e.schema_path().as_str())
}

/// The properties of the instance that a false `additionalProperties` refuses, when its
/// schema has no `patternProperties` (then they are the ones `properties` does not name).
fn unexpected_properties(
    schema: &SchemaValidator,
    doc: &Value,
    e: &jsonschema::ValidationError<'_>,
    limit: usize,
) -> (Vec<String>, usize) {
    let location = e.schema_path().as_str();
    let parent = location.rsplit_once('/').map_or("", |(p, _)| p);
    let owner = match e
        .absolute_keyword_location()
        .and_then(|u| u.as_str().split_once('#'))
    {
        Some((base, fragment)) if schema.documents.contains_key(base) => {
            let fragment = percent_decode(fragment);
            let parent = fragment.rsplit_once('/').map_or("", |(p, _)| p).to_string();
            schema.documents[base].pointer(&parent)
        }
        _ => schema.root.pointer(parent),
    };
    // The error's instance is one refused value, not the object: read it from the document.
    let object = doc.pointer(e.instance_path().as_str());
    let (Some(owner), Some(Value::Object(instance))) = (owner, object) else {
        return (Vec::new(), 0);
    };
    if owner.get("patternProperties").is_some() {
        return (Vec::new(), 0);
    }
    let named = owner.get("properties").and_then(Value::as_object);
    // Counted whole, named only up to `limit`: an object may have 100,000 of them.
    let mut names = Vec::new();
    let mut total = 0;
    for k in instance
        .keys()
        .filter(|k| named.is_none_or(|n| !n.contains_key(*k)))
    {
        if names.len() < limit {
            names.push(k.clone());
        }
        total += 1;
    }
    (names, total)
}

/// The violations one `jsonschema` error stands for.
fn views(
    schema: &SchemaValidator,
    doc: &Value,
    e: &jsonschema::ValidationError<'_>,
    room: usize,
) -> Vec<Violation> {
    use jsonschema::error::ValidationErrorKind as K;
    let at = e.instance_path().as_str();
    let evaluation = e.evaluation_path().as_str();
    let keyword = e
        .schema_path()
        .as_str()
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let one = |path: String, code: &str, message: String, schema_path: String| Violation {
        path: cut_path(&path),
        message: cut_message(&message),
        code: Some(code.to_string()),
        source: Source::Schema,
        schema_path: Some(cut_path(&schema_path)),
    };
    match e.kind() {
        K::AdditionalProperties { unexpected } => unexpected
            .iter()
            .take(room)
            .map(|name| {
                one(
                    format!("{at}/{}", token(name)),
                    "additionalProperties",
                    format!(
                        "property {} is not allowed: no properties or patternProperties entry names it, and additionalProperties is false",
                        quoted(name)
                    ),
                    evaluation.to_string(),
                )
            })
            .collect(),
        // `additionalProperties: false` without `patternProperties`: `jsonschema` reports one
        // false-schema error at the object, naming neither the properties nor the keyword.
        K::FalseSchema if keyword == "additionalProperties" => {
            let (names, _) = unexpected_properties(schema, doc, e, room);
            if names.is_empty() {
                return vec![one(
                    at.to_string(),
                    "additionalProperties",
                    "a property is not allowed: additionalProperties is false".to_string(),
                    evaluation.to_string(),
                )];
            }
            names
                .iter()
                .map(|name| {
                    one(
                        format!("{at}/{}", token(name)),
                        "additionalProperties",
                        format!(
                            "property {} is not allowed: no properties entry names it, and additionalProperties is false",
                            quoted(name)
                        ),
                        evaluation.to_string(),
                    )
                })
                .collect()
        }
        K::UnevaluatedProperties { unexpected } => unexpected
            .iter()
            .take(room)
            .map(|name| {
                one(
                    format!("{at}/{}", token(name)),
                    "unevaluatedProperties",
                    format!(
                        "property {} is not allowed: no subschema evaluated it, and unevaluatedProperties is false",
                        quoted(name)
                    ),
                    evaluation.to_string(),
                )
            })
            .collect(),
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let path = format!("{at}/{}", token(name));
            if keyword == "dependentRequired" {
                // Which present properties required it: the error does not say.
                let triggers: Vec<&String> = match (keyword_value(schema, e), e.instance().as_ref())
                {
                    (Some(Value::Object(rules)), Value::Object(instance)) => rules
                        .iter()
                        .filter(|(trigger, needs)| {
                            instance.contains_key(*trigger)
                                && needs
                                    .as_array()
                                    .is_some_and(|n| n.iter().any(|x| x == property))
                        })
                        .map(|(trigger, _)| trigger)
                        .collect(),
                    _ => Vec::new(),
                };
                let (message, schema_path) = match triggers.first() {
                    Some(first) => (
                        format!(
                            "property {} is required when {} is present (dependentRequired)",
                            quoted(name),
                            quoted(first)
                        ),
                        format!("{evaluation}/{}", token(first)),
                    ),
                    None => (
                        format!(
                            "property {} is required by dependentRequired",
                            quoted(name)
                        ),
                        evaluation.to_string(),
                    ),
                };
                vec![one(path, "dependentRequired", message, schema_path)]
            } else {
                vec![one(
                    path,
                    "required",
                    format!("required property {} is missing", quoted(name)),
                    evaluation.to_string(),
                )]
            }
        }
        K::Contains => {
            let limit = keyword_value(schema, e).and_then(Value::as_u64);
            let (code, message) = match (keyword.as_str(), limit) {
                ("minContains", Some(n)) => (
                    "minContains",
                    format!(
                        "fewer than {n} items match the contains schema (minContains is {n})"
                    ),
                ),
                ("maxContains", Some(n)) => (
                    "maxContains",
                    format!("more than {n} items match the contains schema (maxContains is {n})"),
                ),
                _ => (
                    "contains",
                    "no item matches the contains schema".to_string(),
                ),
            };
            vec![one(at.to_string(), code, message, evaluation.to_string())]
        }
        kind => vec![Violation {
            path: cut_path(at),
            message: Capped::of(e, MAX_MESSAGE_BYTES),
            code: Some(kind.keyword().to_string()),
            source: Source::Schema,
            schema_path: Some(cut_path(evaluation)),
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::compile_json_schema;
    use serde_json::json;

    fn list(schema: Value, doc: Value, max: usize) -> Vec<Violation> {
        let validator = compile_json_schema(&schema).unwrap();
        let mut listing = Listing::new(max);
        listing.schema(&validator, &doc);
        listing.finish()
    }

    #[test]
    fn past_the_bound_one_entry_says_how_many_were_left_out() {
        let doc = Value::Array((0..1000).map(Value::from).collect());
        let found = list(json!({"items": {"type": "string"}}), doc, 100);
        assert_eq!(found.len(), 101);
        assert_eq!(found[0].path, "/0");
        assert_eq!(found[99].path, "/99");
        let last = &found[100];
        assert_eq!(last.code.as_deref(), Some(VIOLATIONS_LEFT_OUT));
        assert!(
            last.message.starts_with("900 more violation(s) left out"),
            "{}",
            last.message
        );
    }

    #[test]
    fn at_the_bound_nothing_is_left_out() {
        let doc = Value::Array((0..100).map(Value::from).collect());
        let found = list(json!({"items": {"type": "string"}}), doc, 100);
        assert_eq!(found.len(), 100);
        assert!(found.iter().all(|v| v.code.as_deref() == Some("type")));
    }

    #[test]
    fn a_document_too_large_to_list_gets_its_first_violation_and_a_note() {
        let doc = Value::Array((0..LIST_ALL_WORK).map(Value::from).collect());
        let found = list(json!({"items": {"type": "string"}}), doc, 100);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].path, "/0");
        assert_eq!(found[1].code.as_deref(), Some(VIOLATIONS_LEFT_OUT));
        assert!(
            found[1].message.contains("only the first"),
            "{}",
            found[1].message
        );
    }

    #[test]
    fn max_and_min_contains_say_what_they_count() {
        let schema = json!({
            "$defs": {"c": {"contains": {"const": 1}, "maxContains": 1, "minContains": 1}},
            "properties": {"a": {"$ref": "#/$defs/c"}}
        });
        let found = list(schema.clone(), json!({"a": [1, 1]}), 100);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].code.as_deref(), Some("maxContains"));
        assert_eq!(found[0].path, "/a");
        assert_eq!(
            found[0].message,
            "more than 1 items match the contains schema (maxContains is 1)"
        );
        // The schema location goes through the $ref.
        assert_eq!(
            found[0].schema_path.as_deref(),
            Some("/properties/a/$ref/maxContains")
        );
        let found = list(
            json!({"contains": {"const": 1}, "minContains": 2}),
            json!([1, 2]),
            100,
        );
        assert_eq!(found[0].code.as_deref(), Some("minContains"));
        assert!(
            found[0].message.starts_with("fewer than 2 items"),
            "{found:?}"
        );
        let found = list(json!({"contains": {"const": 1}}), json!([2]), 100);
        assert_eq!(found[0].code.as_deref(), Some("contains"));
        assert_eq!(found[0].message, "no item matches the contains schema");
    }

    #[test]
    fn dependent_required_names_the_property_that_requires() {
        let found = list(
            json!({"dependentRequired": {"a": ["b"], "z": ["c"]}}),
            json!({"a": 1}),
            100,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        let v = &found[0];
        assert_eq!(v.code.as_deref(), Some("dependentRequired"));
        assert_eq!(v.path, "/b");
        assert_eq!(
            v.message,
            "property \"b\" is required when \"a\" is present (dependentRequired)"
        );
        assert_eq!(v.schema_path.as_deref(), Some("/dependentRequired/a"));
    }

    #[test]
    fn required_and_unexpected_properties_are_named_in_the_path() {
        let found = list(json!({"required": ["x", "a/b"]}), json!({}), 100);
        let paths: Vec<&str> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["/x", "/a~1b"]);
        assert_eq!(found[0].message, "required property \"x\" is missing");
        let found = list(
            json!({"properties": {"a": {}}, "additionalProperties": false}),
            json!({"a": 1, "b": 2, "c": 3}),
            100,
        );
        let paths: Vec<&str> = found.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["/b", "/c"]);
        assert!(
            found
                .iter()
                .all(|v| v.code.as_deref() == Some("additionalProperties"))
        );
        let found = list(
            json!({"unevaluatedProperties": false}),
            json!({"n": {"b": 2}}),
            100,
        );
        assert_eq!(found[0].path, "/n");
        assert_eq!(found[0].code.as_deref(), Some("unevaluatedProperties"));
    }

    #[test]
    fn unexpected_properties_count_one_each_against_the_bound() {
        let doc = Value::Object((0..10).map(|i| (format!("p{i}"), json!(i))).collect());
        let found = list(json!({"additionalProperties": false}), doc, 4);
        assert_eq!(found.len(), 5);
        assert!(
            found[4].message.starts_with("6 more"),
            "{}",
            found[4].message
        );
    }

    #[test]
    fn many_unexpected_properties_are_counted_not_formatted() {
        // Small keys: every violation is counted exactly.
        let doc = Value::Object((0..5_000).map(|i| (format!("k{i}"), json!(0))).collect());
        for schema in [
            json!({"additionalProperties": false}),
            json!({"properties": {"x": {}}, "additionalProperties": false}),
        ] {
            let found = list(schema, doc.clone(), 100);
            assert_eq!(found.len(), 101);
            assert!(
                found[100].message.starts_with("4900 more"),
                "{}",
                found[100].message
            );
        }
        // Long keys, a document past LIST_ALL_WORK: its one error still gives at most the
        // bound (paths cut), then the note.
        let doc = Value::Object(
            (0..20_000)
                .map(|i| (format!("{}{i}", "k".repeat(900)), json!(0)))
                .collect(),
        );
        let found = list(json!({"additionalProperties": false}), doc, 100);
        assert_eq!(found.len(), 101);
        assert!(found.iter().all(|v| v.path.len() <= MAX_PATH_BYTES));
        assert_eq!(found[100].code.as_deref(), Some(VIOLATIONS_LEFT_OUT));
    }

    #[test]
    fn messages_embedding_a_huge_instance_are_cut() {
        let found = list(
            json!({"type": "number"}),
            Value::String("é".repeat(1 << 19)),
            100,
        );
        assert_eq!(found.len(), 1);
        let message = &found[0].message;
        assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
        assert!(message.len() > MAX_MESSAGE_BYTES - 8, "{}", message.len());
        assert!(message.starts_with("\"éé"), "{message}");
        assert!(message.ends_with('…'), "{message}");
    }

    #[test]
    fn a_huge_property_name_is_cut_in_the_path_and_the_message() {
        let name = "k".repeat(1 << 20);
        let found = list(
            json!({"additionalProperties": false}),
            json!({ name.clone(): 1 }),
            100,
        );
        assert!(found[0].path.len() <= MAX_PATH_BYTES);
        assert!(found[0].path.ends_with('…'));
        assert!(found[0].message.len() <= MAX_MESSAGE_BYTES);
    }

    #[test]
    fn an_any_of_failure_on_a_large_document_stays_small() {
        let doc = json!({"blob": "x".repeat(1 << 20)});
        let found = list(
            json!({"anyOf": [{"type": "array"}, {"type": "string"}]}),
            doc,
            100,
        );
        let size: usize = found.iter().map(|v| v.message.len() + v.path.len()).sum();
        assert!(size < 2 * MAX_MESSAGE_BYTES, "{found:?}");
    }

    #[test]
    fn cut_message_keeps_short_messages_and_cuts_on_a_char_boundary() {
        assert_eq!(cut_message("short"), "short");
        let exact = "a".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(cut_message(&exact), exact);
        for filler in ["a", "é", "€", "𝄞"] {
            let long = filler.repeat(MAX_MESSAGE_BYTES + 1);
            let cut = cut_message(&long);
            assert!(cut.len() <= MAX_MESSAGE_BYTES, "{filler}: {}", cut.len());
            assert!(cut.len() > MAX_MESSAGE_BYTES - 3 - filler.len(), "{filler}");
            assert!(cut.ends_with('…'));
            assert!(
                cut.trim_end_matches('…')
                    .chars()
                    .all(|c| c.to_string() == filler)
            );
        }
    }
}
