//! `edgectl` against a running fleet: device rows carry resource use from heartbeats, a device
//! shows its drivers, a site's event log lists what happened there, logs and resource use of
//! a deployment come live from its EN, device models and compatibility verdicts, tenants and
//! users, cordon, drain and uncordon, site labels and time zones, and unknown names are
//! readable errors.

use eos_tests::{CRASHY_APP, Fleet, LIMIT, SAMPLE_APP, WEB_OCI_APP, eventually, repo_root};
use std::process::Command;

fn edgectl(fleet: &Fleet, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgectl"))
        .arg("--server")
        .arg(format!("http://{}", fleet.co().http_addr))
        .env("EOS_TOKEN", fleet.co().admin_token().unwrap())
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn devices_show_resource_use_and_sites_their_events() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;

    // Heartbeats carry load and memory up to the CO.
    let table = eventually("resource use in the device list", LIMIT, || async {
        let (ok, out, _) = edgectl(&fleet, &["device", "list"]);
        (ok && out.contains("GiB")).then_some(out)
    })
    .await;
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for column in ["ID", "STATUS", "LOAD", "MEMORY", "WORKLOADS"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        lines.next().unwrap().starts_with("site-1/node-1"),
        "{table}"
    );
    let (ok, json, _) = edgectl(&fleet, &["-o", "json", "device", "list"]);
    assert!(ok);
    let devices: serde_json::Value = serde_json::from_str(&json).unwrap();
    let usage = &devices[0]["usage"];
    assert!(usage["memory_total_bytes"].as_u64().unwrap() > 0, "{usage}");
    assert!(
        usage["memory_used_bytes"].as_u64() <= usage["memory_total_bytes"].as_u64(),
        "{usage}"
    );
    assert!(
        devices[0].get("memory").is_none(),
        "table columns stay out of JSON"
    );
    // One device with its drivers and the versions their fingerprints found: the built-in wasm
    // and, with the engine the test services start, the built-in oci driver.
    let (ok, shown, err) = edgectl(&fleet, &["device", "show", "site-1/node-1"]);
    assert!(ok, "{err}");
    let drivers: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.starts_with("RUNTIME"))
        .skip(1)
        .collect();
    assert!(
        drivers.iter().any(|l| l.starts_with("wasm")
            && l.split_whitespace()
                .skip(1)
                .take(2)
                .eq(["built-in", "wasmtime"])),
        "{shown}"
    );
    assert!(
        drivers
            .iter()
            .any(|l| l.starts_with("oci ") && l.contains(" built-in ") && l.contains("(API 1.")),
        "{shown}"
    );
    let (ok, _, err) = edgectl(&fleet, &["device", "show", "site-1/nowhere"]);
    assert!(
        !ok && err.contains("404") && err.contains("device \"site-1/nowhere\" not found"),
        "{err}"
    );

    // A crash shows in the site's events.
    let id = fleet
        .create_deployment(CRASHY_APP, Some("node-1"))
        .await
        .unwrap();
    let flag = fleet.workload_data("node-1", &id, "crashy").join("crash");
    eventually("the workload to be installed", LIMIT, || async {
        (fleet.deployment(&id).await["state"] == "installed").then_some(())
    })
    .await;
    std::fs::write(&flag, b"now").unwrap();
    let events = eventually("the crash in the site's events", LIMIT, || async {
        let (ok, out, _) = edgectl(&fleet, &["site", "events", "site-1"]);
        (ok && out.contains("component-crashed")).then_some(out)
    })
    .await;
    assert!(events.starts_with("OBSERVED_AT"), "{events}");
    assert!(events.contains("exited with status 3"), "{events}");

    let (ok, _, err) = edgectl(&fleet, &["site", "events", "nowhere"]);
    assert!(!ok);
    assert!(err.contains("404") && err.contains("nowhere"), "{err}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logs_and_top_ask_the_device_running_a_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut fleet, id) = Fleet::one_node_with_sample(tmp.path()).await.unwrap();
    eventually("two greetings", LIMIT, || async {
        (fleet.greetings("node-1", &id) >= 2).then_some(())
    })
    .await;

    // The module's own output, through CO -> LO -> EN and back: the last two lines exactly.
    let (ok, out, err) = edgectl(&fleet, &["logs", &id, "-n", "2"]);
    assert!(ok, "{err}");
    assert_eq!(out, "hello from eos\nhello from eos\n");
    let (ok, out, _) = edgectl(&fleet, &["logs", &id, "--component", "hello", "-n", "1"]);
    assert!(ok);
    assert_eq!(out, "hello from eos\n");

    let (ok, top, err) = edgectl(&fleet, &["top", &id]);
    assert!(ok, "{err}");
    let mut rows = top.lines();
    let header = rows.next().unwrap();
    for column in ["DEVICE", "COMPONENT", "RUNTIME", "CPU", "MEMORY"] {
        assert!(header.contains(column), "{top}");
    }
    let row: Vec<&str> = rows.next().unwrap().split_whitespace().collect();
    assert_eq!(row[..3], ["site-1/node-1", "hello", "wasm"], "{top}");
    assert!(row[3].ends_with('%'), "cpu as a percentage: {top}");
    assert_eq!(
        row[4..6],
        ["64.0", "KiB"],
        "one page of linear memory: {top}"
    );
    let (ok, json, _) = edgectl(&fleet, &["-o", "json", "top", &id]);
    assert!(ok);
    let live: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(live[0]["components"][0]["memory_bytes"], 65536, "{live}");
    assert_eq!(
        live[0]["components"][0]["log"],
        serde_json::json!([]),
        "top asks for no lines"
    );

    // Bad questions are refused by the CO, naming what is wrong.
    let (ok, _, err) = edgectl(&fleet, &["logs", &id, "--component", "nope"]);
    assert!(!ok && err.contains("404") && err.contains("nope"), "{err}");
    let (ok, _, err) = edgectl(&fleet, &["logs", &id, "-n", "5000"]);
    assert!(
        !ok && err.contains("422") && err.contains("lines: 5000"),
        "{err}"
    );
    let (ok, _, err) = edgectl(&fleet, &["logs", "00000000-0000-4000-8000-000000000000"]);
    assert!(!ok && err.contains("404"), "{err}");

    // With the EN down, the answer says so instead of waiting for ever.
    fleet.stop_en(0).await;
    let err = eventually("the EN to be reported offline", LIMIT, || async {
        let (ok, _, err) = edgectl(&fleet, &["logs", &id]);
        (!ok && err.contains("offline")).then_some(err)
    })
    .await;
    assert!(err.contains("site-1/node-1"), "{err}");
    // And with the LO down too, the CO says the site is not connected.
    fleet.stop_lo().await;
    let err = eventually("the LO to be reported away", LIMIT, || async {
        let (ok, _, err) = edgectl(&fleet, &["logs", &id]);
        (!ok && err.contains("not connected")).then_some(err)
    })
    .await;
    assert!(err.contains("site-1"), "{err}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_longer_than_a_page_come_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    eos_tests::seed::devices(&fleet.database_url(), 1200, &["site-2"]).await;
    let (ok, json, err) = edgectl(&fleet, &["-o", "json", "device", "list"]);
    assert!(ok, "{err}");
    let devices: serde_json::Value = serde_json::from_str(&json).unwrap();
    let ids: Vec<&str> = devices
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1201, "two pages of the CO's, one list");
    assert_eq!(ids[0], "site-1/node-1");
    assert_eq!(ids[1200], "site-2/n001199");
}

/// Device models and compatibility from the command line: a model added from a YAML template,
/// the device list naming it, `app compat` one row per profile with exit status 1 when nothing
/// fits, and readable errors for bad templates and unknown models. Tenants and users too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn models_and_compatibility_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &["node-1"])
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let template = tmp.path().join("eos-en.yaml");
    let yaml = format!(
        "properties:\n  id: template\n  vendor: EOS\n  modelNumber: eos-en {}\n  serialNumber: '-'\n  cpus: [{{cores: 4, architecture: amd64}}]\n  memory: 8Gi\n  otelCollector: false\n  supportedRuntimes: [custom]\n  supportedDeploymentTypes: [custom]\nlabels:\n  eos.dev/runtimes: [wasm]\n",
        env!("CARGO_PKG_VERSION")
    );
    std::fs::write(&template, &yaml).unwrap();
    let broken = tmp.path().join("broken.yaml");
    std::fs::write(&broken, yaml.replace("  vendor: EOS\n", "")).unwrap();
    let file = |p: &std::path::Path| p.display().to_string();

    let (ok, _, err) = edgectl(
        &fleet,
        &["model", "add", "eos-en", "--capabilities", &file(&broken)],
    );
    assert!(!ok);
    assert!(
        err.contains("422") && err.contains("capabilities.properties"),
        "{err}"
    );
    let (ok, out, err) = edgectl(
        &fleet,
        &["model", "add", "eos-en", "--capabilities", &file(&template)],
    );
    assert!(ok, "{err}");
    assert!(out.contains("eos-en") && out.contains("EOS"), "{out}");
    let (ok, out, _) = edgectl(&fleet, &["model", "list"]);
    assert!(
        ok && out.lines().nth(1).unwrap_or_default().starts_with("eos-en"),
        "{out}"
    );
    let (_, out, _) = edgectl(&fleet, &["device", "list"]);
    let header = out.lines().next().unwrap();
    assert!(header.contains("MODEL"), "{out}");
    assert!(out.lines().nth(1).unwrap().contains(" eos-en "), "{out}");

    for app in [SAMPLE_APP.0, WEB_OCI_APP.0] {
        let (ok, _, err) = edgectl(
            &fleet,
            &["app", "add", &repo_root().join(app).display().to_string()],
        );
        assert!(ok, "{err}");
    }
    let (ok, out, err) = edgectl(
        &fleet,
        &["app", "compat", SAMPLE_APP.1, "--model", "eos-en"],
    );
    assert!(ok, "{err}");
    assert!(
        out.starts_with(&format!("{}@1.0.0 on model eos-en:", SAMPLE_APP.1)),
        "{out}"
    );
    assert!(out.contains("hello-wasm") && out.contains("true"), "{out}");
    let (ok, out, err) = edgectl(
        &fleet,
        &[
            "app",
            "compat",
            &format!("{}@1.0.0", WEB_OCI_APP.1),
            "--model",
            "eos-en",
        ],
    );
    assert!(!ok, "nothing fits: exit status 1");
    assert!(out.contains("no oci runtime"), "{out}");
    assert!(err.contains("no deployment profile"), "{err}");
    let (ok, _, err) = edgectl(
        &fleet,
        &["app", "compat", SAMPLE_APP.1, "--device", "site-1/node-1"],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = edgectl(&fleet, &["app", "compat", SAMPLE_APP.1]);
    assert!(!ok && err.contains("--model"), "{err}");
    let (ok, _, err) = edgectl(&fleet, &["app", "compat", SAMPLE_APP.1, "--model", "nope"]);
    assert!(!ok && err.contains("404") && err.contains("nope"), "{err}");

    let (ok, out, _) = edgectl(&fleet, &["model", "remove", "eos-en"]);
    assert!(ok && out.contains("removed device model eos-en"), "{out}");
    let (ok, _, err) = edgectl(&fleet, &["model", "remove", "eos-en"]);
    assert!(!ok && err.contains("404"), "{err}");

    // Tenants and users: created in one tenant, listed only there.
    let (ok, _, err) = edgectl(&fleet, &["tenant", "create", "globex", "--name", "Globex"]);
    assert!(ok, "{err}");
    let (ok, out, err) = edgectl(
        &fleet,
        &[
            "--tenant",
            "globex",
            "user",
            "add",
            "ops@globex.example",
            "--role",
            "operator",
        ],
    );
    assert!(ok && out.contains("operator"), "{out}{err}");
    let (_, globex_users, _) = edgectl(
        &fleet,
        &["--tenant", "globex", "-o", "json", "user", "list"],
    );
    let users: serde_json::Value = serde_json::from_str(&globex_users).unwrap();
    assert_eq!(users.as_array().unwrap().len(), 1, "{users}");
    let (_, default_users, _) = edgectl(&fleet, &["user", "list"]);
    assert!(
        !default_users.contains("ops@globex.example"),
        "{default_users}"
    );
    let id = users[0]["id"].as_str().unwrap();
    let (ok, out, err) = edgectl(&fleet, &["--tenant", "globex", "user", "remove", id]);
    assert!(ok && out.contains(id), "{err}");
    let (ok, _, err) = edgectl(&fleet, &["--tenant", "nobody", "user", "list"]);
    assert!(!ok && err.contains("404"), "{err}");

    // Cordon, drain and uncordon a device.
    let (ok, out, err) = edgectl(&fleet, &["device", "cordon", "site-1/node-1"]);
    assert!(
        ok && out.lines().nth(1).unwrap_or_default().contains("cordoned"),
        "{out}{err}"
    );
    let (_, out, _) = edgectl(&fleet, &["device", "show", "site-1/node-1"]);
    assert!(
        out.lines()
            .nth(1)
            .unwrap_or_default()
            .contains(" cordoned "),
        "{out}"
    );
    let (_, out, _) = edgectl(
        &fleet,
        &[
            "device",
            "list",
            "--status",
            "cordoned",
            "-l",
            "eos.dev/runtimes=wasm",
        ],
    );
    assert!(
        out.lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with("site-1/node-1"),
        "{out}"
    );
    let (_, out, _) = edgectl(&fleet, &["device", "list", "--status", "online"]);
    assert_eq!(out.lines().count(), 1, "only the header: {out}");
    let (ok, out, err) = edgectl(&fleet, &["-o", "json", "device", "drain", "site-1/node-1"]);
    assert!(ok, "{err}");
    let drained: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(drained["schedule"], "draining", "{drained}");
    let (ok, out, err) = edgectl(&fleet, &["device", "uncordon", "site-1/node-1"]);
    assert!(ok && out.contains("online"), "{out}{err}");
    let (ok, _, err) = edgectl(&fleet, &["device", "drain", "node-1"]);
    assert!(!ok && err.contains("not a device id (SITE/HOST)"), "{err}");

    // A site's labels and time zone.
    let (ok, out, err) = edgectl(
        &fleet,
        &[
            "site",
            "update",
            "site-1",
            "--label",
            "region=eu",
            "--label",
            "floor=2",
            "--time-zone",
            "Europe/Berlin",
        ],
    );
    assert!(ok, "{err}");
    let row = out.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains("Europe/Berlin") && row.contains("floor=2,region=eu"),
        "{out}"
    );
    let (ok, out, err) = edgectl(
        &fleet,
        &[
            "-o",
            "json",
            "site",
            "update",
            "site-1",
            "--unlabel",
            "floor",
            "--clear-time-zone",
        ],
    );
    assert!(ok, "{err}");
    let site: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(site["labels"], serde_json::json!({"region": "eu"}));
    assert!(site["time_zone"].is_null(), "{site}");
    let (ok, _, err) = edgectl(
        &fleet,
        &["site", "update", "site-1", "--time-zone", "Mars/Olympus"],
    );
    assert!(
        !ok && err.contains("time_zone: \"Mars/Olympus\" is not an IANA time zone"),
        "{err}"
    );
    let (ok, _, err) = edgectl(&fleet, &["site", "update", "site-1", "--label", "novalue"]);
    assert!(!ok && err.contains("is not KEY=VALUE"), "{err}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_security_policies_are_shown_set_and_turned_off() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(tmp.path(), "site-1", &[]).await.unwrap();
    let (ok, out, _) = edgectl(&fleet, &["policy", "show"]);
    assert!(ok && out.contains("signatures not required"), "{out}");

    // A file that is no public key is refused, naming the field; nothing changes.
    let bad = tmp.path().join("bad.pub");
    std::fs::write(&bad, "ssh-ed25519 AAAAC3Nza").unwrap();
    let (ok, _, err) = edgectl(
        &fleet,
        &["policy", "signatures", "--key", bad.to_str().unwrap()],
    );
    assert!(!ok && err.contains("public_keys[0]"), "{err}");
    let (_, out, _) = edgectl(&fleet, &["policy", "show"]);
    assert!(out.contains("signatures not required"), "{out}");

    let key = tmp.path().join("cosign.pub");
    std::fs::write(
        &key,
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAED5JJAdIy48arNTf8kRGSAIsbviBk\nKntOBLEfL+TxrVkYluB0VslQQxp7oDi8iOQwLkWAbesBOP9qEZsvPVtqIA==\n-----END PUBLIC KEY-----\n",
    )
    .unwrap();
    let (ok, out, err) = edgectl(
        &fleet,
        &["policy", "signatures", "--key", key.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("signatures required: by any of 1 public key(s)"),
        "{out}"
    );
    let (ok, json, _) = edgectl(&fleet, &["-o", "json", "policy", "show"]);
    assert!(ok);
    let policy: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(
        policy["signatures"]["public_keys"][0]
            .as_str()
            .unwrap()
            .contains("MFkwEwYH")
    );

    let (ok, out, _) = edgectl(&fleet, &["policy", "signatures", "--off"]);
    assert!(ok && out.contains("signatures not required"), "{out}");

    // Host mounts: none by default; a platform admin grants folders and takes them back.
    let (_, out, _) = edgectl(&fleet, &["policy", "show"]);
    assert!(out.contains("host mounts: none allowed"), "{out}");
    let (ok, out, err) = edgectl(&fleet, &["policy", "workload", "--host-path", "/srv/data"]);
    assert!(
        ok && out.contains("host mounts: under /srv/data"),
        "{out}{err}"
    );
    let (ok, _, err) = edgectl(&fleet, &["policy", "workload", "--host-path", "/proc"]);
    assert!(!ok && err.contains("hostPaths[0]"), "{err}");
    let (ok, out, _) = edgectl(&fleet, &["policy", "workload", "--none"]);
    assert!(ok && out.contains("none allowed"), "{out}");
    fleet.shutdown().await;
}
