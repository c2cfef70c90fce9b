//! The sandbox every plugin instance runs in: an empty WASI context (no preopened directories,
//! no environment, no arguments, no network; stdout discarded and stderr captured so a panic
//! message can be reported), a deterministic WASI subset for the runtimes that need a clock
//! or random bytes to start (see [`stub_unprovided_imports`]), a memory limiter, and the
//! time budget: an epoch ticker and the CPU-time check behind it ([`CallBudget`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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
    /// What the running call (or instantiation) may still spend.
    budget: CallBudget,
}

/// The time budget of one call, counted in CPU time of the thread that runs it.
///
/// The epoch ticker measures wall time, and wall time is not what a plugin spends: a call
/// descheduled for 50 ms on a node short of CPU (two cores, three nodes and a compiler, as in
/// CI) was once interrupted as if it had looped, failing a valid request. So when the epoch
/// deadline passes, [`CallBudget::next`] asks the thread's CPU clock how much the call has
/// really used, and either extends the deadline by what is left or interrupts. A plugin can
/// only compute (it cannot sleep, and has no sockets or files to block on), so a call that is
/// not descheduled uses CPU at the rate of the wall clock and is stopped as before.
#[derive(Clone, Copy)]
struct CallBudget {
    limit: Duration,
    tick: Duration,
    cpu_started: Option<Duration>,
    wall_started: Instant,
}

impl CallBudget {
    fn start(limit: Duration, tick: Duration) -> Self {
        Self {
            limit,
            tick,
            cpu_started: thread_cpu_time(),
            wall_started: Instant::now(),
        }
    }

    /// What the call has used: CPU time where the clock can be read, else wall time.
    fn used(&self) -> Duration {
        match (self.cpu_started, thread_cpu_time()) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => self.wall_started.elapsed(),
        }
    }

    /// Called when the epoch deadline passes: interrupt once the limit is used, else extend
    /// the deadline by the ticks left (at least one).
    fn next(&self) -> wasmtime::UpdateDeadline {
        let used = self.used();
        if used >= self.limit {
            return wasmtime::UpdateDeadline::Interrupt;
        }
        let left = (self.limit - used)
            .as_nanos()
            .div_ceil(self.tick.as_nanos());
        wasmtime::UpdateDeadline::Continue(left.max(1) as u64)
    }
}

/// CPU time used so far by the calling thread (`CLOCK_THREAD_CPUTIME_ID`); `None` where it
/// cannot be read.
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Where the random source of every call (and instantiation) starts: the same bytes, so that
/// a verdict depends on the document only.
const RANDOM_SEED: u64 = 0x5ca7_ab5e_ed5e_ed01;

/// Random bytes a plugin may ask for in one WASI call (a language runtime asks for a few
/// dozen to seed its hashing); more traps, rather than allocate what the plugin asks.
pub const MAX_RANDOM_BYTES: u64 = 64 << 10;

impl HostState {
    fn new(memory_cap: usize, budget: CallBudget) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        Self {
            wasi,
            table: ResourceTable::new(),
            stderr,
            memory_cap,
            memory_exceeded: false,
            random: RANDOM_SEED,
            budget,
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

    /// Readies the state for a call that may use `limit` of CPU time (`tick` is the epoch
    /// ticker's period).
    pub fn reset_for_call(&mut self, limit: Duration, tick: Duration) {
        self.memory_exceeded = false;
        self.random = RANDOM_SEED;
        self.budget = CallBudget::start(limit, tick);
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
    /// Instantiates `pre` under a budget of `budget` (instantiation runs guest code, start
    /// functions, so it runs under a deadline too); `tick` is the epoch ticker's period.
    pub fn new(
        engine: &Engine,
        pre: &Pre,
        limits: &PluginLimits,
        budget: Duration,
        tick: Duration,
    ) -> wasmtime::Result<Self> {
        let state = HostState::new(limits.memory_bytes, CallBudget::start(budget, tick));
        let mut store = Store::new(engine, state);
        store.limiter(|s| s as &mut dyn ResourceLimiter);
        store.set_epoch_deadline(ticks(budget, tick));
        store.epoch_deadline_callback(|store| Ok(store.data().budget.next()));
        let bindings = pre.instantiate(&mut store)?;
        Ok(Self {
            store,
            bindings,
            uses: 0,
        })
    }
}

/// `budget` in epoch ticks of `tick`: the wall time after which the CPU time is first checked.
pub fn ticks(budget: Duration, tick: Duration) -> u64 {
    budget.as_nanos().div_ceil(tick.as_nanos()) as u64
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(20);
    const TICK: Duration = Duration::from_millis(2);

    /// Wall time passing without the thread running (descheduled, or here asleep) does not
    /// use the budget: the deadline is extended, by the ticks left.
    #[test]
    fn a_call_that_waited_without_computing_is_given_its_budget_again() {
        let budget = CallBudget::start(LIMIT, TICK);
        std::thread::sleep(LIMIT * 2);
        match budget.next() {
            wasmtime::UpdateDeadline::Continue(left) => {
                assert!((1..=ticks(LIMIT, TICK)).contains(&left), "{left}")
            }
            _ => panic!("interrupted a call that used no CPU"),
        }
    }

    /// CPU time used up to the limit interrupts the call, whatever the wall clock says.
    #[test]
    fn a_call_that_computed_its_whole_budget_is_interrupted() {
        let budget = CallBudget::start(LIMIT, TICK);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut spins = 0u64;
        while budget.used() < LIMIT {
            spins = std::hint::black_box(spins.wrapping_add(1));
            assert!(
                Instant::now() < deadline,
                "the thread's CPU clock never advanced"
            );
        }
        assert!(matches!(budget.next(), wasmtime::UpdateDeadline::Interrupt));
    }

    #[test]
    fn the_thread_cpu_clock_is_readable_here() {
        assert!(thread_cpu_time().is_some());
    }
}
