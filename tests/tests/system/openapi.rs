//! The committed `openapi/openapi.json` must equal what the code generates.
//! Regenerate with `EOS_UPDATE_OPENAPI=1 cargo test -p eos-tests --test system -- openapi`.

#[test]
fn the_committed_openapi_document_is_current() {
    let path = eos_tests::repo_root().join("openapi/openapi.json");
    let generated = eos_adapter_http::openapi_json() + "\n";
    if std::env::var_os("EOS_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is stale: run EOS_UPDATE_OPENAPI=1 cargo test -p eos-tests --test system -- openapi and commit it"
    );
}
