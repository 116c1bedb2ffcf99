//! The site's revoked ENs, as the CO sends them on the uplink: kept in the LO's records, so they
//! hold while the CO is away and across restarts. An EN revoked is cut off at once, and its
//! certificates issued until the revocation are refused when it dials again.

use crate::site::Site;
use eos_adapter_grpc::pb;
use eos_adapter_localstore::RecordDir;
use eos_domain::ids::DeviceId;
use std::collections::BTreeMap;
use std::sync::Mutex;

const RECORD: &str = "revocations";

/// Revoked hosts and when.
pub struct Revocations {
    records: RecordDir,
    by_host: Mutex<BTreeMap<String, String>>,
}

impl Revocations {
    pub fn open(records: RecordDir) -> anyhow::Result<Self> {
        let by_host = records.load(RECORD)?.unwrap_or_default();
        Ok(Self {
            records,
            by_host: Mutex::new(by_host),
        })
    }

    /// Whether the certificate (DER) of EN `host` is revoked.
    pub fn refuses(&self, host: &str, certificate: &[u8]) -> Option<String> {
        let by_host = self.by_host.lock().unwrap_or_else(|e| e.into_inner());
        let at = by_host.get(host)?;
        eos_adapter_pki::revoked_by(certificate, at).then(|| at.clone())
    }

    /// Takes the CO's revocations, keeps them, and cuts off the ENs they name.
    pub async fn apply(&self, site: &Site, list: pb::Revocations) {
        let mut changed = Vec::new();
        {
            let mut by_host = self.by_host.lock().unwrap_or_else(|e| e.into_inner());
            for r in list.items {
                if by_host.get(&r.host) != Some(&r.revoked_at) {
                    by_host.insert(r.host.clone(), r.revoked_at.clone());
                    changed.push(r);
                }
            }
            if !changed.is_empty()
                && let Err(e) = self.records.store(RECORD, &*by_host)
            {
                tracing::error!(error = %e, "cannot keep the revocations");
            }
        }
        for r in changed {
            let Ok(device) = DeviceId::parse(&format!("{}/{}", site.id, r.host)) else {
                continue;
            };
            if let Some(commands) = site.node_commands(&device) {
                let why = format!(
                    "the certificate of EN {device} was revoked at {}",
                    r.revoked_at
                );
                tracing::warn!(%device, "revoked en cut off");
                let _ = commands
                    .send(Err(tonic::Status::permission_denied(why)))
                    .await;
            }
        }
    }
}
