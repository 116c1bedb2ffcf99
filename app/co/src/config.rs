//! CO configuration: a TOML file, then `EOS_CO_*` environment variables, then flags.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoConfig {
    /// Where the database, the deployments repository and package copies live.
    pub data_dir: PathBuf,
    /// REST API address.
    pub http_listen: String,
    /// gRPC address LOs dial.
    pub grpc_listen: String,
    /// The deployments Git repository; a bare repository in the data directory by default.
    pub deployments_repo: Option<String>,
    /// `sqlite://…` or `postgres://…` (default: `co.db` in the data directory).
    pub database_url: Option<String>,
    /// Days the event log keeps an event (default 30; 0 keeps every event). Older events are
    /// deleted at start and every hour; a stream resumed from before then starts at the oldest
    /// event kept.
    pub event_retention_days: u64,
    /// Logins for the registries application packages are pulled from (`oci://…` sources):
    /// `[registries."HOST"]` with `username` and `password`.
    pub registries: BTreeMap<String, eos_adapter_registry::Login>,
    /// Registry hosts spoken to over plain HTTP (loopback hosts always are).
    pub insecure_registries: Vec<String>,
    /// The issuer (`iss`) of the tokens the CO signs, and the only one it accepts.
    pub token_issuer: String,
    /// An OpenID Connect provider (Keycloak, say) whose access tokens the CO accepts beside its
    /// own: `[oidc]` with `issuer`, and where its tokens differ from the defaults, `audience`,
    /// `client_id`, `resource`, `scopes`, `roles_client`, `tenant_claim`, `tenant_group_prefix`
    /// and `jwks_cache_secs`.
    pub oidc: Option<eos_adapter_oidc::OidcConfig>,
    /// Whether LOs must speak mutual TLS on the gRPC link, with a certificate of the CO's CA
    /// naming their site (LOs enrol with a claim token). On by default; off: plain gRPC, for a
    /// lab or a link already protected otherwise.
    pub grpc_tls: bool,
    /// The DNS names and addresses LOs reach the gRPC listener at (its certificate's names).
    pub grpc_tls_names: Vec<String>,
    /// Serves the HTTP API over TLS here too (`0.0.0.0:8443`), for clients and devices on
    /// other machines: enrolment over plain HTTP is taken only on loopback. The certificate
    /// is `https_certificate` and `https_key` (PEM files) when given, else one the CO's CA
    /// makes for `https_names`, which devices trust through their claim token's fingerprint.
    pub https_listen: Option<String>,
    pub https_names: Vec<String>,
    pub https_certificate: Option<PathBuf>,
    pub https_key: Option<PathBuf>,
    /// The hosts (`HOST` or `HOST:PORT`) the CO may reach for a tenant: Git and registry
    /// sources of applications, and registries the artifacts view asks. Empty: any.
    pub source_hosts: Vec<String>,
}

impl Default for CoConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(".eos/co"),
            http_listen: "127.0.0.1:8080".into(),
            grpc_listen: "127.0.0.1:7070".into(),
            deployments_repo: None,
            database_url: None,
            event_retention_days: 30,
            registries: BTreeMap::new(),
            insecure_registries: Vec::new(),
            token_issuer: "eos-co".into(),
            oidc: None,
            grpc_tls: true,
            grpc_tls_names: vec!["127.0.0.1".into(), "localhost".into()],
            https_listen: None,
            https_names: vec!["127.0.0.1".into(), "localhost".into()],
            https_certificate: None,
            https_key: None,
            source_hosts: Vec::new(),
        }
    }
}

impl CoConfig {
    pub fn deployments_repo(&self) -> String {
        self.deployments_repo
            .clone()
            .unwrap_or_else(|| self.data_dir.join("deployments.git").display().to_string())
    }
}
