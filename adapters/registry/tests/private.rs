//! The artifact cache against the private test registry (`config/services.sh` starts it on
//! 127.0.0.1:5001 with a login): an artifact pushed there is fetched with the registry's login,
//! and refused without it.

use eos_adapter_registry::{ArtifactCache, FetchError, Login, WASM_LAYER};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::BTreeMap;

#[tokio::test]
async fn a_private_artifact_is_fetched_with_its_login_only() {
    let private =
        std::env::var("EOS_TEST_PRIVATE_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5001".into());
    let reference = format!("{private}/eos-test/private-module:1.0.0");
    let content = format!("a module pushed by process {}", std::process::id()).into_bytes();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let layer = ImageLayer::new(content.clone(), WASM_LAYER.into(), None);
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.oci.empty.v1+json".into(),
        None,
    );
    let parsed: Reference = reference.parse().unwrap();
    client
        .push(
            &parsed,
            &[layer],
            config,
            &RegistryAuth::Basic("eos".into(), "eos-secret".into()),
            None,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));

    let tmp = tempfile::tempdir().unwrap();
    let anonymous = ArtifactCache::new(tmp.path().join("a"), BTreeMap::new(), Vec::new());
    match anonymous.fetch(&reference, WASM_LAYER).await {
        Err(FetchError::Registry { reason, .. }) => assert!(
            reason.to_lowercase().contains("auth") || reason.contains("401"),
            "{reason}"
        ),
        other => panic!("no login, no artifact: {other:?}"),
    }
    let logins = [(
        private.clone(),
        Login {
            username: "eos".into(),
            password: "eos-secret".into(),
        },
    )]
    .into();
    let with_login = ArtifactCache::new(tmp.path().join("b"), logins, Vec::new());
    let path = with_login.fetch(&reference, WASM_LAYER).await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), content);
}
