//! Native runtime-driver plugins: dynamic libraries (`*.so`) in the EN's plugin directory, each
//! exporting the root module of `eos-plugin-abi`. Loading checks the library before anything
//! in it runs (abi_stable's header, the root module's layout, the ABI crate's version, the
//! driver ABI number) and refuses a mismatch or a missing symbol with the reason. A loaded
//! plugin is a `RuntimeDriver` like the built-in ones; its blocking calls run on threads of
//! their own, and a panic inside it comes back as an error (the plugin kit catches it there).

use eos_domain::state::ComponentSpec;
use eos_driver::{DriverError, DriverInfo, Handle, Health, InstanceKey, RuntimeDriver, Stats};
use eos_plugin_abi::abi_stable::library::{RootModule, lib_header_from_path};
use eos_plugin_abi::abi_stable::std_types::{RResult, RStr, RString};
use eos_plugin_abi::{DRIVER_ABI, DriverPluginRef, WireError};
use std::path::{Path, PathBuf};

/// Why a plugin was not loaded.
#[derive(Debug, thiserror::Error)]
#[error("plugin {path}: {reason}")]
pub struct PluginError {
    pub path: PathBuf,
    pub reason: String,
}

pub struct NativeDriver {
    module: DriverPluginRef,
    info: DriverInfo,
    path: PathBuf,
}

impl NativeDriver {
    /// Loads the plugin at `path`, giving it `data` as its own folder.
    pub fn load(path: &Path, data: &Path) -> Result<Self, PluginError> {
        let refuse = |reason: String| PluginError {
            path: path.to_owned(),
            reason,
        };
        let header = lib_header_from_path(path).map_err(|e| {
            refuse(format!(
                "not an EOS driver plugin (no {} root module it could export): {e}",
                DriverPluginRef::NAME
            ))
        })?;
        let module = header
            .init_root_module::<DriverPluginRef>()
            .map_err(|e| refuse(format!("incompatible with this EN: {e}")))?;
        let abi = module.abi();
        if abi != DRIVER_ABI {
            return Err(refuse(format!(
                "speaks driver ABI {abi}; this EN speaks driver ABI {DRIVER_ABI}"
            )));
        }
        std::fs::create_dir_all(data)
            .map_err(|e| refuse(format!("cannot make its folder {}: {e}", data.display())))?;
        let dir = data.to_string_lossy().into_owned();
        if let RResult::RErr(e) = (module.init())(RStr::from(dir.as_str())) {
            return Err(refuse(format!("failed to start: {e}")));
        }
        let mut info: DriverInfo = serde_json::from_str((module.info())().as_str())
            .map_err(|e| refuse(format!("unreadable info: {e}")))?;
        if info.runtime.is_empty() {
            return Err(refuse("names no runtime".into()));
        }
        info.source = "native".into();
        Ok(Self {
            module,
            info,
            path: path.to_owned(),
        })
    }

    /// Loads every `*.so` in `dir` (data folders under `data/<file stem>`), in name order. A
    /// plugin that cannot be loaded comes back as its error; the others load regardless.
    pub fn load_dir(dir: &Path, data: &Path) -> Vec<Result<Self, PluginError>> {
        eos_driver::plugin_files(dir, "so")
            .into_iter()
            .map(|p| {
                let stem = p.file_stem().unwrap_or_default().to_owned();
                Self::load(&p, &data.join(stem))
            })
            .collect()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(DriverPluginRef) -> T + Send + 'static,
    ) -> Result<T, DriverError> {
        let module = self.module;
        tokio::task::spawn_blocking(move || f(module))
            .await
            .map_err(|e| DriverError::Other(format!("the plugin call did not finish: {e}")))
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("contract types serialize")
}

fn error_of(text: RString) -> DriverError {
    match serde_json::from_str::<WireError>(text.as_str()) {
        Ok(e) => e.into(),
        Err(_) => DriverError::Other(text.into_string()),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(
    out: RResult<RString, RString>,
    what: &str,
) -> Result<T, DriverError> {
    match out {
        RResult::ROk(text) => serde_json::from_str(text.as_str())
            .map_err(|e| DriverError::Other(format!("the plugin returned unreadable {what}: {e}"))),
        RResult::RErr(e) => Err(error_of(e)),
    }
}

fn handle_of(out: RResult<RString, RString>) -> Result<Handle, DriverError> {
    match out {
        RResult::ROk(h) => serde_json::from_str(h.as_str()).map_err(|e| {
            DriverError::Other(format!("the plugin returned an unreadable handle: {e}"))
        }),
        RResult::RErr(e) => Err(error_of(e)),
    }
}

#[async_trait::async_trait]
impl RuntimeDriver for NativeDriver {
    fn info(&self) -> DriverInfo {
        self.info.clone()
    }

    async fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError> {
        let (key, spec) = (json(key), json(spec));
        let out = self
            .call(move |m| (m.apply())(RStr::from(key.as_str()), RStr::from(spec.as_str())))
            .await?;
        handle_of(out)
    }

    async fn inspect(&self, key: &InstanceKey) -> Health {
        let key = json(key);
        match self
            .call(move |m| (m.inspect())(RStr::from(key.as_str())))
            .await
        {
            Ok(text) => serde_json::from_str(text.as_str()).unwrap_or_else(|e| Health::Failed {
                reason: format!("the plugin returned an unreadable health: {e}"),
            }),
            Err(e) => Health::Failed {
                reason: e.to_string(),
            },
        }
    }

    async fn remove(&self, key: &InstanceKey) -> Result<(), DriverError> {
        let key = json(key);
        match self
            .call(move |m| (m.remove())(RStr::from(key.as_str())))
            .await?
        {
            RResult::ROk(()) => Ok(()),
            RResult::RErr(e) => Err(error_of(e)),
        }
    }

    async fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        handle: &Handle,
    ) -> Result<Handle, DriverError> {
        let (key, spec, handle) = (json(key), json(spec), json(handle));
        let out = self
            .call(move |m| {
                (m.recover())(
                    RStr::from(key.as_str()),
                    RStr::from(spec.as_str()),
                    RStr::from(handle.as_str()),
                )
            })
            .await?;
        handle_of(out)
    }

    async fn stats(&self, key: &InstanceKey) -> Result<Stats, DriverError> {
        let key = json(key);
        // A plugin built before `stats` joined the ABI cannot tell.
        let Some(out) = self
            .call(move |m| m.stats().map(|f| f(RStr::from(key.as_str()))))
            .await?
        else {
            return Ok(Stats::default());
        };
        read_json(out, "stats")
    }

    async fn logs(&self, key: &InstanceKey, lines: usize) -> Result<Vec<String>, DriverError> {
        let key = json(key);
        let lines = u32::try_from(lines).unwrap_or(u32::MAX);
        let Some(out) = self
            .call(move |m| m.logs().map(|f| f(RStr::from(key.as_str()), lines)))
            .await?
        else {
            return Ok(Vec::new());
        };
        read_json(out, "log lines")
    }

    async fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        let keep = json(&keep);
        match self
            .call(move |m| (m.prune())(RStr::from(keep.as_str())))
            .await?
        {
            RResult::ROk(removed) => serde_json::from_str(removed.as_str()).map_err(|e| {
                DriverError::Other(format!("the plugin returned an unreadable list: {e}"))
            }),
            RResult::RErr(e) => Err(error_of(e)),
        }
    }
}
