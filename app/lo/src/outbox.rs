//! The LO's durable outbox of reports for the CO: device changes, deployment statuses and refused
//! commits. Pushing never waits for the CO (it only appends to the local journal), so the uplink
//! can never stall local work; a newer status of the same deployment on the same device replaces
//! an unsent older one, so a long outage leaves a backlog bounded by the number of components.

use eos_adapter_grpc::pb::{self, lo_message};
use eos_adapter_localstore::{DurableOutbox, RecordDir};
use eos_app_common::Clock;
use eos_domain::outbox::Entry;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};
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
    /// Something happened to a workload (`component-crashed`).
    Component {
        #[serde(rename = "event")]
        kind: String,
        device_id: String,
        deployment_id: String,
        component: String,
        message: String,
    },
}

/// A report with the time the LO observed it; reports can reach the CO days later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    /// Missing in journals written before reports carried the time.
    #[serde(default)]
    pub observed_at: Option<String>,
    #[serde(flatten)]
    pub report: Report,
}

impl Stamped {
    /// The numbered message that carries this report to the CO.
    pub fn to_message(&self, seq: u64) -> pb::LoMessage {
        pb::LoMessage {
            seq,
            body: Some(self.report.to_body()),
            observed_at: self.observed_at.clone().unwrap_or_default(),
        }
    }
}

impl Report {
    /// The compaction key: the latest report per device and per deployment-on-device counts.
    fn key(&self) -> Option<String> {
        match self {
            Report::Device { device_id, .. } => Some(format!("device/{device_id}")),
            Report::Status { key, .. } => Some(format!("status/{key}")),
            Report::Rejected { .. } | Report::Skipped { .. } | Report::Component { .. } => None,
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
            Report::Component {
                kind,
                device_id,
                deployment_id,
                component,
                message,
            } => lo_message::Body::Component(pb::ComponentEvent {
                kind,
                device_id,
                deployment_id,
                component,
                message,
            }),
        }
    }
}

pub struct Outbox {
    /// Names this journal to the CO; a new journal gets a new id, so the CO starts counting anew.
    pub id: String,
    inner: Mutex<DurableOutbox<Stamped>>,
    clock: Arc<dyn Clock>,
    /// Signalled on every push; the uplink session waits on it.
    pub ready: Notify,
}

const ID_RECORD: &str = "outbox-id";

impl Outbox {
    pub fn open(
        dir: &Path,
        new_id: impl FnOnce() -> String,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
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
            clock,
            ready: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DurableOutbox<Stamped>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues reports durably, stamped with the time now, and wakes the uplink. A disk failure
    /// is logged: the reports are lost for the CO, but local work goes on.
    pub fn push(&self, reports: Vec<Report>) {
        if reports.is_empty() {
            return;
        }
        let observed_at = Some(self.clock.now_rfc3339());
        let batch = reports.into_iter().map(|report| {
            let key = report.key();
            let stamped = Stamped {
                observed_at: observed_at.clone(),
                report,
            };
            (key, stamped)
        });
        if let Err(e) = self.lock().push(batch) {
            tracing::error!(error = %e, "cannot write the outbox journal; reports for the co are lost");
        }
        self.ready.notify_one();
    }

    /// Up to `limit` pending entries after `seq`, oldest first.
    pub fn after(&self, seq: u64, limit: usize) -> Vec<Entry<Stamped>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use eos_app_common::SimClock;
    use std::time::Duration;

    #[test]
    fn a_report_journaled_before_reports_carried_their_time_still_reads() {
        let old = r#"{"kind":"rejected","commit":"c1","problems":"p"}"#;
        let stamped: Stamped = serde_json::from_str(old).unwrap();
        assert_eq!(stamped.observed_at, None);
        assert_eq!(
            stamped.report,
            Report::Rejected {
                commit: "c1".into(),
                problems: "p".into()
            }
        );
        assert_eq!(stamped.to_message(4).observed_at, "");
    }

    #[test]
    fn reports_carry_the_time_they_were_queued_through_the_journal_to_the_message() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = SimClock::new();
        clock.advance(Duration::from_secs(48 * 3600));
        let outbox = Outbox::open(tmp.path(), || "o1".into(), clock.clone()).unwrap();
        outbox.push(vec![Report::Component {
            kind: "component-crashed".into(),
            device_id: "s/n".into(),
            deployment_id: "d".into(),
            component: "c".into(),
            message: "exited with status 3".into(),
        }]);
        drop(outbox);
        let outbox = Outbox::open(tmp.path(), || "o2".into(), clock.clone()).unwrap();
        assert_eq!(outbox.id, "o1", "the same journal keeps its id");
        let entries = outbox.after(0, 10);
        let message = entries[0].payload.to_message(entries[0].seq);
        assert_eq!(message.seq, 1);
        let at = chrono::DateTime::parse_from_rfc3339(&message.observed_at).unwrap();
        let ahead = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
        assert!(ahead > chrono::Duration::hours(47), "{ahead}");
        assert!(matches!(
            message.body,
            Some(lo_message::Body::Component(pb::ComponentEvent { ref kind, .. })) if kind == "component-crashed"
        ));
    }
}
