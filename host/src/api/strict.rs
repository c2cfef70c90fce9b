//! One spelling per number: revisions, versions, ids and limits in paths and query strings
//! are decimal digits without sign or leading zeros, and paths are never percent-encoded.
//!
//! Why: Rust's `u64::from_str` takes `+1`, and `01`, `+1` and `%31` all meant version 1. A
//! cache, an audit record or an authorisation rule keyed by the text then sees several names
//! for one thing. Every key, schema name and id is spelt with `A-Z a-z 0-9 . _ -`, so a path
//! never needs percent-encoding.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use scarab_types::ErrorCode;
use serde::{Deserialize, Deserializer};

use super::ApiError;

/// `s` as a number if it is spelt canonically: 1 to 20 ASCII digits, no leading zero (but
/// `0` itself).
pub fn canonical_u64(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// Refuses a path in which a percent-escape stands for a character that needs none (400
/// `invalid_path`): `%31` for `1`. Escapes of other characters reach the handlers, which refuse
/// them as what they are (`a%2Fb` is an invalid key).
pub async fn no_percent_escapes(request: Request, next: Next) -> Response {
    if needless_escape(request.uri().path()) {
        return ApiError::new(ErrorCode::InvalidPath,
            "percent-escapes are not accepted in paths: keys, schema names and ids are spelt with A-Z a-z 0-9 . _ - only",
        )
        .into_response();
    }
    next.run(request).await
}

fn needless_escape(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && bytes
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
                .is_some_and(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~')
                })
    })
}

fn number<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    text.map(|t| {
        canonical_u64(&t)
            .and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{t:?} is not a number in canonical form (decimal digits, no sign, no leading zeros)"
                ))
            })
    })
    .transpose()
}

/// `deserialize_with` for an optional `u64` query parameter.
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    number(d)
}

/// `deserialize_with` for an optional `u32` query parameter.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    number(d)
}

/// `deserialize_with` for an optional `usize` query parameter.
pub fn opt_usize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    number(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_spelling_per_number() {
        assert_eq!(canonical_u64("0"), Some(0));
        assert_eq!(canonical_u64("42"), Some(42));
        assert_eq!(canonical_u64("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+1",
            "01",
            "00",
            "-1",
            " 1",
            "1 ",
            "1e2",
            "0x1",
            "18446744073709551616",
        ] {
            assert_eq!(canonical_u64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_needless_escapes_are_refused() {
        assert!(needless_escape("/v1/schemas/s/versions/%31"));
        assert!(needless_escape("/v1/configs/%61"));
        assert!(!needless_escape("/v1/configs/a%2Fb"));
        assert!(!needless_escape("/v1/configs/caf%C3%A9"));
        assert!(!needless_escape("/v1/configs/a%"));
    }
}
