//! `edgectl` against a running fleet: device rows carry resource use from heartbeats, a device
//! shows its drivers, a site's event log lists what happened there, and unknown names are
//! readable errors.

use eos_tests::{CRASHY_APP, Fleet, LIMIT, eventually};
use std::process::Command;

fn edgectl(fleet: &Fleet, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgectl"))
        .arg("--server")
        .arg(format!("http://{}", fleet.co().http_addr))
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
    for column in ["ID", "ONLINE", "LOAD", "MEMORY", "WORKLOADS"] {
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
    // One device with its drivers: the built-in wasm and, with the engine the test services
    // start, the built-in oci driver.
    let (ok, shown, err) = edgectl(&fleet, &["device", "show", "site-1/node-1"]);
    assert!(ok, "{err}");
    let drivers: Vec<&str> = shown
        .lines()
        .skip_while(|l| !l.starts_with("RUNTIME"))
        .skip(1)
        .collect();
    assert!(
        drivers
            .iter()
            .any(|l| l.split_whitespace().eq(["wasm", "built-in"])),
        "{shown}"
    );
    assert!(
        drivers
            .iter()
            .any(|l| l.split_whitespace().eq(["oci", "built-in"])),
        "{shown}"
    );
    let (ok, _, err) = edgectl(&fleet, &["device", "show", "site-1/nowhere"]);
    assert!(!ok && err.contains("no device site-1/nowhere"), "{err}");

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
