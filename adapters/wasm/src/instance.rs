//! One running program (a WASI preview 1 module, or a preview 2 command component): its
//! thread, its stop flag and its last known health.

use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, Health};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, ResourceTable};
use wasmtime::{
    Engine, Linker, Module, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::filesystem::FsPerms;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// What a component's `repository` holds, compiled.
pub(crate) enum Program {
    /// A core module speaking WASI preview 1, started at `_start`.
    Module(Module),
    /// A component of the `wasi:cli/command` world (WASI preview 2), started at `wasi:cli/run`.
    Component(Component),
}

impl Program {
    /// Compiles a binary module or component, or WAT text of a module.
    /// A file that is not a module is refused without quoting it (the WAT parser's message
    /// would show the line it stopped at), and only a plain file within
    /// [`MAX_MODULE_BYTES`] is read.
    pub fn compile(engine: &Engine, path: &Path) -> wasmtime::Result<Self> {
        use std::io::Read;
        // One open file, judged by its own metadata and read no further than the cap (a file
        // that says it is empty, like those under /proc, may go on without end).
        let file = std::fs::File::open(path)?;
        if !file.metadata()?.is_file() {
            wasmtime::bail!("not a plain file");
        }
        let mut raw = Vec::new();
        file.take(MAX_MODULE_BYTES + 1).read_to_end(&mut raw)?;
        if raw.len() as u64 > MAX_MODULE_BYTES {
            wasmtime::bail!("more than {MAX_MODULE_BYTES} bytes; a module holds at most that");
        }
        // Text (of a module or a component) becomes binary; binary passes through.
        let bytes = wat::parse_bytes(&raw).map_err(|e| {
            wasmtime::format_err!("not a WebAssembly module or its text: {}", unquoted(&e))
        })?;
        if wasmparser_is_component(&bytes) {
            Ok(Self::Component(Component::new(engine, &bytes)?))
        } else {
            Ok(Self::Module(Module::new(engine, &bytes)?))
        }
    }
}

/// The most bytes a module file may hold.
pub const MAX_MODULE_BYTES: u64 = 256 * 1024 * 1024;

/// The WAT parser's message without the source it quotes: its first line and where it
/// stopped (`--> file:line:column`), never the lines of the file.
fn unquoted(error: &wat::Error) -> String {
    let text = error.to_string();
    let mut lines = text.lines();
    let message = lines.next().unwrap_or_default().trim().to_owned();
    // A message naming what it found quotes at most a token: keep only what precedes it.
    let message = message
        .split_once(", found")
        .map_or(message.clone(), |(m, _)| m.to_owned());
    match lines.find_map(|l| l.trim().strip_prefix("--> ")) {
        Some(at) => format!(
            "{message} (at {})",
            at.rsplit(':')
                .take(2)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(":")
        ),
        None => message,
    }
}

/// A binary component starts with the magic and the component layer's version
/// (`\0asm 0d 00 01 00`); a core module has version 1 (`01 00 00 00`).
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[4..8] == [0x0d, 0x00, 0x01, 0x00]
}

pub(crate) struct Instance {
    pub spec: ComponentSpec,
    /// The module's linear memory now, in bytes.
    memory: Arc<AtomicU64>,
    /// CPU time the module's thread has used, in nanoseconds, as of its last epoch tick.
    cpu_ns: Arc<AtomicU64>,
    /// The wall time and CPU time of the previous `cpu_percent` reading.
    last_reading: Mutex<(Instant, u64)>,
    stop: Arc<AtomicBool>,
    health: Arc<(Mutex<Health>, Condvar)>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Instance {
    pub fn start(
        engine: &Engine,
        program: Program,
        spec: ComponentSpec,
        dir: &Path,
    ) -> Result<Self, DriverError> {
        let io = |e: std::io::Error| {
            DriverError::Other(format!("cannot prepare {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir.join("data")).map_err(io)?;
        let stdout = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stdout.log"))
            .map_err(io)?;
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("stderr.log"))
            .map_err(io)?;
        let mut builder = WasiCtxBuilder::new();
        builder.args(&[spec.name.as_str()]);
        builder.stdout(wasmtime_wasi::cli::OutputFile::new(stdout));
        builder.stderr(wasmtime_wasi::cli::OutputFile::new(stderr));
        for (k, v) in &spec.parameters {
            builder.env(k, v);
        }
        builder
            .preopened_dir(dir.join("data"), "/data", FsPerms::ReadWrite)
            .map_err(|e| DriverError::Other(e.to_string()))?;
        let settings = match spec.settings.get("wasm") {
            None => eos_domain::container::WasmSettings::default(),
            Some(v) => eos_domain::container::WasmSettings::from_value(v).map_err(|p| {
                let text: Vec<String> = p
                    .into_iter()
                    .map(|(f, m)| format!("wasm.{f}: {m}"))
                    .collect();
                DriverError::Start(format!("invalid wasm settings: {}", text.join("; ")))
            })?,
        };
        let mut limits = StoreLimitsBuilder::new().trap_on_grow_failure(true);
        if let Some(bytes) = settings.memory_bytes() {
            limits = limits.memory_size(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
        let memory = Arc::new(AtomicU64::new(0));
        let cpu_ns = Arc::new(AtomicU64::new(0));
        let cpu = Cpu {
            used_ns: cpu_ns.clone(),
            share: settings.cpus,
        };
        let limits = Limits {
            inner: limits.build(),
            memory: memory.clone(),
        };
        let host = match &program {
            Program::Module(_) => Host::P1(P1Host {
                wasi: builder.build_p1(),
                limits,
            }),
            Program::Component(_) => Host::P2(P2Host {
                wasi: builder.build(),
                table: ResourceTable::new(),
                limits,
            }),
        };

        let stop = Arc::new(AtomicBool::new(false));
        let health = Arc::new((Mutex::new(Health::Running), Condvar::new()));
        let (engine, thread_stop, thread_health) = (engine.clone(), stop.clone(), health.clone());
        let thread = std::thread::Builder::new()
            .name(format!("wasm-{}", spec.name))
            .spawn(move || {
                let end = match (program, host) {
                    (Program::Module(module), Host::P1(host)) => {
                        run_module(&engine, &module, host, cpu, thread_stop)
                    }
                    (Program::Component(component), Host::P2(host)) => {
                        run_component(&engine, &component, host, cpu, thread_stop)
                    }
                    _ => Health::Failed {
                        reason: "a module and a component host mixed up".into(),
                    },
                };
                let (lock, cvar) = &*thread_health;
                *lock.lock().unwrap_or_else(|e| e.into_inner()) = end;
                cvar.notify_all();
            })
            .map_err(|e| DriverError::Other(e.to_string()))?;
        Ok(Self {
            spec,
            memory,
            cpu_ns,
            last_reading: Mutex::new((Instant::now(), 0)),
            stop,
            health,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The module's linear memory now, in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.load(Ordering::Relaxed)
    }

    /// Percent of one core the module used since the previous reading (or since it started).
    pub fn cpu_percent(&self) -> f64 {
        let now = Instant::now();
        let cpu = self.cpu_ns.load(Ordering::Relaxed);
        let mut last = self.last_reading.lock().unwrap_or_else(|e| e.into_inner());
        let wall = now.duration_since(last.0).as_nanos().max(1) as f64;
        let used = cpu.saturating_sub(last.1) as f64;
        *last = (now, cpu);
        100.0 * used / wall
    }

    pub fn health(&self) -> Health {
        self.health
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits up to `timeout` for the module to end; `None` while it still runs.
    pub fn wait_for_end(&self, timeout: Duration) -> Option<Health> {
        let (lock, cvar) = &*self.health;
        let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = cvar
            .wait_timeout_while(guard, timeout, |h| matches!(h, Health::Running))
            .unwrap_or_else(|e| e.into_inner());
        (!matches!(*guard, Health::Running)).then(|| guard.clone())
    }

    pub fn stop_and_wait(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for Instance {
    /// A module nobody holds any more stops (its thread ends at the next epoch tick): a
    /// dropped driver leaves nothing running behind it.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// What a store holds: the program's WASI context and its limits.
enum Host {
    P1(P1Host),
    P2(P2Host),
}

struct P1Host {
    wasi: WasiP1Ctx,
    limits: Limits,
}

struct P2Host {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: Limits,
}

impl WasiView for P2Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The store's limits, which also keep count of the memory the module has.
struct Limits {
    inner: StoreLimits,
    memory: Arc<AtomicU64>,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory.store(
                u64::try_from(desired).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
}

/// The module thread's CPU account and its share of one core (`x-eos-extensions.wasm.cpus`).
struct Cpu {
    used_ns: Arc<AtomicU64>,
    share: Option<f64>,
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(t.tv_sec).unwrap_or(0),
        u32::try_from(t.tv_nsec).unwrap_or(0),
    )
}

/// The longest single sleep while the module is paused; the stop flag is checked after each.
const MAX_PAUSE: Duration = Duration::from_millis(100);
/// How long the CPU share is averaged over before the account starts afresh.
const CPU_WINDOW: Duration = Duration::from_secs(1);

/// Runs at every epoch tick (50 ms) while the module executes: ends a module told to stop,
/// keeps its CPU account, and pauses it while it has used more than its share of one core
/// since the window began.
fn on_tick(cpu: &Cpu, window: &mut (Instant, Duration), stop: &AtomicBool) -> wasmtime::Result<()> {
    if stop.load(Ordering::SeqCst) {
        return Err(wasmtime::Error::msg("stopped by the EN"));
    }
    let used = thread_cpu();
    cpu.used_ns.store(
        u64::try_from(used.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    let Some(share) = cpu.share else {
        return Ok(());
    };
    let (start, cpu_at_start) = *window;
    let wall = start.elapsed();
    let earned = wall.mul_f64(share);
    let spent = used.saturating_sub(cpu_at_start);
    if spent > earned {
        // Paused until the spent time is the share of the wall time since the window began,
        // in steps short enough that a stop is heard.
        let until = start + spent.div_f64(share);
        while let Some(owed) = until.checked_duration_since(Instant::now()) {
            if stop.load(Ordering::SeqCst) {
                return Err(wasmtime::Error::msg("stopped by the EN"));
            }
            std::thread::sleep(owed.min(MAX_PAUSE));
        }
    }
    if start.elapsed() >= CPU_WINDOW && spent <= start.elapsed().mul_f64(share) {
        *window = (Instant::now(), thread_cpu());
    }
    Ok(())
}

/// Holds a store to its memory limit (growing past it traps, so the program fails with the
/// reason), its CPU share and its stop flag.
fn limit<T: 'static>(
    store: &mut Store<T>,
    limits: fn(&mut T) -> &mut Limits,
    cpu: Cpu,
    stop: Arc<AtomicBool>,
) {
    store.limiter(move |h| limits(h));
    store.set_epoch_deadline(1);
    let mut window = (Instant::now(), thread_cpu());
    store.epoch_deadline_callback(move |_| {
        on_tick(&cpu, &mut window, &stop).map(|()| UpdateDeadline::Continue(1))
    });
}

/// How a program that returned an error ended: its `exit` code, or the trap.
fn ended_by(e: wasmtime::Error) -> Health {
    match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        Some(exit) => Health::Exited { code: exit.0 },
        None => Health::Failed {
            reason: format!("{e:#}").replace('\n', " "),
        },
    }
}

/// Instantiates a preview 1 module and runs `_start`, returning how it ended.
fn run_module(
    engine: &Engine,
    module: &Module,
    host: P1Host,
    cpu: Cpu,
    stop: Arc<AtomicBool>,
) -> Health {
    let mut store = Store::new(engine, host);
    limit(&mut store, |h| &mut h.limits, cpu, stop);
    let mut linker: Linker<P1Host> = Linker::new(engine);
    if let Err(e) = wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |h: &mut P1Host| &mut h.wasi)
    {
        return Health::Failed {
            reason: format!("cannot link WASI: {e:#}"),
        };
    }
    let result = linker
        .instantiate(&mut store, module)
        .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, "_start"))
        .and_then(|start| start.call(&mut store, ()));
    match result {
        Ok(()) => Health::Exited { code: 0 },
        Err(e) => ended_by(e),
    }
}

/// Instantiates a `wasi:cli/command` component and calls `wasi:cli/run`, returning how it
/// ended.
fn run_component(
    engine: &Engine,
    component: &Component,
    host: P2Host,
    cpu: Cpu,
    stop: Arc<AtomicBool>,
) -> Health {
    let mut store = Store::new(engine, host);
    limit(&mut store, |h| &mut h.limits, cpu, stop);
    let mut linker = wasmtime::component::Linker::<P2Host>::new(engine);
    if let Err(e) = wasmtime_wasi::p2::add_to_linker_sync(&mut linker) {
        return Health::Failed {
            reason: format!("cannot link WASI preview 2: {e:#}"),
        };
    }
    let command = match wasmtime_wasi::p2::bindings::sync::Command::instantiate(
        &mut store, component, &linker,
    ) {
        Ok(c) => c,
        Err(e) => {
            return Health::Failed {
                reason: format!("not a wasi:cli/command component: {e:#}").replace('\n', " "),
            };
        }
    };
    match command.wasi_cli_run().call_run(&mut store) {
        Ok(Ok(())) => Health::Exited { code: 0 },
        Ok(Err(())) => Health::Exited { code: 1 },
        Err(e) => ended_by(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_module_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::default();
        for text in [
            "root:x:0:0:secret-hash:/root:/bin/sh\n",
            "(module secret-token)\n",
            "(module (func (export \"x\") secret-call))\n",
        ] {
            let path = dir.path().join("shadow");
            std::fs::write(&path, text).unwrap();
            let Err(e) = Program::compile(&engine, &path) else {
                panic!("{text:?} compiled");
            };
            let e = format!("{e:#}");
            assert!(e.contains("not a WebAssembly module"), "{e}");
            assert!(!e.contains("secret"), "the message quotes the file: {e}");
        }
    }

    #[test]
    fn only_a_plain_file_is_read() {
        let Err(e) = Program::compile(&Engine::default(), Path::new("/dev/zero")) else {
            panic!("/dev/zero compiled");
        };
        assert!(format!("{e:#}").contains("not a plain file"), "{e:#}");
    }
}
