//! Application packages from directories and Git repositories, kept in the CO's data folder.

use crate::command::git;
use eos_domain::service::{FetchedPackage, PackageSource};
use std::path::{Path, PathBuf};

/// Copies each fetched package into `root/<n>/` so the app store keeps its files.
pub struct PackageFetcher {
    root: PathBuf,
}

impl PackageFetcher {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn is_git_url(source: &str) -> bool {
        source.contains("://") || source.starts_with("git@") || source.ends_with(".git")
    }

    async fn fresh_folder(&self) -> Result<PathBuf, String> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| format!("cannot create {}: {e}", self.root.display()))?;
        for n in 0u64.. {
            let dir = self.root.join(format!("pkg-{}-{n}", std::process::id()));
            if tokio::fs::create_dir(&dir).await.is_ok() {
                return Ok(dir);
            }
        }
        unreachable!("some folder name is free")
    }
}

#[async_trait::async_trait]
impl PackageSource for PackageFetcher {
    async fn fetch(&self, source: &str) -> Result<FetchedPackage, String> {
        let folder = self.fresh_folder().await?;
        if Self::is_git_url(source) {
            git(
                &self.root,
                &[
                    "clone",
                    "--quiet",
                    "--depth",
                    "1",
                    source,
                    &folder.display().to_string(),
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
        } else {
            let dir = Path::new(source);
            if !dir.is_dir() {
                return Err("not a directory the CO can read, nor a Git URL".into());
            }
            copy_dir(dir, &folder)
                .await
                .map_err(|e| format!("cannot copy the package: {e}"))?;
        }
        let description_yaml = find_description(&folder).await?;
        Ok(FetchedPackage {
            description_yaml,
            folder: folder.display().to_string(),
        })
    }

    async fn discard(&self, folder: &str) {
        let folder = Path::new(folder);
        // Only a copy this fetcher made.
        if folder.parent() == Some(self.root.as_path())
            && let Err(e) = tokio::fs::remove_dir_all(folder).await
        {
            tracing::warn!(folder = %folder.display(), error = %e, "cannot delete a package copy");
        }
    }
}

/// The one YAML file of kind ApplicationDescription at the package root (`margo.yaml` first).
async fn find_description(folder: &Path) -> Result<String, String> {
    if let Ok(text) = tokio::fs::read_to_string(folder.join("margo.yaml")).await {
        return Ok(text);
    }
    let mut entries = tokio::fs::read_dir(folder)
        .await
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(|e| e.to_string())? {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let text = tokio::fs::read_to_string(&path)
                .await
                .map_err(|e| e.to_string())?;
            if text
                .lines()
                .any(|l| l.trim() == "kind: ApplicationDescription")
            {
                found.push(text);
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err("no ApplicationDescription (margo.yaml) at the package root".into()),
        n => Err(format!(
            "{n} ApplicationDescription files at the package root; a package has exactly one"
        )),
    }
}

async fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut stack = vec![(from.to_owned(), to.to_owned())];
    while let Some((src, dst)) = stack.pop() {
        tokio::fs::create_dir_all(&dst).await?;
        let mut entries = tokio::fs::read_dir(&src).await?;
        while let Some(entry) = entries.next_entry().await? {
            let kind = entry.file_type().await?;
            let target = dst.join(entry.file_name());
            if kind.is_dir() {
                if entry.file_name() != ".git" {
                    stack.push((entry.path(), target));
                }
            } else if kind.is_file() {
                tokio::fs::copy(entry.path(), target).await?;
            }
        }
    }
    Ok(())
}
