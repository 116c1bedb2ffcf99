//! Benchmark: an LO comes back to its CO with a backlog of buffered reports in its durable outbox
//! (100,000 by default: one device report for each of as many devices, so compaction keeps them
//! all) and drains it. Measures the time from the LO's start until the CO's cursor has applied
//! the last report, and prints it with the rate as JSON.
//! Run: `cargo bench -p eos-tests --bench outbox_drain` (`EOS_BENCH_EVENTS` to change N).

use eos_adapter_localstore::DurableOutbox;
use eos_domain::ids::SiteId;
use eos_lo::{Lo, LoConfig};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let n = eos_tests::bench::env_number("EOS_BENCH_EVENTS", 100_000) as u64;
    let tmp = tempfile::tempdir()?;
    let co = eos_tests::bench::start_co(tmp.path(), None).await?;

    // The backlog, written in the LO's own journal format while the LO is down.
    let capabilities = std::fs::read_to_string(
        eos_tests::repo_root().join("tests/fixtures/bench-capabilities.json"),
    )?;
    let fill = Instant::now();
    {
        let mut outbox = DurableOutbox::<Value>::open(tmp.path().join("lo/outbox/outbox.journal"))?;
        let mut batch = Vec::new();
        for i in 0..n {
            let device = format!("bench/node-{i}");
            let caps = capabilities.replace("DEVICE_ID", &device);
            batch.push((
                Some(format!("device/{device}")),
                json!({"kind": "device", "device_id": device, "capabilities_json": caps, "online": true}),
            ));
            if batch.len() == 10_000 {
                outbox.push(std::mem::take(&mut batch))?;
            }
        }
        outbox.push(batch)?;
    }
    let fill_ms = fill.elapsed().as_millis();

    let claim = eos_tests::claim_token(&co, "bench", None).await?;
    let start = Instant::now();
    let lo = Lo::start(LoConfig {
        site_id: "bench".into(),
        tenant: eos_domain::ids::DEFAULT_TENANT.into(),
        co_endpoint: format!("http://{}", co.grpc_addr),
        deployments_repo: tmp.path().join("co/deployments.git").display().to_string(),
        listen: "127.0.0.1:0".into(),
        data_dir: tmp.path().join("lo"),
        poll_secs: 3600,
        en_grace_secs: 15,
        claim_token: Some(claim),
        enrol_url: Some(format!("http://{}", co.http_addr)),
        ..LoConfig::default()
    })
    .await?;
    let site = SiteId::parse("bench")?;
    loop {
        let applied = co
            .control
            .uplink_cursor(&site)
            .await?
            .map_or(0, |c| c.applied_seq);
        if applied >= n {
            break;
        }
        anyhow::ensure!(
            start.elapsed() < Duration::from_secs(1800),
            "only {applied} of {n} reports applied after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain = start.elapsed();
    let cursor = co.control.uplink_cursor(&site).await?.expect("cursor");
    anyhow::ensure!(cursor.applied == n, "applied {} of {n}", cursor.applied);
    println!(
        "{}",
        json!({
            "bench": "outbox_drain",
            "events": n,
            "fill_ms": fill_ms,
            "drain_ms": drain.as_millis(),
            "events_per_sec": (n as f64 / drain.as_secs_f64()).round(),
            "duplicates_skipped": cursor.duplicates,
        })
    );
    lo.shutdown().await;
    co.shutdown().await;
    Ok(())
}
