//! The runtime-driver contract every EOS driver implements, built-in or plugin (shaped like
//! Nomad's task drivers; the rules are in `CONTRACT.md`). This version covers what the EN needs
//! to fingerprint its runtime, run, inspect, stop, recover and prune components, report their
//! stats and logs, and collect what it fetched. With the `testing` feature: the conformance
//! suite every driver passes, and a scriptable mock driver.

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
#[cfg(any(test, feature = "testing"))]
pub mod mock;

use eos_domain::state::ComponentSpec;
use serde::{Deserialize, Serialize};

/// Verifies an image a component's artifact names (a service of a compose file) under the
/// component's signature policy: the reference pinned to the digest whose signature by one of
/// `public_keys` verified. The EN gives drivers one backed by its artifact cache.
#[async_trait::async_trait]
pub trait ImageVerifier: Send + Sync {
    async fn verify(&self, image: &str, public_keys: &[String]) -> Result<String, String>;
}

/// What a driver is and what it can run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// The runtime name components use (`wasm`, `oci`, ...).
    pub runtime: String,
    /// `built-in`, `native` or `wasm`.
    pub source: String,
    pub version: String,
    /// Margo deployment types it serves (`custom` for WASM).
    pub deployment_types: Vec<String>,
}

/// What a driver finds of its runtime on this host now: whether it can run components here,
/// and which version of the runtime answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Fingerprint {
    /// The runtime answers; `version` names it (`Docker Engine 26.1.5 (API 1.45)`).
    Ready { version: String },
    /// It does not; `reason` says why (`no container engine answers at ...`).
    Unavailable { reason: String },
}

impl Fingerprint {
    pub fn is_ready(&self) -> bool {
        matches!(self, Self::Ready { .. })
    }
}

/// An opaque handle the EN persists so the driver can find a component again after a restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Handle {
    pub driver: String,
    pub data: serde_json::Value,
}

/// How a component stands according to its driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Health {
    Running,
    Exited { code: i32 },
    Failed { reason: String },
    Unknown,
}

/// A component's resource use now; `None` where the driver cannot tell.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Percent of one core (200 is two cores busy).
    pub cpu_percent: Option<f64>,
    pub memory_bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot fetch {repository}: {reason}")]
    Fetch { repository: String, reason: String },
    #[error("{0}")]
    Start(String),
    #[error("{0}")]
    Other(String),
}

/// Identifies one component instance on a device.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceKey {
    pub deployment_id: String,
    pub component: String,
}

impl std::fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.deployment_id, self.component)
    }
}

#[async_trait::async_trait]
pub trait RuntimeDriver: Send + Sync {
    fn info(&self) -> DriverInfo;

    /// Asks the runtime whether it answers now and which version it is. The EN calls it at
    /// start and every `fingerprint_secs`; only drivers that are `Ready` are advertised in the
    /// device's capabilities, so nothing is placed where it cannot run. A driver whose runtime
    /// is the EN itself (WASM, most plugins) is always ready with the version `info` names.
    async fn fingerprint(&self) -> Fingerprint {
        Fingerprint::Ready {
            version: self.info().version,
        }
    }

    /// Starts (or, for the same spec, keeps) a component. MUST be idempotent: applying the same
    /// spec twice changes nothing. Returns once the component has started or failed to start.
    async fn apply(&self, key: &InstanceKey, spec: &ComponentSpec) -> Result<Handle, DriverError>;

    async fn inspect(&self, key: &InstanceKey) -> Health;

    /// Stops and removes the component and its files. Removing what is not there succeeds.
    async fn remove(&self, key: &InstanceKey) -> Result<(), DriverError>;

    /// Takes back a component started before an EN restart, from its persisted handle.
    async fn recover(
        &self,
        key: &InstanceKey,
        spec: &ComponentSpec,
        handle: &Handle,
    ) -> Result<Handle, DriverError>;

    /// Called once at start, after recovery: removes what the driver finds of components other
    /// than `keep` (the leftovers of a crash between starting a component and recording it).
    /// Returns what it removed.
    async fn prune(&self, keep: &[InstanceKey]) -> Result<Vec<InstanceKey>, DriverError> {
        let _ = keep;
        Ok(Vec::new())
    }

    /// The resource use of a running component (all `None` from a driver that cannot tell).
    async fn stats(&self, key: &InstanceKey) -> Result<Stats, DriverError> {
        let _ = key;
        Ok(Stats::default())
    }

    /// Deletes what the driver fetched (images) beyond the newest `keep` per repository,
    /// never anything a component still runs from. The EN calls it at start and after each
    /// apply. Returns what it deleted.
    async fn collect_garbage(&self, keep: usize) -> Result<Vec<String>, DriverError> {
        let _ = keep;
        Ok(Vec::new())
    }

    /// The last `lines` lines a component wrote (stdout and stderr), oldest first; none from a
    /// driver that keeps no output.
    async fn logs(&self, key: &InstanceKey, lines: usize) -> Result<Vec<String>, DriverError> {
        let _ = (key, lines);
        Ok(Vec::new())
    }
}

/// The files in a plugin folder `dir` whose extension is `extension` (`so`, `wasm`), in name
/// order; none when the folder cannot be read.
pub fn plugin_files(dir: &std::path::Path, extension: &str) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<std::path::PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    paths.sort();
    paths
}
