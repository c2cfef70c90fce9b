//! A migrator plugin that misbehaves on request, for the host's tests: world `migrator-plugin`
//! of `scarab:plugin@0.2.0`, upgrading from version one. It uses the generated bindings
//! directly, so that it can return what the SDK never would (text that is not JSON). The
//! document's `mode` field chooses what `upgrade` and `downgrade` do:
//!
//! | mode | behaviour |
//! | --- | --- |
//! | `loop` | spins forever (the host's time budget must stop it) |
//! | `trap` | panics, i.e. traps |
//! | `memory` | allocates until the memory cap stops it |
//! | `not-json` | returns text that is not JSON |
//! | `error` | returns `Err` with a reason |
//! | `lossy` | upgrades fine, but downgrading drops `mode` (the round trip differs) |
//!
//! Anything else converts the document unchanged. The validator accepts everything.

use std::hint::black_box;

wit_bindgen::generate!({
    path: "../../../wit/0.2.0",
    world: "migrator-plugin",
});

use exports::scarab::plugin::migrator::{Guest as MigratorGuest, Migration};
use exports::scarab::plugin::validator::Guest as ValidatorGuest;
use scarab::plugin::types::{Context, Violation};

struct Hostile;

fn mode(document: &str) -> String {
    serde_json::from_str::<serde_json::Value>(document)
        .ok()
        .and_then(|d| d.get("mode").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

fn misbehave(document: String, downgrading: bool) -> Result<String, String> {
    match mode(&document).as_str() {
        "loop" => spin(),
        "trap" => panic!("hostile migrator trapped on purpose"),
        "memory" => hog_memory(),
        "not-json" => Ok("this is not JSON".to_owned()),
        "error" => Err("hostile migrator cannot convert this on purpose".to_owned()),
        "lossy" if downgrading => Ok("{}".to_owned()),
        _ => Ok(document),
    }
}

impl ValidatorGuest for Hostile {
    fn validate(_ctx: Context, _document: String) -> Result<Vec<Violation>, String> {
        Ok(vec![])
    }
}

impl MigratorGuest for Hostile {
    fn describe() -> Migration {
        Migration {
            from_version: 1,
            downgrade: true,
        }
    }

    fn upgrade(_ctx: Context, document: String) -> Result<String, String> {
        misbehave(document, false)
    }

    fn downgrade(_ctx: Context, document: String) -> Result<String, String> {
        misbehave(document, true)
    }
}

export!(Hostile);

fn spin() -> ! {
    static SPIN: u64 = 0;
    let mut n = 0u64;
    loop {
        // SAFETY: reading an initialised, aligned static.
        n = n.wrapping_add(unsafe { std::ptr::read_volatile(&raw const SPIN) });
        black_box(n);
    }
}

fn hog_memory() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        chunks.push(black_box(vec![1u8; 1 << 20]));
    }
}
