//! Where application packages come from: OCI registries (`oci://…`) through the registry
//! adapter, directories and Git repositories through the Git adapter. Either way the package's
//! files sit in a folder under the CO's data directory. The files a package carries for its
//! components (`./hello.wat`) are kept per tenant by digest in [`Artifacts`], where the tenant's
//! LOs fetch them.

use eos_adapter_git::PackageFetcher;
use eos_adapter_git::read_in_package;
use eos_adapter_localstore::BlobStore;
use eos_adapter_registry::OciPackages;
use eos_domain::ids::TenantId;
use eos_domain::service::{FetchedPackage, PackageSource};
use std::path::{Path, PathBuf};

pub struct Packages {
    pub files: PackageFetcher,
    pub registries: OciPackages,
    pub artifacts: Artifacts,
}

/// The most bytes one file a package carries may hold (the whole package's cap).
pub const MAX_ARTIFACT_BYTES: u64 = eos_adapter_git::MAX_PACKAGE_BYTES;

/// Files packages carry, by tenant and digest: `<root>/<tenant>/sha256/<hex>`. A tenant's LO
/// is served from its tenant's folder only.
#[derive(Clone)]
pub struct Artifacts {
    root: PathBuf,
}

impl Artifacts {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn of(&self, tenant: &TenantId) -> BlobStore {
        BlobStore::new(self.root.join(tenant.as_str()))
    }
}

#[async_trait::async_trait]
impl PackageSource for Packages {
    async fn fetch(
        &self,
        tenant: &TenantId,
        source: &str,
        signatures: &eos_domain::signing::SignaturePolicy,
    ) -> Result<FetchedPackage, String> {
        if OciPackages::handles(source) {
            let keys = signatures
                .required
                .then_some(signatures.public_keys.as_slice());
            self.registries.fetch(tenant.as_str(), source, keys).await
        } else {
            self.files.fetch(source).await
        }
    }

    async fn unpack(&self, archive: &[u8]) -> Result<FetchedPackage, String> {
        self.files.unpack(archive).await
    }

    async fn read(&self, folder: &str, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        read_in_package(Path::new(folder), path, limit).await
    }

    async fn keep(&self, tenant: &TenantId, folder: &str, path: &str) -> Result<String, String> {
        let bytes = read_in_package(Path::new(folder), path, MAX_ARTIFACT_BYTES).await?;
        let store = self.artifacts.of(tenant);
        tokio::task::spawn_blocking(move || store.put(&bytes))
            .await
            .map_err(|e| format!("keeping {path} stopped: {e}"))?
            .map_err(|e| format!("cannot keep {path}: {e}"))
    }

    async fn discard(&self, folder: &str) {
        if !self.registries.discard(folder).await {
            self.files.discard(folder).await;
        }
    }
}
