//! WebAssembly component plugins: third-party runtime drivers as components of the WIT world
//! `eos:driver@1.0.0` (`plugins/wit/driver.wit`), loaded from `*.wasm` files in the EN's plugin
//! directory. A plugin is given nothing it is not granted here: WASI with one preopened folder
//! of its own (`/data`) and no network, environment or other files; a `log` function; at most
//! [`MEMORY_LIMIT`] of memory and [`CALL_LIMIT`] per call. A trap (or a call running out of
//! time) fails that call with the reason; the plugin is instantiated afresh for the next one,
//! and the EN runs on. A component built for another version of the world is refused at load.

#[cfg(feature = "testing")]
pub mod testing;

use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, DriverInfo, Handle, Health, InstanceKey, RuntimeDriver, Stats};
use eos_plugin_abi::WireError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::filesystem::FsPerms;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "../../plugins/wit/driver.wit",
    world: "driver",
});

/// The world this EN speaks; a plugin must be built for it.
pub const WORLD: &str = "eos:driver@1.0.0";
/// The most memory a plugin's instance may have.
pub const MEMORY_LIMIT: usize = 256 << 20;
/// The longest one call into a plugin may run before it is stopped with a trap.
pub const CALL_LIMIT: Duration = Duration::from_secs(30);
/// How often the engine's epoch ticks (the granularity of [`CALL_LIMIT`]).
const TICK: Duration = Duration::from_millis(100);

/// Why a plugin was not loaded.
#[derive(Debug)]
pub struct PluginError {
    pub path: PathBuf,
    pub reason: String,
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "plugin {}: {}", self.path.display(), self.reason)
    }
}

impl std::error::Error for PluginError {}

/// What a plugin's store holds: its WASI context (one folder), its limits, its name for logs.
struct PluginHost {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    name: String,
}

impl WasiView for PluginHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl eos::driver::host::Host for PluginHost {
    fn log(&mut self, message: String) {
        tracing::info!(plugin = %self.name, "{message}");
    }
}

/// One instance of the plugin and its store.
struct Live {
    store: Store<PluginHost>,
    driver: Driver,
}

pub struct WasmPluginDriver {
    info: DriverInfo,
    plugin: Arc<Plugin>,
    /// Ends the epoch ticker thread when the driver goes.
    ticking: Arc<AtomicBool>,
}

/// The compiled plugin and its one instance, shared with the threads calls run on.
struct Plugin {
    path: PathBuf,
    data: PathBuf,
    engine: Engine,
    component: Component,
    linker: Linker<PluginHost>,
    /// The instance calls go to; `None` after a trap, until the next call makes a fresh one.
    live: Mutex<Option<Live>>,
}

impl Drop for WasmPluginDriver {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

impl WasmPluginDriver {
    /// Loads the component at `path`, giving it `data` as its own folder.
    pub fn load(path: &Path, data: &Path) -> Result<Self, PluginError> {
        let refuse = |reason: String| PluginError {
            path: path.to_owned(),
            reason,
        };
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(|e| refuse(format!("{e:#}")))?;
        let component = Component::from_file(&engine, path).map_err(|e| {
            refuse(format!(
                "not a WebAssembly component of the {WORLD} world: {e:#}"
            ))
        })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| refuse(format!("{e:#}")))?;
        Driver::add_to_linker::<_, HasSelf<_>>(&mut linker, |h: &mut PluginHost| h)
            .map_err(|e| refuse(format!("{e:#}")))?;
        std::fs::create_dir_all(data)
            .map_err(|e| refuse(format!("cannot make its folder {}: {e}", data.display())))?;
        let ticking = Arc::new(AtomicBool::new(true));
        let (ticked, still) = (engine.clone(), ticking.clone());
        std::thread::Builder::new()
            .name("wasm-plugin-epoch".into())
            .spawn(move || {
                while still.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    ticked.increment_epoch();
                }
            })
            .map_err(|e| refuse(e.to_string()))?;
        let plugin = Plugin {
            path: path.to_owned(),
            data: data.to_owned(),
            engine,
            component,
            linker,
            live: Mutex::new(None),
        };
        // On a thread of its own: WASI's blocking calls must not run on an async runtime's.
        let info = std::thread::scope(|scope| {
            scope
                .spawn(|| plugin.call_now("info", |d, s| d.call_info(s).map(Ok)))
                .join()
        })
        .map_err(|_| refuse("its info call did not finish".into()))?
        .map_err(|e| refuse(e.to_string()))?;
        let mut info: DriverInfo =
            serde_json::from_str(&info).map_err(|e| refuse(format!("unreadable info: {e}")))?;
        if info.runtime.is_empty() {
            return Err(refuse("names no runtime".into()));
        }
        info.source = "wasm".into();
        Ok(Self {
            info,
            plugin: Arc::new(plugin),
            ticking,
        })
    }

    /// Loads every `*.wasm` in `dir` (data folders under `data/<file stem>`), in name order. A
    /// plugin that cannot be loaded comes back as its error; the others load regardless.
    pub fn load_dir(dir: &Path, data: &Path) -> Vec<Result<Self, PluginError>> {
        eos_driver::plugin_files(dir, "wasm")
            .into_iter()
            .map(|p| {
                let stem = p.file_stem().unwrap_or_default().to_owned();
                Self::load(&p, &data.join(stem))
            })
            .collect()
    }

    pub fn path(&self) -> &Path {
        &self.plugin.path
    }

    /// Calls into the plugin on a thread of its own.
    async fn call<T: Send + 'static>(
        &self,
        call: &'static str,
        f: impl FnOnce(&Driver, &mut Store<PluginHost>) -> wasmtime::Result<Result<T, String>>
        + Send
        + 'static,
    ) -> Result<T, DriverError> {
        let plugin = self.plugin.clone();
        tokio::task::spawn_blocking(move || plugin.call_now(call, f))
            .await
            .map_err(|e| DriverError::Other(format!("the plugin call did not finish: {e}")))?
    }
}

impl Plugin {
    fn instantiate(&self) -> Result<Live, DriverError> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.preopened_dir(&self.data, "/data", FsPerms::ReadWrite)
            .map_err(|e| DriverError::Other(format!("cannot give the plugin its folder: {e}")))?;
        let host = PluginHost {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(MEMORY_LIMIT)
                .trap_on_grow_failure(true)
                .build(),
            name: self
                .path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        };
        let mut store = Store::new(&self.engine, host);
        store.limiter(|h| &mut h.limits);
        // Starting the instance runs its initializers: they get a call's time too.
        limit_call(&mut store);
        let driver =
            Driver::instantiate(&mut store, &self.component, &self.linker).map_err(|e| {
                DriverError::Other(format!(
                    "the plugin does not fit the {WORLD} world this EN speaks: {e:#}"
                ))
            })?;
        Ok(Live { store, driver })
    }

    /// Calls into the plugin on this thread. A trap drops the instance (the next call makes a
    /// fresh one) and comes back as an error naming the call.
    fn call_now<T>(
        &self,
        call: &str,
        f: impl FnOnce(&Driver, &mut Store<PluginHost>) -> wasmtime::Result<Result<T, String>>,
    ) -> Result<T, DriverError> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.is_none() {
            *live = Some(self.instantiate()?);
        }
        let Some(l) = live.as_mut() else {
            unreachable!("instantiated above")
        };
        limit_call(&mut l.store);
        match f(&l.driver, &mut l.store) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(wire)) => Err(error_of(&wire)),
            Err(trap) => {
                *live = None;
                let reason = format!("{trap:#}").replace('\n', " ");
                tracing::warn!(plugin = %self.path.display(), call, %reason, "plugin trapped; it starts afresh at the next call");
                Err(DriverError::Other(format!(
                    "the plugin trapped in {call}: {reason}"
                )))
            }
        }
    }
}

/// Gives the next call into the store [`CALL_LIMIT`] before it traps.
fn limit_call(store: &mut Store<PluginHost>) {
    store.set_epoch_deadline(
        u64::try_from(CALL_LIMIT.as_millis() / TICK.as_millis()).unwrap_or(u64::MAX),
    );
    store.epoch_deadline_trap();
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("contract types serialize")
}

fn error_of(text: &str) -> DriverError {
    match serde_json::from_str::<WireError>(text) {
        Ok(e) => e.into(),
        Err(_) => DriverError::Other(text.to_owned()),
    }
}

fn read<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T, DriverError> {
    serde_json::from_str(text)
        .map_err(|e| DriverError::Other(format!("the plugin returned unreadable {what}: {e}")))
}

#[async_trait::async_trait]
impl RuntimeDriver for WasmPluginDriver {
    fn info(&self) -> DriverInfo {
        self.info.clone()
    }

    async fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError> {
        let (key, spec) = (json(key), json(spec));
        let handle = self
            .call("apply", move |d, s| d.call_apply(s, &key, &spec))
            .await?;
        read(&handle, "a handle")
    }

    async fn inspect(&self, key: &InstanceKey) -> Health {
        let key = json(key);
        match self
            .call("inspect", move |d, s| d.call_inspect(s, &key).map(Ok))
            .await
        {
            Ok(text) => read(&text, "a health").unwrap_or_else(|e| Health::Failed {
                reason: e.to_string(),
            }),
            Err(e) => Health::Failed {
                reason: e.to_string(),
            },
        }
    }

    async fn remove(&self, key: &InstanceKey) -> Result<(), DriverError> {
        let key = json(key);
        self.call("remove", move |d, s| d.call_remove(s, &key))
            .await
    }

    async fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        handle: &Handle,
    ) -> Result<Handle, DriverError> {
        let (key, spec, handle) = (json(key), json(spec), json(handle));
        let handle = self
            .call("recover", move |d, s| {
                d.call_recover(s, &key, &spec, &handle)
            })
            .await?;
        read(&handle, "a handle")
    }

    async fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        let keep = json(&keep);
        let removed = self
            .call("prune", move |d, s| d.call_prune(s, &keep))
            .await?;
        read(&removed, "a list of keys")
    }

    async fn stats(&self, key: &InstanceKey) -> Result<Stats, DriverError> {
        let key = json(key);
        let stats = self
            .call("stats", move |d, s| d.call_stats(s, &key))
            .await?;
        read(&stats, "stats")
    }

    async fn logs(&self, key: &InstanceKey, lines: usize) -> Result<Vec<String>, DriverError> {
        let key = json(key);
        let lines = u32::try_from(lines).unwrap_or(u32::MAX);
        let log = self
            .call("logs", move |d, s| d.call_logs(s, &key, lines))
            .await?;
        read(&log, "log lines")
    }
}
