//! The committed API documents must equal what the code generates: `openapi/openapi.json` (REST)
//! and `openapi/schema.graphql` (the GraphQL schema).
//! Regenerate both with `EOS_UPDATE_OPENAPI=1 cargo test -p eos-tests --test system -- openapi`.

fn check_current(file: &str, generated: String) {
    let path = eos_tests::repo_root().join(file);
    if std::env::var_os("EOS_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{file} is stale: run EOS_UPDATE_OPENAPI=1 cargo test -p eos-tests --test system -- openapi and commit it"
    );
}

#[test]
fn the_committed_openapi_document_is_current() {
    check_current(
        "openapi/openapi.json",
        eos_adapter_http::openapi_json() + "\n",
    );
}

#[test]
fn the_committed_graphql_schema_is_current() {
    check_current("openapi/schema.graphql", eos_adapter_http::graphql::sdl());
}
