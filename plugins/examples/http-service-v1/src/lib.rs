//! Validator plugin for `http-service` v1 (`schemas/http-service/v1.json`): the rules its JSON
//! Schema cannot say. Every rule is a plain function, skipped where its inputs are missing or
//! mistyped (the JSON Schema reports those).
//!
//! | code | path | rule |
//! | --- | --- | --- |
//! | `route-prefix-duplicate` | `/routes/{i}/path_prefix` | no two routes share a `path_prefix` (reported on the later ones) |
//! | `rate-limit-burst-below-rate` | `.../rate_limit/burst` | `burst >= requests_per_second` (defaults and each route) |
//! | `timeout-above-max` | `/defaults/timeout_ms`, `/routes/{i}/timeout_ms` | every timeout `<= defaults.max_timeout_ms` |
//! | `upstream-not-http-url` | `/routes/{i}/upstream` | `http://` or `https://`, a host, an optional port; no credentials, no fragment |

// A BTreeMap, not a HashMap: std's `RandomState` would import `wasi:random/insecure-seed`.
use std::collections::BTreeMap;

use scarab_plugin_sdk::{Context, Validator, Violation, register_validator};
use serde_json::Value;

pub struct HttpServiceRules;

impl Validator for HttpServiceRules {
    fn validate(_ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
        Ok(check(doc))
    }
}

register_validator!(HttpServiceRules);

/// Runs every rule.
pub fn check(doc: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let defaults = doc.get("defaults");
    let max_timeout = defaults
        .and_then(|d| d.get("max_timeout_ms"))
        .and_then(Value::as_u64);

    if let Some(defaults) = defaults {
        if let Some(limit) = defaults.get("rate_limit") {
            out.extend(burst_not_below_rate("/defaults/rate_limit", limit));
        }
        if let (Some(timeout), Some(max)) = (
            defaults.get("timeout_ms").and_then(Value::as_u64),
            max_timeout,
        ) {
            out.extend(timeout_within_max("/defaults/timeout_ms", timeout, max));
        }
    }

    let routes = doc.get("routes").and_then(Value::as_array);
    let routes = routes.map(Vec::as_slice).unwrap_or_default();
    let prefixes: Vec<Option<&str>> = routes
        .iter()
        .map(|r| r.get("path_prefix").and_then(Value::as_str))
        .collect();
    out.extend(duplicate_prefixes(&prefixes));
    for (i, route) in routes.iter().enumerate() {
        if let Some(upstream) = route.get("upstream").and_then(Value::as_str) {
            out.extend(upstream_url(upstream).err().map(|why| {
                Violation::new(format!("/routes/{i}/upstream"), why)
                    .with_code("upstream-not-http-url")
            }));
        }
        if let (Some(timeout), Some(max)) =
            (route.get("timeout_ms").and_then(Value::as_u64), max_timeout)
        {
            out.extend(timeout_within_max(
                &format!("/routes/{i}/timeout_ms"),
                timeout,
                max,
            ));
        }
        if let Some(limit) = route.get("rate_limit") {
            out.extend(burst_not_below_rate(
                &format!("/routes/{i}/rate_limit"),
                limit,
            ));
        }
    }
    out
}

/// Routes whose prefix an earlier route already has; `None` (missing or mistyped) is ignored.
pub fn duplicate_prefixes(prefixes: &[Option<&str>]) -> Vec<Violation> {
    let mut first_use = BTreeMap::new();
    let mut out = Vec::new();
    for (i, prefix) in prefixes.iter().enumerate() {
        let Some(prefix) = prefix else { continue };
        let first = *first_use.entry(*prefix).or_insert(i);
        if first != i {
            out.push(
                Violation::new(
                    format!("/routes/{i}/path_prefix"),
                    format!("path_prefix {prefix:?} is already used by route {first}"),
                )
                .with_code("route-prefix-duplicate"),
            );
        }
    }
    out
}

/// A token bucket smaller than one second's worth of tokens throttles below its own rate.
/// `at` is the pointer of the `rate_limit` object.
pub fn burst_not_below_rate(at: &str, rate_limit: &Value) -> Option<Violation> {
    let rate = rate_limit.get("requests_per_second")?.as_u64()?;
    let burst = rate_limit.get("burst")?.as_u64()?;
    (burst < rate).then(|| {
        Violation::new(
            format!("{at}/burst"),
            format!("burst {burst} must be at least requests_per_second {rate}"),
        )
        .with_code("rate-limit-burst-below-rate")
    })
}

/// A timeout must not exceed `defaults.max_timeout_ms`. `at` is the timeout's pointer.
pub fn timeout_within_max(at: &str, timeout_ms: u64, max_timeout_ms: u64) -> Option<Violation> {
    (timeout_ms > max_timeout_ms).then(|| {
        Violation::new(
            at,
            format!("timeout_ms {timeout_ms} exceeds defaults.max_timeout_ms {max_timeout_ms}"),
        )
        .with_code("timeout-above-max")
    })
}

/// Checks an upstream base URL: `http` or `https` (any case), `://`, a host (DNS name, IPv4 or
/// bracketed IPv6), an optional port 1..=65535, then an optional path and query. Credentials
/// (`user:pass@`) and fragments are refused. `Err` says why.
pub fn upstream_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "upstream {url:?} must be an absolute http:// or https:// URL"
        ));
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(format!(
            "upstream {url:?} must use http or https, not {scheme:?}"
        ));
    }
    if rest.contains('#') {
        return Err(format!("upstream {url:?} must not have a fragment"));
    }
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err(format!("upstream {url:?} must not contain credentials"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((ip, after)) = bracketed.split_once(']') else {
            return Err(format!("upstream {url:?} has an unclosed IPv6 address"));
        };
        if ip.is_empty()
            || !ip
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(format!("upstream {url:?} has an invalid IPv6 address"));
        }
        match after {
            "" => (ip, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (ip, Some(port)),
                None => return Err(format!("upstream {url:?} has an invalid host")),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(format!("upstream {url:?} has no host"));
    }
    if !authority.starts_with('[')
        && (!host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            || host.starts_with(['.', '-'])
            || host.contains(".."))
    {
        return Err(format!("upstream {url:?} has an invalid host {host:?}"));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.chars().all(|c| c.is_ascii_digit())
            && matches!(port.parse::<u32>(), Ok(1..=65535));
        if !valid {
            return Err(format!("upstream {url:?} has an invalid port {port:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn codes(doc: &Value) -> Vec<(String, String)> {
        let mut v: Vec<_> = check(doc)
            .into_iter()
            .map(|v| (v.path, v.code.unwrap()))
            .collect();
        v.sort();
        v
    }

    fn pair(path: &str, code: &str) -> (String, String) {
        (path.to_owned(), code.to_owned())
    }

    #[test]
    fn upstream_urls() {
        for ok in [
            "http://backend",
            "https://backend:8443",
            "HTTPS://api.example.com/v1/",
            "http://10.0.0.5:9000",
            "http://[::1]",
            "http://[fd00::12]:8080/v2?x=1",
            "http://backend?x=1",
            "http://x.y-z.example:1",
            "http://x:65535/",
        ] {
            assert_eq!(upstream_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "backend:8080",
            "/api",
            "ftp://files",
            "ws://socket",
            "http://",
            "http:///path",
            "http://:80",
            "http://user:pw@host",
            "http://user@host",
            "http://host#frag",
            "http://host:0",
            "http://host:65536",
            "http://host:http",
            "http://host:",
            "http://host:+80",
            "http://[::1",
            "http://[]:80",
            "http://[::1]x",
            "http://[zz::1]",
            "http://bad_host",
            "http://-host",
            "http://a..b",
            "http://ex ample",
        ] {
            assert!(upstream_url(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn burst_rule() {
        let ok = json!({"requests_per_second": 10, "burst": 10});
        assert_eq!(burst_not_below_rate("/defaults/rate_limit", &ok), None);
        let bad = json!({"requests_per_second": 10, "burst": 9});
        let v = burst_not_below_rate("/routes/3/rate_limit", &bad).unwrap();
        assert_eq!(v.path, "/routes/3/rate_limit/burst");
        assert_eq!(v.code.as_deref(), Some("rate-limit-burst-below-rate"));
        for skipped in [
            json!(null),
            json!("fast"),
            json!({"burst": 1}),
            json!({"requests_per_second": "10", "burst": 1}),
            json!({"requests_per_second": 10, "burst": -1}),
        ] {
            assert_eq!(burst_not_below_rate("/x", &skipped), None, "{skipped}");
        }
    }

    #[test]
    fn timeout_rule() {
        assert_eq!(timeout_within_max("/defaults/timeout_ms", 10, 10), None);
        let v = timeout_within_max("/routes/0/timeout_ms", 11, 10).unwrap();
        assert_eq!(v.path, "/routes/0/timeout_ms");
        assert_eq!(v.code.as_deref(), Some("timeout-above-max"));
    }

    #[test]
    fn duplicates_reported_on_later_routes() {
        let got = duplicate_prefixes(&[
            Some("/a"),
            Some("/b"),
            None,
            Some("/a"),
            Some("/a/"),
            Some("/a"),
        ]);
        let paths: Vec<_> = got.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, ["/routes/3/path_prefix", "/routes/5/path_prefix"]);
        assert!(got[0].message.contains("route 0"));
        assert!(duplicate_prefixes(&[]).is_empty());
    }

    #[test]
    fn whole_document() {
        let doc = json!({
            "listen_port": 8080,
            "defaults": {"timeout_ms": 500, "max_timeout_ms": 100,
                         "rate_limit": {"requests_per_second": 5, "burst": 1}},
            "routes": [
                {"path_prefix": "/a", "upstream": "http://a", "methods": ["GET"]},
                {"path_prefix": "/a", "upstream": "gopher://a", "methods": ["GET"],
                 "timeout_ms": 101, "rate_limit": {"requests_per_second": 2, "burst": 1}},
            ]
        });
        assert_eq!(
            codes(&doc),
            [
                pair("/defaults/rate_limit/burst", "rate-limit-burst-below-rate"),
                pair("/defaults/timeout_ms", "timeout-above-max"),
                pair("/routes/1/path_prefix", "route-prefix-duplicate"),
                pair("/routes/1/rate_limit/burst", "rate-limit-burst-below-rate"),
                pair("/routes/1/timeout_ms", "timeout-above-max"),
                pair("/routes/1/upstream", "upstream-not-http-url"),
            ]
        );
    }

    #[test]
    fn tolerates_anything() {
        for doc in [
            json!(null),
            json!([]),
            json!("x"),
            json!({}),
            json!({"defaults": 3, "routes": {"a": 1}}),
            json!({"defaults": {"timeout_ms": "1s", "max_timeout_ms": 5, "rate_limit": []}}),
            json!({"defaults": {"timeout_ms": 10}, "routes": [{"timeout_ms": 1000000}]}),
            json!({"routes": [null, 1, "x", {"path_prefix": 1, "upstream": false, "rate_limit": 3}]}),
        ] {
            assert_eq!(check(&doc), vec![], "{doc}");
        }
    }

    /// Every sample of `schemas/http-service/v1.examples.json` gets exactly its `plugin`
    /// violations.
    #[test]
    fn schema_examples_agree() {
        let text = include_str!("../../../../schemas/http-service/v1.examples.json");
        examples::check_plugin_violations::<HttpServiceRules>("http-service", text);
    }

    mod examples {
        include!("../../examples_check.rs");
    }
}
