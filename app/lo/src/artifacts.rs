//! Files application packages carry (`eos-artifact:sha256:…` repositories), for the site's
//! ENs: served from the LO's cache, fetched from the CO by digest the first time and checked
//! against it. The LO fetches those of a desired state as soon as it accepts it, so ENs of a
//! site cut off later still get them.

use eos_adapter_grpc::UplinkClient;
use eos_adapter_grpc::pb;
use eos_adapter_localstore::BlobStore;
use eos_domain::ids::TenantId;
use eos_domain::layout::SiteDesiredState;
use eos_domain::state::{PACKAGE_ARTIFACT, is_sha256_digest};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;

/// The most bytes one artifact may hold (the CO's cap on a package).
pub const MAX_ARTIFACT_BYTES: u64 = 256 * 1024 * 1024;
/// How long one fetch from the CO may take (the lock on fetching is held meanwhile).
const FETCH_WITHIN: std::time::Duration = std::time::Duration::from_secs(300);

pub struct Relay {
    store: BlobStore,
    co_endpoint: String,
    tenant: TenantId,
    tls: watch::Receiver<Option<Arc<eos_adapter_grpc::Tls>>>,
    /// One fetch from the CO at a time: a digest many ENs ask for at once is fetched once.
    fetching: tokio::sync::Mutex<()>,
}

impl Relay {
    pub fn new(
        store: BlobStore,
        co_endpoint: String,
        tenant: TenantId,
        tls: watch::Receiver<Option<Arc<eos_adapter_grpc::Tls>>>,
    ) -> Self {
        Self {
            store,
            co_endpoint,
            tenant,
            tls,
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// The cached file of `digest`, fetched from the CO first when the LO has not got it.
    pub async fn get(&self, digest: &str) -> Result<PathBuf, String> {
        if !is_sha256_digest(digest) {
            return Err(format!("{digest:?} is not a sha256 digest"));
        }
        if let Some(path) = self.store.path(digest) {
            return Ok(path);
        }
        let _one = self.fetching.lock().await;
        if let Some(path) = self.store.path(digest) {
            return Ok(path);
        }
        tokio::time::timeout(FETCH_WITHIN, self.fetch(digest))
            .await
            .map_err(|_| {
                format!(
                    "the CO did not hand it over within {} s",
                    FETCH_WITHIN.as_secs()
                )
            })?
    }

    /// Fetches `digest` from the CO into the cache.
    async fn fetch(&self, digest: &str) -> Result<PathBuf, String> {
        let tls = self.tls.borrow().clone();
        let channel = eos_adapter_grpc::dial(&self.co_endpoint, tls.as_deref())
            .await
            .map_err(|e| format!("the CO is not reachable, and the LO has no copy: {e}"))?;
        let mut request = tonic::Request::new(pb::ArtifactRequest {
            digest: digest.to_owned(),
        });
        if let Ok(tenant) = self.tenant.as_str().parse() {
            request.metadata_mut().insert("x-eos-tenant", tenant);
        }
        let stream = UplinkClient::new(channel)
            .artifact(request)
            .await
            .map_err(|s| format!("the CO: {}", s.message()))?
            .into_inner();
        let mut writer = self
            .store
            .writer(digest, MAX_ARTIFACT_BYTES)
            .map_err(|e| e.to_string())?;
        eos_adapter_grpc::receive_artifact(stream, MAX_ARTIFACT_BYTES, |chunk| {
            writer.write(chunk).map_err(|e| e.to_string())
        })
        .await?;
        let path = writer.finish().map_err(|e| e.to_string())?;
        tracing::info!(%digest, "artifact fetched from the co");
        Ok(path)
    }

    /// Fetches, one after another, those of `digests` the LO has not got.
    pub async fn prefetch(&self, digests: std::collections::BTreeSet<String>) {
        for digest in digests {
            if let Err(e) = self.get(&digest).await {
                tracing::warn!(%digest, error = %e, "cannot fetch an artifact of the desired state yet; an EN asking for it will try again");
            }
        }
    }
}

/// The package artifacts the components of `desired` name, each once.
pub fn artifacts_of(desired: &SiteDesiredState) -> std::collections::BTreeSet<String> {
    desired
        .deployments
        .values()
        .flat_map(|d| d.spec.deployment_profile.components.iter())
        .filter_map(|c| c.properties.repository.as_deref())
        .filter_map(|r| r.strip_prefix(PACKAGE_ARTIFACT))
        .filter(|d| is_sha256_digest(d))
        .map(str::to_owned)
        .collect()
}
