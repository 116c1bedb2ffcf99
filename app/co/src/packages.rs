//! Where application packages come from: OCI registries (`oci://…`) through the registry
//! adapter, directories and Git repositories through the Git adapter. Either way the package's
//! files sit in a folder under the CO's data directory.

use eos_adapter_git::PackageFetcher;
use eos_adapter_git::read_in_package;
use eos_adapter_registry::OciPackages;
use eos_domain::service::{FetchedPackage, PackageSource};
use std::path::Path;

pub struct Packages {
    pub files: PackageFetcher,
    pub registries: OciPackages,
}

#[async_trait::async_trait]
impl PackageSource for Packages {
    async fn fetch(&self, source: &str) -> Result<FetchedPackage, String> {
        if OciPackages::handles(source) {
            self.registries.fetch(source).await
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

    async fn discard(&self, folder: &str) {
        if !self.registries.discard(folder).await {
            self.files.discard(folder).await;
        }
    }
}
