//! Builds the example native plugin (`plugins/examples/exec`) as a `cdylib` for tests that load
//! it, in a target folder of its own (the one `cargo test` uses is locked while tests run).

use std::path::PathBuf;
use std::process::Command;

/// Builds the `exec` example plugin (once at a time) and returns the library's path.
pub fn build_exec_plugin() -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_build_at_a_time = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = crate::repo_root();
    let target = root.join("target/plugins/default");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .args(["build", "--quiet", "-p", "eos-plugin-exec", "--target-dir"])
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the example plugin failed");
    target.join("debug/libeos_plugin_exec.so")
}
