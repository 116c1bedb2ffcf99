//! A content-addressed store of files named by their SHA-256 digest (`sha256:<64 hex>`): the
//! files application packages carry, kept by the CO per tenant and cached by LOs and ENs. A
//! file is written beside its final name, checked against the digest it was asked under, made
//! durable, then renamed into place, so a crash or a wrong byte never leaves a file that a
//! later reader would take for the real one.

use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a file could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{0:?} is not a digest (sha256: and 64 lowercase hex digits)")]
    BadDigest(String),
    #[error("the file is over {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the bytes received have digest {actual}, not {expected}")]
    Mismatch { expected: String, actual: String },
    #[error("cannot store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Files by digest under one folder.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The file of `digest`, when the store holds it (never a path for a malformed digest).
    pub fn path(&self, digest: &str) -> Option<PathBuf> {
        let path = self.place(digest).ok()?;
        path.is_file().then_some(path)
    }

    /// Keeps `bytes` and answers their digest (a file already there is left as it is).
    pub fn put(&self, bytes: &[u8]) -> Result<String, BlobError> {
        let digest = digest_of(bytes);
        if self.path(&digest).is_none() {
            let mut writer = self.writer(&digest, bytes.len() as u64)?;
            writer.write(bytes)?;
            writer.finish()?;
        }
        Ok(digest)
    }

    /// A writer for the file of `digest`, which refuses more than `limit` bytes and, at
    /// `finish`, bytes of another digest. Dropped unfinished, it leaves nothing.
    pub fn writer(&self, digest: &str, limit: u64) -> Result<BlobWriter, BlobError> {
        let target = self.place(digest)?;
        let folder = target.parent().unwrap_or(&self.root).to_owned();
        fs::create_dir_all(&folder).map_err(|source| BlobError::Io {
            path: folder.clone(),
            source,
        })?;
        let temp = folder.join(format!(
            ".{}.{}.part",
            target.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id() as u128 * 1_000_000 + u128::from(next_id())
        ));
        let file = File::create(&temp).map_err(|source| BlobError::Io {
            path: temp.clone(),
            source,
        })?;
        Ok(BlobWriter {
            file: Some(file),
            temp,
            target,
            expected: digest.to_owned(),
            hasher: Sha256::new(),
            written: 0,
            limit,
        })
    }

    /// Deletes every file whose digest is not in `keep`; answers the digests deleted.
    pub fn retain(&self, keep: &[String]) -> Vec<String> {
        let folder = self.root.join("sha256");
        let Ok(entries) = fs::read_dir(&folder) else {
            return Vec::new();
        };
        let mut deleted = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let digest = format!("sha256:{name}");
            if is_digest(&digest)
                && !keep.contains(&digest)
                && fs::remove_file(entry.path()).is_ok()
            {
                deleted.push(digest);
            }
        }
        deleted
    }

    fn place(&self, digest: &str) -> Result<PathBuf, BlobError> {
        if !is_digest(digest) {
            return Err(BlobError::BadDigest(digest.to_owned()));
        }
        Ok(self.root.join("sha256").join(&digest["sha256:".len()..]))
    }
}

fn next_id() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub use eos_domain::state::is_sha256_digest as is_digest;

/// The `sha256:` digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A file being written into a [`BlobStore`].
pub struct BlobWriter {
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
    expected: String,
    hasher: Sha256,
    written: u64,
    limit: u64,
}

impl BlobWriter {
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(BlobError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        let file = self.file.as_mut().expect("a writer is used until finish");
        file.write_all(chunk).map_err(|source| BlobError::Io {
            path: self.temp.clone(),
            source,
        })
    }

    /// Checks the digest, makes the file durable and puts it in place; answers its path.
    pub fn finish(mut self) -> Result<PathBuf, BlobError> {
        let actual = format!("sha256:{:x}", self.hasher.clone().finalize());
        if actual != self.expected {
            return Err(BlobError::Mismatch {
                expected: self.expected.clone(),
                actual,
            });
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| BlobError::Io { path, source }
        };
        let file = self.file.take().expect("finish is called once");
        file.sync_all().map_err(io(&self.temp))?;
        drop(file);
        fs::rename(&self.temp, &self.target).map_err(io(&self.target))?;
        if let Some(folder) = self.target.parent() {
            File::open(folder)
                .and_then(|f| f.sync_all())
                .map_err(io(folder))?;
        }
        Ok(self.target.clone())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.file.take().is_some() || !self.target.exists() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_kept_under_its_digest_and_found_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let digest = store.put(b"(module)").unwrap();
        assert_eq!(digest, digest_of(b"(module)"));
        let path = store.path(&digest).unwrap();
        assert_eq!(fs::read(path).unwrap(), b"(module)");
        assert!(store.path(&digest_of(b"other")).is_none());
    }

    #[test]
    fn bytes_of_another_digest_or_too_many_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let wanted = digest_of(b"right");
        let mut w = store.writer(&wanted, 100).unwrap();
        w.write(b"wrong").unwrap();
        assert!(matches!(w.finish(), Err(BlobError::Mismatch { .. })));
        let mut w = store.writer(&wanted, 3).unwrap();
        assert!(matches!(
            w.write(b"right"),
            Err(BlobError::TooLarge { limit: 3 })
        ));
        drop(w);
        assert!(store.path(&wanted).is_none());
        let left: Vec<_> = fs::read_dir(dir.path().join("sha256")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_malformed_digest_names_no_path() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:ABC",
            "md5:00",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            assert!(store.path(bad).is_none(), "{bad}");
            assert!(matches!(store.writer(bad, 1), Err(BlobError::BadDigest(_))));
        }
    }

    #[test]
    fn retain_deletes_what_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let a = store.put(b"a").unwrap();
        let b = store.put(b"b").unwrap();
        assert_eq!(store.retain(std::slice::from_ref(&a)), vec![b.clone()]);
        assert!(store.path(&a).is_some() && store.path(&b).is_none());
    }
}
