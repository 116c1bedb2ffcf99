//! Benchmark: an operator's client walks the device list of a large fleet page by page through
//! the CO's REST API (`GET /api/v1/devices?limit=1000`, following `Link: rel="next"`), on the
//! embedded SQLite database and on PostgreSQL. 100,000 devices by default, stored straight
//! into the CO's database first. Reports the time per page (p50, p99, max) over every page of
//! `EOS_BENCH_WALKS` walks (default 3), and the whole walk, as one JSON object; the ratio of
//! PostgreSQL to SQLite comes from the same run. Then the same walks with a label selector
//! (`label=line=3`, a tenth of the devices), to show what selecting costs per page.
//!
//! Needs the test PostgreSQL server (`bash config/services.sh`).
//! Run: `cargo bench -p eos-tests --bench list_pages` (`EOS_BENCH_DEVICES` to change N).

use eos_adapter_sql::testing::TestDatabase;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Seeds `n` devices into `db`, starts a CO on it and walks the list `walks` times.
async fn measure(db: &TestDatabase, n: usize, walks: usize) -> anyhow::Result<Value> {
    let seeding = Instant::now();
    let sites: Vec<String> = (0..100).map(|s| format!("site-{s:03}")).collect();
    let sites: Vec<&str> = sites.iter().map(String::as_str).collect();
    eos_tests::seed::devices(&db.url, n, &sites).await;
    let seeded_s = seeding.elapsed().as_secs_f64();
    let tmp = tempfile::tempdir()?;
    let co = eos_tests::bench::start_co(tmp.path(), Some(db.url.clone())).await?;
    let http = eos_tests::authorized_client(&co.admin_token()?)?;
    let base = format!("http://{}", co.http_addr);
    let all = walk(&http, &base, "", walks, n).await?;
    let selected = (0..n).filter(|i| i % 10 == 3).count();
    let labelled = walk(&http, &base, "&label=line%3D3", walks, selected).await?;
    co.shutdown().await;
    let mut out = all;
    out["devices"] = json!(n);
    out["seed_s"] = json!(seeded_s);
    out["label_line_3"] = labelled;
    Ok(out)
}

/// Walks `/api/v1/devices?limit=1000{filter}` page by page `walks` times, expecting `expect`
/// devices each time: the time per page (p50, p99, max) and per walk.
async fn walk(
    http: &reqwest::Client,
    base: &str,
    filter: &str,
    walks: usize,
    expect: usize,
) -> anyhow::Result<Value> {
    let n = expect;
    let mut pages = Vec::new();
    let mut walk_ms = Vec::new();
    for _ in 0..walks {
        let walk = Instant::now();
        let mut url = format!("{base}/api/v1/devices?limit=1000{filter}");
        let mut seen = 0;
        loop {
            let start = Instant::now();
            let r = http.get(&url).send().await?;
            anyhow::ensure!(r.status() == 200, "{url}: {}", r.status());
            let next = r
                .headers()
                .get("link")
                .and_then(|l| l.to_str().ok())
                .and_then(|l| l.trim_start_matches('<').split('>').next())
                .map(|target| format!("{base}{target}"));
            let page: Vec<Value> = r.json().await?;
            pages.push(start.elapsed());
            seen += page.len();
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        anyhow::ensure!(seen == n, "walked {seen} devices of {n}");
        walk_ms.push(walk.elapsed().as_secs_f64() * 1000.0);
    }
    pages.sort();
    Ok(json!({
        "matched": expect,
        "pages_per_walk": pages.len() / walks,
        "page_ms": {
            "p50": quantile(&pages, 0.5),
            "p99": quantile(&pages, 0.99),
            "max": quantile(&pages, 1.0),
        },
        "walk_ms": walk_ms,
    }))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> anyhow::Result<()> {
    let n = eos_tests::bench::env_number("EOS_BENCH_DEVICES", 100_000);
    let walks = eos_tests::bench::env_number("EOS_BENCH_WALKS", 3);
    let sqlite = TestDatabase::sqlite();
    let on_sqlite = measure(&sqlite, n, walks).await?;
    let postgres = TestDatabase::postgres().await;
    let on_postgres = measure(&postgres, n, walks).await?;
    let ratio = on_postgres["page_ms"]["p50"].as_f64().unwrap_or(0.0)
        / on_sqlite["page_ms"]["p50"].as_f64().unwrap_or(1.0);
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "benchmark": "list_pages",
            "sqlite": on_sqlite,
            "postgres": on_postgres,
            "page_p50_postgres_over_sqlite": ratio,
        }))?
    );
    Ok(())
}
