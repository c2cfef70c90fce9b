//! Strict JSON from the network: the one structural check every JSON body and every JSON text
//! in a command passes before anything parses it into a tree, stores it or proposes it.
//!
//! Owns: the nesting bound, the refusal of duplicate object keys and of numbers no consumer
//! can represent. Why a scanner of its own: serde_json recurses once per level (its limit,
//! 128, is what a log entry wrapping a deep value exceeded), keeps the last of duplicate keys
//! silently, and its tree types cannot say where a duplicate was. The scanner is iterative and
//! linear in the input, so hostile input costs one pass whatever its shape; syntax is left to
//! serde_json, which parses only what passed here.
//!
//! Numbers are kept exactly (serde_json's `arbitrary_precision` is on in the host): a config
//! comes back with `18446744073709551617` and `1.50` as they were sent; the one change is the
//! spelling of an exponent, which serde_json writes with its sign (`1e2` comes back `1e+2`). A number whose
//! value is not a finite double (`1e400`) is refused: JSON Schema and plugins could not
//! compare it.

use std::borrow::Cow;
use std::collections::HashSet;

/// Default of `--max-json-depth`: containers inside containers, in any one JSON document of a
/// request (a config value, a condition's `equals`, a JSON Schema).
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// The largest `--max-json-depth` allowed: a body wraps a document in a few levels of
/// envelope, and serde_json refuses more than 128.
pub const MAX_MAX_DEPTH: usize = 100;
/// Levels a request body may add around the documents it carries
/// (`{"ops": [{"value": ...}]}`).
pub const ENVELOPE_DEPTH: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    #[error("the JSON is nested deeper than {max} levels")]
    TooDeep { max: usize },
    #[error("the object at {pointer:?} has the key {key:?} more than once")]
    DuplicateKey { pointer: String, key: String },
    #[error("the number {lexeme} is out of range (it must be a finite double)")]
    NumberOutOfRange { lexeme: String },
    #[error("{0}")]
    Syntax(String),
}

enum Frame<'a> {
    Object {
        keys: Keys<'a>,
        /// The key whose value is being read (for error pointers).
        current: Cow<'a, [u8]>,
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

/// An object's keys so far, as their decoded bytes: borrowed from the input unless the key
/// has an escape. A request's objects mostly have a few keys, for which a scan of a short list
/// is cheaper than hashing (this check runs on every write, twice); past [`FEW_KEYS`] they go
/// into a set, so that an object of many keys still costs one pass.
enum Keys<'a> {
    Few(Vec<Cow<'a, [u8]>>),
    Many(HashSet<Cow<'a, [u8]>>),
}

/// Keys of an object compared by a scan before they are hashed.
const FEW_KEYS: usize = 16;

impl<'a> Keys<'a> {
    /// Adds `key`; false if the object already has it.
    fn insert(&mut self, key: Cow<'a, [u8]>) -> bool {
        match self {
            Keys::Few(keys) => {
                if keys.contains(&key) {
                    return false;
                }
                if keys.len() < FEW_KEYS {
                    keys.push(key);
                } else {
                    let mut set: HashSet<_> = keys.drain(..).collect();
                    set.insert(key);
                    *self = Keys::Many(set);
                }
                true
            }
            Keys::Many(set) => set.insert(key),
        }
    }
}

/// The largest integer lexeme (digits and a sign, no fraction or exponent) that needs no
/// parse to be known finite: every integer below 10^308 parses to a finite double.
const FINITE_INTEGER_CHARS: usize = 300;

/// Checks `bytes` for nesting deeper than `max_depth`, duplicate keys and numbers out of
/// range. Not a syntax check: parse afterwards (see [`parse`]).
pub fn check(bytes: &[u8], max_depth: usize) -> Result<(), JsonError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' | b'[' => {
                if stack.len() >= max_depth {
                    return Err(JsonError::TooDeep { max: max_depth });
                }
                stack.push(if bytes[i] == b'{' {
                    Frame::Object {
                        keys: Keys::Few(Vec::new()),
                        current: Cow::Borrowed(&[]),
                        expect_key: true,
                    }
                } else {
                    Frame::Array { index: 0 }
                });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b',' => {
                match stack.last_mut() {
                    Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                    Some(Frame::Array { index }) => *index += 1,
                    None => {}
                }
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut escaped = false;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        escaped = true;
                        i += 1;
                    }
                    i += 1;
                }
                let end = (i + 1).min(bytes.len());
                i = end;
                let Some(Frame::Object {
                    keys,
                    current,
                    expect_key: expect_key @ true,
                }) = stack.last_mut()
                else {
                    continue;
                };
                let raw = &bytes[start..end];
                let key: Cow<[u8]> = if escaped {
                    Cow::Owned(
                        serde_json::from_slice::<String>(raw)
                            .map_err(|e| JsonError::Syntax(e.to_string()))?
                            .into_bytes(),
                    )
                } else {
                    Cow::Borrowed(&raw[1..raw.len().saturating_sub(1).max(1)])
                };
                *expect_key = false;
                *current = key.clone();
                if !keys.insert(key) {
                    let key = String::from_utf8_lossy(current).into_owned();
                    let depth = stack.len() - 1;
                    return Err(JsonError::DuplicateKey {
                        pointer: pointer(&stack[..depth]),
                        key,
                    });
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                let mut integer = true;
                while i < bytes.len()
                    && matches!(bytes[i], b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E')
                {
                    integer &= matches!(bytes[i], b'0'..=b'9' | b'-');
                    i += 1;
                }
                if integer && i - start <= FINITE_INTEGER_CHARS {
                    continue;
                }
                let lexeme = std::str::from_utf8(&bytes[start..i]).unwrap_or_default();
                // A lexeme that is not a number at all is serde_json's to report.
                if let Ok(v) = lexeme.parse::<f64>()
                    && !v.is_finite()
                {
                    return Err(JsonError::NumberOutOfRange {
                        lexeme: lexeme.chars().take(64).collect(),
                    });
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// The JSON pointer of the innermost value the frames lead to.
fn pointer(frames: &[Frame]) -> String {
    let mut out = String::new();
    for f in frames {
        out.push('/');
        match f {
            Frame::Object { current, .. } => out.push_str(
                &String::from_utf8_lossy(current)
                    .replace('~', "~0")
                    .replace('/', "~1"),
            ),
            Frame::Array { index } => out.push_str(&index.to_string()),
        }
    }
    out
}

/// [`check`]s, then parses (the tests' way to read what the scanner accepts).
#[cfg(test)]
pub fn parse<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, JsonError> {
    check(bytes, max_depth)?;
    serde_json::from_slice(bytes).map_err(|e| JsonError::Syntax(e.to_string()))
}

/// Checks that `text` is one well-formed JSON document within `max_depth`, without building
/// it (for JSON texts carried inside commands).
pub fn check_text(text: &str, max_depth: usize) -> Result<(), JsonError> {
    check(text.as_bytes(), max_depth)?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| JsonError::Syntax(e.to_string()))
}

/// The nesting depth of a value: 0 for a scalar, 1 for `[]` or `{}`, and so on.
pub fn depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut todo = vec![(value, 0usize)];
    while let Some((v, d)) = todo.pop() {
        match v {
            serde_json::Value::Array(items) => {
                deepest = deepest.max(d + 1);
                todo.extend(items.iter().map(|i| (i, d + 1)));
            }
            serde_json::Value::Object(map) => {
                deepest = deepest.max(d + 1);
                todo.extend(map.values().map(|i| (i, d + 1)));
            }
            _ => {}
        }
    }
    deepest
}

/// Equality of JSON values as a JSON Schema `const` sees it: numbers by value (`1`, `1.0` and
/// `1e0` are equal), everything else structurally. Deterministic, so apply may use it.
pub fn equal(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => {
            if x.to_string() == y.to_string() {
                return true;
            }
            match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
                (Some(p), Some(q), _, _) => p == q,
                (_, _, Some(p), Some(q)) => p == q,
                _ => match (x.as_f64(), y.as_f64()) {
                    (Some(p), Some(q)) => p == q,
                    _ => false,
                },
            }
        }
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (V::Object(x), V::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        "[".repeat(levels) + &"]".repeat(levels)
    }

    #[test]
    fn depth_at_the_limit_passes_and_one_more_is_refused() {
        assert_eq!(check(nested(64).as_bytes(), 64), Ok(()));
        assert_eq!(
            check(nested(65).as_bytes(), 64),
            Err(JsonError::TooDeep { max: 64 })
        );
        let v: serde_json::Value = serde_json::from_str(&nested(64)).unwrap();
        assert_eq!(depth(&v), 64);
    }

    #[test]
    fn a_million_levels_cost_one_pass() {
        let deep = nested(1_000_000);
        assert_eq!(
            check(deep.as_bytes(), 64),
            Err(JsonError::TooDeep { max: 64 })
        );
    }

    #[test]
    fn duplicate_keys_are_refused_with_where() {
        let e = check(br#"{"a":{"b":[1,{"x":1,"x":2}]}}"#, 64).unwrap_err();
        assert_eq!(
            e,
            JsonError::DuplicateKey {
                pointer: "/a/b/1".into(),
                key: "x".into()
            }
        );
        // The same key spelt with an escape is the same key.
        assert!(matches!(
            check(br#"{"a":1,"\u0061":2}"#, 64),
            Err(JsonError::DuplicateKey { .. })
        ));
        // The same key in sibling objects, or as a string value, is fine.
        assert_eq!(check(br#"[{"a":1},{"a":"a"}]"#, 64), Ok(()));
        assert_eq!(check(br#"{"a":"b","b":"a"}"#, 64), Ok(()));
    }

    #[test]
    fn numbers_keep_their_spelling_or_are_refused() {
        let v: serde_json::Value = parse(br#"[18446744073709551617,1e2,1.50]"#, 64).unwrap();
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            "[18446744073709551617,1e+2,1.50]"
        );
        assert!(matches!(
            check(b"[1e400]", 64),
            Err(JsonError::NumberOutOfRange { .. })
        ));
        assert!(matches!(
            check(b"-1e999", 64),
            Err(JsonError::NumberOutOfRange { .. })
        ));
    }

    #[test]
    fn a_duplicate_among_many_keys_is_found_past_the_short_list() {
        let keys: Vec<String> = (0..super::FEW_KEYS + 5)
            .map(|i| format!("\"k{i}\":{i}"))
            .collect();
        let object = format!("{{{}}}", keys.join(","));
        assert_eq!(check(object.as_bytes(), 64), Ok(()));
        // The first key, the last of the short list, the one that moved it to a set, one after.
        for dup in [0, super::FEW_KEYS - 1, super::FEW_KEYS, super::FEW_KEYS + 2] {
            let with = format!("{{{},\"k{dup}\":0}}", keys.join(","));
            assert_eq!(
                check(with.as_bytes(), 64),
                Err(JsonError::DuplicateKey {
                    pointer: String::new(),
                    key: format!("k{dup}")
                })
            );
        }
        // An escaped spelling is found among many keys too.
        let with = format!("{{{},\"\\u006b3\":0}}", keys.join(","));
        assert!(matches!(
            check(with.as_bytes(), 64),
            Err(JsonError::DuplicateKey { .. })
        ));
    }

    #[test]
    fn long_integers_are_finite_up_to_a_doubles_range() {
        let digits = |n: usize| "9".repeat(n);
        // 300 characters need no parse; 308 digits still fit a double, 309 do not.
        for n in [super::FINITE_INTEGER_CHARS, 301, 308] {
            assert_eq!(check(digits(n).as_bytes(), 4), Ok(()), "{n} digits");
            assert_eq!(check(format!("-{}", digits(n)).as_bytes(), 4), Ok(()));
        }
        assert!(matches!(
            check(digits(309).as_bytes(), 4),
            Err(JsonError::NumberOutOfRange { .. })
        ));
        assert!(matches!(
            check(format!("[-{}]", digits(400)).as_bytes(), 4),
            Err(JsonError::NumberOutOfRange { .. })
        ));
    }

    #[test]
    fn strings_with_brackets_and_escapes_do_not_count() {
        assert_eq!(check(br#"{"k":"[[[[{{{{\"}}"}"#, 2), Ok(()));
    }

    #[test]
    fn numbers_compare_by_value() {
        let a: serde_json::Value = serde_json::from_str(r#"{"n":[1,2.5]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"n":[1.0,25e-1]}"#).unwrap();
        assert!(equal(&a, &b));
        let c: serde_json::Value = serde_json::from_str(r#"{"n":[1,2.6]}"#).unwrap();
        assert!(!equal(&a, &c));
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            &b"\"\\"[..],
            b"{\"",
            b"{\"\\u12",
            b"]]]]}}}",
            b"-",
            b"{\"a\"",
            b"\xff\xfe",
        ] {
            let _ = check(input, 4);
            let _ = parse::<serde_json::Value>(input, 4);
        }
    }
}
