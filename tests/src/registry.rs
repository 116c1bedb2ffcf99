//! Puts test artifacts into the test registry the way `oras push` does: a WASM module as the one
//! layer of an OCI artifact, with an empty config.

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

/// The registry `config/services.sh` starts (`EOS_TEST_REGISTRY` overrides).
pub fn test_registry() -> String {
    std::env::var("EOS_TEST_REGISTRY").unwrap_or_else(|_| "127.0.0.1:5000".into())
}

/// Compiles `wat` (WebAssembly text) and pushes the module to `reference`
/// (`HOST/NAME:TAG`) with the media type of a WASM module layer; returns the manifest URL.
pub async fn push_wasm(reference: &str, wat: &str) -> anyhow::Result<String> {
    let module = wat::parse_str(wat)?;
    let parsed: Reference = reference.parse()?;
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let layer = ImageLayer::new(
        module,
        eos_adapter_registry_media_type().into(),
        Some(
            [(
                "org.opencontainers.image.title".to_owned(),
                "module.wasm".to_owned(),
            )]
            .into(),
        ),
    );
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.oci.empty.v1+json".into(),
        None,
    );
    let pushed = client
        .push(&parsed, &[layer], config, &RegistryAuth::Anonymous, None)
        .await?;
    Ok(pushed.manifest_url)
}

/// Pushes `data` as the one layer of an OCI artifact of `artifact_type`, with `annotations` on
/// the layer (a Margo compose archive, say); returns the manifest URL.
pub async fn push_artifact(
    reference: &str,
    data: Vec<u8>,
    media_type: &str,
    artifact_type: &str,
    annotations: &[(&str, &str)],
) -> anyhow::Result<String> {
    let parsed: Reference = reference.parse()?;
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let layer = ImageLayer::new(
        data,
        media_type.into(),
        Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    );
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.oci.empty.v1+json".into(),
        None,
    );
    let mut manifest =
        oci_client::manifest::OciImageManifest::build(std::slice::from_ref(&layer), &config, None);
    manifest.artifact_type = Some(artifact_type.into());
    let pushed = client
        .push(
            &parsed,
            &[layer],
            config,
            &RegistryAuth::Anonymous,
            Some(manifest),
        )
        .await?;
    Ok(pushed.manifest_url)
}

/// The layer media type a WASM module travels with (as `oras push` and the EN expect).
fn eos_adapter_registry_media_type() -> &'static str {
    "application/vnd.module.wasm.content.layer.v1+wasm"
}

/// Pushes a package as an OCI artifact of `artifact_type` whose layers are `files`: each
/// (title, media type, content) becomes one layer named by its `org.opencontainers.image.title`
/// annotation, as `oras push` makes a Margo application package. Returns the manifest URL.
pub async fn push_package(
    reference: &str,
    artifact_type: &str,
    files: &[(&str, &str, Vec<u8>)],
) -> anyhow::Result<String> {
    let parsed: Reference = reference.parse()?;
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let layers: Vec<ImageLayer> = files
        .iter()
        .map(|(title, media_type, data)| {
            ImageLayer::new(
                data.clone(),
                media_type.to_string(),
                Some(
                    [(
                        "org.opencontainers.image.title".to_owned(),
                        title.to_string(),
                    )]
                    .into(),
                ),
            )
        })
        .collect();
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.oci.empty.v1+json".into(),
        None,
    );
    let mut manifest = oci_client::manifest::OciImageManifest::build(&layers, &config, None);
    manifest.artifact_type = Some(artifact_type.into());
    let pushed = client
        .push(
            &parsed,
            &layers,
            config,
            &RegistryAuth::Anonymous,
            Some(manifest),
        )
        .await?;
    Ok(pushed.manifest_url)
}
