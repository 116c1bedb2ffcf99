//! The LO's durable outbox of reports for the CO: device changes, deployment statuses and refused
//! commits. Pushing never waits for the CO (it only appends to the local journal), so the uplink
//! can never stall local work; a newer status of the same deployment on the same device replaces
//! an unsent older one, so a long outage leaves a backlog bounded by the number of components.

use eos_adapter_grpc::pb::{self, lo_message};
use eos_adapter_localstore::{DurableOutbox, RecordDir};
use eos_domain::outbox::Entry;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Mutex;
use tokio::sync::Notify;

/// One report, as the journal stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Report {
    Device {
        device_id: String,
        capabilities_json: String,
        online: bool,
    },
    Status {
        /// `<deployment>/<device>`: statuses with the same key supersede each other.
        key: String,
        status_json: String,
    },
    Rejected {
        commit: String,
        problems: String,
    },
    Skipped {
        from_commit: String,
        to_commit: String,
        skipped: Vec<String>,
    },
}

impl Report {
    /// The compaction key: the latest report per device and per deployment-on-device counts.
    fn key(&self) -> Option<String> {
        match self {
            Report::Device { device_id, .. } => Some(format!("device/{device_id}")),
            Report::Status { key, .. } => Some(format!("status/{key}")),
            Report::Rejected { .. } | Report::Skipped { .. } => None,
        }
    }

    pub fn to_body(&self) -> lo_message::Body {
        match self.clone() {
            Report::Device {
                device_id,
                capabilities_json,
                online,
            } => lo_message::Body::Device(pb::DeviceReport {
                device_id,
                capabilities_json,
                online,
            }),
            Report::Status { status_json, .. } => {
                lo_message::Body::Status(pb::StatusReport { status_json })
            }
            Report::Rejected { commit, problems } => {
                lo_message::Body::Rejected(pb::DesiredStateRejected { commit, problems })
            }
            Report::Skipped {
                from_commit,
                to_commit,
                skipped,
            } => lo_message::Body::Skipped(pb::DesiredStateSkipped {
                from_commit,
                to_commit,
                skipped,
            }),
        }
    }
}

pub struct Outbox {
    /// Names this journal to the CO; a new journal gets a new id, so the CO starts counting anew.
    pub id: String,
    inner: Mutex<DurableOutbox<Report>>,
    /// Signalled on every push; the uplink session waits on it.
    pub ready: Notify,
}

const ID_RECORD: &str = "outbox-id";

impl Outbox {
    pub fn open(dir: &Path, new_id: impl FnOnce() -> String) -> anyhow::Result<Self> {
        let journal = dir.join("outbox.journal");
        let records = RecordDir::open(dir)?;
        let fresh = !journal.exists();
        let inner = DurableOutbox::open(&journal)?;
        let id = match records.load::<String>(ID_RECORD)? {
            Some(id) if !fresh => id,
            _ => {
                let id = new_id();
                records.store(ID_RECORD, &id)?;
                id
            }
        };
        Ok(Self {
            id,
            inner: Mutex::new(inner),
            ready: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DurableOutbox<Report>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues reports durably and wakes the uplink. A disk failure is logged: the reports are
    /// lost for the CO, but local work goes on.
    pub fn push(&self, reports: Vec<Report>) {
        if reports.is_empty() {
            return;
        }
        let batch = reports.into_iter().map(|r| (r.key(), r));
        if let Err(e) = self.lock().push(batch) {
            tracing::error!(error = %e, "cannot write the outbox journal; reports for the co are lost");
        }
        self.ready.notify_one();
    }

    /// Up to `limit` pending entries after `seq`, oldest first.
    pub fn after(&self, seq: u64, limit: usize) -> Vec<Entry<Report>> {
        self.lock().after(seq).take(limit).cloned().collect()
    }

    pub fn ack(&self, seq: u64) {
        if let Err(e) = self.lock().ack(seq) {
            tracing::error!(error = %e, "cannot record an acknowledgement in the outbox journal");
        }
    }

    pub fn acked(&self) -> u64 {
        self.lock().acked()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn last(&self) -> u64 {
        self.lock().last()
    }
}
