//! Artifacts from OCI registries for the EN: the layer of a given media type (a WASM module is
//! `application/vnd.module.wasm.content.layer.v1+wasm`, as `oras push` makes it) pulled into a
//! local cache named by the layer's digest. An index remembers which digest each reference
//! resolved to, so an EN that restarts while its registry is out of reach still finds what it
//! ran. Loopback registries are spoken to over plain HTTP, as Docker does; others need TLS
//! unless listed as insecure. Margo application packages for the CO come from registries too
//! (`package`). Cosign signatures on artifacts are verified here too (`signatures`).

use eos_domain::state::repository_of;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod package;
mod signatures;

pub use package::{APP_ARTIFACT, DESCRIPTION_LAYER, OciPackages};
pub use signatures::{RegistryInspector, SignatureError};

/// The hosts spoken to over plain HTTP: those in `insecure`, and `host` when it is loopback.
fn plain_hosts(host: &str, insecure: &[String]) -> Vec<String> {
    let loopback =
        host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]");
    let mut plain: Vec<String> = insecure.to_vec();
    if loopback {
        plain.push(host.to_owned());
    }
    plain
}

/// A registry client for `host`: plain HTTP for loopback hosts and those in `insecure`, TLS
/// for the rest.
fn client(host: &str, insecure: &[String]) -> Client {
    let plain = plain_hosts(host, insecure);
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(plain),
        ..Default::default()
    })
}

/// The media type of a WebAssembly module layer.
pub const WASM_LAYER: &str = "application/vnd.module.wasm.content.layer.v1+wasm";
/// The media type of a Margo compose archive layer.
pub const COMPOSE_LAYER: &str = "application/vnd.org.margo.component.compose.tar+gzip";
/// The media type of a Helm chart layer (what `helm push` stores).
pub const HELM_LAYER: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{reference:?} is not a registry reference: {reason}")]
    Reference { reference: String, reason: String },
    #[error("cannot reach {reference}: {reason}")]
    Registry { reference: String, reason: String },
    #[error("{reference} has no layer of type {media_type} (it has: {found})")]
    NoLayer {
        reference: String,
        media_type: String,
        found: String,
    },
    #[error("{reference}: the layer's content does not match its digest {digest}")]
    Digest { reference: String, digest: String },
    #[error("artifact cache {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A login for one registry host (`username` and `password` in a configuration file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: String,
    pub password: String,
    /// On the CO: the tenants whose sources and artifacts the login is used for; none listed
    /// means the platform tenant `default` alone, so one tenant never reads a registry through
    /// credentials given for another.
    #[serde(default)]
    pub tenants: Vec<String>,
}

impl Login {
    /// Whether `tenant`'s sources and artifacts may use this login.
    pub fn serves(&self, tenant: &str) -> bool {
        match self.tenants.is_empty() {
            true => tenant == eos_domain::ids::DEFAULT_TENANT,
            false => self.tenants.iter().any(|t| t == tenant),
        }
    }
}

/// The logins of `logins` that `tenant` may use.
pub fn logins_for(logins: &BTreeMap<String, Login>, tenant: &str) -> BTreeMap<String, Login> {
    logins
        .iter()
        .filter(|(_, l)| l.serves(tenant))
        .map(|(h, l)| (h.clone(), l.clone()))
        .collect()
}

pub struct ArtifactCache {
    dir: PathBuf,
    logins: BTreeMap<String, Login>,
    insecure: Vec<String>,
}

const INDEX: &str = "index.json";
/// Every artifact in the order references last resolved to it, oldest first: which versions of
/// a repository are the newest, whatever their tags.
const ORDER: &str = "order.json";

impl ArtifactCache {
    /// A cache in `dir`; `logins` by registry host; `insecure` hosts spoken to without TLS
    /// (loopback hosts always are).
    pub fn new(dir: PathBuf, logins: BTreeMap<String, Login>, insecure: Vec<String>) -> Self {
        Self {
            dir,
            logins,
            insecure,
        }
    }

    /// The local file holding the `media_type` layer of `reference` (`HOST/NAME:TAG` or
    /// `HOST/NAME@sha256:…`). Asks the registry which digest the reference names and downloads
    /// the layer unless the cache has it; when the registry cannot be reached, falls back to
    /// the digest this reference resolved to last time.
    pub async fn fetch(&self, reference: &str, media_type: &str) -> Result<PathBuf, FetchError> {
        match self.pull(reference, media_type).await {
            Ok(path) => {
                self.remember(reference, &path)?;
                Ok(path)
            }
            Err(e @ FetchError::Registry { .. }) => match self.remembered(reference) {
                Some(path) => {
                    tracing::warn!(%reference, error = %e, path = %path.display(), "registry out of reach; using the cached artifact");
                    Ok(path)
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    fn client_for(&self, host: &str) -> Client {
        client(host, &self.insecure)
    }

    async fn pull(&self, reference: &str, media_type: &str) -> Result<PathBuf, FetchError> {
        let parsed: Reference =
            reference
                .parse()
                .map_err(|e: oci_client::ParseError| FetchError::Reference {
                    reference: reference.into(),
                    reason: e.to_string(),
                })?;
        let host = parsed.resolve_registry().to_owned();
        let auth = match self.logins.get(&host) {
            Some(l) => RegistryAuth::Basic(l.username.clone(), l.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let client = self.client_for(&host);
        let unreachable = |e: oci_client::errors::OciDistributionError| FetchError::Registry {
            reference: reference.into(),
            reason: e.to_string(),
        };
        let (manifest, _) = client
            .pull_image_manifest(&parsed, &auth)
            .await
            .map_err(unreachable)?;
        let layer = manifest
            .layers
            .iter()
            .find(|l| l.media_type == media_type)
            .ok_or_else(|| FetchError::NoLayer {
                reference: reference.into(),
                media_type: media_type.into(),
                found: manifest
                    .layers
                    .iter()
                    .map(|l| l.media_type.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let hex = layer
            .digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
            .ok_or_else(|| FetchError::Digest {
                reference: reference.into(),
                digest: layer.digest.clone(),
            })?
            .to_owned();
        let path = self.dir.join(format!("sha256-{hex}"));
        if path.exists() {
            return Ok(path);
        }
        let mut data = Vec::new();
        client
            .pull_blob(&parsed, layer, &mut data)
            .await
            .map_err(unreachable)?;
        if hex::encode(Sha256::digest(&data)) != hex {
            return Err(FetchError::Digest {
                reference: reference.into(),
                digest: layer.digest.clone(),
            });
        }
        self.write_atomically(&path, &data)?;
        tracing::info!(%reference, digest = %layer.digest, bytes = data.len(), "pulled artifact");
        Ok(path)
    }

    fn io(&self, path: &Path) -> impl FnOnce(std::io::Error) -> FetchError {
        let path = path.to_owned();
        move |source| FetchError::Io { path, source }
    }

    fn write_atomically(&self, path: &Path, data: &[u8]) -> Result<(), FetchError> {
        std::fs::create_dir_all(&self.dir).map_err(self.io(&self.dir))?;
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, data).map_err(self.io(&tmp))?;
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(self.io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(self.io(path))
    }

    /// What each reference resolved to, oldest first.
    fn index(&self) -> BTreeMap<String, Vec<PathBuf>> {
        std::fs::read(self.dir.join(INDEX))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn store_index(&self, index: &BTreeMap<String, Vec<PathBuf>>) -> Result<(), FetchError> {
        let bytes = serde_json::to_vec_pretty(index).expect("the index serializes");
        self.write_atomically(&self.dir.join(INDEX), &bytes)
    }

    /// The artifacts in the order they were last resolved to, oldest first.
    fn order(&self) -> Vec<PathBuf> {
        std::fs::read(self.dir.join(ORDER))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn store_order(&self, order: &[PathBuf]) -> Result<(), FetchError> {
        let bytes = serde_json::to_vec_pretty(order).expect("the order serializes");
        self.write_atomically(&self.dir.join(ORDER), &bytes)
    }

    fn remember(&self, reference: &str, path: &Path) -> Result<(), FetchError> {
        let mut order = self.order();
        if order.last().map(PathBuf::as_path) != Some(path) {
            order.retain(|p| p != path);
            order.push(path.to_owned());
            self.store_order(&order)?;
        }
        let mut index = self.index();
        let history = index.entry(reference.to_owned()).or_default();
        if history.last().map(PathBuf::as_path) == Some(path) {
            return Ok(());
        }
        history.retain(|p| p != path);
        history.push(path.to_owned());
        self.store_index(&index)
    }

    fn remembered(&self, reference: &str) -> Option<PathBuf> {
        self.index().remove(reference)?.pop().filter(|p| p.exists())
    }

    /// Keeps, per repository (`HOST/NAME`, whatever the tag), the `keep` artifacts its
    /// references resolved to most recently (at least one), and what each reference in `in_use`
    /// resolves to now (components run from those, and need them again after a restart while
    /// the registry is out of reach). Deletes every other artifact file; returns what it deleted.
    pub fn collect_garbage(
        &self,
        keep: usize,
        in_use: &[String],
    ) -> Result<Vec<PathBuf>, FetchError> {
        let mut index = self.index();
        let mut order = self.order();
        let rank = |p: &PathBuf| order.iter().position(|q| q == p);
        let mut by_repository: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
        for (reference, history) in &index {
            by_repository
                .entry(repository_of(reference))
                .or_default()
                .extend(history.iter().cloned());
        }
        let mut kept = BTreeSet::new();
        for paths in by_repository.values_mut() {
            // Newest first; a path never ranked (an index older than the order) counts oldest.
            paths.sort_by_key(|p| std::cmp::Reverse(rank(p)));
            paths.dedup();
            kept.extend(paths.iter().take(keep.max(1)).cloned());
        }
        for reference in in_use {
            if let Some(path) = index.get(reference).and_then(|h| h.last()) {
                kept.insert(path.clone());
            }
        }
        for history in index.values_mut() {
            history.retain(|p| kept.contains(p));
        }
        index.retain(|_, history| !history.is_empty());
        order.retain(|p| kept.contains(p));
        let mut deleted = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let artifact = entry.file_name().to_string_lossy().starts_with("sha256-");
                if artifact && !kept.contains(&path) {
                    std::fs::remove_file(&path).map_err(self.io(&path))?;
                    deleted.push(path);
                }
            }
        }
        self.store_index(&index)?;
        self.store_order(&order)?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_registry_falls_back_to_what_the_reference_was_last() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(tmp.path().to_owned(), BTreeMap::new(), Vec::new());
        // Nothing listens on port 9 of loopback.
        let reference = "127.0.0.1:9/eos/module:1.0.0";
        let err = cache.fetch(reference, WASM_LAYER).await.unwrap_err();
        assert!(matches!(err, FetchError::Registry { .. }), "{err}");
        let cached = tmp.path().join("sha256-00");
        std::fs::write(&cached, b"module").unwrap();
        cache.remember(reference, &cached).unwrap();
        assert_eq!(cache.fetch(reference, WASM_LAYER).await.unwrap(), cached);
        let err = cache
            .fetch("not a reference!", WASM_LAYER)
            .await
            .unwrap_err();
        assert!(matches!(err, FetchError::Reference { .. }), "{err}");
    }

    #[test]
    fn garbage_collection_keeps_the_newest_artifacts_a_moving_tag_named() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(tmp.path().to_owned(), BTreeMap::new(), Vec::new());
        let file = |n: u8| {
            let p = tmp.path().join(format!("sha256-{n:02}"));
            std::fs::write(&p, [n]).unwrap();
            p
        };
        // The tag moved three times; another reference has one version; one file is orphaned.
        let (v1, v2, v3, other, orphan) = (file(1), file(2), file(3), file(4), file(5));
        for p in [&v1, &v2, &v3] {
            cache.remember("r/module:1.0.0", p).unwrap();
        }
        cache.remember("r/other:1.0.0", &other).unwrap();
        let mut deleted = cache.collect_garbage(2, &[]).unwrap();
        deleted.sort();
        assert_eq!(deleted, [v1.clone(), orphan]);
        assert!(v2.exists() && v3.exists() && other.exists());
        assert_eq!(cache.remembered("r/module:1.0.0"), Some(v3.clone()));
        // Keeping none still keeps the newest: a restart while offline needs it.
        assert_eq!(cache.collect_garbage(0, &[]).unwrap(), [v2]);
        assert!(v3.exists());
    }

    #[test]
    fn the_newest_versions_of_a_repository_are_kept_and_those_in_use() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ArtifactCache::new(tmp.path().to_owned(), BTreeMap::new(), Vec::new());
        let file = |n: u8| {
            let p = tmp.path().join(format!("sha256-{n:02}"));
            std::fs::write(&p, [n]).unwrap();
            p
        };
        // Four versions, each under its own tag, resolved in this order.
        let versions: Vec<PathBuf> = (1..=4).map(file).collect();
        for (n, p) in versions.iter().enumerate() {
            cache.remember(&format!("r/module:1.{n}.0"), p).unwrap();
        }
        // 1.0.0 still runs somewhere: kept with the newest two; 1.1.0 goes.
        let deleted = cache
            .collect_garbage(2, &["r/module:1.0.0".into()])
            .unwrap();
        assert_eq!(deleted, [versions[1].clone()]);
        assert!(versions[0].exists() && versions[2].exists() && versions[3].exists());
        assert_eq!(cache.remembered("r/module:1.1.0"), None);
        assert_eq!(
            cache.remembered("r/module:1.0.0"),
            Some(versions[0].clone())
        );
        // Nothing in use any more: the newest two stay, and survive a new cache on the folder.
        assert_eq!(
            cache.collect_garbage(2, &[]).unwrap(),
            [versions[0].clone()]
        );
        let again = ArtifactCache::new(tmp.path().to_owned(), BTreeMap::new(), Vec::new());
        assert_eq!(
            again.collect_garbage(2, &[]).unwrap(),
            Vec::<PathBuf>::new()
        );
        assert_eq!(
            again.remembered("r/module:1.3.0"),
            Some(versions[3].clone())
        );
    }
}
