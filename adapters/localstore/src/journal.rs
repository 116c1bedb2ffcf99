//! An append-only journal of JSON records, one per line with a CRC-32 of its text, fsynced per
//! batch. A crash can tear only the last line; opening the journal drops a torn or corrupt tail
//! (and says so) and keeps every whole record before it. A write that fails (a full disk) is
//! cut back to the last whole record at once, so nothing appended later is glued to a torn
//! line and lost on the next open. `rewrite` replaces the journal
//! atomically with a shorter equivalent (write, fsync, rename, fsync the folder).

use crate::RecordError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

pub struct Journal<R> {
    path: PathBuf,
    file: File,
    /// The length of the whole records on disk: a failed append is cut back to it.
    bytes: u64,
    records: u64,
    /// A failed append left bytes past `bytes` that could not be cut yet: nothing is appended
    /// after them (the next record would be glued to a torn one, and a reopen would drop it
    /// with everything after it).
    torn: bool,
    _record: PhantomData<fn(R)>,
}

/// What opening a journal found.
pub struct Opened<R> {
    pub journal: Journal<R>,
    pub records: Vec<R>,
    /// Bytes dropped from a torn or corrupt tail (0 after a clean shutdown).
    pub dropped_bytes: u64,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RecordError {
    let path = path.display().to_string();
    move |source| RecordError::Io {
        action,
        path,
        source,
    }
}

fn line<R: Serialize>(record: &R) -> String {
    let json = serde_json::to_string(record).expect("journal records serialize");
    format!("{:08x} {json}\n", crc32fast::hash(json.as_bytes()))
}

fn parse<R: DeserializeOwned>(line: &str) -> Option<R> {
    let (crc, json) = line.split_once(' ')?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32fast::hash(json.as_bytes()) == crc)
        .then(|| serde_json::from_str(json).ok())
        .flatten()
}

impl<R: Serialize + DeserializeOwned> Journal<R> {
    /// Opens (or creates) the journal at `path` and reads every whole record in it.
    pub fn open(path: impl Into<PathBuf>) -> Result<Opened<R>, RecordError> {
        let path = path.into();
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io("create", dir))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io("open", &path))?;
        let total = file.metadata().map_err(io("inspect", &path))?.len();
        let mut records = Vec::new();
        let mut good = 0u64;
        let mut reader = BufReader::new(&file);
        let mut text = String::new();
        loop {
            text.clear();
            let n = match reader.read_line(&mut text) {
                Ok(n) => n,
                // Bytes that are not UTF-8 can only be a torn write: stop here.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => break,
                Err(e) => return Err(io("read", &path)(e)),
            };
            if n == 0 || !text.ends_with('\n') {
                break;
            }
            let Some(record) = parse(text.trim_end_matches('\n')) else {
                break;
            };
            records.push(record);
            good += n as u64;
        }
        drop(reader);
        let dropped_bytes = total - good;
        if dropped_bytes > 0 {
            file.set_len(good).map_err(io("truncate", &path))?;
            file.sync_all().map_err(io("sync", &path))?;
        }
        let journal = Journal {
            path,
            file,
            bytes: good,
            records: records.len() as u64,
            torn: false,
            _record: PhantomData,
        };
        Ok(Opened {
            journal,
            records,
            dropped_bytes,
        })
    }

    /// Appends records and makes them durable (one fsync per call). A write that fails (a
    /// full disk) is cut back to the last whole record, so records appended once there is
    /// room again are read back after a restart like any other.
    pub fn append(&mut self, records: &[R]) -> Result<(), RecordError> {
        if records.is_empty() {
            return Ok(());
        }
        if self.torn {
            self.cut_back()
                .map_err(io("cut back the torn tail of", &self.path))?;
        }
        let text: String = records.iter().map(line).collect();
        let written = self
            .file
            .write_all(text.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            self.torn = true;
            let _ = self.cut_back();
            return Err(io("append to", &self.path)(e));
        }
        self.bytes += text.len() as u64;
        self.records += records.len() as u64;
        Ok(())
    }

    /// Cuts the file back to its whole records (appends go to the end, which is then theirs).
    fn cut_back(&mut self) -> std::io::Result<()> {
        self.file.set_len(self.bytes)?;
        self.file.sync_all()?;
        self.torn = false;
        Ok(())
    }

    /// Replaces the whole journal with `records`, atomically.
    pub fn rewrite(&mut self, records: &[R]) -> Result<(), RecordError> {
        let tmp = self.path.with_extension("rewrite.tmp");
        let text: String = records.iter().map(line).collect();
        let mut f = File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("sync", &tmp))?;
        fs::rename(&tmp, &self.path).map_err(io("replace", &self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync the folder of", &self.path))?;
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io("open", &self.path))?;
        self.bytes = text.len() as u64;
        self.records = records.len() as u64;
        self.torn = false;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size on disk.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records in the file.
    pub fn records(&self) -> u64 {
        self.records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let mut j = Journal::<Vec<u32>>::open(&path).unwrap().journal;
        j.append(&[vec![1], vec![2, 3]]).unwrap();
        j.append(&[vec![4]]).unwrap();
        drop(j);
        // A crash mid-write: half a line at the end.
        let whole = fs::read(&path).unwrap();
        let mut torn = whole.clone();
        torn.extend_from_slice(b"0badc0de [5, 6");
        fs::write(&path, &torn).unwrap();
        let opened = Journal::<Vec<u32>>::open(&path).unwrap();
        assert_eq!(opened.records, vec![vec![1], vec![2, 3], vec![4]]);
        assert_eq!(opened.dropped_bytes, 14);
        assert_eq!(fs::read(&path).unwrap(), whole, "the torn tail is cut off");
        let mut j = opened.journal;
        j.append(&[vec![7]]).unwrap();
        let again = Journal::<Vec<u32>>::open(&path).unwrap();
        assert_eq!(again.records.last(), Some(&vec![7]));
    }

    #[test]
    fn a_flipped_byte_ends_the_journal_at_the_last_good_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let mut j = Journal::<String>::open(&path).unwrap().journal;
        j.append(&["alpha".into(), "beta".into(), "gamma".into()])
            .unwrap();
        drop(j);
        let mut bytes = fs::read(&path).unwrap();
        let at = bytes.windows(4).position(|w| w == b"beta").unwrap();
        bytes[at] = b'B';
        fs::write(&path, &bytes).unwrap();
        let opened = Journal::<String>::open(&path).unwrap();
        assert_eq!(opened.records, vec!["alpha".to_owned()]);
        assert!(opened.dropped_bytes > 0);
    }

    #[test]
    fn rewrite_replaces_the_contents_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.log");
        let mut j = Journal::<u32>::open(&path).unwrap().journal;
        j.append(&[1, 2, 3]).unwrap();
        j.rewrite(&[3]).unwrap();
        j.append(&[4]).unwrap();
        assert_eq!(j.records(), 2);
        assert_eq!(Journal::<u32>::open(&path).unwrap().records, vec![3, 4]);
    }
}
