//! The artifact cache against the private test registry (`config/services.sh` starts it on
//! 127.0.0.1:5001 with a login): an artifact pushed there is fetched with the registry's login,
//! and refused without it; on the CO, a login serves only the tenants it names.

use eos_adapter_registry::{
    APP_ARTIFACT, ArtifactCache, DESCRIPTION_LAYER, FetchError, Login, OciPackages, WASM_LAYER,
};
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
            tenants: Vec::new(),
        },
    )]
    .into();
    let with_login = ArtifactCache::new(tmp.path().join("b"), logins, Vec::new());
    let path = with_login.fetch(&reference, WASM_LAYER).await.unwrap();
    assert_eq!(std::fs::read(path).unwrap(), content);
}

/// A package in the private registry, added by tenants through the CO's login: only those the
/// login names (none named: the platform tenant alone) get it.
#[tokio::test]
async fn a_co_login_reads_a_private_package_only_for_the_tenants_it_names() {
    let private =
        std::env::var("EOS_TEST_PRIVATE_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5001".into());
    let reference = format!("{private}/eos-test/private-package:1.0.0");
    let description = "apiVersion: margo.org/v1-alpha1\nkind: ApplicationDescription\nid: com-eos-private\nmetadata:\n  name: Private\n  version: 1.0.0\n  catalog:\n    organization: [{name: EOS}]\ndeploymentProfiles:\n  - type: compose\n    id: p\n    components:\n      - name: c\n        properties: {repository: \"oci://x/y\", revision: 1.0.0}\n";
    let annotations = BTreeMap::from([(
        "org.opencontainers.image.title".to_owned(),
        "margo.yaml".to_owned(),
    )]);
    let layer = ImageLayer::new(
        description.as_bytes().to_vec(),
        DESCRIPTION_LAYER.into(),
        Some(annotations),
    );
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.oci.empty.v1+json".into(),
        None,
    );
    let mut manifest =
        oci_client::manifest::OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    manifest.artifact_type = Some(APP_ARTIFACT.into());
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    })
    .push(
        &reference.parse::<Reference>().unwrap(),
        &[layer],
        config,
        &RegistryAuth::Basic("eos".into(), "eos-secret".into()),
        Some(manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
    let tmp = tempfile::tempdir().unwrap();
    let login = |tenants: &[&str]| {
        BTreeMap::from([(
            private.clone(),
            Login {
                username: "eos".into(),
                password: "eos-secret".into(),
                tenants: tenants.iter().map(|t| t.to_string()).collect(),
            },
        )])
    };
    let source = format!("oci://{reference}");
    let platform_only = OciPackages::new(tmp.path().join("a"), login(&[]), Vec::new());
    assert!(platform_only.fetch("default", &source, None).await.is_ok());
    let refused = platform_only
        .fetch("acme", &source, None)
        .await
        .unwrap_err();
    assert!(
        refused.to_lowercase().contains("auth") || refused.contains("401"),
        "{refused}"
    );
    let given = OciPackages::new(tmp.path().join("b"), login(&["acme"]), Vec::new());
    assert!(given.fetch("acme", &source, None).await.is_ok());
    assert!(given.fetch("globex", &source, None).await.is_err());
}
