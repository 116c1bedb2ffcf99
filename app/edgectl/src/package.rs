//! `edgectl app add ./folder`: the package folder packed as a gzip-compressed tar (paths
//! relative to the package root, plain files and folders, `.git` left out) for the CO's
//! `POST /api/v1/app-packages`, so a package on this machine reaches a CO anywhere.

use anyhow::Context;
use std::path::Path;

/// The files and folders of `folder` as a tar.gz; a symbolic link is an error (the CO takes
/// none), as is anything that is neither a file nor a folder.
pub fn pack(folder: &Path) -> anyhow::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    tar.follow_symlinks(false);
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(relative) = stack.pop() {
        let dir = folder.join(&relative);
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot read {}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let path = relative.join(&name);
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if name != ".git" {
                    tar.append_dir(&path, entry.path())?;
                    stack.push(path);
                }
            } else if kind.is_file() {
                tar.append_path_with_name(entry.path(), &path)
                    .with_context(|| format!("cannot pack {}", entry.path().display()))?;
            } else {
                anyhow::bail!(
                    "{} is a link or a special file; a package holds plain files and folders only",
                    entry.path().display()
                );
            }
        }
    }
    Ok(tar.into_inner()?.finish()?)
}
