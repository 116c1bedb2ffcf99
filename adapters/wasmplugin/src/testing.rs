//! Builds the example `notes` plugin (`plugins/examples/wasm-notes/notes.c`) for tests: clang
//! for wasm32-wasi against wasi-libc (Debian packages that `config/services.sh` installs), then
//! wit-component with the published WASI preview 1 adapter makes it a component of the world.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The text of the driver world this EN speaks (`plugins/wit/driver.wit`).
pub fn world_text() -> String {
    std::fs::read_to_string(workspace().join("plugins/wit/driver.wit"))
        .expect("plugins/wit/driver.wit")
}

/// Builds the plugin into `dir` as `NAME.wasm`, a component of the world in `wit` (the text of
/// a WIT file), its host import named for that world's version. Panics with what is missing.
pub fn build_notes_plugin(dir: &Path, name: &str, wit: &str) -> PathBuf {
    let version = wit
        .split("package eos:driver@")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("the world's version");
    let core = dir.join(format!("{name}.core"));
    let out = Command::new("clang")
        .args([
            "--target=wasm32-wasi",
            "-O2",
            "-Wall",
            "-mexec-model=reactor",
            "-o",
        ])
        .arg(&core)
        .arg(format!("-DEOS_DRIVER_HOST=\"eos:driver/host@{version}\""))
        .arg(workspace().join("plugins/examples/wasm-notes/notes.c"))
        .output()
        .expect("clang runs: install it with `bash config/services.sh`");
    assert!(
        out.status.success(),
        "clang failed (wasi-libc and libclang-rt-dev-wasm32 come with `bash config/services.sh`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut module = std::fs::read(&core).expect("the core module clang wrote");
    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_str("driver.wit", wit)
        .expect("the world parses");
    let world = resolve
        .select_world(&[package], Some("driver"))
        .expect("the driver world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )
    .expect("the world embeds");
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| {
            e.adapter(
                "wasi_snapshot_preview1",
                wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
        })
        .and_then(|e| e.validate(true).encode())
        .expect("the module becomes a component");
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, component).expect("the component is written");
    path
}
