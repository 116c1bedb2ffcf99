//! The app store's packages: catalog files (icon, description, release notes) come with a
//! package from a folder or from an OCI registry (a Margo application package artifact) and are
//! served with their media type; a package whose catalog names a file it lacks, a path out of
//! the package, a file of the wrong type or too large is refused with the field at fault and
//! stores nothing; a registry package's tag must be its version, and its artifact type Margo's.

use eos_tests::registry::{push_package, test_registry};
use eos_tests::{Fleet, LIMIT, SAMPLE_APP, app_variant, eventually, repo_root};
use serde_json::{Value, json};

const APP_ARTIFACT: &str = "application/vnd.margo.app.v1+json";
const DESCRIPTION_LAYER: &str = "application/vnd.margo.app.description.v1+yaml";

fn sample_file(path: &str) -> Vec<u8> {
    std::fs::read(repo_root().join(SAMPLE_APP.0).join(path)).unwrap()
}

/// A catalog file: status, content type, cache control, body.
async fn resource(fleet: &Fleet, query: &str) -> (u16, String, String, Vec<u8>) {
    let url = fleet.url(&format!("/api/v1/apps/{}/resources/{query}", SAMPLE_APP.1));
    let r = fleet.http.get(url).send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (content_type, cache) = (header("content-type"), header("cache-control"));
    let csp = header("content-security-policy");
    let code = r.status().as_u16();
    if code == 200 {
        assert!(csp.contains("sandbox"), "{query}: {csp}");
    }
    (code, content_type, cache, r.bytes().await.unwrap().to_vec())
}

async fn add(fleet: &Fleet, source: &str) -> (u16, Value) {
    fleet
        .post("/api/v1/apps", json!({ "source": source }))
        .await
        .unwrap()
}

/// The package files of the sample at `version`, as registry layers.
pub(crate) fn sample_layers(version: &str) -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let yaml = String::from_utf8(sample_file("margo.yaml"))
        .unwrap()
        .replace("version: 1.0.0", &format!("version: {version}"));
    vec![
        ("margo.yaml", DESCRIPTION_LAYER, yaml.into_bytes()),
        (
            "hello.wat",
            "application/octet-stream",
            sample_file("hello.wat"),
        ),
        (
            "resources/icon.svg",
            "application/vnd.margo.app.icon.v1+svg",
            sample_file("resources/icon.svg"),
        ),
        (
            "resources/description.md",
            "application/vnd.margo.app.descriptionFile.v1+md",
            sample_file("resources/description.md"),
        ),
        (
            "resources/release-notes.md",
            "application/vnd.margo.app.releaseNotes.v1+md",
            sample_file("resources/release-notes.md"),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_files_come_with_a_package_from_a_folder_or_a_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    fleet
        .add_app(&repo_root().join(SAMPLE_APP.0))
        .await
        .unwrap();

    let (code, kind, cache, body) = resource(&fleet, "icon?version=1.0.0").await;
    assert_eq!((code, kind.as_str()), (200, "image/svg+xml"));
    assert!(
        cache.contains("immutable") && cache.starts_with("private"),
        "a named version never changes, and no shared cache keeps a tenant's file: {cache}"
    );
    assert_eq!(body, sample_file("resources/icon.svg"));
    let (code, kind, _, body) = resource(&fleet, "description").await;
    assert_eq!((code, kind.as_str()), (200, "text/markdown"));
    assert_eq!(body, sample_file("resources/description.md"));
    let (code, _, _, body) = resource(&fleet, "release-notes").await;
    assert_eq!(
        (code, body),
        (200, sample_file("resources/release-notes.md"))
    );
    let (code, _, _, body) = resource(&fleet, "license").await;
    assert_eq!(code, 404, "the sample has no license file");
    let problem: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("license of com-eos-hello-wasm@1.0.0"),
        "{problem}"
    );
    assert_eq!(resource(&fleet, "logo").await.0, 404);

    // Packages whose catalog is wrong are refused, naming the field; nothing is stored.
    let big = "x".repeat(5 << 20);
    for (i, (from, to, field, why)) in [
        (
            "./resources/release-notes.md",
            "./resources/missing.md",
            "releaseNotes",
            "is not in the package",
        ),
        (
            "./resources/description.md",
            "../../../../etc/x.md",
            "descriptionFile",
            "not a path inside the package",
        ),
        (
            "./resources/icon.svg",
            "./resources/description.md",
            "icon",
            "the icon must be one of .png",
        ),
        (
            "./resources/release-notes.md",
            "./resources/big.md",
            "releaseNotes",
            "at most 4194304 are read",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = tmp.path().join(format!("variant-{i}"));
        let variant = app_variant(
            &dir,
            SAMPLE_APP.0,
            &[("version: 1.0.0", "version: 2.0.0"), (from, to)],
        );
        std::fs::write(variant.join("resources/big.md"), &big).unwrap();
        let (code, problem) = add(&fleet, &variant.display().to_string()).await;
        assert_eq!(code, 422, "{to}: {problem}");
        assert_eq!(
            problem["errors"][0]["field"],
            format!("metadata.catalog.application.{field}"),
            "{problem}"
        );
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(why), "{to}: {message}");
    }
    let app = fleet
        .get(&format!("/api/v1/apps/{}", SAMPLE_APP.1))
        .await
        .unwrap();
    assert_eq!(
        app["latest"], "1.0.0",
        "no refused version was stored: {app}"
    );

    // From a registry: the package as a Margo artifact, its tag its version.
    let registry = test_registry();
    let reference = format!("{registry}/eos-test/apps/hello:1.1.0");
    push_package(&reference, APP_ARTIFACT, &sample_layers("1.1.0"))
        .await
        .unwrap();
    let (code, added) = add(&fleet, &format!("oci://{reference}")).await;
    assert_eq!(code, 201, "{added}");
    assert_eq!(added["version"], "1.1.0");
    let (code, _, cache, body) = resource(&fleet, "icon").await;
    assert_eq!((code, body), (200, sample_file("resources/icon.svg")));
    assert_eq!(cache, "no-cache", "the newest version may change");
    // Its module came with it: the version deploys and runs.
    let (code, created) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": SAMPLE_APP.1, "version": "1.1.0", "site": "site-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    eventually("the registry's version installed", LIMIT, || async {
        (fleet.deployment(&id).await["state"] == "installed").then_some(())
    })
    .await;

    // A tag that is not the version, an artifact that is not a Margo package, a registry that
    // does not answer: each refused with the reason.
    let wrong_tag = format!("{registry}/eos-test/apps/hello:9.9.9");
    push_package(&wrong_tag, APP_ARTIFACT, &sample_layers("1.1.0"))
        .await
        .unwrap();
    let not_margo = format!("{registry}/eos-test/apps/other:1.1.0");
    push_package(
        &not_margo,
        "application/vnd.example+json",
        &sample_layers("1.1.0"),
    )
    .await
    .unwrap();
    for (source, why) in [
        (
            format!("oci://{wrong_tag}"),
            "the tag 9.9.9 is not the description's metadata.version 1.1.0",
        ),
        (
            format!("oci://{not_margo}"),
            "not a Margo application package",
        ),
        (
            "oci://127.0.0.1:1/eos-test/none:1.0.0".to_owned(),
            "cannot read the manifest",
        ),
    ] {
        let (code, problem) = add(&fleet, &source).await;
        assert_eq!(code, 422, "{source}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "source", "{problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains(why), "{source}: {message}");
    }
    fleet.shutdown().await;
}
