//! Benchmark: the CO's event log fanned out to many live readers over server-sent events.
//! 100 subscribers (`EOS_BENCH_SUBSCRIBERS`) hold `GET /api/v1/events` open while the control
//! plane commits 2,000 changes (`EOS_BENCH_EVENTS`: a site connecting and disconnecting in
//! turn, each an event committed to the log on SQLite). Reports the commit rate, the delivery
//! rate (events × subscribers per second, until the last subscriber has the last event) and
//! the delivery latency from each commit to each subscriber (p50, p95, p99), as JSON.
//! Run: `cargo bench -p eos-tests --bench sse_fanout`.

use eos_domain::ids::SiteId;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Reads one SSE stream until `count` events came; returns (event number, arrival) of each.
async fn subscribe(
    client: reqwest::Client,
    url: String,
    count: usize,
    ready: tokio::sync::mpsc::Sender<()>,
) -> Vec<(u64, Instant)> {
    let mut r = client.get(&url).send().await.expect("the stream opens");
    ready.send(()).await.ok();
    let (mut text, mut seen) = (String::new(), Vec::with_capacity(count));
    while seen.len() < count {
        let Some(chunk) = r.chunk().await.expect("the stream reads") else {
            break;
        };
        let now = Instant::now();
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            if let Some(id) = block.lines().find_map(|l| l.strip_prefix("id:")) {
                seen.push((id.trim().parse().expect("a number"), now));
            }
        }
    }
    seen
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let subscribers = eos_tests::bench::env_number("EOS_BENCH_SUBSCRIBERS", 100);
    let events = eos_tests::bench::env_number("EOS_BENCH_EVENTS", 2000);
    let tmp = tempfile::tempdir()?;
    let co = eos_tests::bench::start_co(tmp.path(), None).await?;
    let url = format!("http://{}/api/v1/events?kind=site", co.http_addr);
    let client = eos_tests::authorized_client(&co.admin_token()?)?;
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel(subscribers);
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            tokio::spawn(subscribe(
                client.clone(),
                url.clone(),
                events,
                ready_tx.clone(),
            ))
        })
        .collect();
    for _ in 0..subscribers {
        ready.recv().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let site = SiteId::parse("bench-site").expect("a site id");
    let committed: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let start = Instant::now();
    let mut connected = false;
    for _ in 0..events {
        connected = !connected;
        co.control.site_seen(&site, connected).await?;
        let at = Instant::now();
        let id = co.control.last_event_id().await?;
        committed.lock().expect("the map").insert(id, at);
    }
    let commit_s = start.elapsed().as_secs_f64();
    let mut latencies = Vec::with_capacity(events * subscribers);
    let mut last = start;
    for reader in readers {
        let seen = reader.await?;
        anyhow::ensure!(
            seen.len() == events,
            "a subscriber got {} events of {events}",
            seen.len()
        );
        let committed = committed.lock().expect("the map");
        for (id, at) in seen {
            last = last.max(at);
            if let Some(c) = committed.get(&id) {
                latencies.push(at.saturating_duration_since(*c));
            }
        }
    }
    let total_s = last.duration_since(start).as_secs_f64();
    latencies.sort();
    co.shutdown().await;
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "benchmark": "sse_fanout",
            "database": "sqlite",
            "subscribers": subscribers,
            "events": events,
            "commits_per_s": events as f64 / commit_s,
            "deliveries_per_s": (events * subscribers) as f64 / total_s,
            "latency_ms": {
                "p50": quantile(&latencies, 0.5),
                "p95": quantile(&latencies, 0.95),
                "p99": quantile(&latencies, 0.99),
            },
        }))?
    );
    Ok(())
}
