//! kill -9 while deploying: a CO, an LO and two ENs run as real processes. During a stream of
//! deployments one of them is killed with SIGKILL at a random moment and started again, over and
//! over. In the end every deployment is installed, each workload runs on exactly one EN, and the
//! CO's status matches where the workloads actually run. The seed of the random choices is
//! printed; `EOS_CRASH_SEED` replays a run, `EOS_CRASH_DEPLOYMENTS` sets how many (default 200).

use eos_tests::processes::{ProcessFleet, START_LIMIT, send};
use eos_tests::{eventually, repo_root};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Generous on purpose: this bounds a hang, it does not measure speed (the run prints the time).
const CONVERGE_LIMIT: Duration = Duration::from_secs(300);

/// A small deterministic generator (xorshift), so a failing run can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_deployment_converges_when_tiers_are_killed_at_random() {
    let n: usize = std::env::var("EOS_CRASH_DEPLOYMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let seed: u64 = std::env::var("EOS_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test: seed {seed} (EOS_CRASH_SEED replays it), {n} deployments");
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet =
        ProcessFleet::start(tmp.path(), env!("CARGO_BIN_EXE_eos-node"), "EOS_CRASH_LOG");
    let http = fleet.http.clone();
    let http_addr = fleet.http_addr.clone();
    let api = |path: &str| format!("http://{http_addr}/api/v1{path}");
    eventually("both ENs online", START_LIMIT, || async {
        let (code, v) = send(http.get(api("/devices"))).await.ok()?;
        let online = v.as_array()?.iter().filter(|d| d["online"] == true).count();
        (code == 200 && online == 2).then_some(())
    })
    .await;
    let sample = repo_root().join("config/apps/hello-wasm");
    let (code, body) = send(
        http.post(api("/apps"))
            .json(&json!({"source": sample.display().to_string()})),
    )
    .await
    .unwrap();
    assert_eq!(code, 201, "{body}");

    // Deploy n times; every 5 to 15 deployments, kill one tier at a random moment and restart it.
    let mut created = 0usize;
    let mut kills = [0usize; 4];
    let mut next_kill = 5 + rng.below(10) as usize;
    while created < n {
        match send(
            http.post(api("/deployments"))
                .json(&json!({"app_id": "com-eos-hello-wasm", "site": "site-1"})),
        )
        .await
        {
            Ok((201, _)) => created += 1,
            // The CO is down or was killed mid-request; it will be back.
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        if created >= next_kill {
            next_kill = created + 5 + rng.below(10) as usize;
            let victim = rng.below(4) as usize;
            tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
            fleet.tiers[victim].kill();
            kills[victim] += 1;
            tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
            fleet.tiers[victim].start();
        }
    }
    eprintln!(
        "crash test: kills co={} lo={} en-1={} en-2={}",
        kills[0], kills[1], kills[2], kills[3]
    );

    // Everything converges: every deployment the CO has is installed on exactly one EN, and
    // the CO says so for the EN where the module really runs.
    let converged = Instant::now();
    let deployments = loop {
        let all = match send(http.get(api("/deployments"))).await {
            Ok((200, Value::Array(all))) => all,
            _ => Vec::new(),
        };
        if all.len() >= n && all.iter().all(|d| d["state"] == "installed") {
            break all;
        }
        if converged.elapsed() > CONVERGE_LIMIT {
            let stuck: Vec<String> = all
                .iter()
                .filter(|d| d["state"] != "installed")
                .map(|d| format!("{} {} {}", d["id"], d["phase"], d["state"]))
                .collect();
            // The log lines about the first stuck deployment, else the last lines of each tier.
            let first = all
                .iter()
                .find(|d| d["state"] != "installed")
                .and_then(|d| d["id"].as_str())
                .unwrap_or("-")
                .to_owned();
            let logs: Vec<String> = fleet
                .tiers
                .iter()
                .filter_map(|t| t.process.as_ref().map(|p| (t.name, p.lines())))
                .flat_map(|(name, lines)| {
                    let about: Vec<_> = lines
                        .iter()
                        .filter(|(_, l)| l.contains(&first))
                        .cloned()
                        .collect();
                    let pick = if about.is_empty() { lines } else { about };
                    pick.into_iter()
                        .rev()
                        .take(15)
                        .map(move |(_, l)| format!("{name}: {l}"))
                })
                .collect();
            let view = send(http.get(api(&format!("/deployments/{first}"))))
                .await
                .map(|(_, v)| v["devices"].to_string())
                .unwrap_or_default();
            panic!(
                "{} of {} deployments not installed after {CONVERGE_LIMIT:?} (seed {seed}):\n{}\n\
                 {first}: CO devices {view}; runs on {:?}\nlog lines:\n{}",
                stuck.len(),
                all.len(),
                stuck.join("\n"),
                fleet.copies(&first, "hello"),
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "crash test: {} deployments installed {:?} after the last kill",
        deployments.len(),
        converged.elapsed()
    );
    for d in &deployments {
        let id = d["id"].as_str().unwrap();
        let settle = Instant::now();
        let view = loop {
            let view = send(http.get(api(&format!("/deployments/{id}"))))
                .await
                .map(|(_, v)| v)
                .unwrap_or(Value::Null);
            let installed: Vec<String> = view["devices"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["state"] == "installed")
                .map(|s| s["device_id"].as_str().unwrap_or("").to_owned())
                .collect();
            let runs_on = fleet.copies(id, "hello");
            if installed.len() == 1 && runs_on == installed {
                break view;
            }
            assert!(
                settle.elapsed() < CONVERGE_LIMIT,
                "deployment {id} (seed {seed}): the CO says installed on {installed:?}, \
                 the module runs on {runs_on:?}; devices: {}",
                view["devices"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(view["state"], "installed", "{view}");
    }
    fleet.kill_all();
}
