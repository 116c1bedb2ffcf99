//! Benchmark: deploy latency from the REST call to `installed` at the CO, over 100 deployments
//! of the sample WASM app on one site with one EN. Prints p50/p99 as JSON.
//! Run: `cargo bench -p eos-tests --bench deploy_latency` (`EOS_BENCH_DEPLOYMENTS` to change N).

use eos_tests::{Fleet, eventually, repo_root};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let n = eos_tests::bench::env_number("EOS_BENCH_DEPLOYMENTS", 100);
    let tmp = tempfile::tempdir()?;
    let fleet = Fleet::start(tmp.path(), "bench", &["node-1"]).await?;
    eventually("the EN", Duration::from_secs(60), || async {
        fleet
            .get("/api/v1/devices")
            .await
            .ok()
            .filter(|d| d.as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let (code, body) = fleet
        .post(
            "/api/v1/apps",
            json!({"source": repo_root().join("config/apps/hello-wasm").display().to_string()}),
        )
        .await?;
    anyhow::ensure!(code == 201, "add app: {body}");
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let (code, created) = fleet
            .post(
                "/api/v1/deployments",
                json!({"app_id": "com-eos-hello-wasm", "site": "bench"}),
            )
            .await?;
        anyhow::ensure!(code == 201, "deploy: {created}");
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        eventually("installed", Duration::from_secs(60), || async {
            let d = fleet.get(&format!("/api/v1/deployments/{id}")).await.ok()?;
            (d["state"] == "installed").then_some(())
        })
        .await;
        samples.push(start.elapsed());
        let _ = fleet
            .http
            .delete(fleet.url(&format!("/api/v1/deployments/{id}")))
            .send()
            .await?;
    }
    samples.sort();
    let pct = |p: f64| {
        samples[((samples.len() as f64 * p).ceil() as usize)
            .saturating_sub(1)
            .min(samples.len() - 1)]
        .as_secs_f64()
            * 1000.0
    };
    println!(
        "{}",
        json!({"benchmark": "deploy_latency", "deployments": n, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0)})
    );
    fleet.shutdown().await;
    Ok(())
}
