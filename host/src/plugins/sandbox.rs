//! The sandbox every plugin instance runs in: an empty WASI context (no preopened directories,
//! no environment, no arguments, no network; stdout discarded and stderr captured so a panic
//! message can be reported), a deterministic WASI subset for the runtimes that need a clock
//! or random bytes to start (see [`stub_unprovided_imports`]), a memory limiter, and the
//! epoch ticker behind the time budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{
    Component, HasData, Linker, LinkerInstance, ResourceTable, ResourceType, Val,
};
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
use wasmtime_wasi::p2::bindings::{cli, sync};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable, IoError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{v0_1, v0_2, v0_2_migrator};
use super::sync_io::{HasSyncIo, SyncIo};
use super::{CallContext, Direction, Migration, PluginLimits, PluginViolation};

const STDERR_CAPACITY: usize = 4096;

pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    memory_cap: usize,
    memory_exceeded: bool,
    /// The state of the deterministic random source, reset before every call.
    random: u64,
}

/// Where the random source of every call (and instantiation) starts: the same bytes, so that
/// a verdict depends on the document only.
const RANDOM_SEED: u64 = 0x5ca7_ab5e_ed5e_ed01;

/// Random bytes a plugin may ask for in one WASI call (a language runtime asks for a few
/// dozen to seed its hashing); more traps, rather than allocate what the plugin asks.
pub const MAX_RANDOM_BYTES: u64 = 64 << 10;

impl HostState {
    fn new(memory_cap: usize) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory_cap,
            memory_exceeded: false,
            random: RANDOM_SEED,
        }
    }

    /// The next 64 bits of the deterministic random source (splitmix64: not secure, which is
    /// the point: the same sequence on every call).
    fn next_random(&mut self) -> u64 {
        self.random = self.random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.random;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn memory_exceeded(&self) -> bool {
        self.memory_exceeded
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }

    pub fn reset_for_call(&mut self) {
        self.memory_exceeded = false;
        self.random = RANDOM_SEED;
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            self.memory_exceeded = true;
            wasmtime::bail!("plugin memory limit of {} bytes reached", self.memory_cap);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

struct HasIo;
impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

/// The linker shared by all plugins: only the WASI interfaces a Rust `std` guest imports
/// (cli and io), backed by the empty context. Clocks, random, filesystem and sockets are
/// deliberately absent.
pub fn linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut l = Linker::new(engine);
    let lk = &mut l;
    cli::exit::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    cli::environment::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    cli::stdin::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    cli::stdout::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    cli::stderr::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    cli::terminal_input::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    cli::terminal_output::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(lk, HostState::cli)?;
    sync::io::error::add_to_linker::<HostState, HasIo>(lk, |t| &mut t.table)?;
    // Answered on the calling thread, so a plugin may print on the async runtime (`sync_io`).
    sync::io::poll::add_to_linker::<HostState, HasSyncIo>(lk, |t| SyncIo(&mut t.table))?;
    sync::io::streams::add_to_linker::<HostState, HasSyncIo>(lk, |t| SyncIo(&mut t.table))?;
    Ok(l)
}

/// Interfaces the sandbox provides (with nothing granted); every other import is stubbed.
const PROVIDED: [&str; 2] = ["wasi:cli/", "wasi:io/"];

/// Defines every import of `component` that the sandbox does not provide. A deterministic
/// subset of WASI, for the language runtimes (Python, JavaScript) that read a clock or random
/// bytes as they start:
///
/// - `wasi:random/*`: the same bytes on every call (a fixed-seed generator, reset before each
///   call), at most [`MAX_RANDOM_BYTES`] per request;
/// - `wasi:clocks/wall-clock` stands at the Unix epoch, `wasi:clocks/monotonic-clock` at 0,
///   both forever; their timers (`subscribe-*`) trap, so no plugin can sleep;
/// - `wasi:filesystem/preopens` lists no directory, so no file can be opened.
///
/// Everything else (the rest of filesystem, sockets, http, any other interface) is a function
/// that traps when called, so a plugin that merely imports it still loads, and one that uses
/// it fails its call. A verdict is thus a function of the document and its context only, on
/// every node and every time. Resources of a stubbed WASI interface that are wasi:io's
/// (`pollable`, `input-stream`, `output-stream`, `error`, which clocks, filesystem and sockets
/// `use`) are defined as the host's wasi:io types, as the linker provides them: a placeholder
/// of its own would not match.
///
/// (wasmtime's `define_unknown_imports_as_traps` would also shadow the WASI interfaces we do
/// provide whenever the guest names an older 0.2.x patch version than wasmtime-wasi's.)
pub fn stub_unprovided_imports(
    linker: &mut Linker<HostState>,
    component: &Component,
    engine: &Engine,
) -> wasmtime::Result<()> {
    fn stub_instance(
        instance: &mut LinkerInstance<'_, HostState>,
        qualified: &str,
        inst: &wasmtime::component::types::ComponentInstance,
        engine: &Engine,
    ) -> wasmtime::Result<()> {
        // `wasi:random/random@0.2.9` → `wasi:random/random`.
        let interface = qualified.split('@').next().unwrap_or(qualified).to_string();
        let wasi = interface.starts_with("wasi:");
        for (name, export) in inst.exports(engine) {
            let qualified = format!("{qualified}#{name}");
            match export.ty {
                // Answered only when the import is typed as WASI says (one result): a
                // component may declare any signature under these names.
                ComponentItem::ComponentFunc(func) => {
                    match deterministic(&interface, name).filter(|_| func.results().len() == 1) {
                        Some(answer) => {
                            instance.func_new(name, move |mut store, _, params, results| {
                                let slot = results.first_mut().ok_or_else(|| {
                                    wasmtime::format_err!("an import without its result")
                                })?;
                                *slot = answer(store.data_mut(), params)?;
                                Ok(())
                            })?
                        }
                        None => instance.func_new(name, move |_, _, _, _| {
                            wasmtime::bail!("plugins have no access to `{qualified}`")
                        })?,
                    }
                }
                ComponentItem::Resource(_) => {
                    let ty = match name {
                        "pollable" if wasi => ResourceType::host::<DynPollable>(),
                        "input-stream" if wasi => ResourceType::host::<DynInputStream>(),
                        "output-stream" if wasi => ResourceType::host::<DynOutputStream>(),
                        "error" if wasi => ResourceType::host::<IoError>(),
                        _ => ResourceType::host::<()>(),
                    };
                    instance.resource(name, ty, |_, _| Ok(()))?;
                }
                ComponentItem::ComponentInstance(nested) => {
                    stub_instance(&mut instance.instance(name)?, &qualified, &nested, engine)?;
                }
                _ => {}
            }
        }
        Ok(())
    }
    for (name, import) in component.component_type().imports(engine) {
        if PROVIDED.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let ComponentItem::ComponentInstance(inst) = import.ty else {
            wasmtime::bail!("the component imports `{name}`, which plugins cannot import");
        };
        stub_instance(&mut linker.instance(name)?, name, &inst, engine)?;
    }
    Ok(())
}

/// The answer of a function of the deterministic WASI subset (see
/// [`stub_unprovided_imports`]), by interface (without version) and function name.
type Answer = fn(&mut HostState, &[Val]) -> wasmtime::Result<Val>;

fn deterministic(interface: &str, function: &str) -> Option<Answer> {
    fn bytes(state: &mut HostState, params: &[Val]) -> wasmtime::Result<Val> {
        let Some(Val::U64(len)) = params.first() else {
            wasmtime::bail!("random bytes: expected a u64 length");
        };
        if *len > MAX_RANDOM_BYTES {
            wasmtime::bail!(
                "the plugin asked for {len} random bytes; at most {MAX_RANDOM_BYTES} per call"
            );
        }
        let mut out = Vec::with_capacity(*len as usize);
        while out.len() < *len as usize {
            for b in state.next_random().to_le_bytes() {
                if out.len() < *len as usize {
                    out.push(Val::U8(b));
                }
            }
        }
        Ok(Val::List(out))
    }
    fn datetime(seconds: u64, nanoseconds: u32) -> Val {
        Val::Record(vec![
            ("seconds".into(), Val::U64(seconds)),
            ("nanoseconds".into(), Val::U32(nanoseconds)),
        ])
    }
    Some(match (interface, function) {
        ("wasi:random/random", "get-random-bytes")
        | ("wasi:random/insecure", "get-insecure-random-bytes") => bytes,
        ("wasi:random/random", "get-random-u64")
        | ("wasi:random/insecure", "get-insecure-random-u64") => {
            |state, _| Ok(Val::U64(state.next_random()))
        }
        ("wasi:random/insecure-seed", "insecure-seed") => |_, _| {
            Ok(Val::Tuple(vec![
                Val::U64(RANDOM_SEED),
                Val::U64(!RANDOM_SEED),
            ]))
        },
        ("wasi:clocks/wall-clock", "now") => |_, _| Ok(datetime(0, 0)),
        ("wasi:clocks/wall-clock", "resolution") => |_, _| Ok(datetime(0, 1)),
        ("wasi:clocks/monotonic-clock", "now") => |_, _| Ok(Val::U64(0)),
        ("wasi:clocks/monotonic-clock", "resolution") => |_, _| Ok(Val::U64(1)),
        ("wasi:filesystem/preopens", "get-directories") => |_, _| Ok(Val::List(Vec::new())),
        _ => return None,
    })
}

/// A linked component, checked against one of the released worlds (newest first).
pub enum Pre {
    V0_1(v0_1::ValidatorPluginPre<HostState>),
    V0_2(v0_2::ValidatorPluginPre<HostState>),
    V0_2Migrator(v0_2_migrator::MigratorPluginPre<HostState>),
}

impl Pre {
    /// The richest world the component implements; the error of the newest world if none.
    pub fn new(pre: wasmtime::component::InstancePre<HostState>) -> wasmtime::Result<Self> {
        if let Ok(p) = v0_2_migrator::MigratorPluginPre::new(pre.clone()) {
            return Ok(Pre::V0_2Migrator(p));
        }
        if let Ok(p) = v0_1::ValidatorPluginPre::new(pre.clone()) {
            return Ok(Pre::V0_1(p));
        }
        v0_2::ValidatorPluginPre::new(pre).map(Pre::V0_2)
    }

    pub fn wit_version(&self) -> &'static str {
        match self {
            Pre::V0_1(_) => "0.1.0",
            Pre::V0_2(_) | Pre::V0_2Migrator(_) => "0.2.0",
        }
    }

    pub fn has_migrator(&self) -> bool {
        matches!(self, Pre::V0_2Migrator(_))
    }

    fn instantiate(&self, store: &mut Store<HostState>) -> wasmtime::Result<Bindings> {
        Ok(match self {
            Pre::V0_1(p) => Bindings::V0_1(p.instantiate(store)?),
            Pre::V0_2(p) => Bindings::V0_2(p.instantiate(store)?),
            Pre::V0_2Migrator(p) => Bindings::V0_2Migrator(p.instantiate(store)?),
        })
    }
}

/// An instance's exports, in the world its component implements.
pub enum Bindings {
    V0_1(v0_1::ValidatorPlugin),
    V0_2(v0_2::ValidatorPlugin),
    V0_2Migrator(v0_2_migrator::MigratorPlugin),
}

/// The validator's answer, whatever the contract version.
pub type Verdict = Result<Vec<PluginViolation>, String>;

/// The same conversions for each contract version's generated types.
macro_rules! call_validate {
    ($world:ident, $validator:expr, $store:expr, $ctx:expr, $document:expr) => {{
        let ctx = $world::scarab::plugin::types::Context {
            key: $ctx.key.to_string(),
            schema_name: $ctx.schema_name.to_string(),
            schema_version: $ctx.schema_version,
        };
        $validator
            .call_validate($store, &ctx, $document)
            .map(|answer| {
                answer.map(|vs| {
                    vs.into_iter()
                        .map(|v| PluginViolation {
                            path: v.path,
                            message: v.message,
                            code: v.code,
                        })
                        .collect()
                })
            })
    }};
}

impl Bindings {
    pub fn validate(
        &self,
        store: &mut Store<HostState>,
        ctx: &CallContext<'_>,
        document: &str,
    ) -> wasmtime::Result<Verdict> {
        match self {
            Bindings::V0_1(b) => {
                call_validate!(v0_1, b.scarab_plugin_validator(), store, ctx, document)
            }
            Bindings::V0_2(b) => {
                call_validate!(v0_2, b.scarab_plugin_validator(), store, ctx, document)
            }
            Bindings::V0_2Migrator(b) => call_validate!(
                v0_2_migrator,
                b.scarab_plugin_validator(),
                store,
                ctx,
                document
            ),
        }
    }

    pub fn describe(&self, store: &mut Store<HostState>) -> wasmtime::Result<Migration> {
        let Bindings::V0_2Migrator(b) = self else {
            wasmtime::bail!("the plugin has no migrator");
        };
        let m = b.scarab_plugin_migrator().call_describe(store)?;
        Ok(Migration {
            from_version: m.from_version,
            downgrade: m.downgrade,
        })
    }

    pub fn migrate(
        &self,
        store: &mut Store<HostState>,
        direction: Direction,
        ctx: &CallContext<'_>,
        document: &str,
    ) -> wasmtime::Result<Result<String, String>> {
        let Bindings::V0_2Migrator(b) = self else {
            wasmtime::bail!("the plugin has no migrator");
        };
        let wit_ctx = v0_2_migrator::scarab::plugin::types::Context {
            key: ctx.key.to_string(),
            schema_name: ctx.schema_name.to_string(),
            schema_version: ctx.schema_version,
        };
        let migrator = b.scarab_plugin_migrator();
        match direction {
            Direction::Upgrade => migrator.call_upgrade(store, &wit_ctx, document),
            Direction::Downgrade => migrator.call_downgrade(store, &wit_ctx, document),
        }
    }
}

/// A live instance with its own store.
pub struct Instance {
    pub store: Store<HostState>,
    pub bindings: Bindings,
    pub uses: u32,
}

impl Instance {
    pub fn new(
        engine: &Engine,
        pre: &Pre,
        limits: &PluginLimits,
        deadline_ticks: u64,
    ) -> wasmtime::Result<Self> {
        let mut store = Store::new(engine, HostState::new(limits.memory_bytes));
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        // Instantiation runs guest code (start functions): it runs under a deadline too.
        store.set_epoch_deadline(deadline_ticks);
        store.epoch_deadline_trap();
        let bindings = pre.instantiate(&mut store)?;
        Ok(Self {
            store,
            bindings,
            uses: 0,
        })
    }
}

/// Advances the engine's epoch every `tick`, which is what interrupts a plugin past its
/// deadline. Stops when dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine, tick: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("scarab-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .expect("spawn epoch ticker");
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
