//! The built-in `wasm` runtime driver: WebAssembly run by wasmtime, either core modules with
//! WASI preview 1 (`_start`) or components of the `wasi:cli/command` world (WASI preview 2),
//! binary or WAT text. Each component runs on its own thread with its own store, held to its
//! memory and CPU limits (`x-eos-extensions.wasm`); stdout and
//! stderr go to files in the component's work folder; `/data` is a preopened private folder.
//!
//! Modules run inside the EN process, so after an EN restart they are started again from their
//! persisted spec (there is nothing left to adopt). Modules are read from `file://` paths; the
//! EN pulls `oci://` modules from registries into its artifact cache before this driver runs
//! them (`eos-adapter-registry`).

mod instance;

use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, DriverInfo, Handle, Health, InstanceKey, RuntimeDriver, Stats};
use instance::Instance;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long `apply` waits for a module to trap or exit before calling it started.
pub const START_WINDOW: Duration = Duration::from_millis(300);

pub struct WasmDriver {
    engine: wasmtime::Engine,
    root: PathBuf,
    instances: Mutex<HashMap<InstanceKey, Arc<Instance>>>,
    /// Ends the epoch ticker thread when the driver goes.
    ticking: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for WasmDriver {
    fn drop(&mut self) {
        self.ticking
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl WasmDriver {
    /// A driver keeping component folders under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, DriverError> {
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let engine = wasmtime::Engine::new(&config)
            .map_err(|e| DriverError::Other(format!("cannot start wasmtime: {e}")))?;
        let ticked = engine.clone();
        let ticking = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let still_ticking = ticking.clone();
        std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while still_ticking.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                    ticked.increment_epoch();
                }
                // A last tick, so that modules told to stop notice it.
                ticked.increment_epoch();
            })
            .map_err(|e| DriverError::Other(e.to_string()))?;
        Ok(Self {
            engine,
            root: root.into(),
            instances: Mutex::new(HashMap::new()),
            ticking,
        })
    }

    /// The folder of a component: `stdout.log`, `stderr.log` and `data/`.
    pub fn component_dir(&self, key: &InstanceKey) -> PathBuf {
        self.root.join(&key.deployment_id).join(&key.component)
    }

    fn running(&self, key: &InstanceKey) -> Option<Arc<Instance>> {
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
    }

    async fn stop(&self, key: &InstanceKey) {
        let instance = self
            .instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        if let Some(instance) = instance {
            let _ = tokio::task::spawn_blocking(move || instance.stop_and_wait()).await;
        }
    }
}

/// Reads a module from a component's `repository`.
pub fn module_path(repository: &str) -> Result<PathBuf, DriverError> {
    if let Some(path) = repository.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    Err(DriverError::Fetch {
        repository: repository.into(),
        reason: "the driver runs modules from file:// paths: the EN fetches oci:// and \
                 eos-artifact: modules into its caches first"
            .into(),
    })
}

fn handle_of(key: &InstanceKey, dir: &Path) -> Handle {
    Handle {
        driver: "wasm".into(),
        data: serde_json::json!({"dir": dir.display().to_string(), "instance": key.to_string()}),
    }
}

#[async_trait::async_trait]
impl RuntimeDriver for WasmDriver {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            runtime: "wasm".into(),
            source: "built-in".into(),
            version: format!(
                "wasmtime {}",
                wasmtime::ModuleVersionStrategy::WasmtimeVersion.as_str()
            ),
            deployment_types: vec!["custom".into()],
        }
    }

    async fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError> {
        let dir = self.component_dir(key);
        if let Some(current) = self.running(key) {
            if current.spec == *spec && matches!(current.health(), Health::Running) {
                return Ok(handle_of(key, &dir));
            }
            self.stop(key).await;
        }
        let path = module_path(&spec.repository)?;
        let engine = self.engine.clone();
        let program = tokio::task::spawn_blocking(move || {
            instance::Program::compile(&engine, &path).map_err(|e| (path, e))
        })
        .await
        .map_err(|e| DriverError::Other(e.to_string()))?
        .map_err(|(path, e)| DriverError::Fetch {
            repository: spec.repository.clone(),
            reason: format!("{}: {e:#}", path.display()),
        })?;
        let instance = Arc::new(Instance::start(&self.engine, program, spec.clone(), &dir)?);
        self.instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), instance.clone());
        let waited = instance.clone();
        let early = tokio::task::spawn_blocking(move || waited.wait_for_end(START_WINDOW))
            .await
            .map_err(|e| DriverError::Other(e.to_string()))?;
        match early {
            Some(Health::Failed { reason }) => {
                self.stop(key).await;
                Err(DriverError::Start(reason))
            }
            Some(Health::Exited { code }) if code != 0 => {
                self.stop(key).await;
                Err(DriverError::Start(format!(
                    "module exited with status {code}"
                )))
            }
            _ => Ok(handle_of(key, &dir)),
        }
    }

    async fn inspect(&self, key: &InstanceKey) -> Health {
        self.running(key)
            .map(|i| i.health())
            .unwrap_or(Health::Unknown)
    }

    async fn remove(&self, key: &InstanceKey) -> Result<(), DriverError> {
        self.stop(key).await;
        let dir = self.component_dir(key);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(DriverError::Other(format!(
                    "cannot remove {}: {e}",
                    dir.display()
                )));
            }
        }
        // The deployment's folder goes with its last component (remove_dir refuses a non-empty one).
        if let Some(parent) = dir.parent() {
            let _ = tokio::fs::remove_dir(parent).await;
        }
        Ok(())
    }

    async fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        _handle: &Handle,
    ) -> Result<Handle, DriverError> {
        self.apply(key, spec).await
    }

    async fn stats(&self, key: &InstanceKey) -> Result<Stats, DriverError> {
        let running = self.running(key);
        Ok(Stats {
            cpu_percent: running.as_ref().map(|i| i.cpu_percent()),
            memory_bytes: running.map(|i| i.memory_bytes()),
        })
    }

    async fn logs(&self, key: &InstanceKey, lines: usize) -> Result<Vec<String>, DriverError> {
        let dir = self.component_dir(key);
        let mut out = Vec::new();
        for (file, prefix) in [("stdout.log", ""), ("stderr.log", "stderr: ")] {
            let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            out.extend(tail.iter().map(|l| format!("{prefix}{l}")));
        }
        Ok(out)
    }

    async fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        let mut removed = Vec::new();
        let Ok(deployments) = std::fs::read_dir(&self.root) else {
            return Ok(removed);
        };
        for deployment in deployments.flatten() {
            let deployment_id = deployment.file_name().to_string_lossy().into_owned();
            let Ok(components) = std::fs::read_dir(deployment.path()) else {
                continue;
            };
            for component in components.flatten() {
                let key = InstanceKey {
                    deployment_id: deployment_id.clone(),
                    component: component.file_name().to_string_lossy().into_owned(),
                };
                if !keep.contains(&key) {
                    self.remove(&key).await?;
                    removed.push(key);
                }
            }
        }
        Ok(removed)
    }
}
