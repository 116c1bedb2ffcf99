//! Margo application packages from OCI registries (`oci://HOST/NAME:TAG`): the manifest's
//! artifact type is `application/vnd.margo.app.v1+json`, every package file is one layer named
//! by its `org.opencontainers.image.title` annotation, and the one layer of media type
//! `application/vnd.margo.app.description.v1+yaml` is the application description, whose
//! `metadata.version` must equal the tag. The files land in a folder of the CO's own, as a
//! package from a directory or Git does.

use crate::{Login, client};
use eos_domain::margo::ApplicationDescription;
use eos_domain::service::FetchedPackage;
use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// The artifact type of a Margo application package.
pub const APP_ARTIFACT: &str = "application/vnd.margo.app.v1+json";
/// The media type of the application description layer.
pub const DESCRIPTION_LAYER: &str = "application/vnd.margo.app.description.v1+yaml";
/// The annotation that names a layer's file in the package.
pub const TITLE: &str = "org.opencontainers.image.title";
/// The largest package layer the CO pulls.
pub const MAX_LAYER_BYTES: i64 = 64 << 20;

/// Pulls application packages into folders under `root`.
pub struct OciPackages {
    root: PathBuf,
    logins: BTreeMap<String, Login>,
    insecure: Vec<String>,
}

impl OciPackages {
    /// Packages kept under `root`; `logins` by registry host; `insecure` hosts spoken to
    /// without TLS (loopback hosts always are).
    pub fn new(
        root: impl Into<PathBuf>,
        logins: BTreeMap<String, Login>,
        insecure: Vec<String>,
    ) -> Self {
        Self {
            root: root.into(),
            logins,
            insecure,
        }
    }

    /// Whether `source` names a package in a registry.
    pub fn handles(source: &str) -> bool {
        source.starts_with("oci://")
    }

    /// Pulls the package `source` names into a fresh folder; the folder is removed again when
    /// the package is refused. With `public_keys` (the tenant's signature policy requires
    /// signatures), the package must carry a cosign signature by one of them, and the digest
    /// that verified is the one pulled.
    pub async fn fetch(
        &self,
        tenant: &str,
        source: &str,
        public_keys: Option<&[String]>,
    ) -> Result<FetchedPackage, String> {
        // Only the logins given to this tenant: another's credentials read nothing for it.
        let logins = crate::logins_for(&self.logins, tenant);
        let source = match public_keys {
            None => source.to_owned(),
            Some(keys) => {
                let verifier = crate::ArtifactCache::new(
                    self.root.join(".signatures").join(tenant),
                    logins.clone(),
                    self.insecure.clone(),
                );
                let pinned = verifier
                    .verify_signature(source.trim_start_matches("oci://"), keys)
                    .await
                    .map_err(|e| format!("refused by the tenant's signature policy: {e}"))?;
                format!("oci://{pinned}")
            }
        };
        let folder = self.fresh_folder().await?;
        match self.pull(&source, &folder, &logins).await {
            Ok(description_yaml) => Ok(FetchedPackage {
                description_yaml,
                folder: folder.display().to_string(),
            }),
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&folder).await;
                Err(e)
            }
        }
    }

    /// Deletes a folder `fetch` made (and nothing else).
    pub async fn discard(&self, folder: &str) -> bool {
        let folder = Path::new(folder);
        let ours = folder.parent() == Some(self.root.as_path())
            && folder
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("oci-"));
        if ours && let Err(e) = tokio::fs::remove_dir_all(folder).await {
            tracing::warn!(folder = %folder.display(), error = %e, "cannot delete a package copy");
        }
        ours
    }

    async fn fresh_folder(&self) -> Result<PathBuf, String> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| format!("cannot create {}: {e}", self.root.display()))?;
        for n in 0u64.. {
            let dir = self.root.join(format!("oci-{}-{n}", std::process::id()));
            if tokio::fs::create_dir(&dir).await.is_ok() {
                return Ok(dir);
            }
        }
        unreachable!("some folder name is free")
    }

    /// Writes every layer of the package into `folder`; the description's text.
    async fn pull(
        &self,
        source: &str,
        folder: &Path,
        logins: &BTreeMap<String, Login>,
    ) -> Result<String, String> {
        let reference = source.trim_start_matches("oci://");
        let parsed: Reference = reference
            .parse()
            .map_err(|e: oci_client::ParseError| format!("not a registry reference: {e}"))?;
        let host = parsed.resolve_registry().to_owned();
        let auth = match logins.get(&host) {
            Some(l) => RegistryAuth::Basic(l.username.clone(), l.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let client = client(&host, &self.insecure);
        let (manifest, _) = client
            .pull_image_manifest(&parsed, &auth)
            .await
            .map_err(|e| format!("cannot read the manifest from the registry: {e}"))?;
        match manifest.artifact_type.as_deref() {
            Some(APP_ARTIFACT) => {}
            other => {
                return Err(format!(
                    "the artifact type is {}, not {APP_ARTIFACT}: not a Margo application package",
                    other.unwrap_or("absent")
                ));
            }
        }
        let descriptions: Vec<_> = manifest
            .layers
            .iter()
            .filter(|l| l.media_type == DESCRIPTION_LAYER)
            .collect();
        if descriptions.len() != 1 {
            return Err(format!(
                "a package has exactly one layer of media type {DESCRIPTION_LAYER}; this one has {}",
                descriptions.len()
            ));
        }
        let mut description = None;
        for layer in &manifest.layers {
            let title = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get(TITLE))
                .ok_or_else(|| {
                    format!(
                        "layer {} has no {TITLE} annotation naming its file",
                        layer.digest
                    )
                })?;
            let path = file_in(folder, title)?;
            if layer.size > MAX_LAYER_BYTES {
                return Err(format!(
                    "{title} has {} bytes; a package file has at most {MAX_LAYER_BYTES}",
                    layer.size
                ));
            }
            let mut data = Vec::new();
            client
                .pull_blob(&parsed, layer, &mut data)
                .await
                .map_err(|e| format!("cannot pull {title} from the registry: {e}"))?;
            let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
            if digest != layer.digest {
                return Err(format!(
                    "{title}: the registry sent content of digest {digest}, not {}",
                    layer.digest
                ));
            }
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| format!("cannot write {title}: {e}"))?;
            }
            tokio::fs::write(&path, &data)
                .await
                .map_err(|e| format!("cannot write {title}: {e}"))?;
            if layer.media_type == DESCRIPTION_LAYER {
                description = Some(
                    String::from_utf8(data)
                        .map_err(|_| format!("{title}: the description is not UTF-8"))?,
                );
            }
        }
        let description = description.expect("one description layer was pulled");
        if let Some(tag) = parsed.tag()
            && let Ok(ad) = ApplicationDescription::from_yaml(&description)
            && ad.metadata.version != tag
        {
            return Err(format!(
                "the tag {tag} is not the description's metadata.version {}; a package's tag is its version",
                ad.metadata.version
            ));
        }
        Ok(description)
    }
}

/// Where the file `title` (a relative path) goes in `folder`; refused when it would leave it.
fn file_in(folder: &Path, title: &str) -> Result<PathBuf, String> {
    let relative = Path::new(title);
    let inside = !title.is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(format!(
            "{TITLE} {title:?} is not a path inside the package"
        ));
    }
    Ok(folder.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_title_stays_inside_the_package() {
        let f = Path::new("/pkg");
        assert_eq!(
            file_in(f, "resources/icon.png").unwrap(),
            Path::new("/pkg/resources/icon.png")
        );
        assert_eq!(
            file_in(f, "./margo.yaml").unwrap(),
            Path::new("/pkg/margo.yaml")
        );
        for bad in ["", "../x", "/etc/passwd", "resources/../../x"] {
            assert!(file_in(f, bad).is_err(), "{bad}");
        }
    }
}
