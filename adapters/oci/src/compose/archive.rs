//! Margo compose archives: checked against what the spec forbids, then unpacked. An archive
//! unpacks to at most [`MAX_UNPACKED_BYTES`] in at most [`MAX_ENTRIES`] entries (a gzip bomb
//! ends with a clear error before anything is written).

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The most bytes an archive's files may hold together, unpacked.
pub const MAX_UNPACKED_BYTES: u64 = 512 * 1024 * 1024;
/// The most entries (files, folders, links) an archive may hold.
pub const MAX_ENTRIES: usize = 10_000;

/// Unpacks a Margo compose archive into `into` (emptied first) and returns the folder holding
/// `compose.yaml`. Refuses what the spec forbids, before anything is written.
pub fn unpack(archive: &Path, into: &Path) -> Result<PathBuf, String> {
    type Stream = std::io::Take<flate2::read::GzDecoder<std::fs::File>>;
    let open = || -> Result<tar::Archive<Stream>, String> {
        let file =
            std::fs::File::open(archive).map_err(|e| format!("{}: {e}", archive.display()))?;
        // Headers and padding come on top of the files' bytes: a tar of the largest allowed
        // size fits, a stream that goes on beyond it ends there.
        let limit = MAX_UNPACKED_BYTES + 512 * (2 * MAX_ENTRIES as u64 + 16);
        Ok(tar::Archive::new(
            flate2::read::GzDecoder::new(file).take(limit),
        ))
    };
    let (mut entries, mut bytes) = (0usize, 0u64);
    // First pass: check every entry.
    let mut top: Option<String> = None;
    let mut has_compose = false;
    let mut checker = open()?;
    for entry in checker
        .entries()
        .map_err(|e| format!("not a tar.gz archive: {e}"))?
    {
        let entry = entry.map_err(|e| format!("unreadable archive: {e}"))?;
        entries += 1;
        bytes = bytes.saturating_add(entry.header().size().unwrap_or(u64::MAX));
        if entries > MAX_ENTRIES {
            return Err(format!("the archive holds more than {MAX_ENTRIES} entries"));
        }
        if bytes > MAX_UNPACKED_BYTES {
            return Err(format!(
                "the archive unpacks to more than {MAX_UNPACKED_BYTES} bytes"
            ));
        }
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let shown = path.display().to_string();
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => return Err(format!("{shown}: absolute paths and .. are not allowed")),
            }
        }
        let Some(first) = parts.first().cloned() else {
            continue;
        };
        match &top {
            None => top = Some(first.clone()),
            Some(t) if *t != first => {
                return Err(format!(
                    "the archive must hold exactly one top-level folder (found {t} and {first})"
                ));
            }
            _ => {}
        }
        if parts.len() == 1 && !entry.header().entry_type().is_dir() {
            return Err(format!("{shown}: a file outside the top-level folder"));
        }
        if parts.len() == 2 && parts[1] == "compose.yaml" {
            has_compose = true;
        }
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| e.to_string())?
                .map(|t| t.into_owned())
                .unwrap_or_default();
            let mut depth = parts.len() as i64 - 1;
            for c in target.components() {
                match c {
                    Component::Normal(_) => depth += 1,
                    Component::ParentDir => depth -= 1,
                    Component::CurDir => {}
                    _ => depth = -1,
                }
                if depth < 1 {
                    return Err(format!("{shown}: a link leaving the folder"));
                }
            }
        }
    }
    let top = top.ok_or("the archive is empty")?;
    if !has_compose {
        return Err(format!(
            "the archive's folder {top} has no compose.yaml (compose.yml and docker-compose.yaml do not count)"
        ));
    }
    // Second pass: unpack, without setuid, setgid or sticky bits.
    if into.exists() {
        std::fs::remove_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    }
    std::fs::create_dir_all(into).map_err(|e| format!("{}: {e}", into.display()))?;
    let mut archive = open()?;
    archive.set_preserve_permissions(false);
    archive.set_unpack_xattrs(false);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        entry
            .unpack_in(into)
            .map_err(|e| format!("cannot unpack: {e}"))?;
    }
    Ok(into.join(top))
}

/// `relative` inside `folder`, unless it leaves it: as written, and as the symbolic links of
/// what exists of it resolve (a link, or a chain of links, may not lead out).
pub(crate) fn inside(folder: &Path, relative: &str) -> Option<PathBuf> {
    let mut out = folder.to_owned();
    for c in Path::new(relative).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let root = std::fs::canonicalize(folder).ok()?;
    // The deepest part of the path that exists, resolved.
    let existing = out.ancestors().find(|a| a.symlink_metadata().is_ok())?;
    let resolved = std::fs::canonicalize(existing).ok()?;
    resolved.starts_with(&root).then_some(out)
}
