//! The plugin host: one wasmtime `Engine`, the compiled-component cache (memory and disk), the
//! sandbox (no capabilities, a time budget, a memory cap) and the calls into a plugin: its
//! validator, and its migrator if it has one. Components built against every released
//! version of the WIT package (`wit/`) are accepted.
//!
//! Owns: turning plugin bytes into something callable, and calling it safely. Does not own:
//! which plugin belongs to which schema version ([`crate::schema`]), or storing plugin bytes
//! ([`crate::store`]). Plugins never run inside the state machine.

mod sandbox;
mod sync_io;

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use sandbox::HostState;

/// One module per released contract (`wit/<version>`), one per world.
mod bindings {
    pub mod v0_1 {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: "scarab:plugin/validator-plugin@0.1.0",
        });
    }
    pub mod v0_2 {
        wasmtime::component::bindgen!({
            path: "../wit/0.2.0",
            world: "scarab:plugin/validator-plugin@0.2.0",
        });
    }
    pub mod v0_2_migrator {
        wasmtime::component::bindgen!({
            path: "../wit/0.2.0",
            world: "scarab:plugin/migrator-plugin@0.2.0",
        });
    }
}

/// The least time instantiating a plugin may take (see `PluginHost::new_instance`).
const INSTANTIATION_BUDGET: Duration = Duration::from_secs(1);

/// What a component implements, read from its exports when it is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Contract {
    /// The WIT package version it was built against, e.g. `0.2.0`.
    pub wit: &'static str,
    /// What its migrator does (`describe`), if it exports one.
    pub migration: Option<Migration>,
}

/// A migrator's own description of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Migration {
    /// `upgrade` converts documents from this version to the plugin's.
    pub from_version: u32,
    /// Whether `downgrade` converts back.
    pub downgrade: bool,
}

/// Which direction a migration step goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the previous version to the plugin's.
    Upgrade,
    /// From the plugin's version to the previous one.
    Downgrade,
}

/// Limits applied to every plugin call.
#[derive(Clone, Debug)]
pub struct PluginLimits {
    /// Budget of one call, in CPU time of the thread running it (checked at epoch deadlines:
    /// `sandbox::CallBudget`).
    pub timeout: Duration,
    /// Maximum linear memory of one instance, in bytes.
    pub memory_bytes: usize,
    /// Instances that may exist at once (pooling allocator slots).
    pub max_instances: u32,
    /// Violations a plugin may return before its answer is treated as malformed.
    pub max_violations: usize,
    /// Core module instances one plugin instance may contain (`--plugin-core-instances`): a
    /// Rust plugin has 1 to 4, a componentize-py one 38.
    pub core_instances: u32,
}

pub use crate::config::DEFAULT_CORE_INSTANCES;

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(50),
            memory_bytes: 32 << 20,
            max_instances: 128,
            max_violations: 1000,
            core_instances: DEFAULT_CORE_INSTANCES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The bytes are not a component implementing a released plugin world.
    #[error("{0}")]
    InvalidComponent(String),
    /// A call failed; the document got no verdict.
    #[error("{0}")]
    Failed(Failure),
    #[error("plugin cache: {0}")]
    Cache(#[from] std::io::Error),
}

/// Counts a plugin call, by schema, version and outcome, and its latency.
fn record_call(ctx: &CallContext<'_>, started: std::time::Instant, failure: Option<&Failure>) {
    let m = crate::metrics::get();
    let outcome = match failure {
        None => "ok",
        Some(Failure::Timeout(_)) => "timeout",
        Some(Failure::MemoryLimit(_)) => "memory",
        Some(Failure::Trap(_)) => "trap",
        Some(Failure::Refused(_)) => "refused",
        Some(Failure::Malformed(_)) => "malformed",
        Some(Failure::Instantiate(_)) => "instantiate",
    };
    m.plugin_calls
        .get_or_create(&crate::metrics::PluginCallLabels {
            schema: ctx.schema_name.to_string(),
            version: ctx.schema_version,
            outcome,
        })
        .inc();
    m.plugin_duration
        .get_or_create(&crate::metrics::SchemaLabels {
            schema: ctx.schema_name.to_string(),
            version: ctx.schema_version,
        })
        .observe(started.elapsed().as_secs_f64());
}

/// Why a call produced no verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("exceeded its time budget of {0:?}")]
    Timeout(Duration),
    #[error("exceeded its memory limit of {0} bytes")]
    MemoryLimit(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an error: {0}")]
    Refused(String),
    #[error("returned a malformed answer: {0}")]
    Malformed(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PluginStats {
    /// Plugins compiled and held in memory.
    pub loaded: usize,
    /// Compilations since this node started.
    pub compiled: u64,
    /// Loads served by the on-disk compile cache since this node started.
    pub from_disk_cache: u64,
    /// Warm instances waiting for a call.
    pub idle_instances: usize,
    /// Digests of loaded plugins that trapped, ran out of time or memory, or failed to
    /// instantiate on this node: their calls run on the blocking pool, never in place.
    pub misbehaving: Vec<String>,
}

/// One violation as returned by a plugin, checked for shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginViolation {
    pub path: String,
    pub message: String,
    pub code: Option<String>,
}

/// Where the document is going, as the plugin sees it.
pub struct CallContext<'a> {
    pub key: &'a str,
    pub schema_name: &'a str,
    pub schema_version: u32,
}

/// A cached compiled component without its checksum, if the checksum matches.
fn read_cached(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = std::fs::read(path)?;
    let split = bytes
        .len()
        .checked_sub(32)
        .ok_or_else(|| std::io::Error::other("shorter than its checksum"))?;
    if Sha256::digest(&bytes[..split]).as_slice() != &bytes[split..] {
        return Err(std::io::Error::other("its checksum does not match"));
    }
    bytes.truncate(split);
    Ok(bytes)
}

/// `sha256:<hex>` of the plugin bytes: the plugin's identity everywhere.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A compiled, linked plugin, ready to instantiate. Idle instances are kept for reuse: a call
/// on a warm instance costs microseconds, a fresh instantiation tens of microseconds.
pub struct LoadedPlugin {
    pub digest: String,
    pub contract: Contract,
    pre: sandbox::Pre,
    idle: Mutex<Vec<sandbox::Instance>>,
    /// Set at the first call that ran out of time or memory or trapped: such a plugin may
    /// take its whole time budget again, so its calls never run on the async runtime.
    misbehaved: std::sync::atomic::AtomicBool,
}

impl LoadedPlugin {
    /// Whether a call may run in place on the async runtime: the plugin has never trapped or
    /// run out of time or memory on this node. A well-behaved call costs microseconds, less
    /// than handing it to another thread; a looping plugin stalls one runtime thread for one
    /// time budget, once, and runs on the blocking pool from then on.
    pub fn runs_inline(&self) -> bool {
        !self.misbehaved.load(Ordering::Relaxed)
    }
}

pub struct PluginHost {
    engine: Engine,
    linker: Linker<HostState>,
    limits: PluginLimits,
    tick: Duration,
    cache_dir: PathBuf,
    engine_hash: u64,
    loaded: Mutex<HashMap<String, Arc<LoadedPlugin>>>,
    /// Held while a plugin is compiled or loaded from disk: the first caller does the work,
    /// concurrent callers for the same (or another) plugin wait and then find it loaded,
    /// instead of all compiling it at once on a cold node.
    loading: Mutex<()>,
    /// Idle instances over all plugins, kept under half the pool so that calls (bounded to the
    /// other half by the schema registry) always find a free slot.
    idle_total: AtomicUsize,
    compiled: AtomicU64,
    from_disk_cache: AtomicU64,
    _ticker: sandbox::EpochTicker,
}

/// An instance is recycled after this many calls, so that a plugin leaking memory or keeping
/// state between calls cannot drift far.
const MAX_USES_PER_INSTANCE: u32 = 10_000;

impl PluginHost {
    pub fn new(limits: PluginLimits, cache_dir: PathBuf) -> Result<Self, PluginError> {
        std::fs::create_dir_all(&cache_dir)?;
        let mut pool = PoolingAllocationConfig::new();
        let n = limits.max_instances.max(1);
        let cores = limits.core_instances.max(1);
        // Totals: the per-component maximum for a few instances, 8 core instances per
        // instance beyond that (what Rust plugins need). Slots are address space, not memory.
        pool.total_component_instances(n)
            .total_core_instances((n * 8).max(cores * 4))
            .total_memories((n * 2).max(64))
            .total_tables((n * 4).max(128))
            .max_core_instances_per_component(cores)
            .max_memories_per_component(16)
            .max_tables_per_component(32)
            .max_memory_size(limits.memory_bytes)
            .max_unused_warm_slots(n.min(16));
        let mut config = Config::new();
        config
            .epoch_interruption(true)
            // Backtraces cost time on every trap and mean nothing to the writer of a config.
            .wasm_backtrace_max_frames(None)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)
            .map_err(|e| PluginError::InvalidComponent(format!("engine: {e:#}")))?;
        let linker = sandbox::linker(&engine)
            .map_err(|e| PluginError::InvalidComponent(format!("linker: {e:#}")))?;
        let mut h = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        let tick = (limits.timeout / 10).max(Duration::from_millis(1));
        let ticker = sandbox::EpochTicker::start(engine.clone(), tick);
        Ok(Self {
            engine,
            linker,
            limits,
            tick,
            cache_dir,
            engine_hash: h.finish(),
            loaded: Mutex::new(HashMap::new()),
            loading: Mutex::new(()),
            idle_total: AtomicUsize::new(0),
            compiled: AtomicU64::new(0),
            from_disk_cache: AtomicU64::new(0),
            _ticker: ticker,
        })
    }

    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Returns the plugin ready to call: from memory, else from the on-disk compile cache,
    /// else compiled now (and cached). Refuses bytes that are not a component implementing
    /// the validator world.
    pub fn load(&self, digest: &str, bytes: &[u8]) -> Result<Arc<LoadedPlugin>, PluginError> {
        if let Some(p) = self.loaded.lock().expect("plugin map").get(digest) {
            return Ok(p.clone());
        }
        // A panic while loading (never expected) must not make every later load fail.
        let _loading = self
            .loading
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(p) = self.loaded.lock().expect("plugin map").get(digest) {
            return Ok(p.clone());
        }
        let component = self.compile_cached(digest, bytes)?;
        let mut linker = self.linker.clone();
        // Imports beyond the empty WASI cli/io we provide (clocks, random, filesystem, ...)
        // become traps: a plugin may import them but any use fails its call.
        sandbox::stub_unprovided_imports(&mut linker, &component, &self.engine).map_err(|e| {
            PluginError::InvalidComponent(format!("cannot link the component: {e:#}"))
        })?;
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            PluginError::InvalidComponent(format!("cannot link the component: {e:#}"))
        })?;
        let pre = sandbox::Pre::new(instance_pre).map_err(|e| {
            PluginError::InvalidComponent(format!(
                "the component does not implement a Scarab plugin world: it must export \
                 scarab:plugin/validator@0.2.0 (world validator-plugin), that and \
                 scarab:plugin/migrator@0.2.0 (world migrator-plugin), or \
                 scarab:plugin/validator@0.1.0: {e:#}"
            ))
        })?;
        let mut plugin = LoadedPlugin {
            digest: digest.to_string(),
            contract: Contract {
                wit: pre.wit_version(),
                migration: None,
            },
            pre,
            idle: Mutex::new(Vec::new()),
            misbehaved: Default::default(),
        };
        if plugin.pre.has_migrator() {
            let migration = self
                .with_instance(&plugin, |store, b| b.describe(store))
                .map_err(|e| {
                    PluginError::InvalidComponent(format!("its migrator's describe {e}"))
                })?;
            plugin.contract.migration = Some(migration);
        }
        let plugin = Arc::new(plugin);
        self.loaded
            .lock()
            .expect("plugin map")
            .insert(digest.to_string(), plugin.clone());
        Ok(plugin)
    }

    /// Counters for `/v1/status`: what is loaded, and how it got there since start.
    pub fn stats(&self) -> PluginStats {
        let loaded = self.loaded.lock().expect("plugin map");
        let mut misbehaving: Vec<String> = loaded
            .values()
            .filter(|p| !p.runs_inline())
            .map(|p| p.digest.clone())
            .collect();
        misbehaving.sort();
        PluginStats {
            loaded: loaded.len(),
            misbehaving,
            compiled: self.compiled.load(Ordering::Relaxed),
            from_disk_cache: self.from_disk_cache.load(Ordering::Relaxed),
            idle_instances: self.idle_total.load(Ordering::Relaxed),
        }
    }

    /// Cached artifacts end with the SHA-256 of what precedes it (see [`read_cached`]).
    fn cache_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.cache_dir
            .join(format!("{hex}-{:016x}.sum.cwasm", self.engine_hash))
    }

    fn compile_cached(&self, digest: &str, bytes: &[u8]) -> Result<Component, PluginError> {
        let path = self.cache_path(digest);
        if path.exists() {
            match read_cached(&path) {
                Ok(artifact) => {
                    // SAFETY: the file was written by this host from `Component::serialize`
                    // for exactly these bytes (the name carries their digest) and this
                    // engine's compatibility hash, and its trailing SHA-256 matches, so no
                    // byte changed on disk since (a changed byte of machine code would be
                    // undefined behaviour, not an error); wasmtime also checks the header.
                    match unsafe { Component::deserialize(&self.engine, &artifact) } {
                        Ok(c) => {
                            self.from_disk_cache.fetch_add(1, Ordering::Relaxed);
                            return Ok(c);
                        }
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "ignoring unusable cached component")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring a damaged cached component; compiling again")
                }
            }
        }
        if !wasmparser_is_component(bytes) {
            return Err(PluginError::InvalidComponent(
                "not a WebAssembly component (a core module or other bytes); build the plugin for wasm32-wasip2".into(),
            ));
        }
        let started = Instant::now();
        let component = Component::new(&self.engine, bytes).map_err(|e| {
            let e = format!("{e:#}");
            // A valid component past a configured limit: say which flag raises it.
            if e.contains("core module instances") {
                return PluginError::InvalidComponent(format!(
                    "the component has more core module instances than a plugin may have \
                     (--plugin-core-instances, {}): {e}",
                    self.limits.core_instances
                ));
            }
            PluginError::InvalidComponent(format!("not a valid WebAssembly component: {e}"))
        })?;
        tracing::info!(%digest, elapsed = ?started.elapsed(), "compiled plugin");
        self.compiled.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut serialized) = component.serialize() {
            let sum = Sha256::digest(&serialized);
            serialized.extend_from_slice(&sum);
            // Unique per process: nodes (and `plugin check`) may share one cache directory.
            let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
            std::fs::write(&tmp, serialized)?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(component)
    }

    /// Creates one instance of `plugin` and drops it: what a call pays on top when no idle
    /// instance is left (measured by the micro-benchmarks).
    pub fn instantiate(&self, plugin: &LoadedPlugin) -> Result<(), Failure> {
        self.new_instance(plugin).map(drop)
    }

    /// A fresh instance of `plugin`. Instantiation gets at least [`INSTANTIATION_BUDGET`]:
    /// most of it is the host's own work (a pool slot, the memory image), and a node starved
    /// of CPU (three nodes compiling plugins on two cores) once took more than a 50 ms call
    /// budget for it, failing a valid write (that was wall time; budgets are CPU time now,
    /// see `sandbox::CallBudget`, and the host's work is CPU time too). A component whose
    /// initialisers loop still fails, and then counts as misbehaving.
    fn new_instance(&self, plugin: &LoadedPlugin) -> Result<sandbox::Instance, Failure> {
        crate::metrics::get().plugin_instantiations.inc();
        let budget = self.limits.timeout.max(INSTANTIATION_BUDGET);
        sandbox::Instance::new(&self.engine, &plugin.pre, &self.limits, budget, self.tick).map_err(
            |e| {
                plugin.misbehaved.store(true, Ordering::Relaxed);
                Failure::Instantiate(format!("{e:#}"))
            },
        )
    }

    /// Runs `call` on a warm instance of `plugin` (or a new one) under the time budget. A
    /// trapped instance is dropped (wasmtime poisons it); a healthy one goes back to the pool.
    fn with_instance<R>(
        &self,
        plugin: &LoadedPlugin,
        call: impl FnOnce(&mut Store<HostState>, &sandbox::Bindings) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        let idle = plugin.idle.lock().expect("idle instances").pop();
        let mut instance = match idle {
            Some(i) => {
                self.idle_total.fetch_sub(1, Ordering::Relaxed);
                i
            }
            None => self.new_instance(plugin)?,
        };
        let timeout = self.limits.timeout;
        instance.store.data_mut().reset_for_call(timeout, self.tick);
        instance
            .store
            .set_epoch_deadline(sandbox::ticks(timeout, self.tick));
        let answer = match call(&mut instance.store, &instance.bindings) {
            Ok(answer) => answer,
            Err(e) => {
                let failure = self.classify(&instance.store, e);
                if matches!(
                    failure,
                    Failure::Timeout(_) | Failure::MemoryLimit(_) | Failure::Trap(_)
                ) {
                    plugin.misbehaved.store(true, Ordering::Relaxed);
                }
                return Err(failure);
            }
        };
        instance.uses += 1;
        let max_idle = (self.limits.max_instances as usize / 2).max(1);
        if instance.uses < MAX_USES_PER_INSTANCE
            && self.idle_total.fetch_add(1, Ordering::Relaxed) < max_idle
        {
            plugin.idle.lock().expect("idle instances").push(instance);
        } else if instance.uses < MAX_USES_PER_INSTANCE {
            self.idle_total.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(answer)
    }

    /// Calls the plugin's validator on `document` (JSON text). Blocking: run it off the async
    /// runtime. Never panics on plugin misbehaviour; the failure is returned.
    pub fn validate(
        &self,
        plugin: &LoadedPlugin,
        ctx: &CallContext<'_>,
        document: &str,
    ) -> Result<Vec<PluginViolation>, Failure> {
        let started = std::time::Instant::now();
        let result = self.validate_once(plugin, ctx, document);
        record_call(ctx, started, result.as_ref().err());
        result
    }

    fn validate_once(
        &self,
        plugin: &LoadedPlugin,
        ctx: &CallContext<'_>,
        document: &str,
    ) -> Result<Vec<PluginViolation>, Failure> {
        let answer = self.with_instance(plugin, |store, b| b.validate(store, ctx, document))?;
        let violations = answer.map_err(Failure::Refused)?;
        if violations.len() > self.limits.max_violations {
            // A flood costs the host as much as a loop (every violation is copied out of the
            // guest): whether it ends within the time budget or not, it is misbehaving.
            plugin.misbehaved.store(true, Ordering::Relaxed);
            return Err(Failure::Malformed(format!(
                "{} violations (at most {} are accepted)",
                violations.len(),
                self.limits.max_violations
            )));
        }
        violations
            .into_iter()
            .map(|v| {
                check_pointer(&v.path)?;
                if v.message.is_empty() {
                    return Err(Failure::Malformed(format!(
                        "violation at {:?} has an empty message",
                        v.path
                    )));
                }
                Ok(v)
            })
            .collect()
    }

    /// Calls the plugin's migrator: converts `document` (JSON text) one step, up from the
    /// previous version or down to it. `ctx.schema_version` is the version of the result.
    /// The answer must be JSON text; it is returned as is (the caller validates it at its
    /// version). Blocking, like [`Self::validate`].
    pub fn migrate(
        &self,
        plugin: &LoadedPlugin,
        direction: Direction,
        ctx: &CallContext<'_>,
        document: &str,
    ) -> Result<String, Failure> {
        let started = std::time::Instant::now();
        let result = self.migrate_once(plugin, direction, ctx, document);
        record_call(ctx, started, result.as_ref().err());
        result
    }

    fn migrate_once(
        &self,
        plugin: &LoadedPlugin,
        direction: Direction,
        ctx: &CallContext<'_>,
        document: &str,
    ) -> Result<String, Failure> {
        let Some(migration) = plugin.contract.migration else {
            return Err(Failure::Refused("the plugin has no migrator".into()));
        };
        if direction == Direction::Downgrade && !migration.downgrade {
            return Err(Failure::Refused("the plugin does not downgrade".into()));
        }
        let answer = self.with_instance(plugin, |store, b| {
            b.migrate(store, direction, ctx, document)
        })?;
        let text = answer.map_err(Failure::Refused)?;
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            let head: String = text.chars().take(80).collect();
            return Err(Failure::Malformed(format!(
                "returned text that is not JSON ({e}): {head:?}"
            )));
        }
        Ok(text)
    }

    fn classify(&self, store: &Store<HostState>, e: wasmtime::Error) -> Failure {
        if store.data().memory_exceeded() {
            return Failure::MemoryLimit(self.limits.memory_bytes);
        }
        if let Some(trap) = e.downcast_ref::<Trap>()
            && *trap == Trap::Interrupt
        {
            return Failure::Timeout(self.limits.timeout);
        }
        let stderr = store.data().stderr_text();
        let mut msg = match e.downcast_ref::<Trap>() {
            Some(trap) => trap.to_string(),
            None => e.root_cause().to_string(),
        };
        if !stderr.trim().is_empty() {
            msg = format!("{}; plugin stderr: {}", msg, stderr.trim());
        }
        Failure::Trap(msg)
    }
}

/// A component starts with the wasm magic and a layer field of 1 (core modules have 0).
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

/// Violation paths must be JSON Pointers (RFC 6901): empty, or `/`-separated tokens in which
/// `~` only appears as `~0` or `~1`.
fn check_pointer(path: &str) -> Result<(), Failure> {
    let malformed = || Failure::Malformed(format!("violation path {path:?} is not a JSON Pointer"));
    if path.is_empty() {
        return Ok(());
    }
    if !path.starts_with('/') {
        return Err(malformed());
    }
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(malformed());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_pointers_are_checked() {
        assert!(check_pointer("").is_ok());
        assert!(check_pointer("/a/b~1c/~0").is_ok());
        assert!(check_pointer("not a pointer").is_err());
        assert!(check_pointer("/a~2").is_err());
        assert!(check_pointer("/a~").is_err());
    }

    #[test]
    fn digest_is_sha256_hex() {
        assert_eq!(
            digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn core_modules_are_not_components() {
        assert!(!wasmparser_is_component(b"\0asm\x01\0\0\0"));
        assert!(wasmparser_is_component(b"\0asm\x0d\0\x01\0"));
        assert!(!wasmparser_is_component(b"garbage"));
    }
}
