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

    async fn read(&self, folder: &str, path: &str, limit: u64) -> Result<Vec<u8>, String> {
        read_in_package(Path::new(folder), path, limit).await
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

/// The file at the relative `path` inside the package `folder`: refused when the path is
/// absolute, climbs out with `..`, leads out through a link, is not a file, or is larger than
/// `limit` bytes.
pub async fn read_in_package(folder: &Path, path: &str, limit: u64) -> Result<Vec<u8>, String> {
    let relative = Path::new(path);
    if relative.is_absolute()
        || relative
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("{path} is not a path inside the package"));
    }
    let missing = |e: std::io::Error| format!("{path} is not in the package ({e})");
    let root = tokio::fs::canonicalize(folder).await.map_err(missing)?;
    let file = tokio::fs::canonicalize(root.join(relative))
        .await
        .map_err(missing)?;
    if !file.starts_with(&root) {
        return Err(format!("{path} leads out of the package"));
    }
    let meta = tokio::fs::metadata(&file).await.map_err(missing)?;
    if !meta.is_file() {
        return Err(format!("{path} is not a file"));
    }
    if meta.len() > limit {
        return Err(format!(
            "{path} has {} bytes; a catalog file has at most {limit}",
            meta.len()
        ));
    }
    tokio::fs::read(&file).await.map_err(missing)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_package_file_is_read_only_from_inside_the_package() {
        let tmp = tempfile::tempdir().unwrap();
        let pkg = tmp.path().join("pkg");
        std::fs::create_dir_all(pkg.join("resources")).unwrap();
        std::fs::write(pkg.join("resources/icon.png"), b"png").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), b"secret").unwrap();
        std::os::unix::fs::symlink(
            tmp.path().join("secret.txt"),
            pkg.join("resources/link.txt"),
        )
        .unwrap();
        assert_eq!(
            read_in_package(&pkg, "./resources/icon.png", 10)
                .await
                .unwrap(),
            b"png"
        );
        for (path, why) in [
            ("../secret.txt", "not a path inside the package"),
            ("/etc/passwd", "not a path inside the package"),
            ("resources/link.txt", "leads out of the package"),
            ("resources/none.png", "is not in the package"),
            ("resources", "is not a file"),
        ] {
            let e = read_in_package(&pkg, path, 10).await.unwrap_err();
            assert!(e.contains(why), "{path}: {e}");
        }
        let e = read_in_package(&pkg, "resources/icon.png", 2)
            .await
            .unwrap_err();
        assert!(e.contains("at most 2"), "{e}");
    }
}
