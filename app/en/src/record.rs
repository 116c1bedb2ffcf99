//! The EN's crash-safe record of the components it runs, with each driver's handle.

use eos_adapter_localstore::{RecordDir, RecordError};
use eos_domain::state::ComponentSpec;
use eos_driver::Handle;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunEntry {
    pub deployment_id: String,
    pub spec: ComponentSpec,
    pub handle: Handle,
}

pub struct RunRecord {
    dir: RecordDir,
    entries: Mutex<BTreeMap<String, RunEntry>>,
}

const NAME: &str = "running";

impl RunRecord {
    pub fn open(dir: std::path::PathBuf) -> Result<Self, RecordError> {
        let dir = RecordDir::open(dir)?;
        let entries = dir.load(NAME)?.unwrap_or_default();
        Ok(Self {
            dir,
            entries: Mutex::new(entries),
        })
    }

    pub fn entries(&self) -> Vec<RunEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    pub fn get(&self, deployment_id: &str, component: &str) -> Option<RunEntry> {
        self.entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&format!("{deployment_id}/{component}"))
            .cloned()
    }

    pub fn put(&self, entry: RunEntry) -> Result<(), RecordError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.insert(
            format!("{}/{}", entry.deployment_id, entry.spec.name),
            entry,
        );
        self.dir.store(NAME, &*entries)
    }

    pub fn remove(&self, deployment_id: &str, component: &str) -> Result<(), RecordError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&format!("{deployment_id}/{component}"));
        self.dir.store(NAME, &*entries)
    }
}
