//! Helpers for cross-crate tests: a whole EOS (CO, one LO, ENs) on loopback in one process,
//! and a fault-injection proxy to put between its tiers.

pub mod bench;
pub mod engine;
pub mod oidc;
pub mod plugins;
pub mod processes;
pub mod proxy;
pub mod registry;
pub mod seed;

pub use engine::{EngineSocket, all_containers, docker_engine, engine_objects};
pub use proxy::{Fault, FaultProxy};

use eos_app_common::SimClock;
use eos_co::{Co, CoConfig};
use eos_en::{En, EnConfig};
use eos_lo::{Lo, LoConfig};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A claim token of `co`'s admin for the LO of `site`, or its EN `host`.
pub async fn claim_token(co: &Co, site: &str, host: Option<&str>) -> anyhow::Result<String> {
    let body = match host {
        None => json!({"role": "lo"}),
        Some(h) => json!({"role": "en", "host": h}),
    };
    let r = authorized_client(&co.admin_token()?)?
        .post(format!(
            "http://{}/api/v1/sites/{site}/claims",
            co.http_addr
        ))
        .json(&body)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "claim for {site}: {}", r.text().await?);
    let claim: Value = r.json().await?;
    Ok(claim["token"].as_str().unwrap_or_default().to_owned())
}

/// The repository root (for sample apps and committed files).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A tier's settings, for a test to change before the tier starts.
pub enum Tier<'a> {
    Lo(&'a mut LoConfig),
    En(&'a mut EnConfig),
}

/// Which links of a [`Fleet`] run through a [`FaultProxy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Direct,
    /// LO → CO.
    ProxiedUplink,
    /// Each EN → LO.
    ProxiedNodes,
}

/// A CO, the LO of one site and its ENs, each of which can be stopped and started again on the
/// same data folder and ports (a restart, or a tier that is down for a while).
pub struct Fleet {
    pub co: Option<Co>,
    pub lo: Option<Lo>,
    pub ens: Vec<Option<En>>,
    pub site: String,
    pub hosts: Vec<String>,
    pub dir: PathBuf,
    pub http: reqwest::Client,
    /// Between the LO and the CO, when started with `uplink_proxy`.
    pub uplink: Option<FaultProxy>,
    /// Between each EN and the LO (same order as `hosts`), when started with `node_proxies`.
    pub node_links: Vec<FaultProxy>,
    /// The wall clock of the CO and the LO: real time until a test moves it forward.
    pub clock: Arc<SimClock>,
    co_config: CoConfig,
    lo_config: LoConfig,
    en_configs: Vec<EnConfig>,
}

impl Fleet {
    /// Starts a CO, the LO of `site` and one EN per host, all on free loopback ports.
    pub async fn start(dir: &Path, site: &str, hosts: &[&str]) -> anyhow::Result<Self> {
        Self::start_with(dir, site, hosts, Links::Direct).await
    }

    /// A fleet of one EN, `node-1` of `site-1`, running the sample app: the fleet and the
    /// deployment's id, once it is installed.
    pub async fn one_node_with_sample(dir: &Path) -> anyhow::Result<(Self, String)> {
        let fleet = Self::start(dir, "site-1", &["node-1"]).await?;
        fleet.await_online(&["node-1"]).await;
        let id = fleet.deploy_sample(Some("node-1")).await?;
        Ok((fleet, id))
    }

    /// Like `start`, with [`FaultProxy`]s on the links `links` names.
    pub async fn start_with(
        dir: &Path,
        site: &str,
        hosts: &[&str],
        links: Links,
    ) -> anyhow::Result<Self> {
        Self::start_full(dir, site, hosts, links, None, |_| {}, &|_| {}).await
    }

    /// Like `start`, with the CO's configuration changed by `edit` first (an identity
    /// provider, say).
    pub async fn start_with_co(
        dir: &Path,
        site: &str,
        hosts: &[&str],
        edit: impl FnOnce(&mut CoConfig),
    ) -> anyhow::Result<Self> {
        Self::start_full(dir, site, hosts, Links::Direct, None, edit, &|_| {}).await
    }

    /// Like `start_with_co`, with each LO and EN setting changed by `tier` too (for the LO,
    /// and each EN, after the harness filled them in).
    pub async fn start_with_tiers(
        dir: &Path,
        site: &str,
        hosts: &[&str],
        co: impl FnOnce(&mut CoConfig),
        tier: &dyn Fn(Tier<'_>),
    ) -> anyhow::Result<Self> {
        Self::start_full(dir, site, hosts, Links::Direct, None, co, tier).await
    }

    /// Like `start`, with the CO's database at `database_url` (`DATABASE_URL`: PostgreSQL,
    /// say) instead of the SQLite file in its data folder.
    pub async fn start_on_database(
        dir: &Path,
        site: &str,
        hosts: &[&str],
        database_url: &str,
    ) -> anyhow::Result<Self> {
        Self::start_full(
            dir,
            site,
            hosts,
            Links::Direct,
            Some(database_url.to_owned()),
            |_| {},
            &|_| {},
        )
        .await
    }

    async fn start_full(
        dir: &Path,
        site: &str,
        hosts: &[&str],
        links: Links,
        database_url: Option<String>,
        edit: impl FnOnce(&mut CoConfig),
        tier: &dyn Fn(Tier<'_>),
    ) -> anyhow::Result<Self> {
        let uplink_proxy = links == Links::ProxiedUplink;
        let clock = SimClock::new();
        let mut co_config = CoConfig {
            data_dir: dir.join("co"),
            http_listen: "127.0.0.1:0".into(),
            grpc_listen: "127.0.0.1:0".into(),
            deployments_repo: None,
            database_url,
            ..CoConfig::default()
        };
        edit(&mut co_config);
        let co = Co::start_with_clock(co_config.clone(), clock.clone()).await?;
        // Later starts reuse the ports the first one got, so the LO finds the CO again.
        co_config.http_listen = co.http_addr.to_string();
        co_config.grpc_listen = co.grpc_addr.to_string();
        let uplink = match uplink_proxy {
            true => Some(FaultProxy::start(co.grpc_addr).await?),
            false => None,
        };
        let co_endpoint = uplink.as_ref().map_or(co.grpc_addr, |p| p.addr);
        // A CO that wants mutual TLS gets an LO and ENs enrolled with claim tokens, as an
        // operator enrols them.
        let admin = authorized_client(&co.admin_token()?)?;
        let co_url = format!("http://{}", co.http_addr);
        let enrolled = co_config.grpc_tls;
        let lo_claim = match enrolled {
            true => Some(claim_token(&co, site, None).await?),
            false => None,
        };
        let mut lo_config = LoConfig {
            site_id: site.into(),
            tenant: eos_domain::ids::DEFAULT_TENANT.into(),
            co_endpoint: format!("http://{co_endpoint}"),
            deployments_repo: Self::git_link(dir).display().to_string(),
            listen: "127.0.0.1:0".into(),
            data_dir: dir.join("lo"),
            poll_secs: 2,
            en_grace_secs: 3,
            enrol_url: lo_claim.as_ref().map(|_| co_url.clone()),
            claim_token: lo_claim,
            ..LoConfig::default()
        };
        tier(Tier::Lo(&mut lo_config));
        // The LO reaches the repository through a link that `cut_git` removes.
        std::os::unix::fs::symlink(dir.join("co/deployments.git"), Self::git_link(dir))?;
        let lo = Lo::start_with_clock(lo_config.clone(), clock.clone()).await?;
        lo_config.listen = lo.listen_addr.to_string();
        let mut node_links = Vec::new();
        if links == Links::ProxiedNodes {
            for _ in hosts {
                node_links.push(FaultProxy::start(lo.listen_addr).await?);
            }
        }
        let mut en_claims = Vec::new();
        for host in hosts {
            en_claims.push(match enrolled {
                true => Some(claim_token(&co, site, Some(host)).await?),
                false => None,
            });
        }
        let en_configs: Vec<EnConfig> = hosts
            .iter()
            .enumerate()
            .map(|(i, host)| EnConfig {
                enrol_url: en_claims[i].as_ref().map(|_| co_url.clone()),
                claim_token: en_claims[i].clone(),
                device_id: format!("{site}/{host}"),
                lo_endpoint: format!(
                    "http://{}",
                    node_links.get(i).map_or(lo.listen_addr, |p| p.addr)
                ),
                data_dir: dir.join("en").join(host),
                heartbeat_secs: 1,
                health_check_secs: 1,
                // Fleets of parallel tests share one engine: each keeps to its own containers.
                container_scope: Some(format!(
                    "{site}-{host}-{}",
                    dir.file_name().unwrap_or_default().to_string_lossy()
                )),
                ..EnConfig::default()
            })
            .collect();
        let mut en_configs = en_configs;
        for config in &mut en_configs {
            tier(Tier::En(config));
        }
        let mut ens = Vec::new();
        for config in &en_configs {
            ens.push(Some(En::start(config.clone()).await?));
        }
        let http = admin;
        Ok(Self {
            co: Some(co),
            lo: Some(lo),
            ens,
            site: site.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            dir: dir.to_owned(),
            http,
            uplink,
            node_links,
            clock,
            co_config,
            lo_config,
            en_configs,
        })
    }

    fn git_link(dir: &Path) -> PathBuf {
        dir.join("deployments-remote.git")
    }

    /// The site's `site.yaml` as the deployments repository's head has it.
    pub fn site_yaml(&self) -> String {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(self.dir.join("co/deployments.git"))
            .args(["show", &format!("HEAD:sites/{}/site.yaml", self.site)])
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("site.yaml is UTF-8")
    }

    /// Makes the deployments repository unreachable for the LO (its fetches fail) until
    /// `heal_git`; the CO keeps committing to it.
    pub fn cut_git(&self) {
        std::fs::remove_file(Self::git_link(&self.dir)).expect("the link to the repository");
    }

    pub fn heal_git(&self) {
        std::os::unix::fs::symlink(
            self.dir.join("co/deployments.git"),
            Self::git_link(&self.dir),
        )
        .expect("the link to the repository");
    }

    pub fn co(&self) -> &Co {
        self.co.as_ref().expect("the CO is running")
    }

    pub fn lo(&self) -> &Lo {
        self.lo.as_ref().expect("the LO is running")
    }

    pub async fn stop_co(&mut self) {
        if let Some(co) = self.co.take() {
            co.shutdown().await;
        }
    }

    pub async fn start_co(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.co.is_none(), "the CO is running already");
        self.co = Some(Co::start_with_clock(self.co_config.clone(), self.clock.clone()).await?);
        Ok(())
    }

    pub async fn stop_lo(&mut self) {
        if let Some(lo) = self.lo.take() {
            lo.shutdown().await;
        }
    }

    pub async fn start_lo(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.lo.is_none(), "the LO is running already");
        self.lo = Some(Lo::start_with_clock(self.lo_config.clone(), self.clock.clone()).await?);
        Ok(())
    }

    /// Restarts EN `index` with its configuration changed by `change`.
    pub async fn reconfigure_en(
        &mut self,
        index: usize,
        change: impl FnOnce(&mut EnConfig),
    ) -> anyhow::Result<()> {
        self.stop_en(index).await;
        change(&mut self.en_configs[index]);
        self.start_en(index).await
    }

    pub async fn stop_en(&mut self, index: usize) {
        if let Some(en) = self.ens[index].take() {
            en.shutdown().await;
        }
    }

    pub async fn start_en(&mut self, index: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.ens[index].is_none(), "EN {index} is running already");
        self.ens[index] = Some(En::start(self.en_configs[index].clone()).await?);
        Ok(())
    }

    /// The CO's database: what `DATABASE_URL` named, or its SQLite file.
    pub fn database_url(&self) -> String {
        self.co_config.database_url.clone().unwrap_or_else(|| {
            eos_adapter_sql::SqlStore::sqlite_url(&self.co_config.data_dir.join("co.db"))
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.co().http_addr)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.http.get(self.url(path)).send().await?.json().await?)
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        let r = self.http.post(self.url(path)).json(&body).send().await?;
        Ok((r.status().as_u16(), r.json().await?))
    }

    /// `(device id, online)` of every device the CO knows, or `None` when the CO does not answer.
    pub async fn devices_online(&self) -> Option<Vec<(String, bool)>> {
        let devices = self.get("/api/v1/devices").await.ok()?;
        Some(
            devices
                .as_array()?
                .iter()
                .map(|d| {
                    (
                        d["id"].as_str().unwrap_or("").to_owned(),
                        d["online"] == true,
                    )
                })
                .collect(),
        )
    }

    /// Waits until the CO lists exactly these hosts of the site, all online.
    pub async fn await_online(&self, hosts: &[&str]) {
        let want: Vec<(String, bool)> = hosts
            .iter()
            .map(|h| (format!("{}/{h}", self.site), true))
            .collect();
        eventually("the ENs to be online at the CO", LIMIT, || async {
            (self.devices_online().await? == want).then_some(())
        })
        .await
    }

    /// Registers the sample WASM app and deploys it to `host` (or lets the LO choose); returns
    /// the deployment id once the CO reports it installed.
    pub async fn deploy_sample(&self, host: Option<&str>) -> anyhow::Result<String> {
        Ok(self.deploy_installed(SAMPLE_APP, host).await?.0)
    }

    /// Registers `app`, deploys it to `host` (or where the LO chooses) and waits until the CO
    /// reports it installed; returns the deployment id and the CO's view of it.
    pub async fn deploy_installed(
        &self,
        app: (&str, &str),
        host: Option<&str>,
    ) -> anyhow::Result<(String, Value)> {
        let id = self.create_deployment(app, host).await?;
        let view = eventually("the deployment to be installed", LIMIT, || async {
            let v = self.deployment(&id).await;
            (v["state"] == "installed").then_some(v)
        })
        .await;
        Ok((id, view))
    }

    /// Registers the app in `app_dir` (relative to the repository root; once is enough) and
    /// creates a deployment of it on `host` (or where the LO chooses), without waiting for it.
    pub async fn create_deployment(
        &self,
        (app_dir, app_id): (&str, &str),
        host: Option<&str>,
    ) -> anyhow::Result<String> {
        let source = repo_root().join(app_dir);
        let (code, app) = self
            .post(
                "/api/v1/apps",
                json!({"source": source.display().to_string()}),
            )
            .await?;
        anyhow::ensure!(code == 201 || code == 409, "add app: {code} {app}");
        let (code, created) = self
            .post(
                "/api/v1/deployments",
                json!({"app_id": app_id, "site": self.site, "host": host}),
            )
            .await?;
        anyhow::ensure!(code == 201, "deploy: {code} {created}");
        Ok(created["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Registers the application whose description is in `folder`; fails unless the CO takes
    /// it (201).
    pub async fn add_app(&self, folder: &Path) -> anyhow::Result<Value> {
        let (code, app) = self
            .post(
                "/api/v1/apps",
                json!({"source": folder.display().to_string()}),
            )
            .await?;
        anyhow::ensure!(code == 201, "add app {}: {code} {app}", folder.display());
        Ok(app)
    }

    /// Asks the CO to move deployment `id` to the app's `version`: the status and the answer.
    pub async fn update(&self, id: &str, version: &str) -> anyhow::Result<(u16, Value)> {
        let r = self
            .http
            .patch(self.url(&format!("/api/v1/deployments/{id}")))
            .json(&json!({ "version": version }))
            .send()
            .await?;
        Ok((r.status().as_u16(), r.json().await.unwrap_or(Value::Null)))
    }

    /// Moves deployment `id` to `version`; fails unless the CO takes it (200, the new
    /// version in its answer). The devices' statuses say `installed` from the old version
    /// until they report again, so a test waits for what the new version does.
    pub async fn update_to(&self, id: &str, version: &str) -> anyhow::Result<Value> {
        let (code, view) = self.update(id, version).await?;
        anyhow::ensure!(code == 200, "update {id} to {version}: {code} {view}");
        anyhow::ensure!(view["version"] == version, "update answered {view}");
        Ok(view)
    }

    /// Undeploys `id` and waits until the CO reports it removed from every device.
    pub async fn undeploy(&self, id: &str) -> anyhow::Result<()> {
        let url = self.url(&format!("/api/v1/deployments/{id}"));
        let code = self.http.delete(url).send().await?.status().as_u16();
        anyhow::ensure!(code == 202, "undeploy {id}: {code}");
        eventually("the deployment to be removed", LIMIT, || async {
            (self.deployment(id).await["phase"] == "removed").then_some(())
        })
        .await;
        Ok(())
    }

    /// The site's event log at the CO (`Null` when the CO does not answer).
    pub async fn site_events(&self) -> Value {
        self.get(&format!("/api/v1/sites/{}/events", self.site))
            .await
            .unwrap_or(Value::Null)
    }

    /// A deployment as the CO shows it (`Null` when the CO does not answer).
    pub async fn deployment(&self, id: &str) -> Value {
        self.get(&format!("/api/v1/deployments/{id}"))
            .await
            .unwrap_or(Value::Null)
    }

    /// How many times the sample module has greeted in its log on `host`.
    pub fn greetings(&self, host: &str, deployment: &str) -> usize {
        std::fs::read_to_string(self.workload_log(host, deployment, "hello"))
            .map(|t| t.matches("hello from eos").count())
            .unwrap_or(0)
    }

    /// The private `/data` folder of a component on an EN.
    pub fn workload_data(&self, host: &str, deployment: &str, component: &str) -> PathBuf {
        self.workload_log(host, deployment, component)
            .with_file_name("data")
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

    pub async fn shutdown(mut self) {
        for index in 0..self.ens.len() {
            self.stop_en(index).await;
        }
        self.stop_lo().await;
        self.stop_co().await;
    }
}

/// The sample WASM app: greets every second.
pub const SAMPLE_APP: (&str, &str) = ("config/apps/hello-wasm", "com-eos-hello-wasm");
/// A WASM app whose module exits with status 3 when a file named `crash` appears in its `/data`.
pub const CRASHY_APP: (&str, &str) = ("tests/fixtures/apps/crashy-wasm", "com-eos-test-crashy");

/// A container app: busybox httpd from the test registry, published on port 18765.
pub const WEB_OCI_APP: (&str, &str) = ("tests/fixtures/apps/web-oci", "com-eos-test-web-oci");
/// A Helm chart app (Margo `helm` profile), which no EN without a cluster may run.
pub const HELM_APP: (&str, &str) = ("tests/fixtures/apps/chart-helm", "com-eos-test-chart-helm");

/// An HTTP client that sends `token` as its bearer token with every request.
pub fn authorized_client(token: &str) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))?;
    value.set_sensitive(true);
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// A copy of the application folder `source` (relative to the repository root) in `dir`, its
/// description's text changed by `edits` (`(from, to)` pairs, each of which must match): a
/// new version of a fixture app, say. Returns the copy's folder.
pub fn app_variant(dir: &Path, source: &str, edits: &[(&str, &str)]) -> PathBuf {
    let from = repo_root().join(source);
    let name = from.file_name().expect("a folder name").to_owned();
    let to = dir.join(name);
    copy_tree(&from, &to);
    let description = to.join("margo.yaml");
    let mut text = std::fs::read_to_string(&description).unwrap();
    for (old, new) in edits {
        assert!(text.contains(old), "{} has no {old:?}", from.display());
        text = text.replace(old, new);
    }
    std::fs::write(description, text).unwrap();
    to
}

/// Copies the folder `from` into `to`, subfolders included.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// How long helpers wait for the fleet to converge before failing.
pub const LIMIT: Duration = Duration::from_secs(60);

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

/// Runs git in `dir` as a test author.
pub fn git(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
