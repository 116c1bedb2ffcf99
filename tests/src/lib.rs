//! Helpers for cross-crate tests: a whole EOS (CO, one LO, ENs) on loopback in one process.

use eos_co::{Co, CoConfig};
use eos_en::{En, EnConfig};
use eos_lo::{Lo, LoConfig};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The repository root (for sample apps and committed files).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub struct Fleet {
    pub co: Co,
    pub lo: Lo,
    pub ens: Vec<En>,
    pub dir: PathBuf,
    pub http: reqwest::Client,
}

impl Fleet {
    /// Starts a CO, the LO of `site` and one EN per host, all on free loopback ports.
    pub async fn start(dir: &Path, site: &str, hosts: &[&str]) -> anyhow::Result<Self> {
        let co = Co::start(CoConfig {
            data_dir: dir.join("co"),
            http_listen: "127.0.0.1:0".into(),
            grpc_listen: "127.0.0.1:0".into(),
            deployments_repo: None,
            database_url: None,
        })
        .await?;
        let lo = Lo::start(LoConfig {
            site_id: site.into(),
            co_endpoint: format!("http://{}", co.grpc_addr),
            deployments_repo: dir.join("co/deployments.git").display().to_string(),
            listen: "127.0.0.1:0".into(),
            data_dir: dir.join("lo"),
            poll_secs: 2,
        })
        .await?;
        let mut ens = Vec::new();
        for host in hosts {
            ens.push(
                En::start(EnConfig {
                    device_id: format!("{site}/{host}"),
                    lo_endpoint: format!("http://{}", lo.listen_addr),
                    data_dir: dir.join("en").join(host),
                    heartbeat_secs: 1,
                })
                .await?,
            );
        }
        Ok(Self {
            co,
            lo,
            ens,
            dir: dir.to_owned(),
            http: reqwest::Client::new(),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.co.http_addr)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(self.url(path)).send().await?.json().await?)
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let r = self.http.post(self.url(path)).json(&body).send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }

    /// The stdout log of a component on an EN.
    pub fn workload_log(&self, host: &str, deployment: &str, component: &str) -> PathBuf {
        self.dir
            .join("en")
            .join(host)
            .join("workloads")
            .join(deployment)
            .join(component)
            .join("stdout.log")
    }

    pub async fn shutdown(self) {
        for en in self.ens {
            en.shutdown().await;
        }
        self.lo.shutdown().await;
        self.co.shutdown().await;
    }
}

/// Polls `check` until it returns `Some`, or fails after `limit` with `what`.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
