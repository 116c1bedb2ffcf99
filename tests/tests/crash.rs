//! kill -9 while deploying: a CO, an LO and two ENs run as real processes. During a stream of
//! deployments one of them is killed with SIGKILL at a random moment and started again, over and
//! over. In the end every deployment is installed, each workload runs on exactly one EN, and the
//! CO's status matches where the workloads actually run. The seed of the random choices is
//! printed; `EOS_CRASH_SEED` replays a run, `EOS_CRASH_DEPLOYMENTS` sets how many (default 200).

use eos_test_process::Daemon;
use eos_tests::{eventually, repo_root};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const START_LIMIT: Duration = Duration::from_secs(60);
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

struct Tier {
    name: &'static str,
    config: PathBuf,
    process: Option<Daemon>,
}

impl Tier {
    fn start(&mut self) -> String {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_eos-node"));
        cmd.arg(self.name.split('-').next().unwrap())
            .arg(&self.config)
            .env(
                "RUST_LOG",
                std::env::var("EOS_CRASH_LOG").unwrap_or_else(|_| "warn".into()),
            );
        let process = Daemon::spawn(cmd);
        let banner = process.wait_for_line(START_LIMIT, |l| {
            l.starts_with("co ") || l.starts_with("lo ") || l == "en started"
        });
        self.process = Some(process);
        banner
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let pid = p.id().to_string();
            let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
            assert!(status.success());
            p.wait(START_LIMIT);
        }
    }
}

fn field<'a>(banner: &'a str, key: &str) -> &'a str {
    banner
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {banner:?}"))
}

fn write(path: &Path, text: String) {
    std::fs::write(path, text).unwrap();
}

async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let code = response.status().as_u16();
    Ok((code, response.json().await.unwrap_or(Value::Null)))
}

/// Component folders of deployment `id` across the ENs: where its module runs.
fn copies(dir: &Path, id: &str) -> Vec<String> {
    ["node-1", "node-2"]
        .into_iter()
        .filter(|h| {
            dir.join("en")
                .join(h)
                .join("workloads")
                .join(id)
                .join("hello")
                .exists()
        })
        .map(|h| format!("site-1/{h}"))
        .collect()
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
    let dir = tmp.path();

    // The CO first, on free ports; later starts reuse the ports it got.
    let co_config = dir.join("co.toml");
    let co_data = dir.join("co");
    let co_toml = |http: &str, grpc: &str| {
        format!(
            "data_dir = {:?}\nhttp_listen = {http:?}\ngrpc_listen = {grpc:?}\n",
            co_data.display().to_string()
        )
    };
    write(&co_config, co_toml("127.0.0.1:0", "127.0.0.1:0"));
    let mut co = Tier {
        name: "co",
        config: co_config.clone(),
        process: None,
    };
    let banner = co.start();
    let (http_addr, grpc_addr) = (
        field(&banner, "http").to_owned(),
        field(&banner, "grpc").to_owned(),
    );
    write(&co_config, co_toml(&http_addr, &grpc_addr));

    let lo_config = dir.join("lo.toml");
    let lo_toml = |listen: &str| {
        format!(
            "site_id = \"site-1\"\nco_endpoint = \"http://{grpc_addr}\"\n\
             deployments_repo = {:?}\nlisten = {listen:?}\ndata_dir = {:?}\n\
             poll_secs = 1\nen_grace_secs = 3\n",
            co_data.join("deployments.git").display().to_string(),
            dir.join("lo").display().to_string(),
        )
    };
    write(&lo_config, lo_toml("127.0.0.1:0"));
    let mut lo = Tier {
        name: "lo",
        config: lo_config.clone(),
        process: None,
    };
    let banner = lo.start();
    let lo_addr = field(&banner, "listen").to_owned();
    write(&lo_config, lo_toml(&lo_addr));

    let mut tiers = vec![co, lo];
    for host in ["node-1", "node-2"] {
        let config = dir.join(format!("{host}.toml"));
        write(
            &config,
            format!(
                "device_id = \"site-1/{host}\"\nlo_endpoint = \"http://{lo_addr}\"\n\
                 data_dir = {:?}\nheartbeat_secs = 1\n",
                dir.join("en").join(host).display().to_string()
            ),
        );
        let mut en = Tier {
            name: if host == "node-1" { "en-1" } else { "en-2" },
            config,
            process: None,
        };
        en.start();
        tiers.push(en);
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
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
            tiers[victim].kill();
            kills[victim] += 1;
            tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
            tiers[victim].start();
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
            let logs: Vec<String> = tiers
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
                copies(dir, &first),
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
            let runs_on = copies(dir, id);
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
    for tier in &mut tiers {
        tier.kill();
    }
}
