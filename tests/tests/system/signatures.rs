//! Signed artifacts through the whole system, on the real Docker engine and registry: a
//! tenant's policy requires cosign signatures by a key the test generates. The test copies the
//! test image into fresh repositories and signs some the way `cosign sign --key` does (a
//! simple-signing payload naming the image's digest, its ECDSA P-256 signature in the
//! `dev.cosignproject.cosign/signature` annotation, pushed at `sha256-<digest>.sig`). An
//! unsigned image, and one signed by another key, end `failed` with the reason, and the engine
//! never created a container from them; a signed image runs. The same holds for WASM modules:
//! an unsigned module fails and never ran; a signed one runs, and with the registry out of
//! reach a new deployment of it still runs (the EN remembers what verified) while the unsigned
//! one still fails. The artifacts view tells trusted, untrusted and unsigned images apart, with
//! the signer and an attached SBOM.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use eos_tests::registry::{push_artifact, push_wasm, test_registry};
use eos_tests::{Fault, FaultProxy, Fleet, LIMIT, eventually, repo_root};
use serde_json::{Value, json};
use std::path::Path;

/// A fresh P-256 key pair and its public key in PEM, as `cosign generate-key-pair` makes.
fn key_pair() -> (EcdsaKeyPair, String) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
    let der = pair.public_key().as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    (pair, pem)
}

/// A repository name no other test uses.
fn fresh(prefix: &str) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("eos-test/{prefix}-{n:x}")
}

/// Copies the test image `eos-test/busybox:1.0.0` to `repository:1.0.0` in the test registry
/// (blobs mounted, the manifest put as it is); returns the manifest's digest.
async fn copy_test_image(repository: &str) -> String {
    let registry = test_registry();
    let http = reqwest::Client::new();
    let accept = "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json";
    let r = http
        .get(format!(
            "http://{registry}/v2/eos-test/busybox/manifests/1.0.0"
        ))
        .header("accept", accept)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
    assert!(r.status().is_success(), "the test image: {}", r.status());
    let media_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    let digest = r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = r.bytes().await.unwrap();
    let manifest: Value = serde_json::from_slice(&bytes).unwrap();
    let blobs = std::iter::once(&manifest["config"]).chain(manifest["layers"].as_array().unwrap());
    for blob in blobs {
        let mount = http
            .post(format!(
                "http://{registry}/v2/{repository}/blobs/uploads/?mount={}&from=eos-test/busybox",
                blob["digest"].as_str().unwrap()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(mount.status(), 201, "mounting {}", blob["digest"]);
    }
    let put = http
        .put(format!("http://{registry}/v2/{repository}/manifests/1.0.0"))
        .header("content-type", media_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    digest
}

/// The digest of `repository:tag`'s manifest.
async fn digest_of(repository: &str, tag: &str) -> String {
    let r = reqwest::Client::new()
        .head(format!("http://{}/v2/{repository}/manifests/{tag}", test_registry()))
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .await
        .unwrap();
    r.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// Signs `repository@digest` with `key` as `cosign sign --key` does.
async fn sign(key: &EcdsaKeyPair, repository: &str, digest: &str) {
    let registry = test_registry();
    let payload = serde_json::to_vec(&json!({
        "critical": {
            "identity": {"docker-reference": format!("{registry}/{repository}")},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": null,
    }))
    .unwrap();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let signature = key.sign(&rng, &payload).unwrap();
    let signature = base64::engine::general_purpose::STANDARD.encode(signature.as_ref());
    let tag = digest.replace(':', "-") + ".sig";
    push_artifact(
        &format!("{registry}/{repository}:{tag}"),
        payload,
        "application/vnd.dev.cosign.simplesigning.v1+json",
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        &[("dev.cosignproject.cosign/signature", &signature)],
    )
    .await
    .unwrap();
}

/// An application whose one component runs `repository` (an `oci://` reference) with
/// `runtime`.
fn app(dir: &Path, id: &str, runtime: &str, repository: &str) -> std::path::PathBuf {
    let folder = dir.join(id);
    std::fs::create_dir_all(&folder).unwrap();
    let settings = match runtime {
        "oci" => {
            "        x-eos-extensions:\n          container:\n            command: [sh, -c, \"exec sleep 3600\"]\n            memory: 16Mi\n"
        }
        _ => "",
    };
    let yaml = format!(
        "apiVersion: margo.org/v1-alpha1\nkind: ApplicationDescription\nid: {id}\nmetadata:\n  name: {id}\n  version: 1.0.0\n  catalog:\n    application:\n      tagline: A signature test.\n    organization:\n      - name: EOS\ndeploymentProfiles:\n  - type: custom\n    id: main\n    x-eos-extensions:\n      runtime: {runtime}\n    components:\n      - name: hello\n        properties:\n          repository: {repository}\n          revision: 1.0.0\n{settings}"
    );
    std::fs::write(folder.join("margo.yaml"), yaml).unwrap();
    folder
}

async fn deploy(fleet: &Fleet, dir: &Path, id: &str, runtime: &str, repository: &str) -> String {
    fleet
        .add_app(&app(dir, id, runtime, repository))
        .await
        .unwrap();
    let (code, body) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": id, "site": "site-1", "host": "node-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    body["id"].as_str().unwrap().to_owned()
}

/// Sets the default tenant's policy to require signatures by `key`: the status and answer.
async fn require_signatures(fleet: &Fleet, key: &str) -> (u16, String) {
    let r = fleet
        .http
        .put(fleet.url("/api/v1/signature-policy"))
        .json(&json!({"required": true, "public_keys": [key]}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The deployment's view once it is `state`.
async fn when(fleet: &Fleet, id: &str, state: &str) -> Value {
    eventually(&format!("deployment {id} {state}"), LIMIT, || async {
        let v = fleet.deployment(id).await;
        (v["state"] == state).then_some(v)
    })
    .await
}

/// Whether the engine has, or had, a container of `image` (created since `since`).
async fn engine_created_from(image: &str, since: i64) -> bool {
    use futures::StreamExt;
    let (docker, _) = eos_tests::all_containers().await.unwrap();
    let until = chrono::Utc::now().timestamp() + 1;
    let options = bollard::query_parameters::EventsOptions {
        since: Some(since.to_string()),
        until: Some(until.to_string()),
        filters: Some(std::collections::HashMap::from([(
            "type".to_owned(),
            vec!["container".to_owned()],
        )])),
    };
    let events: Vec<_> = docker.events(Some(options)).collect().await;
    events.into_iter().filter_map(Result::ok).any(|e| {
        e.actor
            .and_then(|a| a.attributes)
            .and_then(|a| a.get("image").cloned())
            .is_some_and(|i| i.contains(image))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_signature_policy_only_images_signed_by_a_trusted_key_run() {
    let since = chrono::Utc::now().timestamp() - 1;
    let (trusted, trusted_pem) = key_pair();
    let (stranger, _) = key_pair();
    let unsigned = fresh("unsigned");
    let foreign = fresh("foreign");
    let signed = fresh("signed");
    copy_test_image(&unsigned).await;
    let foreign_digest = copy_test_image(&foreign).await;
    sign(&stranger, &foreign, &foreign_digest).await;
    let signed_digest = copy_test_image(&signed).await;
    sign(&trusted, &signed, &signed_digest).await;

    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    // A bad policy is refused, naming the field.
    let (status, answer) = require_signatures(&fleet, "not a key").await;
    assert_eq!(status, 422);
    assert!(answer.contains("public_keys[0]"), "{answer}");
    let (status, answer) = require_signatures(&fleet, &trusted_pem).await;
    assert_eq!(status, 200, "{answer}");
    let policy: Value = fleet.get("/api/v1/signature-policy").await.unwrap();
    assert_eq!(policy["required"], true);

    let registry = test_registry();
    let oci = |repo: &str| format!("oci://{registry}/{repo}");
    let d_unsigned = deploy(
        &fleet,
        tmp.path(),
        "com-test-unsigned",
        "oci",
        &oci(&unsigned),
    )
    .await;
    let d_foreign = deploy(
        &fleet,
        tmp.path(),
        "com-test-foreign",
        "oci",
        &oci(&foreign),
    )
    .await;
    let d_signed = deploy(&fleet, tmp.path(), "com-test-signed", "oci", &oci(&signed)).await;

    let view = when(&fleet, &d_unsigned, "failed").await;
    let why = view["devices"].to_string();
    assert!(
        why.contains("signature policy") && why.contains("not signed"),
        "{view}"
    );
    let view = when(&fleet, &d_foreign, "failed").await;
    let why = view["devices"].to_string();
    assert!(
        why.contains("none made by a key the signature policy trusts"),
        "{view}"
    );
    when(&fleet, &d_signed, "installed").await;

    // The signed image runs, by the digest that verified; the others never had a container.
    assert!(engine_created_from(&signed, since).await);
    assert!(
        !engine_created_from(&unsigned, since).await,
        "a container of the unsigned image"
    );
    assert!(
        !engine_created_from(&foreign, since).await,
        "a container of the foreign-signed image"
    );

    // The artifacts view tells the three apart, with the signed image's SBOM (attached as
    // `cosign attach sbom` does, at `sha256-<hex>.sbom`).
    push_artifact(
        &format!(
            "{registry}/{signed}:{}.sbom",
            signed_digest.replace(':', "-")
        ),
        br#"{"bomFormat":"CycloneDX","specVersion":"1.5"}"#.to_vec(),
        "application/vnd.cyclonedx+json",
        "application/vnd.cyclonedx+json",
        &[],
    )
    .await
    .unwrap();
    let artifacts: Value = fleet.get("/api/v1/artifacts").await.unwrap();
    let of = |repo: &str| {
        artifacts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == format!("{registry}/{repo}:1.0.0"))
            .cloned()
            .unwrap_or_else(|| panic!("{repo} is not in the view: {artifacts}"))
    };
    let (a_signed, a_foreign, a_unsigned) = (of(&signed), of(&foreign), of(&unsigned));
    assert_eq!(a_signed["signature"], "trusted", "{a_signed}");
    assert_eq!(a_signed["signer"], "key 1", "{a_signed}");
    assert_eq!(a_signed["digest"], signed_digest.as_str(), "{a_signed}");
    assert!(
        a_signed["sbom_ref"]
            .as_str()
            .is_some_and(|r| r.ends_with(".sbom")),
        "{a_signed}"
    );
    assert_eq!(a_signed["used_by"][0]["app_id"], "com-test-signed");
    assert_eq!(a_foreign["signature"], "untrusted", "{a_foreign}");
    assert_eq!(a_foreign["signatures"], 1, "{a_foreign}");
    assert_eq!(a_unsigned["signature"], "unsigned", "{a_unsigned}");
    assert_eq!(a_unsigned["sbom_ref"], Value::Null, "{a_unsigned}");
    // The three are copies of one image: one digest under three names, each with its own
    // signatures.
    let same: Value = fleet
        .get(&format!("/api/v1/artifacts/{signed_digest}"))
        .await
        .unwrap();
    let names: Vec<&str> = same
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{same}");
    assert!(
        names.contains(&a_signed["name"].as_str().unwrap()),
        "{same}"
    );
    let missing = fleet
        .http
        .get(fleet.url(&format!("/api/v1/artifacts/sha256:{}", "0".repeat(64))))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    for id in [&d_unsigned, &d_foreign, &d_signed] {
        let r = fleet
            .http
            .delete(fleet.url(&format!("/api/v1/deployments/{id}")))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    eventually("the signed app removed", LIMIT, || async {
        (fleet.deployment(&d_signed).await["state"] == "removed").then_some(())
    })
    .await;
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_signature_policy_an_unsigned_module_never_runs_and_a_signed_one_does() {
    let (trusted, trusted_pem) = key_pair();
    let registry = test_registry();
    let wat =
        std::fs::read_to_string(repo_root().join("config/apps/hello-wasm/hello.wat")).unwrap();
    let unsigned = fresh("unsigned-wasm");
    let signed = fresh("signed-wasm");
    push_wasm(&format!("{registry}/{unsigned}:1.0.0"), &wat)
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
    push_wasm(&format!("{registry}/{signed}:1.0.0"), &wat)
        .await
        .unwrap();
    sign(&trusted, &signed, &digest_of(&signed, "1.0.0").await).await;

    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let (status, answer) = require_signatures(&fleet, &trusted_pem).await;
    assert_eq!(status, 200, "{answer}");
    // The EN reaches the registry through a proxy the test can cut.
    let proxy = FaultProxy::start(registry.parse().unwrap()).await.unwrap();
    let via = proxy.addr;
    let oci = |repo: &str| format!("oci://{via}/{repo}");
    let d_unsigned = deploy(
        &fleet,
        tmp.path(),
        "com-test-unsigned-wasm",
        "wasm",
        &oci(&unsigned),
    )
    .await;
    let d_signed = deploy(
        &fleet,
        tmp.path(),
        "com-test-signed-wasm",
        "wasm",
        &oci(&signed),
    )
    .await;

    let view = when(&fleet, &d_unsigned, "failed").await;
    assert!(view["devices"].to_string().contains("not signed"), "{view}");
    eventually("the signed module to greet", LIMIT, || async {
        (fleet.greetings("node-1", &d_signed) >= 1).then_some(())
    })
    .await;
    // The unsigned module never ran: it has no output, and the EN has no folder for it.
    assert_eq!(fleet.greetings("node-1", &d_unsigned), 0);
    let log = fleet.workload_log("node-1", &d_unsigned, "hello");
    assert!(!log.exists(), "{}", log.display());
    assert!(
        !log.parent().unwrap().exists(),
        "{}",
        log.parent().unwrap().display()
    );

    // The registry goes out of reach: the module that verified before runs again in a new
    // deployment; the unsigned one is still refused.
    proxy.set(Fault::Cut);
    let again = |app: &'static str| {
        let fleet = &fleet;
        async move {
            let (code, body) = fleet
                .post(
                    "/api/v1/deployments",
                    json!({"app_id": app, "site": "site-1", "host": "node-1"}),
                )
                .await
                .unwrap();
            assert_eq!(code, 201, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let d_signed_offline = again("com-test-signed-wasm").await;
    let d_unsigned_offline = again("com-test-unsigned-wasm").await;
    eventually("the verified module to greet offline", LIMIT, || async {
        (fleet.greetings("node-1", &d_signed_offline) >= 1).then_some(())
    })
    .await;
    when(&fleet, &d_unsigned_offline, "failed").await;
    assert_eq!(fleet.greetings("node-1", &d_unsigned_offline), 0);
    fleet.shutdown().await;
}

/// A compose archive is an artifact like any other, and so is every image it names: under the
/// policy, an unsigned archive never runs a service, nor does a signed one naming an unsigned
/// image; a signed archive of signed images runs, each image by the digest that verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_signature_policy_only_a_signed_compose_archive_of_signed_images_runs() {
    let (trusted, trusted_pem) = key_pair();
    let registry = test_registry();
    let image = fresh("signed-busybox");
    let image_digest = copy_test_image(&image).await;
    sign(&trusted, &image, &image_digest).await;
    let (unsigned, unsigned_images, signed) = (
        fresh("unsigned-stack"),
        fresh("stack-of-unsigned-images"),
        fresh("signed-stack"),
    );
    let signed_image = format!("{registry}/{image}:1.0.0");
    for (repository, archive) in [
        (
            &unsigned,
            crate::compose::compose_archive_of("1.0.0", &signed_image),
        ),
        (&unsigned_images, crate::compose::compose_archive("1.0.0")),
        (
            &signed,
            crate::compose::compose_archive_of("1.0.0", &signed_image),
        ),
    ] {
        push_artifact(
            &format!("{registry}/{repository}:1.0.0"),
            archive,
            "application/vnd.org.margo.component.compose.tar+gzip",
            "application/vnd.org.margo.component.compose+json",
            &[
                ("org.margo.component.type", "compose"),
                ("org.opencontainers.image.title", "stack.tar.gz"),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
    }
    for repository in [&unsigned_images, &signed] {
        sign(&trusted, repository, &digest_of(repository, "1.0.0").await).await;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let (status, answer) = require_signatures(&fleet, &trusted_pem).await;
    assert_eq!(status, 200, "{answer}");
    let mut ids = Vec::new();
    for (id, repository) in [
        ("unsigned", &unsigned),
        ("unsigned-images", &unsigned_images),
        ("signed", &signed),
    ] {
        let folder = eos_tests::app_variant(
            &tmp.path().join(id),
            "tests/fixtures/apps/stack-compose",
            &[
                (
                    "com-eos-test-stack-compose",
                    &format!("com-test-{id}-stack"),
                ),
                (
                    "oci://127.0.0.1:5000/eos-test/stack-compose",
                    &format!("oci://{registry}/{repository}"),
                ),
            ],
        );
        fleet.add_app(&folder).await.unwrap();
        let (code, body) = fleet
            .post(
                "/api/v1/deployments",
                json!({"app_id": format!("com-test-{id}-stack"), "site": "site-1", "host": "node-1"}),
            )
            .await
            .unwrap();
        assert_eq!(code, 201, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    let refused = when(&fleet, &ids[0], "failed").await;
    assert!(
        refused["devices"].to_string().contains("not signed"),
        "{refused}"
    );
    let refused = when(&fleet, &ids[1], "failed").await;
    let why = refused["devices"].to_string();
    assert!(
        why.contains("eos-test/busybox") && why.contains("not signed"),
        "{refused}"
    );
    for (id, what) in [
        (&ids[0], "the unsigned archive"),
        (&ids[1], "the unsigned images"),
    ] {
        assert_eq!(
            eos_tests::engine_objects(&id[..8]).await,
            Vec::<String>::new(),
            "{what} made nothing on the engine"
        );
    }
    when(&fleet, &ids[2], "installed").await;
    // Each service runs its image by the digest that verified.
    let (_, containers) = eos_tests::all_containers().await.unwrap();
    let images: Vec<String> = containers
        .iter()
        .filter(|c| c.names.iter().flatten().any(|n| n.contains(&ids[2][..8])))
        .map(|c| c.image.clone().unwrap_or_default())
        .collect();
    assert_eq!(images.len(), 2, "{images:?}");
    assert!(
        images
            .iter()
            .all(|i| i.ends_with(&format!("@{image_digest}"))),
        "{images:?}"
    );
    for id in &ids {
        fleet.undeploy(id).await.unwrap();
    }
    fleet.shutdown().await;
}

/// An application package from a registry is an artifact too: under the policy the CO adds
/// it only when it carries a signature by a trusted key, and pulls the digest that verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn under_a_signature_policy_only_a_signed_package_is_added_from_a_registry() {
    let (trusted, trusted_pem) = key_pair();
    let registry = test_registry();
    let (unsigned, signed) = (fresh("unsigned-package"), fresh("signed-package"));
    for repository in [&unsigned, &signed] {
        eos_tests::registry::push_package(
            &format!("{registry}/{repository}:1.1.0"),
            eos_adapter_registry::APP_ARTIFACT,
            &crate::catalog::sample_layers("1.1.0"),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
    }
    sign(&trusted, &signed, &digest_of(&signed, "1.1.0").await).await;
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &[]).await.unwrap();
    let (status, answer) = require_signatures(&fleet, &trusted_pem).await;
    assert_eq!(status, 200, "{answer}");
    let add = |repository: String| {
        let (fleet, registry) = (&fleet, &registry);
        async move {
            fleet
                .post(
                    "/api/v1/apps",
                    json!({"source": format!("oci://{registry}/{repository}:1.1.0")}),
                )
                .await
                .unwrap()
        }
    };
    let (code, refused) = add(unsigned.clone()).await;
    assert_eq!(code, 422, "{refused}");
    assert!(refused.to_string().contains("not signed"), "{refused}");
    let (code, added) = add(signed.clone()).await;
    assert_eq!(code, 201, "{added}");
    assert_eq!(added["version"], "1.1.0");
    fleet.shutdown().await;
}

/// With `source_hosts` the CO reaches for a tenant only the hosts its configuration names:
/// a package from another registry or a Git host elsewhere is refused before anything is
/// asked, and the artifacts view does not ask such a registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_co_reaches_only_the_source_hosts_its_configuration_names() {
    let registry = test_registry();
    let repository = fresh("allowed-package");
    eos_tests::registry::push_package(
        &format!("{registry}/{repository}:1.1.0"),
        eos_adapter_registry::APP_ARTIFACT,
        &crate::catalog::sample_layers("1.1.0"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: start the test services with `bash config/services.sh`"));
    let tmp = tempfile::tempdir().unwrap();
    let allowed = registry.clone();
    let fleet = Fleet::start_with_co(tmp.path(), "site-1", &[], move |c| {
        c.source_hosts = vec![allowed.clone()];
    })
    .await
    .unwrap();
    for source in [
        "oci://169.254.169.254/latest/meta-data:1.0.0".to_owned(),
        "https://10.0.0.1/acme/app.git".to_owned(),
        "git@internal.example:acme/app.git".to_owned(),
    ] {
        let (code, refused) = fleet
            .post("/api/v1/apps", json!({ "source": source }))
            .await
            .unwrap();
        assert_eq!(code, 422, "{source}: {refused}");
        assert!(
            refused.to_string().contains("does not let it reach"),
            "{source}: {refused}"
        );
    }
    let (code, added) = fleet
        .post(
            "/api/v1/apps",
            json!({ "source": format!("oci://{registry}/{repository}:1.1.0") }),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{added}");
    // A deployment naming an image on a host the CO may not reach: the view lists it unasked.
    let folder = app(
        tmp.path(),
        "com-test-elsewhere",
        "oci",
        "oci://169.254.169.254/eos/x",
    );
    fleet.add_app(&folder).await.unwrap();
    let (code, body) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": "com-test-elsewhere", "site": "site-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let artifacts: Value = fleet.get("/api/v1/artifacts").await.unwrap();
    let elsewhere = artifacts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "169.254.169.254/eos/x:1.0.0")
        .unwrap_or_else(|| panic!("{artifacts}"));
    assert_eq!(elsewhere["signature"], "unknown", "{elsewhere}");
    assert!(
        elsewhere["error"]
            .as_str()
            .is_some_and(|e| e.contains("not asked") && e.contains("does not let it reach")),
        "{elsewhere}"
    );
    // Another tenant's view holds nothing of this tenant's deployments.
    let (code, body) = fleet
        .post("/api/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let theirs: Value = fleet
        .http
        .get(fleet.url("/api/v1/artifacts"))
        .header("EOS-Tenant", "acme")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, json!([]), "acme sees another tenant's artifacts");
    fleet.shutdown().await;
}
