//! Architecture rules as tests (ARCHITECTURE.md): the domain does no I/O, adapters never depend
//! on other adapters, and every Rust file opens with a `//!` line saying what it is for.

use eos_tests::repo_root;
use std::path::{Path, PathBuf};

const IO_CRATES: [&str; 16] = [
    "tokio",
    "axum",
    "hyper",
    "reqwest",
    "sea-orm",
    "sqlx",
    "tonic",
    "prost",
    "gix",
    "git2",
    "bollard",
    "wasmtime",
    "wasmtime-wasi",
    "kube",
    "async-graphql",
    "rusqlite",
];

fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    ["dependencies", "build-dependencies"]
        .iter()
        .filter_map(|s| doc.get(*s))
        .filter_map(|t| t.as_table())
        .flat_map(|t| t.keys().cloned())
        .collect()
}

fn crates_under(dir: &str) -> Vec<PathBuf> {
    let root = repo_root().join(dir);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        if entry.path().join("Cargo.toml").exists() {
            out.push(entry.path().join("Cargo.toml"));
        }
    }
    out
}

#[test]
fn the_domain_crate_has_no_io_dependency() {
    let deps = dependencies(&repo_root().join("domain/Cargo.toml"));
    let io: Vec<&String> = deps
        .iter()
        .filter(|d| IO_CRATES.contains(&d.as_str()))
        .collect();
    assert!(
        io.is_empty(),
        "domain/ must stay pure, but depends on {io:?}"
    );
}

#[test]
fn no_adapter_depends_on_another_adapter() {
    for manifest in crates_under("adapters") {
        let bad: Vec<String> = dependencies(&manifest)
            .into_iter()
            .filter(|d| {
                d.starts_with("eos-adapter-")
                    || d.starts_with("eos-co")
                    || d.starts_with("eos-lo")
                    || d.starts_with("eos-en")
            })
            .collect();
        assert!(bad.is_empty(), "{} depends on {bad:?}", manifest.display());
    }
}

#[test]
fn the_edge_node_stays_lean() {
    let deps = dependencies(&repo_root().join("app/en/Cargo.toml"));
    for heavy in [
        "eos-adapter-sql",
        "eos-adapter-http",
        "sea-orm",
        "async-graphql",
        "axum",
    ] {
        assert!(
            !deps.iter().any(|d| d == heavy),
            "eos-en must not depend on {heavy}"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != ".git" && name != "node_modules" {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    for top in [
        "app",
        "domain",
        "adapters",
        "plugins",
        "migrations",
        "tests",
    ] {
        rust_files(&repo_root().join(top), &mut files);
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! line: {missing:#?}"
    );
}
