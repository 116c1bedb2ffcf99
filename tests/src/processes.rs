//! A whole EOS as real processes (`eos-node`): a CO, the LO of `site-1` and ENs on `node-1` and
//! `node-2`, each of which can be killed with SIGKILL, started again on the same data and ports,
//! or started with a failpoint armed.

use eos_test_process::Daemon;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

/// How long a tier may take to start or to exit.
pub const START_LIMIT: Duration = Duration::from_secs(60);

/// One tier: its name (`co`, `lo`, `en-1`, `en-2`), its config file and its process.
pub struct Tier {
    pub name: &'static str,
    config: PathBuf,
    binary: PathBuf,
    log_var: &'static str,
    pub process: Option<Daemon>,
}

impl Tier {
    /// Starts the tier; returns the line it prints once it listens.
    pub fn start(&mut self) -> String {
        self.start_with(&[])
    }

    /// Starts the tier with extra environment variables (a failpoint, say).
    pub fn start_with(&mut self, env: &[(&str, &str)]) -> String {
        let mut cmd = Command::new(&self.binary);
        cmd.arg(self.name.split('-').next().unwrap())
            .arg(&self.config)
            .env(
                "RUST_LOG",
                std::env::var(self.log_var).unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().copied());
        let process = Daemon::spawn(cmd);
        let banner = process.wait_for_line(START_LIMIT, |l| {
            l.starts_with("co ") || l.starts_with("lo ") || l == "en started"
        });
        self.process = Some(process);
        banner
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            let pid = p.id().to_string();
            let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
            assert!(status.success());
            p.wait(START_LIMIT);
        }
    }

    /// Waits until the process ends by itself (a failpoint aborted it); returns its status and
    /// what it wrote.
    pub fn wait_for_exit(&mut self, limit: Duration) -> (ExitStatus, String) {
        let mut p = self.process.take().expect("the tier runs");
        let status = p.wait(limit);
        let lines = p.lines().into_iter().map(|(_, l)| l).collect::<Vec<_>>();
        (status, lines.join("\n"))
    }
}

/// The four tiers, in the order co, lo, en-1, en-2.
pub struct ProcessFleet {
    pub dir: PathBuf,
    pub tiers: Vec<Tier>,
    pub http_addr: String,
    pub http: reqwest::Client,
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

impl ProcessFleet {
    /// Starts every tier in `dir` with the `eos-node` binary `node` (an integration test has it
    /// as `env!("CARGO_BIN_EXE_eos-node")`), on free loopback ports that later starts reuse.
    /// `log_var` names the environment variable that sets the tiers' `RUST_LOG` (default `warn`).
    pub fn start(dir: &Path, node: &str, log_var: &'static str) -> Self {
        let co_config = dir.join("co.toml");
        let co_data = dir.join("co");
        let co_toml = |http: &str, grpc: &str| {
            format!(
                // These fleets test processes dying and coming back, over plain links.
                "data_dir = {:?}\nhttp_listen = {http:?}\ngrpc_listen = {grpc:?}\ngrpc_tls = false\n",
                co_data.display().to_string()
            )
        };
        write(&co_config, co_toml("127.0.0.1:0", "127.0.0.1:0"));
        let tier = |name, config: &Path| Tier {
            name,
            config: config.to_owned(),
            binary: PathBuf::from(node),
            log_var,
            process: None,
        };
        let mut co = tier("co", &co_config);
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
        let mut lo = tier("lo", &lo_config);
        let banner = lo.start();
        let lo_addr = field(&banner, "listen").to_owned();
        write(&lo_config, lo_toml(&lo_addr));

        let mut tiers = vec![co, lo];
        for (name, host) in [("en-1", "node-1"), ("en-2", "node-2")] {
            let config = dir.join(format!("{host}.toml"));
            write(
                &config,
                format!(
                    "device_id = \"site-1/{host}\"\nlo_endpoint = \"http://{lo_addr}\"\n\
                     data_dir = {:?}\nheartbeat_secs = 1\nhealth_check_secs = 1\n",
                    dir.join("en").join(host).display().to_string()
                ),
            );
            let mut en = tier(name, &config);
            en.start();
            tiers.push(en);
        }
        // The CO wrote its bootstrap admin token before it printed its banner.
        let token = std::fs::read_to_string(co_data.join("admin.token"))
            .expect("the CO's bootstrap admin token");
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {}", token.trim()).parse().unwrap(),
        );
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .default_headers(headers)
            .build()
            .unwrap();
        Self {
            dir: dir.to_owned(),
            tiers,
            http_addr,
            http,
        }
    }

    /// The tier named `name`.
    pub fn tier(&mut self, name: &str) -> &mut Tier {
        self.tiers
            .iter_mut()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no tier {name}"))
    }

    pub fn api(&self, path: &str) -> String {
        format!("http://{}/api/v1{path}", self.http_addr)
    }

    /// Hosts (`site-1/<host>`) whose EN has a folder for the component: where it runs.
    pub fn copies(&self, deployment: &str, component: &str) -> Vec<String> {
        ["node-1", "node-2"]
            .into_iter()
            .filter(|h| {
                self.dir
                    .join("en")
                    .join(h)
                    .join("workloads")
                    .join(deployment)
                    .join(component)
                    .exists()
            })
            .map(|h| format!("site-1/{h}"))
            .collect()
    }

    /// The last `n` lines each running tier wrote, led by its name: what a failing test shows.
    pub fn tails(&self, n: usize) -> String {
        let mut out = String::new();
        for tier in &self.tiers {
            let lines = tier.process.as_ref().map(|p| p.lines()).unwrap_or_default();
            out.push_str(&format!("--- {} ({} lines)\n", tier.name, lines.len()));
            for (_, line) in &lines[lines.len().saturating_sub(n)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    pub fn kill_all(&mut self) {
        for tier in &mut self.tiers {
            tier.kill();
        }
    }
}

/// Sends a request; `(status, JSON body or Null)`, or the transport error.
pub async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Value), String> {
    let response = request.send().await.map_err(|e| e.to_string())?;
    let code = response.status().as_u16();
    Ok((code, response.json().await.unwrap_or(Value::Null)))
}
