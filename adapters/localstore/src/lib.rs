//! Crash-safe local records for the LO and the EN: each record is one JSON document replaced
//! atomically (write a temporary file, fsync it, rename it over the old one, fsync the folder),
//! so a crash at any point leaves either the old or the new record, never a torn one. Also an
//! append-only [`journal`], the [`outbox`] built on it, and a store of files by digest
//! ([`blobs`]).

pub mod blobs;
pub mod journal;
pub mod outbox;

pub use blobs::{BlobError, BlobStore};
pub use journal::Journal;
pub use outbox::DurableOutbox;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a valid record: {source}")]
    Corrupt {
        path: String,
        source: serde_json::Error,
    },
}

/// A folder of named records.
#[derive(Debug, Clone)]
pub struct RecordDir {
    dir: PathBuf,
}

impl RecordDir {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, RecordError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| RecordError::Io {
            action: "create",
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Reads a record; `Ok(None)` when it was never written.
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, RecordError> {
        let path = self.file(name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(RecordError::Io {
                    action: "read",
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| RecordError::Corrupt {
                path: path.display().to_string(),
                source,
            })
    }

    /// Replaces a record atomically and durably.
    pub fn store<T: Serialize>(&self, name: &str, value: &T) -> Result<(), RecordError> {
        let path = self.file(name);
        let tmp = self.dir.join(format!(".{name}.json.tmp"));
        let io = |action, source| RecordError::Io {
            action,
            path: path.display().to_string(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(value).expect("records serialize");
        let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
        f.write_all(&bytes).map_err(|e| io("write", e))?;
        f.sync_all().map_err(|e| io("sync", e))?;
        fs::rename(&tmp, &path).map_err(|e| io("replace", e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync the folder of", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_stale_temporary_file_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RecordDir::open(tmp.path()).unwrap();
        assert_eq!(dir.load::<Vec<u32>>("x").unwrap(), None);
        dir.store("x", &vec![1, 2]).unwrap();
        fs::write(tmp.path().join(".x.json.tmp"), b"{torn").unwrap();
        assert_eq!(dir.load::<Vec<u32>>("x").unwrap(), Some(vec![1, 2]));
        fs::write(tmp.path().join("y.json"), b"{torn").unwrap();
        assert!(matches!(
            dir.load::<Vec<u32>>("y"),
            Err(RecordError::Corrupt { .. })
        ));
    }
}
