//! Device enrolment and mutual TLS, through the real CO, LO and EN. The CO requires mTLS on its
//! gRPC link; the LO and the EN start with claim tokens an operator made, make their keys
//! locally, enrol, and the EN appears online with its capabilities, a sample app running on it
//! over the mTLS links. A claim token works once and not after it expires. A gRPC client with
//! no certificate, one of a CA of its own, or another site's or node's certificate is refused
//! by the CO and by the LO.

use eos_adapter_grpc::pb::{self, en_message, lo_message};
use eos_adapter_grpc::{NodeLinkClient, Tls, UplinkClient};
use eos_tests::{Fleet, LIMIT, eventually};
use serde_json::{Value, json};
use std::path::Path;

/// A claim token for `site` (an LO's, or the EN `host`'s when given), made by the admin.
async fn claim(fleet: &Fleet, site: &str, host: Option<&str>, ttl: u64) -> String {
    let body = match host {
        None => json!({"role": "lo", "ttl_secs": ttl}),
        Some(h) => json!({"role": "en", "host": h, "ttl_secs": ttl}),
    };
    let (code, answer) = fleet
        .post(&format!("/api/v1/sites/{site}/claims"), body)
        .await
        .unwrap();
    assert_eq!(code, 201, "{answer}");
    let token = answer["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("eosclaim_"));
    token
}

/// A client speaking with `c`, taking any server certificate of the CA (these tests play
/// clients against servers, to see the servers refuse them).
fn as_client(c: eos_adapter_pki::Credentials) -> Tls {
    Tls {
        certificate_pem: c.certificate_pem,
        key_pem: c.key_pem,
        ca_pem: c.ca_pem,
        peer: None,
        peer_check: None,
    }
}

/// Enrols with `token` into `dir` as a device would; the mTLS material, or the refusal.
async fn enrol(fleet: &Fleet, dir: &Path, token: &str) -> Result<Tls, String> {
    let url = format!("http://{}", fleet.co().http_addr);
    eos_adapter_pki::enrol(dir, &url, token, &["127.0.0.1".into()])
        .await
        .map(as_client)
        .map_err(|e| e.to_string())
}

/// Opens an uplink session as the LO of `site` with `tls`: the status it ends with, if refused.
async fn uplink_as(endpoint: &str, tls: Option<&Tls>, site: &str) -> Result<(), tonic::Status> {
    let channel = eos_adapter_grpc::dial(endpoint, tls)
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{e:?}")))?;
    let hello = pb::LoMessage {
        seq: 0,
        body: Some(lo_message::Body::Hello(pb::LoHello {
            site_id: site.into(),
            version: "test".into(),
            outbox_id: "test-outbox".into(),
            tenant: String::new(),
        })),
        observed_at: String::new(),
    };
    let mut inbound = UplinkClient::new(channel)
        .session(tokio_stream::iter([hello]))
        .await?
        .into_inner();
    inbound.message().await?;
    Ok(())
}

/// Sends one status report as the LO of `site` with `tls`, after its hello, and waits for the
/// CO to acknowledge it (applied or refused, it is acknowledged).
async fn report_as(endpoint: &str, tls: &Tls, site: &str, status_json: &str) {
    let channel = eos_adapter_grpc::dial(endpoint, Some(tls)).await.unwrap();
    let hello = pb::LoMessage {
        seq: 0,
        body: Some(lo_message::Body::Hello(pb::LoHello {
            site_id: site.into(),
            version: "test".into(),
            outbox_id: "forger-outbox".into(),
            tenant: String::new(),
        })),
        observed_at: String::new(),
    };
    let report = pb::LoMessage {
        seq: 1,
        body: Some(lo_message::Body::Status(pb::StatusReport {
            status_json: status_json.into(),
        })),
        observed_at: String::new(),
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(hello).await.unwrap();
    let mut inbound = UplinkClient::new(channel)
        .session(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    // The hello's acknowledgement first, then the report's.
    tx.send(report).await.unwrap();
    let acked = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Ok(Some(message)) = inbound.message().await {
            if let Some(pb::co_message::Body::Ack(seq)) = message.body
                && seq >= 1
            {
                return;
            }
        }
        panic!("the CO ended the session before acknowledging the report");
    })
    .await;
    assert!(acked.is_ok(), "no acknowledgement of the report");
}

/// Opens a node session as EN `device` with `tls`.
async fn node_as(endpoint: &str, tls: Option<&Tls>, device: &str) -> Result<(), tonic::Status> {
    let channel = eos_adapter_grpc::dial(endpoint, tls)
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{e:?}")))?;
    let hello = pb::EnMessage {
        body: Some(en_message::Body::Hello(pb::EnHello {
            device_id: device.into(),
            capabilities_json: r#"{"labels":{}}"#.into(),
            running: vec![],
        })),
    };
    let mut inbound = NodeLinkClient::new(channel)
        .session(tokio_stream::iter([hello]))
        .await?
        .into_inner();
    inbound.message().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_enrol_with_claim_tokens_and_every_link_is_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with_co(tmp.path(), "site-1", &["node-1"], |c| c.grpc_tls = true)
        .await
        .unwrap();
    // Zero touch: the EN enrolled with its claim token and is online with its capabilities.
    fleet.await_online(&["node-1"]).await;
    let devices: Value = fleet.get("/api/v1/devices").await.unwrap();
    let runtimes = devices[0]["capabilities"].to_string();
    assert!(runtimes.contains("wasm"), "{devices}");
    // The key was made on the device and stays there; the certificate names the node.
    let tls_dir = tmp.path().join("en/node-1/tls");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tls_dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let creds = eos_adapter_pki::Credentials::load(&tls_dir)
        .unwrap()
        .unwrap();
    let (identity, _) = creds.identity().unwrap();
    assert_eq!(
        identity.uri(),
        "spiffe://eos/default/site/site-1/node/node-1"
    );
    // Work flows over the mTLS links.
    fleet.deploy_sample(Some("node-1")).await.unwrap();

    // A claim token works once; a malformed request does not spend it.
    let token = claim(&fleet, "site-1", Some("node-2"), 600).await;
    let broken = reqwest::Client::new()
        .post(fleet.url("/api/v1/enrolments"))
        .json(&json!({
            "token": token,
            "csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(broken.status(), 422);
    let node2 = enrol(&fleet, &tmp.path().join("node-2"), &token)
        .await
        .unwrap();
    let again = enrol(&fleet, &tmp.path().join("node-2b"), &token)
        .await
        .unwrap_err();
    assert!(again.contains("used already"), "{again}");
    // An expired one not at all.
    let late = claim(&fleet, "site-1", Some("node-3"), 60).await;
    fleet.clock.advance(std::time::Duration::from_secs(61));
    let expired = enrol(&fleet, &tmp.path().join("node-3"), &late)
        .await
        .unwrap_err();
    assert!(expired.contains("expired"), "{expired}");
    // The token's tail is the CA's fingerprint; a made-up secret with it is unknown, a token
    // without it is not sent at all, and one naming another CA is refused by the CO unspent.
    let fingerprint = token.rsplit_once('.').unwrap().1.to_owned();
    let unknown = enrol(
        &fleet,
        &tmp.path().join("node-4"),
        &format!("eosclaim_made-up.{fingerprint}"),
    )
    .await
    .unwrap_err();
    assert!(unknown.contains("not one this CO issued"), "{unknown}");
    let bare = enrol(&fleet, &tmp.path().join("node-4"), "eosclaim_made-up")
        .await
        .unwrap_err();
    assert!(bare.contains("carries no CA fingerprint"), "{bare}");
    let fresh = claim(&fleet, "site-1", Some("node-5"), 600).await;
    let (secret, _) = fresh.rsplit_once('.').unwrap();
    let elsewhere = enrol(
        &fleet,
        &tmp.path().join("node-5"),
        &format!("{secret}.{}", "0".repeat(64)),
    )
    .await
    .unwrap_err();
    assert!(elsewhere.contains("names another CA"), "{elsewhere}");
    enrol(&fleet, &tmp.path().join("node-5"), &fresh)
        .await
        .expect("the token refused for another CA's fingerprint was not spent");

    // The CO refuses an LO without a certificate, with one of another CA, or of another site.
    let co = format!("http://{}", fleet.co().grpc_addr);
    let ca_pem = creds.ca_pem.clone();
    assert!(
        uplink_as(&co, None, "site-1").await.is_err(),
        "plain gRPC to the CO"
    );
    // TLS that trusts the CA but shows no certificate of its own.
    let bare = tonic::transport::Endpoint::from_shared(co.replacen("http://", "https://", 1))
        .unwrap()
        .tls_config(
            tonic::transport::ClientTlsConfig::new()
                .ca_certificate(tonic::transport::Certificate::from_pem(&ca_pem))
                .domain_name("127.0.0.1"),
        )
        .unwrap();
    let refused = match bare.connect().await {
        Err(_) => true,
        Ok(channel) => UplinkClient::new(channel)
            .session(tokio_stream::iter(Vec::<pb::LoMessage>::new()))
            .await
            .is_err(),
    };
    assert!(refused, "no client certificate");
    let own_ca = eos_adapter_pki::Authority::open_or_create(&tmp.path().join("rogue-ca")).unwrap();
    let rogue_dir = tmp.path().join("rogue");
    let csr = eos_adapter_pki::Credentials::request(&rogue_dir, &[]).unwrap();
    let rogue_cert = own_ca
        .issue(
            &csr,
            &eos_adapter_pki::Identity {
                tenant: "default".into(),
                site: "site-1".into(),
                node: None,
            },
            &[],
            1,
        )
        .unwrap();
    let rogue = Tls {
        certificate_pem: rogue_cert.certificate_pem,
        key_pem: std::fs::read_to_string(rogue_dir.join("key.pem")).unwrap(),
        ca_pem: ca_pem.clone(),
        peer: None,
        peer_check: None,
    };
    assert!(
        uplink_as(&co, Some(&rogue), "site-1").await.is_err(),
        "a certificate of another CA"
    );
    let site2 = enrol(
        &fleet,
        &tmp.path().join("site-2"),
        &claim(&fleet, "site-2", None, 600).await,
    )
    .await
    .unwrap();
    let status = uplink_as(&co, Some(&site2), "site-1").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("site site-2"), "{status:?}");

    // site-2's LO, speaking for its own site, reports a device of site-1 in a deployment of
    // site-2: the CO records nothing of it.
    uplink_as(&co, Some(&site2), "site-2").await.unwrap();
    let (code, deployment) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": eos_tests::SAMPLE_APP.1, "site": "site-2"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{deployment}");
    let site2_deployment = deployment["id"].as_str().unwrap().to_owned();
    let forged = eos_domain::margo::status::DeploymentStatus {
        deployment_id: site2_deployment.clone(),
        device_id: Some("site-1/node-1".into()),
        adopted_manifest_version: None,
        status: eos_domain::margo::status::OverallStatus {
            state: eos_domain::margo::status::DeploymentState::Installed,
            error: None,
        },
        components: Vec::new(),
    };
    report_as(&co, &site2, "site-2", &forged.to_json()).await;
    let view = fleet.deployment(&site2_deployment).await;
    assert!(
        !view.to_string().contains("site-1/node-1"),
        "a status for another site's device was recorded: {view}"
    );

    // The LO refuses an EN without a certificate, or one with another node's certificate.
    let lo = format!("http://{}", fleet.lo.as_ref().unwrap().listen_addr);
    assert!(
        node_as(&lo, None, "site-1/node-1").await.is_err(),
        "plain gRPC to the LO"
    );
    assert!(
        node_as(&lo, Some(&rogue), "site-1/node-1").await.is_err(),
        "another CA to the LO"
    );
    let status = node_as(&lo, Some(&node2), "site-1/node-1")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    // A certificate of this CA for the same site and node name, but of another tenant.
    let fleet_ca = eos_adapter_pki::Authority::open_or_create(&tmp.path().join("co/ca")).unwrap();
    let stranger_dir = tmp.path().join("stranger");
    let csr = eos_adapter_pki::Credentials::request(&stranger_dir, &[]).unwrap();
    let stranger_cert = fleet_ca
        .issue(
            &csr,
            &eos_adapter_pki::Identity {
                tenant: "acme".into(),
                site: "site-1".into(),
                node: Some("node-2".into()),
            },
            &[],
            1,
        )
        .unwrap();
    let stranger = Tls {
        certificate_pem: stranger_cert.certificate_pem,
        key_pem: std::fs::read_to_string(stranger_dir.join("key.pem")).unwrap(),
        ca_pem: ca_pem.clone(),
        peer: None,
        peer_check: None,
    };
    let status = node_as(&lo, Some(&stranger), "site-1/node-2")
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::PermissionDenied,
        "another tenant's EN: {status:?}"
    );
    // Nor does the CO renew it: site-1 is not acme's.
    eos_adapter_pki::Credentials::store(&stranger_dir, &stranger.certificate_pem, &ca_pem).unwrap();
    let refused = eos_adapter_pki::renew(
        &stranger_dir,
        &format!("http://{}", fleet.co().http_addr),
        &[],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(refused.contains("belongs to another tenant"), "{refused}");
    // node-2's own certificate passes as node-2: the LO goes on to read its hello (and finds
    // the test's made-up capabilities wanting).
    let welcome = node_as(&lo, Some(&node2), "site-1/node-2")
        .await
        .unwrap_err();
    assert_eq!(welcome.code(), tonic::Code::InvalidArgument, "{welcome:?}");
    assert!(welcome.message().starts_with("capabilities"), "{welcome:?}");
    assert_eq!(
        fleet.devices_online().await.unwrap(),
        [("site-1/node-1".to_owned(), true)]
    );

    // Revoking node-1 cuts it off at once, and the LO refuses its certificate from then on.
    let (code, body) = fleet
        .post(
            "/api/v1/sites/site-1/revocations",
            json!({"host": "node-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    eventually("node-1 cut off", LIMIT, || async {
        (fleet.devices_online().await? == [("site-1/node-1".to_owned(), false)]).then_some(())
    })
    .await;
    let node1 = as_client(creds.clone());
    let status = node_as(&lo, Some(&node1), "site-1/node-1")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");
    // Revoking the LO: the CO refuses its certificate.
    let (code, body) = fleet
        .post("/api/v1/sites/site-1/revocations", json!({}))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let lo_creds = eos_adapter_pki::Credentials::load(&tmp.path().join("lo/tls"))
        .unwrap()
        .unwrap();
    let lo_tls = Tls {
        certificate_pem: lo_creds.certificate_pem,
        key_pem: lo_creds.key_pem,
        ca_pem: lo_creds.ca_pem,
        peer: None,
        peer_check: None,
    };
    let status = uplink_as(&co, Some(&lo_tls), "site-1").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("revoked"), "{status:?}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificates_renew_before_they_expire_and_work_carries_on() {
    use eos_tests::Tier;
    // Renewal when less than 40 days are left: every look, certificates lasting 30 days. The LO
    // and the EN look every 3 s, so the test sees several renewals.
    let renew = |tier: Tier<'_>| match tier {
        Tier::Lo(c) => {
            c.renew_within_secs = Some(40 * 86_400);
            c.renew_check_secs = 3;
        }
        Tier::En(c) => {
            c.renew_within_secs = Some(40 * 86_400);
            c.renew_check_secs = 3;
        }
    };
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with_tiers(
        tmp.path(),
        "site-1",
        &["node-1"],
        |c| c.grpc_tls = true,
        &renew,
    )
    .await
    .unwrap();
    fleet.await_online(&["node-1"]).await;
    let deployment = fleet.deploy_sample(Some("node-1")).await.unwrap();
    let certificate =
        |tier: &str| std::fs::read_to_string(tmp.path().join(tier).join("tls/cert.pem")).unwrap();
    let (lo_first, en_first) = (certificate("lo"), certificate("en/node-1"));
    let greeted = fleet.greetings("node-1", &deployment);
    // New certificates come, the EN stays online, and the workload never stops greeting.
    eventually("both certificates renewed", LIMIT, || async {
        (certificate("lo") != lo_first && certificate("en/node-1") != en_first).then_some(())
    })
    .await;
    eventually(
        "the EN online on its renewed certificate",
        LIMIT,
        || async {
            (fleet.devices_online().await? == [("site-1/node-1".to_owned(), true)]).then_some(())
        },
    )
    .await;
    let creds = eos_adapter_pki::Credentials::load(&tmp.path().join("en/node-1/tls"))
        .unwrap()
        .unwrap();
    assert_eq!(
        creds.identity().unwrap().0.uri(),
        "spiffe://eos/default/site/site-1/node/node-1",
        "a renewed certificate names the same node"
    );
    // The LO takes the renewed certificate (its hello then fails only on the test's made-up
    // capabilities).
    let lo = format!("http://{}", fleet.lo.as_ref().unwrap().listen_addr);
    let renewed = as_client(creds.clone());
    let status = node_as(&lo, Some(&renewed), "site-1/node-1")
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    eventually("the module to go on greeting", LIMIT, || async {
        (fleet.greetings("node-1", &deployment) >= greeted + 3).then_some(())
    })
    .await;
    assert_eq!(fleet.deployment(&deployment).await["state"], "installed");
    // A renewal needs the current key: a made-up proof is refused.
    let r = reqwest::Client::new()
        .post(fleet.url("/api/v1/renewals"))
        .json(&json!({
            "certificate": creds.certificate_pem,
            "csr": eos_adapter_pki::Credentials::request(&tmp.path().join("thief"), &[]).unwrap(),
            "proof": "AAAA",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    fleet.shutdown().await;
}

/// Asks `endpoint` (the CO's uplink, or an LO's node link when `lo`) for the artifact
/// `digest` with `tls`: its bytes, or the refusal.
async fn artifact_as(
    endpoint: &str,
    tls: Option<&Tls>,
    digest: &str,
    lo: bool,
) -> Result<Vec<u8>, tonic::Status> {
    let channel = eos_adapter_grpc::dial(endpoint, tls)
        .await
        .map_err(|e| tonic::Status::unavailable(format!("{e:?}")))?;
    let request = pb::ArtifactRequest {
        digest: digest.into(),
    };
    let mut stream = if lo {
        NodeLinkClient::new(channel).artifact(request).await?
    } else {
        UplinkClient::new(channel).artifact(request).await?
    }
    .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend(chunk.data);
    }
    Ok(bytes)
}

/// A certificate of the fleet's CA for `identity`, made in `dir`.
fn issued(tmp: &Path, dir: &str, identity: eos_adapter_pki::Identity, ca_pem: &str) -> Tls {
    let fleet_ca = eos_adapter_pki::Authority::open_or_create(&tmp.join("co/ca")).unwrap();
    let dir = tmp.join(dir);
    let csr = eos_adapter_pki::Credentials::request(&dir, &[]).unwrap();
    let cert = fleet_ca.issue(&csr, &identity, &[], 1).unwrap();
    Tls {
        certificate_pem: cert.certificate_pem,
        key_pem: std::fs::read_to_string(dir.join("key.pem")).unwrap(),
        ca_pem: ca_pem.to_owned(),
        peer: None,
        peer_check: None,
    }
}

/// The module a package carries reaches the EN from the CO by digest through the LO, over
/// the mTLS links, with the CO's copy of the package gone; only the LOs of the tenant that
/// added it, and only ENs of the LO's site and tenant, get it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn package_files_reach_ens_through_their_lo_and_only_within_their_tenant() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with_co(tmp.path(), "site-1", &["node-1"], |c| c.grpc_tls = true)
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let sample = eos_tests::repo_root().join(eos_tests::SAMPLE_APP.0);
    let module = std::fs::read(sample.join("hello.wat")).unwrap();
    let digest = eos_adapter_localstore::blobs::digest_of(&module);
    fleet.add_app(&sample).await.unwrap();
    // The CO's copy of the package goes: nothing may depend on a path on the CO's disk.
    std::fs::remove_dir_all(tmp.path().join("co/packages")).unwrap();
    let (code, created) = fleet
        .post(
            "/api/v1/deployments",
            json!({"app_id": eos_tests::SAMPLE_APP.1, "site": "site-1", "host": "node-1"}),
        )
        .await
        .unwrap();
    assert_eq!(code, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    eventually("the deployment to be installed", LIMIT, || async {
        (fleet.deployment(&id).await["state"] == "installed").then_some(())
    })
    .await;
    // The desired state names the module by digest, not by a path.
    let named = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(tmp.path().join("co/deployments.git"))
        .args([
            "grep",
            "-c",
            &format!("repository: eos-artifact:{digest}"),
            "HEAD",
        ])
        .output()
        .unwrap();
    assert!(
        named.status.success(),
        "{}",
        String::from_utf8_lossy(&named.stderr)
    );
    let hex = digest.trim_start_matches("sha256:");
    for copy in ["lo/artifacts/sha256", "en/node-1/package-artifacts/sha256"] {
        let path = tmp.path().join(copy).join(hex);
        assert_eq!(std::fs::read(&path).ok().as_ref(), Some(&module), "{copy}");
    }

    let co = format!("http://{}", fleet.co().grpc_addr);
    let lo = format!("http://{}", fleet.lo.as_ref().unwrap().listen_addr);
    let site1 = eos_adapter_pki::Credentials::load(&tmp.path().join("lo/tls"))
        .unwrap()
        .unwrap();
    let ca_pem = site1.ca_pem.clone();
    let site1 = Tls {
        certificate_pem: site1.certificate_pem,
        key_pem: site1.key_pem,
        ca_pem: ca_pem.clone(),
        peer: None,
        peer_check: None,
    };
    assert_eq!(
        artifact_as(&co, Some(&site1), &digest, false)
            .await
            .unwrap(),
        module,
        "the LO of the tenant's site gets it"
    );
    // The LO of another tenant's site, with a certificate of the fleet's CA: the site is
    // acme's (its claim made it so), and acme added no such file.
    let (code, body) = fleet
        .post("/api/v1/tenants", json!({"id": "acme", "name": "Acme"}))
        .await
        .unwrap();
    assert_eq!(code, 201, "{body}");
    let made = fleet
        .http
        .post(fleet.url("/api/v1/sites/site-9/claims"))
        .header("EOS-Tenant", "acme")
        .json(&json!({"role": "lo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let acme_lo = issued(
        tmp.path(),
        "acme-lo",
        eos_adapter_pki::Identity {
            tenant: "acme".into(),
            site: "site-9".into(),
            node: None,
        },
        &ca_pem,
    );
    let refused = artifact_as(&co, Some(&acme_lo), &digest, false)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    // An EN does not speak to the CO for artifacts; nor does a client without a certificate.
    let en = eos_adapter_pki::Credentials::load(&tmp.path().join("en/node-1/tls"))
        .unwrap()
        .unwrap();
    let en = Tls {
        certificate_pem: en.certificate_pem,
        key_pem: en.key_pem,
        ca_pem: ca_pem.clone(),
        peer: None,
        peer_check: None,
    };
    let refused = artifact_as(&co, Some(&en), &digest, false)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(artifact_as(&co, None, &digest, false).await.is_err());
    // A path for a digest names nothing.
    let refused = artifact_as(&co, Some(&site1), "sha256:../../ca/key.pem", false)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    // At the LO: its own EN gets it, and nothing the site's desired state does not name; an
    // EN certificate of another tenant gets nothing.
    assert_eq!(
        artifact_as(&lo, Some(&en), &digest, true).await.unwrap(),
        module
    );
    let refused = artifact_as(&lo, Some(&en), &format!("sha256:{}", "0".repeat(64)), true)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound, "{refused:?}");
    let stranger = issued(
        tmp.path(),
        "acme-en",
        eos_adapter_pki::Identity {
            tenant: "acme".into(),
            site: "site-1".into(),
            node: Some("node-1".into()),
        },
        &ca_pem,
    );
    let refused = artifact_as(&lo, Some(&stranger), &digest, true)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    fleet.shutdown().await;
}

/// A CO that is not the one that made the claim token (another CA answers) gets no device:
/// the device refuses the CA its answer carries, and keeps no key for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_enrols_with_no_co_but_the_one_its_claim_token_names() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().unwrap();
    let genuine = eos_adapter_pki::Authority::open_or_create(&tmp.path().join("genuine")).unwrap();
    let rogue = eos_adapter_pki::Authority::open_or_create(&tmp.path().join("rogue")).unwrap();
    let fingerprint = eos_adapter_pki::ca_fingerprint(genuine.certificate_pem()).unwrap();
    // The impostor signs whatever it is sent with its own CA.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (certificate_pem, _) = rogue.server_certificate(&["device".into()], 1).unwrap();
    let answer = json!({"certificate": certificate_pem, "ca": rogue.certificate_pem(),
                        "site": "site-1", "expires_at": "2099-01-01T00:00:00Z"})
    .to_string();
    let impostor = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        // The whole request: its headers, then as many bytes as content-length says.
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_lowercase();
            if let Some(end) = text.find("\r\n\r\n") {
                let length: usize = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if request.len() >= end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        let response = format!(
            "HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
    });
    let dir = tmp.path().join("device");
    let refused = eos_adapter_pki::enrol(
        &dir,
        &format!("http://{addr}"),
        &format!("eosclaim_{}.{fingerprint}", "a".repeat(64)),
        &[],
    )
    .await
    .unwrap_err()
    .to_string();
    impostor.await.unwrap();
    assert!(
        refused.contains("does not match the claim token's fingerprint"),
        "{refused}"
    );
    assert!(
        eos_adapter_pki::Credentials::load(&dir).unwrap().is_none()
            && !dir.join("key.pem").exists(),
        "the device kept credentials of the impostor's CA"
    );
}

/// The CO serves its API over TLS too (`https_listen`), with a certificate of its CA: a
/// device enrols and renews over it, trusting the CA its claim token names, and sends its
/// token to no https server whose CA the token does not name.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_enrol_over_https_trusting_the_ca_their_token_names() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with_co(tmp.path(), "site-1", &[], |c| {
        c.https_listen = Some("127.0.0.1:0".into());
    })
    .await
    .unwrap();
    let https = format!("https://{}", fleet.co().https_addr.unwrap());
    let token = claim(&fleet, "site-1", Some("node-7"), 600).await;
    let (secret, _) = token.rsplit_once('.').unwrap();
    // Another CA's fingerprint: the CO's CA does not match it, so the token is not sent.
    let refused = eos_adapter_pki::enrol(
        &tmp.path().join("node-7"),
        &https,
        &format!("{secret}.{}", "1".repeat(64)),
        &[],
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(refused.contains("the token was not sent"), "{refused}");
    let dir = tmp.path().join("node-7");
    let enrolled = eos_adapter_pki::enrol(&dir, &https, &token, &[])
        .await
        .expect("the token was not spent by the refused attempt, and https works");
    let (identity, _) = enrolled.identity().unwrap();
    assert_eq!(identity.node.as_deref(), Some("node-7"));
    // Renewal over https trusts the CA the device holds.
    let renewed = eos_adapter_pki::renew(&dir, &https, &[]).await.unwrap();
    assert_ne!(renewed.certificate_pem, enrolled.certificate_pem);
    // A server with a certificate of the same CA that is not the CO's (an LO's, naming this
    // very address) gets nothing from the device: not its renewal, not its revocation check.
    let lo_tls = eos_adapter_pki::Credentials::load(&tmp.path().join("lo/tls"))
        .unwrap()
        .unwrap();
    let posing = impostor(&Tls {
        certificate_pem: lo_tls.certificate_pem,
        key_pem: lo_tls.key_pem,
        ca_pem: lo_tls.ca_pem,
        peer: None,
        peer_check: None,
    })
    .await
    .replacen("http://", "https://", 1);
    let refused = eos_adapter_pki::renew(&dir, &posing, &[])
        .await
        .unwrap_err();
    assert!(format!("{refused:?}").contains("not the CO"), "{refused:?}");
    let refused = eos_adapter_pki::lo_revoked_at(&dir, &posing)
        .await
        .unwrap_err();
    assert!(format!("{refused:?}").contains("not the CO"), "{refused:?}");
    // The API answers over TLS as over plain HTTP.
    let ca = reqwest::Certificate::from_pem(enrolled.ca_pem.as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([ca])
        .build()
        .unwrap();
    let health = client
        .get(format!("{https}/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    fleet.shutdown().await;
}

/// Serves TLS handshakes with `tls`'s certificate on a fresh loopback port until the test
/// ends: a server posing as the tier above.
async fn impostor(tls: &Tls) -> String {
    let config = eos_adapter_http::tls::server_config(&tls.certificate_pem, &tls.key_pem).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    format!("http://{addr}")
}

/// Clients check the server's identity too: an EN dials only its own site's LO, and an LO
/// only the CO, whatever host names a certificate of the fleet's CA carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ens_and_los_speak_only_to_the_tier_they_belong_to() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with_co(tmp.path(), "site-1", &["node-1"], |c| c.grpc_tls = true)
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let load = |dir: &str| {
        let c = eos_adapter_pki::Credentials::load(&tmp.path().join(dir))
            .unwrap()
            .unwrap();
        // As the EN and the LO dial: expecting the tier above their certificate's identity.
        Tls {
            peer: eos_adapter_pki::tier_above(&c.certificate_pem),
            peer_check: None,
            certificate_pem: c.certificate_pem,
            key_pem: c.key_pem,
            ca_pem: c.ca_pem,
        }
    };
    let (en, lo) = (load("en/node-1/tls"), load("lo/tls"));
    // The LO of site-2, enrolled properly, with 127.0.0.1 among its names.
    let site2 = enrol(
        &fleet,
        &tmp.path().join("site-2"),
        &claim(&fleet, "site-2", None, 600).await,
    )
    .await
    .unwrap();
    let posing = impostor(&site2).await;
    let refused = eos_adapter_grpc::dial(&posing, Some(&en))
        .await
        .unwrap_err();
    let why = format!("{refused:?}");
    assert!(
        why.contains("does not name spiffe://eos/default/site/site-1"),
        "the EN took site-2's LO for its own: {why}"
    );
    // An LO dialling a server with an LO's certificate instead of the CO's.
    let refused = eos_adapter_grpc::dial(&posing, Some(&lo))
        .await
        .unwrap_err();
    let why = format!("{refused:?}");
    assert!(
        why.contains("does not name spiffe://eos/co"),
        "the LO took an LO for the CO: {why}"
    );
    // The real ones pass the same check: the EN is online over it, and the LO dials the CO.
    let co = format!("http://{}", fleet.co().grpc_addr);
    eos_adapter_grpc::dial(&co, Some(&lo)).await.unwrap();
    fleet.shutdown().await;
}

/// A revoked LO loses its ENs: they learn of the revocation from the CO, end their session
/// with it and refuse its certificate when they dial again, so it gives them no more
/// commands; what they run goes on running.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_lo_gives_its_ens_no_more_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with_tiers(
        tmp.path(),
        "site-1",
        &["node-1"],
        |c| c.grpc_tls = true,
        &|tier| {
            if let eos_tests::Tier::En(c) = tier {
                c.revocation_check_secs = 1;
            }
        },
    )
    .await
    .unwrap();
    fleet.await_online(&["node-1"]).await;
    let id = fleet.deploy_sample(Some("node-1")).await.unwrap();
    let lo = fleet.lo.as_ref().unwrap();
    let online = || {
        lo.nodes()
            .into_iter()
            .find(|(d, _)| d.to_string() == "site-1/node-1")
            .is_some_and(|(_, online)| online)
    };
    assert!(online());
    let (code, revoked) = fleet
        .post("/api/v1/sites/site-1/revocations", json!({}))
        .await
        .unwrap();
    assert_eq!(code, 201, "{revoked}");
    eventually("the EN to leave the revoked LO", LIMIT, || async {
        (!online()).then_some(())
    })
    .await;
    // It does not come back: every dial refuses the LO's certificate.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(!online(), "the EN took the revoked LO back");
    let kept = std::fs::read_to_string(tmp.path().join("en/node-1/lo-revoked-at")).unwrap();
    assert_eq!(kept, revoked["revoked_at"].as_str().unwrap());
    // Its workload runs on.
    let before = fleet.greetings("node-1", &id);
    eventually("the module to greet on", LIMIT, || async {
        (fleet.greetings("node-1", &id) > before).then_some(())
    })
    .await;
    fleet.shutdown().await;
}

/// The revocation status answers only the holder of a certificate of this CA and its key:
/// a certificate of another CA, or a genuine one with a proof made by another key, gets 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_revocation_status_answers_only_the_holder_of_a_certificate() {
    use base64::Engine;
    use rcgen::SigningKey;
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start_with_co(tmp.path(), "site-1", &["node-1"], |c| c.grpc_tls = true)
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let en = eos_adapter_pki::Credentials::load(&tmp.path().join("en/node-1/tls"))
        .unwrap()
        .unwrap();
    let ask = |certificate: String, key_pem: String| {
        let fleet = &fleet;
        async move {
            let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
            let proof = key.sign(certificate.as_bytes()).unwrap();
            fleet
                .http
                .post(fleet.url("/api/v1/revocation-status"))
                .json(&json!({
                    "certificate": certificate,
                    "proof": base64::engine::general_purpose::STANDARD.encode(proof),
                }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        ask(en.certificate_pem.clone(), en.key_pem.clone()).await,
        200
    );
    // A genuine certificate, signed for by a key that is not its own.
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    assert_eq!(ask(en.certificate_pem.clone(), other).await, 401);
    // A certificate of another CA naming the same EN.
    let rogue_ca =
        eos_adapter_pki::Authority::open_or_create(&tmp.path().join("rogue-ca")).unwrap();
    let dir = tmp.path().join("rogue");
    let csr = eos_adapter_pki::Credentials::request(&dir, &[]).unwrap();
    let rogue = rogue_ca
        .issue(
            &csr,
            &eos_adapter_pki::Identity {
                tenant: "default".into(),
                site: "site-1".into(),
                node: Some("node-1".into()),
            },
            &[],
            1,
        )
        .unwrap();
    let rogue_key = std::fs::read_to_string(dir.join("key.pem")).unwrap();
    assert_eq!(ask(rogue.certificate_pem, rogue_key).await, 401);
    fleet.shutdown().await;
}
