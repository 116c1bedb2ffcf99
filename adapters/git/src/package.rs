//! Application packages from directories and Git repositories, kept in the CO's data folder.
//! A folder is read only outside the folders the fetcher refuses (the CO's data folder: one
//! tenant must not import another's kept packages) and never as the whole file system; a
//! Git source must be a remote URL (`https://`, `http://`, `ssh://`, `git@host:path`), never a
//! local or `ext::` transport or anything that looks like an option. A package holds at most
//! [`MAX_FILES`] files and [`MAX_BYTES`] bytes; a fetch that fails leaves nothing behind.

use crate::command::git_as_stranger;
use eos_domain::service::FetchedPackage;
use std::path::{Path, PathBuf};

/// Copies each fetched package into `root/<n>/` so the app store keeps its files.
pub struct PackageFetcher {
    root: PathBuf,
    /// Folders never read as a package, nor any folder holding one of them.
    refused: Vec<PathBuf>,
}

/// The most files a package may hold.
pub const MAX_FILES: usize = 10_000;
/// The most bytes a package's files may hold together.
pub const MAX_BYTES: u64 = 256 * 1024 * 1024;

impl PackageFetcher {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            refused: Vec::new(),
        }
    }

    /// Never reads `folder` (nor what lies under it, nor a folder holding it) as a package.
    pub fn refusing(mut self, folder: impl Into<PathBuf>) -> Self {
        let folder = folder.into();
        let real = std::fs::canonicalize(&folder).unwrap_or(folder);
        self.refused.push(real);
        self
    }

    fn is_git_url(source: &str) -> bool {
        source.contains("://")
            || source.contains("::")
            || source.starts_with("git@")
            || source.ends_with(".git")
    }

    /// Refused unless `source` is a remote Git URL of an allowed transport.
    fn check_git_url(source: &str) -> Result<(), String> {
        let remote = ["https://", "http://", "ssh://"]
            .iter()
            .any(|p| source.starts_with(p))
            || source.strip_prefix("git@").is_some_and(|rest| {
                rest.split_once(':')
                    .is_some_and(|(host, _)| !host.is_empty() && !host.contains('/'))
            });
        if !remote || source.starts_with('-') || source.chars().any(char::is_whitespace) {
            return Err(format!(
                "{source:?} is not a remote Git URL (https://, http://, ssh:// or git@host:path; \
                 no file://, ext:: or other transports)"
            ));
        }
        Ok(())
    }

    /// The folder `source` names, resolved, unless it is refused.
    fn check_folder(&self, source: &str) -> Result<PathBuf, String> {
        let dir = std::fs::canonicalize(source)
            .ok()
            .filter(|d| d.is_dir())
            .ok_or("not a directory the CO can read, nor a Git URL")?;
        if dir.parent().is_none() {
            return Err("the whole file system is not a package".into());
        }
        for refused in &self.refused {
            if dir.starts_with(refused) || refused.starts_with(&dir) {
                return Err(format!(
                    "{} is or holds the CO's own data folder, which is never read as a package",
                    dir.display()
                ));
            }
        }
        Ok(dir)
    }

    async fn fetch_into(&self, source: &str, folder: &Path) -> Result<String, String> {
        if Self::is_git_url(source) {
            Self::check_git_url(source)?;
            git_as_stranger(
                &self.root,
                &[
                    "-c",
                    "protocol.allow=never",
                    "-c",
                    "protocol.https.allow=always",
                    "-c",
                    "protocol.http.allow=always",
                    "-c",
                    "protocol.ssh.allow=always",
                    "-c",
                    "core.symlinks=false",
                    "-c",
                    "credential.helper=",
                    "clone",
                    "--quiet",
                    "--depth",
                    "1",
                    "--",
                    source,
                    &folder.display().to_string(),
                ],
            )
            .await
            .map_err(|e| e.to_string())?;
            // A clone is measured once it is here, and refused (and removed) when too big.
            measure(folder).await?;
        } else {
            let dir = self.check_folder(source)?;
            copy_dir(&dir, folder)
                .await
                .map_err(|e| format!("cannot copy the package: {e}"))?;
        }
        find_description(folder).await
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

impl PackageFetcher {
    /// Copies the package at `source` (a folder, or a remote Git repository) into a fresh
    /// folder the CO keeps.
    pub async fn fetch(&self, source: &str) -> Result<FetchedPackage, String> {
        let folder = self.fresh_folder().await?;
        let description_yaml = match self.fetch_into(source, &folder).await {
            Ok(text) => text,
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&folder).await;
                return Err(e);
            }
        };
        Ok(FetchedPackage {
            description_yaml,
            folder: folder.display().to_string(),
        })
    }

    /// Unpacks an uploaded package (a gzip-compressed tar) into a fresh folder the CO keeps.
    pub async fn unpack(&self, archive: &[u8]) -> Result<FetchedPackage, String> {
        let folder = self.fresh_folder().await?;
        let (bytes, into) = (archive.to_vec(), folder.clone());
        let unpacked = tokio::task::spawn_blocking(move || unpack_package(&bytes, &into))
            .await
            .map_err(|e| format!("unpacking stopped: {e}"))
            .and_then(|r| r);
        let description_yaml = match unpacked {
            Ok(()) => find_description(&folder).await,
            Err(e) => Err(e),
        };
        match description_yaml {
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

    /// Deletes a copy `fetch` or `unpack` made.
    pub async fn discard(&self, folder: &str) {
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
            "{path} has {} bytes; at most {limit} are read",
            meta.len()
        ));
    }
    tokio::fs::read(&file).await.map_err(missing)
}

/// A YAML file of the package root, read only when it is a plain file (a symbolic link could
/// lead to another tenant's package or anywhere else on the CO's disk).
async fn read_plain(path: &Path) -> Result<Option<String>, String> {
    match tokio::fs::symlink_metadata(path).await {
        Err(_) => Ok(None),
        Ok(meta) if meta.file_type().is_symlink() => Err(format!(
            "{} is a symbolic link; a package's description must be a plain file",
            path.file_name().unwrap_or_default().to_string_lossy()
        )),
        Ok(meta) if !meta.is_file() => Ok(None),
        Ok(_) => tokio::fs::read_to_string(path)
            .await
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

/// The one YAML file of kind ApplicationDescription at the package root (`margo.yaml` first).
async fn find_description(folder: &Path) -> Result<String, String> {
    if let Some(text) = read_plain(&folder.join("margo.yaml")).await? {
        return Ok(text);
    }
    let mut entries = tokio::fs::read_dir(folder)
        .await
        .map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(|e| e.to_string())? {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let Some(text) = read_plain(&path).await? else {
                continue;
            };
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

/// Unpacks a gzip-compressed tar of a package's files (paths relative to the package root)
/// into `into`: only plain files and folders, no absolute paths or `..`, at most
/// [`MAX_FILES`] files and [`MAX_BYTES`] bytes, checked before each entry is written.
fn unpack_package(archive: &[u8], into: &Path) -> Result<(), String> {
    use std::io::Read;
    use std::path::Component;
    let limit = MAX_BYTES + 512 * (2 * MAX_FILES as u64 + 16);
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive).take(limit));
    tar.set_preserve_permissions(false);
    tar.set_unpack_xattrs(false);
    let (mut files, mut bytes) = (0usize, 0u64);
    let entries = tar
        .entries()
        .map_err(|e| format!("not a gzip-compressed tar: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("not a gzip-compressed tar: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let shown = path.display().to_string();
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(format!("{shown}: absolute paths and .. are not allowed"));
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            // Folders count against the cap too, and are made with the owner's rights
            // whatever mode the archive gives them (a folder the CO cannot enter could not be
            // cleaned up).
            files += 1;
            if files > MAX_FILES {
                return Err(format!("the package holds more than {MAX_FILES} entries"));
            }
            let folder = into.join(&path);
            std::fs::create_dir_all(&folder).map_err(|e| format!("{shown}: {e}"))?;
            continue;
        }
        if !kind.is_file() {
            return Err(format!(
                "{shown}: only plain files and folders (no links or devices) in a package"
            ));
        }
        files += 1;
        bytes = bytes.saturating_add(entry.header().size().unwrap_or(u64::MAX));
        if files > MAX_FILES {
            return Err(format!("the package holds more than {MAX_FILES} entries"));
        }
        if bytes > MAX_BYTES {
            return Err(format!("the package holds more than {MAX_BYTES} bytes"));
        }
        entry.unpack_in(into).map_err(|e| format!("{shown}: {e}"))?;
    }
    Ok(())
}

/// Refused when `folder` holds more than [`MAX_FILES`] files or [`MAX_BYTES`] bytes (`.git`
/// aside).
async fn measure(folder: &Path) -> Result<(), String> {
    let (mut files, mut bytes) = (0usize, 0u64);
    let mut stack = vec![folder.to_owned()];
    while let Some(dir) = stack.pop() {
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(|e| e.to_string())?;
        while let Some(entry) = entries.next_entry().await.map_err(|e| e.to_string())? {
            let kind = entry.file_type().await.map_err(|e| e.to_string())?;
            if kind.is_dir() {
                if entry.file_name() != ".git" {
                    stack.push(entry.path());
                }
            } else if kind.is_file() {
                files += 1;
                bytes += entry.metadata().await.map_err(|e| e.to_string())?.len();
            }
        }
    }
    if files > MAX_FILES {
        return Err(format!("the package holds more than {MAX_FILES} files"));
    }
    if bytes > MAX_BYTES {
        return Err(format!("the package holds more than {MAX_BYTES} bytes"));
    }
    Ok(())
}

/// Copies the files and folders of `from` (not `.git`, not symbolic links) into `to`, up to
/// [`MAX_FILES`] files and [`MAX_BYTES`] bytes.
async fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    let too_big = |what: String| std::io::Error::other(format!("the package holds {what}"));
    let (mut files, mut bytes) = (0usize, 0u64);
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
                files += 1;
                bytes += entry.metadata().await?.len();
                if files > MAX_FILES {
                    return Err(too_big(format!("more than {MAX_FILES} files")));
                }
                if bytes > MAX_BYTES {
                    return Err(too_big(format!("more than {MAX_BYTES} bytes")));
                }
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
    async fn a_package_of_too_many_files_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for i in 0..=MAX_FILES {
            std::fs::write(tmp.path().join(format!("f{i}")), "x").unwrap();
        }
        let refused = measure(tmp.path()).await.unwrap_err();
        assert!(refused.contains("more than 10000 files"), "{refused}");
        std::fs::remove_file(tmp.path().join("f0")).unwrap();
        assert!(measure(tmp.path()).await.is_ok());
    }

    #[test]
    fn git_sources_are_remote_urls_only() {
        for ok in [
            "https://git.example/apps/hello.git",
            "http://127.0.0.1:8000/hello.git",
            "ssh://git@git.example/apps/hello.git",
            "git@git.example:apps/hello.git",
        ] {
            assert!(PackageFetcher::check_git_url(ok).is_ok(), "{ok}");
        }
        for refused in [
            "file:///srv/repos/hello.git",
            "ext::sh -c touch% /tmp/x",
            "fd::3",
            "--upload-pack=touch /tmp/x https://git.example/x.git",
            "git@:x.git",
            "/srv/repos/hello.git",
        ] {
            assert!(PackageFetcher::check_git_url(refused).is_err(), "{refused}");
        }
    }

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
