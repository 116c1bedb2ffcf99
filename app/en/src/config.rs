//! EN configuration: a TOML file, then `EOS_EN_*` environment variables, then flags.

use eos_adapter_oci::RegistryLogin;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnConfig {
    /// This device: `<site>/<host>`.
    pub device_id: String,
    /// The LO's gRPC endpoint.
    pub lo_endpoint: String,
    /// Run record and workload folders.
    pub data_dir: PathBuf,
    pub heartbeat_secs: u64,
    /// How often the supervisor looks at every component (and restarts crashed ones).
    pub health_check_secs: u64,
    /// How often the EN asks its drivers whether their runtimes answer (fingerprint), and
    /// tells the LO when the runtimes it can run change.
    pub fingerprint_secs: u64,
    /// The container engine's Unix socket (Docker, or Podman's compatible one). While nothing
    /// answers there, the EN runs without the `oci` and `compose` runtimes and says so; it
    /// takes them up when an engine answers later.
    pub container_socket: String,
    /// Labels this EN's containers; defaults to the device id. Only needed when several ENs
    /// share one engine under the same device id (tests).
    pub container_scope: Option<String>,
    /// Registry logins by host, for pulling images: `[registries."HOST"]` with `username` and
    /// `password`.
    pub registries: BTreeMap<String, RegistryLogin>,
    /// Registry hosts spoken to over plain HTTP for WASM modules (loopback hosts always are).
    pub insecure_registries: Vec<String>,
    /// Driver plugins loaded at start, native (`*.so`) and WebAssembly components (`*.wasm`);
    /// default `<data_dir>/plugins`.
    pub plugin_dir: Option<PathBuf>,
    /// How many pulled modules, compose archives and container images to keep per repository
    /// (the newest; at least one, so a restart while offline finds it). Images a container
    /// runs from are always kept.
    pub keep_artifacts: usize,
    /// The kubeconfig of the cluster the `helm` runtime applies charts to. Without one, or
    /// while its cluster does not answer, the EN runs without the `helm` runtime.
    pub kubeconfig: Option<PathBuf>,
    /// The namespace Helm components go to unless their `x-eos-extensions.helm.namespace`
    /// names another.
    pub helm_namespace: String,
    /// The node's own labels, reported in its device capabilities beside EOS's: placement
    /// rules select nodes by them (`[labels]`, `line = "3"`). Keys under `eos.dev/` are EOS's.
    pub labels: BTreeMap<String, String>,
    /// Where the EN keeps its key and certificates (default: `tls` in the data directory). With
    /// them, the link to the LO is mutual TLS.
    pub tls_dir: Option<PathBuf>,
    /// A claim token for enrolling (`edgectl site claim --host`); used once, when the EN has no
    /// certificate yet.
    pub claim_token: Option<String>,
    /// The CO's HTTP API, where the claim token is taken (`http://co:8080`) and where the
    /// certificate is renewed.
    pub enrol_url: Option<String>,
    /// How often the certificate is looked at; it is renewed when a third of its lifetime is
    /// left (ten of 30 days), or `renew_within_secs` when set.
    pub renew_check_secs: u64,
    pub renew_within_secs: Option<u64>,
    /// How often an enrolled EN asks the CO whether its site's LO was revoked (it then takes
    /// no more commands from that LO).
    pub revocation_check_secs: u64,
    /// The most this device lets a workload ask (`[workload_policy]`, `host_paths = [...]`):
    /// a tenant's grant counts here only within it. Default: the strict policy, no host paths.
    pub workload_policy: eos_domain::workload::WorkloadPolicy,
    /// The folders whose files a component may name as a `file://` repository (a module the
    /// device's owner put there). None by default: a package's own files come through the LO.
    pub file_artifact_roots: Vec<PathBuf>,
}

impl EnConfig {
    pub fn tls_dir(&self) -> PathBuf {
        self.tls_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("tls"))
    }
}

impl Default for EnConfig {
    fn default() -> Self {
        Self {
            device_id: "site-1/node-1".into(),
            lo_endpoint: "http://127.0.0.1:7071".into(),
            data_dir: PathBuf::from(".eos/en"),
            heartbeat_secs: 5,
            health_check_secs: 2,
            fingerprint_secs: 30,
            container_socket: "/var/run/docker.sock".into(),
            container_scope: None,
            registries: BTreeMap::new(),
            insecure_registries: Vec::new(),
            plugin_dir: None,
            keep_artifacts: 2,
            kubeconfig: None,
            helm_namespace: "default".into(),
            labels: BTreeMap::new(),
            tls_dir: None,
            claim_token: None,
            enrol_url: None,
            renew_check_secs: 3600,
            renew_within_secs: None,
            revocation_check_secs: 60,
            workload_policy: Default::default(),
            file_artifact_roots: Vec::new(),
        }
    }
}
