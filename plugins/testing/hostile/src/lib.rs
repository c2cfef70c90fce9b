//! A validator plugin that misbehaves on request, for the host's integration tests. The
//! document's `mode` string field chooses what it does:
//!
//! | mode | behaviour |
//! | --- | --- |
//! | `ok` | no violations |
//! | `violation` | one violation `{path: "/mode", code: "hostile"}` |
//! | `loop` | spins forever (the host's time budget must stop it) |
//! | `memory` | allocates and writes 1 MiB chunks until allocation fails (the memory cap) |
//! | `trap` | panics, i.e. traps (`panic = "abort"` in the plugin profile) |
//! | `error` | returns `Err("hostile plugin refuses")` |
//! | `garbage` | returns a violation whose path `"not a pointer"` is not a JSON Pointer |
//! | `flood` | returns 100 000 violations |
//! | `clock` | one violation (code `clock`) whose message gives the wall clock (seconds since the epoch) and how far the monotonic clock moved while it spun 1 000 iterations |
//! | `random` | one violation (code `random`) whose message is 32 bytes from a fresh `RandomState` hasher (the host's random source) |
//! | `file` | one violation (code `file`) with what reading `/etc/hostname` gave |
//! | `net` | one violation (code `net`) with what connecting to 127.0.0.1:1 gave |
//! | `sleep` | sleeps for an hour (a WASI timer: the host must refuse it, not block) |
//! | `print` | writes a line to standard output and one to standard error, then no violations |
//!
//! Anything else, or no `mode`, gives no violations.

use std::hint::black_box;

use scarab_plugin_sdk::{Context, Validator, Violation, register_validator};
use serde_json::Value;

/// How many violations `flood` returns.
pub const FLOOD: usize = 100_000;

const MIB: usize = 1 << 20;

pub struct Hostile;

impl Validator for Hostile {
    fn validate(_ctx: &Context, doc: &Value) -> Result<Vec<Violation>, String> {
        match doc.get("mode").and_then(Value::as_str).unwrap_or("") {
            "violation" => Ok(vec![
                Violation::new("/mode", "hostile plugin reports a violation on purpose")
                    .with_code("hostile"),
            ]),
            "loop" => spin(),
            "memory" => hog_memory(),
            "trap" => panic!("hostile plugin trapped on purpose"),
            "error" => Err("hostile plugin refuses".to_owned()),
            "garbage" => Ok(vec![
                Violation::new("not a pointer", "hostile plugin returns a malformed path")
                    .with_code("hostile"),
            ]),
            "flood" => Ok(flood()),
            "clock" => Ok(vec![Violation::new("", clock()).with_code("clock")]),
            "random" => Ok(vec![Violation::new("", random()).with_code("random")]),
            "file" => Ok(vec![
                Violation::new(
                    "",
                    format!("{:?}", std::fs::read_to_string("/etc/hostname")),
                )
                .with_code("file"),
            ]),
            "net" => Ok(vec![
                Violation::new(
                    "",
                    format!(
                        "{:?}",
                        std::net::TcpStream::connect("127.0.0.1:1").map(|_| ())
                    ),
                )
                .with_code("net"),
            ]),
            "print" => {
                println!("hostile plugin prints to stdout");
                eprintln!("hostile plugin prints to stderr");
                Ok(vec![])
            }
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(vec![])
            }
            _ => Ok(vec![]),
        }
    }
}

register_validator!(Hostile);

/// Never returns: every iteration does a volatile read, which the optimiser must keep.
fn spin() -> ! {
    static SPIN: u64 = 0;
    let mut n = 0u64;
    loop {
        // SAFETY: reading an initialised, aligned static.
        n = n.wrapping_add(unsafe { std::ptr::read_volatile(&raw const SPIN) });
        black_box(n);
    }
}

/// Allocates and writes 1 MiB chunks until the allocator fails (which aborts: a trap).
fn hog_memory() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut i = 0u8;
    loop {
        let mut chunk = Vec::with_capacity(MIB);
        chunk.resize(MIB, i | 1);
        chunks.push(black_box(chunk));
        i = i.wrapping_add(1);
    }
}

/// The wall clock, and the monotonic clock's movement over some work.
fn clock() -> String {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(-1.0);
    let start = std::time::Instant::now();
    let mut n = 0u64;
    for i in 0..1_000u64 {
        n = black_box(n.wrapping_add(i));
    }
    format!("wall {wall} s; monotonic moved {:?}", start.elapsed())
}

/// 32 bytes drawn through std's randomly keyed hasher.
fn random() -> String {
    use std::hash::{BuildHasher, Hasher};
    (0..4)
        .map(|i| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i);
            format!("{:016x}", h.finish())
        })
        .collect()
}

fn flood() -> Vec<Violation> {
    let mut out = Vec::with_capacity(FLOOD);
    out.extend((0..FLOOD).map(|_| Violation::new("/mode", "flood").with_code("hostile")));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use scarab_plugin_sdk::validate_document;

    fn run(doc: &str) -> Result<Vec<Violation>, String> {
        validate_document::<Hostile>(&Context::new("k", "hostile", 1), doc)
    }

    #[test]
    fn harmless_modes() {
        for doc in [
            r#"{"mode":"ok"}"#,
            "{}",
            r#"{"mode":3}"#,
            r#"{"mode":"other"}"#,
            "[]",
        ] {
            assert_eq!(run(doc), Ok(vec![]), "{doc}");
        }
        let v = run(r#"{"mode":"violation"}"#).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(
            (v[0].path.as_str(), v[0].code.as_deref()),
            ("/mode", Some("hostile"))
        );
        assert_eq!(
            run(r#"{"mode":"error"}"#),
            Err("hostile plugin refuses".into())
        );
        assert_eq!(
            run(r#"{"mode":"garbage"}"#).unwrap()[0].path,
            "not a pointer"
        );
        assert_eq!(run(r#"{"mode":"flood"}"#).unwrap().len(), FLOOD);
    }

    #[test]
    #[should_panic(expected = "hostile plugin trapped on purpose")]
    fn trap_panics() {
        let _ = run(r#"{"mode":"trap"}"#);
    }
}
