//! The outbox journal on a disk that fills up: a real file system of 256 KiB (a tmpfs mounted
//! for the test, which needs root, as the test suite runs). A write that fails half-way must
//! not cost the reports written once there is room again.

use eos_adapter_localstore::DurableOutbox;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of `size` at a fresh folder, unmounted when dropped.
struct SmallDisk {
    _dir: tempfile::TempDir,
    at: PathBuf,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("disk");
        std::fs::create_dir(&at).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .expect("mount runs");
        assert!(
            mounted.success(),
            "mounting a small tmpfs needs root (the suite runs as root: bash .ci/run)"
        );
        Self { _dir: dir, at }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
    }
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Fills the disk holding `at` to the last byte with a file there.
fn fill(at: &Path) {
    let mut f = std::fs::File::create(at).unwrap();
    let block = vec![0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let _ = f.write_all(&[0u8]);
}

#[test]
fn a_write_that_fails_on_a_full_disk_costs_no_report_written_after_it() {
    let disk = SmallDisk::mount("256k");
    let path = disk.at.join("outbox.journal");
    let mut outbox = DurableOutbox::<String>::open(&path).unwrap();
    outbox.push([(None, "a".to_owned())]).unwrap();
    let before = size(&path);
    outbox.push([(None, "b".to_owned())]).unwrap();
    let overhead = size(&path) - before - 1;
    // A report that leaves 10 bytes in the journal's last page: less than an acknowledgement.
    let page = 4096;
    let want = page - 10;
    let mut pad = (want + page - (size(&path) + overhead) % page) % page;
    if pad == 0 {
        pad = page;
    }
    outbox.push([(None, "x".repeat(pad as usize))]).unwrap();
    assert_eq!(size(&path) % page, want);
    let ballast = disk.at.join("ballast");
    fill(&ballast);
    assert!(
        outbox.ack(1).is_err(),
        "the acknowledgement does not fit on the full disk"
    );
    // Room again: what is written now is durable, and stays so across a restart.
    std::fs::remove_file(&ballast).unwrap();
    outbox.push([(None, "after".to_owned())]).unwrap();
    drop(outbox);
    let reopened = DurableOutbox::<String>::open(&path).unwrap();
    let pending: Vec<String> = reopened
        .after(0)
        .map(|e| e.payload.clone())
        .filter(|p| p.len() < 100)
        .collect();
    assert!(
        pending.contains(&"after".to_owned()),
        "the report written after the failed write was lost: {pending:?}"
    );
    assert!(pending.contains(&"b".to_owned()), "{pending:?}");
}
