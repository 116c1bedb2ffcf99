//! `edgectl`: the EOS command line. Tables for people, `-o json` for scripts.

mod api;
mod models;
mod package;
mod session;
mod table;
mod trust;

use anyhow::{Context, bail};
use api::Api;
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use table::{Output, print};

#[derive(Parser)]
#[command(
    version,
    about = "Operate an EOS fleet through its central orchestrator"
)]
struct Cli {
    /// The CO's address.
    #[arg(
        long,
        global = true,
        env = "EOS_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    server: String,
    /// The tenant to act for (sent as the EOS-Tenant header; the CO's `default` tenant when
    /// absent).
    #[arg(long, global = true, env = "EOS_TENANT")]
    tenant: Option<String>,
    /// The bearer token to act with.
    #[arg(long, global = true, env = "EOS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the token (`--token` wins). Without either, edgectl uses the session of
    /// `edgectl login` (~/.config/eos/session.json), then ~/.config/eos/token, then the
    /// embedded default CO's bootstrap admin token `.eos/co/admin.token`.
    #[arg(long, global = true, env = "EOS_TOKEN_FILE")]
    token_file: Option<std::path::PathBuf>,
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Applications in the app store.
    #[command(subcommand)]
    App(AppCommand),
    /// Sites and their LOs.
    #[command(subcommand)]
    Site(SiteCommand),
    /// The platform's tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// The users of the tenant (`--tenant`).
    #[command(subcommand)]
    User(UserCommand),
    /// Edge nodes.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Device models: a vendor's model with the capability template its devices share.
    #[command(subcommand)]
    Model(ModelCommand),
    /// The tenant's security policies: which artifacts must be signed, by which keys, and what
    /// its workloads may mount of a device.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Who the token names, and the tenant requests act for.
    Whoami,
    /// The CO's token signing key (platform admins).
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// Log in at the CO's single sign-on provider (OpenID Connect: the authorization code flow
    /// with PKCE, answered on a loopback address); the session is kept and refreshed.
    Login {
        /// Name the user to the provider (it may prefill its login form).
        #[arg(long)]
        login_hint: Option<String>,
        /// Only print the address to open; do not start a browser.
        #[arg(long)]
        no_browser: bool,
    },
    /// Forget the login session.
    Logout,
    /// Deploy APP[@VERSION] to a site.
    Deploy {
        app: String,
        #[arg(long)]
        site: String,
        /// Pin to one device: SITE/HOST.
        #[arg(long)]
        device: Option<String>,
    },
    /// Status of every deployment, or of one.
    Status { deployment: Option<String> },
    /// Move a deployment to another version of its application (a rollout or a rollback).
    Update {
        deployment: String,
        #[arg(long)]
        version: String,
    },
    /// Remove a deployment.
    Undeploy { deployment: String },
    /// The last log lines of a deployment's components, asked live of the devices that run it.
    Logs {
        deployment: String,
        /// Only this component.
        #[arg(long)]
        component: Option<String>,
        /// Lines per component (at most 1000).
        #[arg(short = 'n', long, default_value_t = 50)]
        lines: u32,
    },
    /// CPU and memory of a deployment's components now, asked live of the devices that run it.
    Top {
        deployment: String,
        /// Only this component.
        #[arg(long)]
        component: Option<String>,
    },
}

#[derive(Subcommand)]
enum AppCommand {
    /// Check a Margo ApplicationDescription; lists every problem and exits non-zero if any.
    Validate {
        path: String,
    },
    /// Register an application: a package folder here (uploaded to the CO), an OCI artifact
    /// (`oci://HOST/NAME:VERSION`) or a Git URL (fetched by the CO).
    Add {
        source: String,
        /// SOURCE is a folder on the CO's own disk, read there (platform admins only).
        #[arg(long)]
        on_co: bool,
    },
    List,
    /// Whether APP[@VERSION] (the newest when no version is given) can run on a device model
    /// or a device, profile by profile, and why not; exits 1 when no profile can.
    Compat {
        app: String,
        /// A device model's id (`edgectl model list`).
        #[arg(long, conflicts_with = "device", required_unless_present = "device")]
        model: Option<String>,
        /// A device: SITE/HOST.
        #[arg(long)]
        device: Option<String>,
    },
}

#[derive(Subcommand)]
enum ModelCommand {
    /// The tenant's device models.
    List,
    /// Register a device model from its capability template: a Margo DeviceCapabilities
    /// document (YAML or JSON) whose properties.vendor and properties.modelNumber name it.
    Add {
        /// Lowercase letters, digits and '-' (`acme-edge-5000`).
        id: String,
        /// The template file.
        #[arg(long)]
        capabilities: String,
    },
    /// Remove a device model.
    Remove { model: String },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Every tenant.
    List,
    /// Create a tenant.
    Create {
        /// Lowercase letters, digits and '-' (`acme`).
        id: String,
        /// What people call it.
        #[arg(long)]
        name: String,
        /// The subscription plan (default `standard`).
        #[arg(long)]
        plan: Option<String>,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// The tenant's artifact signature policy.
    Show,
    /// Require cosign signatures by one of the given public keys on every image and module
    /// deployed from now on (`--off` stops requiring them).
    Signatures {
        /// A PEM public key file (`cosign.pub`); repeat for several.
        #[arg(long = "key", required_unless_present = "off")]
        keys: Vec<std::path::PathBuf>,
        /// Stop requiring signatures.
        #[arg(long, conflicts_with = "keys")]
        off: bool,
    },
    /// Let the tenant's components bind-mount these host folders, use these devices or the
    /// GPUs (platform admins only; name the tenant with --tenant). The whole policy is
    /// replaced. A device counts the grant only within its own en.toml.
    Workload {
        /// An absolute host folder (`/srv/data`); repeat for several.
        #[arg(long = "host-path", required_unless_present_any = ["none", "cluster_scoped", "devices", "gpus"])]
        host_paths: Vec<String>,
        /// Let Helm charts create cluster-scoped objects (Namespaces, ClusterRoles, …).
        #[arg(long, conflicts_with = "none")]
        cluster_scoped: bool,
        /// A host device under /dev (`/dev/video0`, `/dev/dri`); repeat for several.
        #[arg(long = "device", conflicts_with = "none")]
        devices: Vec<String>,
        /// Let containers ask for the node's GPUs.
        #[arg(long, conflicts_with = "none")]
        gpus: bool,
        /// Take every grant back (the strict default).
        #[arg(long, conflicts_with = "host_paths")]
        none: bool,
    },
}

#[derive(Subcommand)]
enum SigningKeyCommand {
    /// Sign tokens with a new key from now on; tokens of the old key keep working until the
    /// longest-lived of them expires (30 days), and the bootstrap admin token is reissued.
    Rotate,
}

#[derive(Subcommand)]
enum UserCommand {
    /// The tenant's users.
    List,
    /// Add a user to the tenant.
    Add {
        email: String,
        /// platform-admin, tenant-admin, operator, security-analyst, viewer or finops.
        #[arg(long)]
        role: String,
    },
    /// Remove one of the tenant's users (by id, as `user list` shows it); its tokens stop
    /// working at once.
    Remove { user: String },
    /// Give one of the tenant's users (by id) another role, no higher than your own; its
    /// earlier tokens stop working at once.
    SetRole {
        user: String,
        /// platform-admin (platform tenant only), tenant-admin, operator, security-analyst,
        /// viewer or finops.
        #[arg(long)]
        role: String,
    },
    /// Issue a token for one of the tenant's users (by id), with the user's role; prints it.
    Token {
        user: String,
        /// Seconds it lives (default 12 hours, at most 30 days).
        #[arg(long)]
        ttl: Option<u64>,
    },
}

#[derive(Subcommand)]
enum DeviceCommand {
    /// Every device (or those the filters select): status, model, last contact, load, memory
    /// and workloads.
    List {
        /// Only devices of this site.
        #[arg(long)]
        site: Option<String>,
        /// Only devices of this status: online, offline, cordoned or draining.
        #[arg(long)]
        status: Option<String>,
        /// Only devices with these labels: key=value,key (as kubectl -l).
        #[arg(short = 'l', long = "selector")]
        selector: Option<String>,
    },
    /// One device: liveness, resource use, and its runtime drivers with their source
    /// (built-in, native or wasm plugin).
    Show { device: String },
    /// Take no new workloads on a device (SITE/HOST); what runs there stays.
    Cordon { device: String },
    /// Move what runs on a device (SITE/HOST) to other devices of its site, and take no new
    /// workloads; `device list` shows it draining, then drained.
    Drain { device: String },
    /// Let a cordoned or draining device (SITE/HOST) take workloads again.
    Uncordon { device: String },
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Every site: whether its LO is connected, its manifest version, last contact.
    List,
    /// Revoke the certificates of a site's LO, or of its EN `--host`: cut off at once and
    /// refused until enrolled again with a new claim token.
    Revoke {
        site: String,
        #[arg(long)]
        host: Option<String>,
    },
    /// Make a claim token for a new LO (`--role lo`) or EN (`--role en --host HOST`) of a site:
    /// single-use, short-lived; prints the token (give it to the device's `--claim-token`).
    Claim {
        site: String,
        #[arg(long, value_parser = ["lo", "en"])]
        role: String,
        /// The EN's host name (for `--role en`).
        #[arg(long, required_if_eq("role", "en"))]
        host: Option<String>,
        /// Seconds the token lives (default 3600, at most 86400).
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// One site, with its labels and time zone.
    Show { site: String },
    /// Set a site's labels and time zone; its site.yaml in the deployments repository carries
    /// them to its LO.
    Update {
        site: String,
        /// Set a label: KEY=VALUE (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Remove a label: KEY (repeatable).
        #[arg(long = "unlabel", value_name = "KEY")]
        unlabel: Vec<String>,
        /// An IANA time zone name (Europe/Berlin).
        #[arg(long, conflicts_with = "clear_time_zone")]
        time_zone: Option<String>,
        /// Remove the site's time zone.
        #[arg(long)]
        clear_time_zone: bool,
    },
    /// What happened at a site: refused or skipped desired states, crashed workloads.
    Events {
        site: String,
        /// How many of the newest events.
        #[arg(long, default_value_t = 50)]
        limit: u64,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

/// The token to act with: `--token`, else the `--token-file`, else the login session's, else
/// the user's saved one, else the bootstrap admin token of a CO on embedded defaults started
/// from here, which goes only to a CO on this machine (a loopback `--server`).
async fn find_token(cli: &Cli) -> anyhow::Result<Option<String>> {
    if let Some(token) = &cli.token {
        return Ok(Some(token.trim().to_owned()));
    }
    if let Some(file) = &cli.token_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the token file {}", file.display()))?;
        return Ok(Some(text.trim().to_owned()));
    }
    if let Some(token) = session::saved_token(server(cli)).await? {
        return Ok(Some(token));
    }
    let embedded =
        is_loopback(server(cli)).then(|| std::path::PathBuf::from(".eos/co/admin.token"));
    let candidates = session::config_dir()
        .map(|c| c.join("token"))
        .into_iter()
        .chain(embedded);
    for path in candidates {
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Ok(Some(text.trim().to_owned()));
        }
    }
    Ok(None)
}

/// Whether `url`'s host is this machine (`localhost`, 127.0.0.0/8, `[::1]`).
fn is_loopback(url: &str) -> bool {
    let Some(url) = reqwest::Url::parse(url).ok() else {
        return false;
    };
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The CO's address as given, without a trailing slash.
fn server(cli: &Cli) -> &str {
    cli.server.trim_end_matches('/')
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut headers = reqwest::header::HeaderMap::new();
    let logging_in = matches!(cli.command, Command::Login { .. } | Command::Logout);
    let token = match find_token(&cli).await {
        Err(_) if logging_in => None,
        found => found?,
    };
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token has characters a header cannot carry")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    if let Some(tenant) = &cli.tenant {
        let value = reqwest::header::HeaderValue::from_str(tenant)
            .with_context(|| format!("--tenant {tenant:?} is not a tenant id"))?;
        headers.insert("eos-tenant", value);
    }
    let api = Api {
        base: server(&cli).to_owned(),
        http: reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .context("cannot make an HTTP client")?,
    };
    let out = cli.output;
    match cli.command {
        Command::App(AppCommand::Validate { path }) => validate(&path, out),
        Command::App(AppCommand::Add { source, on_co }) => {
            let folder = std::path::Path::new(&source);
            let v = if !on_co && folder.is_dir() {
                let archive = package::pack(folder)?;
                eprintln!(
                    "uploading {} ({} bytes packed)",
                    folder.display(),
                    archive.len()
                );
                api.send(
                    api.http
                        .post(api.url("/app-packages"))
                        .header(reqwest::header::CONTENT_TYPE, "application/gzip")
                        .body(archive),
                )
                .await?
            } else {
                api.send(
                    api.http
                        .post(api.url("/apps"))
                        .json(&json!({ "source": source })),
                )
                .await?
            };
            print(out, &v, &["app_id", "version", "name", "digest"])
        }
        Command::App(AppCommand::List) => print(
            out,
            &api.list("/apps").await?,
            &["app_id", "version", "name", "created_at"],
        ),
        Command::Site(SiteCommand::Events { site, limit }) => print(
            out,
            &api.get(&format!("/sites/{site}/events?limit={limit}"))
                .await?,
            &["observed_at", "kind", "device_id", "component", "message"],
        ),
        Command::Tenant(TenantCommand::List) => print(
            out,
            &api.list("/tenants").await?,
            &["id", "name", "plan", "created_at"],
        ),
        Command::Tenant(TenantCommand::Create { id, name, plan }) => {
            let v = api
                .send(
                    api.http
                        .post(api.url("/tenants"))
                        .json(&json!({"id": id, "name": name, "plan": plan})),
                )
                .await?;
            print(out, &v, &["id", "name", "plan", "created_at"])
        }
        Command::User(UserCommand::List) => print(
            out,
            &api.list("/users").await?,
            &["id", "email", "role", "created_at"],
        ),
        Command::User(UserCommand::Add { email, role }) => {
            let v = api
                .send(
                    api.http
                        .post(api.url("/users"))
                        .json(&json!({"email": email, "role": role})),
                )
                .await?;
            print(out, &v, &["id", "email", "role", "created_at"])
        }
        Command::User(UserCommand::Token { user, ttl }) => {
            let issued = api
                .send(
                    api.http
                        .post(api.url("/tokens"))
                        .json(&json!({"user_id": user, "ttl_secs": ttl})),
                )
                .await?;
            if out == Output::Json {
                return print(out, &issued, &[]);
            }
            println!("{}", issued["token"].as_str().unwrap_or_default());
            Ok(())
        }
        Command::Login {
            login_hint,
            no_browser,
        } => session::login(&api, &api.base, login_hint.as_deref(), !no_browser).await,
        Command::Logout => session::logout(),
        Command::SigningKey(SigningKeyCommand::Rotate) => {
            let rotation = api.send(api.http.post(api.url("/signing-keys"))).await?;
            print(
                out,
                &json!([rotation]),
                &["kid", "retired_kid", "retired_until"],
            )
        }
        Command::Whoami => {
            let me = api.get("/me").await?;
            print(
                out,
                &json!([me]),
                &["subject", "tenant", "acting_for", "roles"],
            )
        }
        Command::Policy(PolicyCommand::Show) => trust::show_policy(&api, out).await,
        Command::Policy(PolicyCommand::Signatures { keys, off }) => {
            trust::set_signature_policy(&api, out, &keys, off).await
        }
        Command::Policy(PolicyCommand::Workload {
            host_paths,
            cluster_scoped,
            devices,
            gpus,
            none,
        }) => {
            let policy = trust::WorkloadGrant {
                host_paths: if none { Vec::new() } else { host_paths },
                cluster_scoped,
                devices,
                gpus,
            };
            trust::set_workload_policy(&api, out, &policy).await
        }
        Command::User(UserCommand::SetRole { user, role }) => {
            let v = api
                .send(
                    api.http
                        .patch(api.url(&format!("/users/{user}")))
                        .json(&json!({ "role": role })),
                )
                .await?;
            print(out, &v, &["id", "email", "role", "created_at"])
        }
        Command::User(UserCommand::Remove { user }) => {
            api.send(api.http.delete(api.url(&format!("/users/{user}"))))
                .await?;
            println!("removed user {user}");
            Ok(())
        }
        Command::Model(ModelCommand::List) => models::list(&api, out).await,
        Command::Model(ModelCommand::Add { id, capabilities }) => {
            models::add(&api, out, &id, &capabilities).await
        }
        Command::Model(ModelCommand::Remove { model }) => models::remove(&api, &model).await,
        Command::App(AppCommand::Compat { app, model, device }) => {
            models::compat(&api, out, &app, model.as_deref(), device.as_deref()).await
        }
        Command::Site(SiteCommand::Show { site }) => {
            let found = api.get(&format!("/sites/{site}")).await?;
            print(out, &site_row(out, found), SITE_COLUMNS)
        }
        Command::Site(SiteCommand::Update {
            site,
            labels,
            unlabel,
            time_zone,
            clear_time_zone,
        }) => {
            let mut body = json!({});
            if !labels.is_empty() || !unlabel.is_empty() {
                let current = api.get(&format!("/sites/{site}")).await?;
                let mut merged = current["labels"].as_object().cloned().unwrap_or_default();
                for l in &labels {
                    let (k, v) = l
                        .split_once('=')
                        .with_context(|| format!("--label {l:?} is not KEY=VALUE"))?;
                    merged.insert(k.to_owned(), json!(v));
                }
                for k in &unlabel {
                    merged.remove(k);
                }
                body["labels"] = Value::Object(merged);
            }
            if let Some(tz) = time_zone {
                body["time_zone"] = json!(tz);
            } else if clear_time_zone {
                body["time_zone"] = Value::Null;
            }
            let updated = api
                .send(
                    api.http
                        .patch(api.url(&format!("/sites/{site}")))
                        .json(&body),
                )
                .await?;
            print(out, &site_row(out, updated), SITE_COLUMNS)
        }
        Command::Site(SiteCommand::Revoke { site, host }) => {
            trust::revoke(&api, out, &site, host.as_deref()).await
        }
        Command::Site(SiteCommand::Claim {
            site,
            role,
            host,
            ttl,
        }) => trust::claim(&api, out, &site, &role, host.as_deref(), ttl).await,
        Command::Site(SiteCommand::List) => print(
            out,
            &api.list("/sites").await?,
            &["id", "lo_connected", "manifest_version", "last_seen"],
        ),
        Command::Device(DeviceCommand::Show { device }) => {
            let found = &api
                .get(&format!("/devices/{}", device_path(&device)?))
                .await?;
            if out == Output::Json {
                return print(out, found, &[]);
            }
            let shown = with_usage_columns(json!([found]));
            print(out, &shown, DEVICE_COLUMNS)?;
            let labels = match &found["capabilities"]["properties"]["labels"] {
                Value::Object(_) => &found["capabilities"]["properties"]["labels"],
                _ => &found["capabilities"]["labels"],
            };
            let drivers: Vec<Value> = labels["eos.dev/drivers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str())
                .map(|d| {
                    let (runtime, source) = d.split_once(':').unwrap_or((d, "-"));
                    let version = labels["eos.dev/driver-versions"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|v| v.as_str()?.strip_prefix(runtime)?.strip_prefix('='))
                        .next()
                        .unwrap_or("-");
                    json!({"runtime": runtime, "source": source, "version": version})
                })
                .collect();
            println!();
            print(
                out,
                &Value::Array(drivers),
                &["runtime", "source", "version"],
            )
        }
        Command::Device(DeviceCommand::List {
            site,
            status,
            selector,
        }) => {
            let query: Vec<(&str, String)> =
                [("site", site), ("status", status), ("label", selector)]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k, v)))
                    .collect();
            let devices = api.list_with("/devices", &query).await?;
            let shown = match out {
                Output::Json => devices,
                _ => with_usage_columns(devices),
            };
            print(out, &shown, DEVICE_COLUMNS)
        }
        Command::Device(DeviceCommand::Cordon { device }) => {
            schedule(&api, out, &device, "cordon").await
        }
        Command::Device(DeviceCommand::Drain { device }) => {
            schedule(&api, out, &device, "drain").await
        }
        Command::Device(DeviceCommand::Uncordon { device }) => {
            schedule(&api, out, &device, "uncordon").await
        }
        Command::Deploy { app, site, device } => {
            let (app_id, version) = app
                .split_once('@')
                .map_or((app.as_str(), None), |(a, v)| (a, Some(v)));
            let host = match &device {
                Some(d) => Some(
                    d.strip_prefix(&format!("{site}/"))
                        .with_context(|| format!("--device must be {site}/<host>"))?
                        .to_owned(),
                ),
                None => None,
            };
            let body = json!({"app_id": app_id, "version": version, "site": site, "host": host});
            print(
                out,
                &api.send(api.http.post(api.url("/deployments")).json(&body))
                    .await?,
                &["id", "app_id", "version", "target", "state"],
            )
        }
        Command::Status { deployment: None } => print(
            out,
            &api.list("/deployments").await?,
            &["id", "app_id", "version", "target", "phase", "state"],
        ),
        Command::Status {
            deployment: Some(id),
        } => {
            let view = api.get(&format!("/deployments/{id}")).await?;
            print(
                out,
                &view,
                &["id", "app_id", "version", "target", "phase", "state"],
            )?;
            if out == Output::Table {
                println!();
                print(
                    out,
                    &component_rows(&view),
                    &["device", "component", "state", "error"],
                )?;
            }
            Ok(())
        }
        Command::Logs {
            deployment,
            component,
            lines,
        } => {
            let live = live(&api, &deployment, component.as_deref(), lines).await?;
            if out == Output::Json {
                return print(out, &live, &[]);
            }
            print_logs(&live)
        }
        Command::Top {
            deployment,
            component,
        } => {
            let live = live(&api, &deployment, component.as_deref(), 0).await?;
            if out == Output::Json {
                return print(out, &live, &[]);
            }
            print(
                out,
                &usage_rows(&live),
                &["device", "component", "runtime", "cpu", "memory", "error"],
            )
        }
        Command::Update {
            deployment,
            version,
        } => print(
            out,
            &api.send(
                api.http
                    .patch(api.url(&format!("/deployments/{deployment}")))
                    .json(&json!({ "version": version })),
            )
            .await?,
            &["id", "app_id", "version", "phase", "state"],
        ),
        Command::Undeploy { deployment } => print(
            out,
            &api.send(
                api.http
                    .delete(api.url(&format!("/deployments/{deployment}"))),
            )
            .await?,
            &["id", "phase", "state"],
        ),
    }
}

/// The columns of site tables.
const SITE_COLUMNS: &[&str] = &[
    "id",
    "lo_connected",
    "manifest_version",
    "time_zone",
    "labels",
    "last_seen",
];

/// A site with its labels as one `k=v,k=v` cell for tables (JSON keeps the object).
fn site_row(out: Output, mut site: Value) -> Value {
    if out == Output::Table
        && let Some(labels) = site["labels"].as_object()
    {
        let cell: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        site["labels"] = json!(cell.join(","));
    }
    site
}

/// The columns of device tables.
const DEVICE_COLUMNS: &[&str] = &[
    "id",
    "status",
    "model",
    "last_seen",
    "load",
    "memory",
    "workloads",
];

/// A device id as the path under `/devices/`: `SITE/HOST`, each part checked.
fn device_path(device: &str) -> anyhow::Result<String> {
    eos_domain::ids::DeviceId::parse(device)
        .map(|d| d.to_string())
        .map_err(|e| anyhow::anyhow!("{device:?} is not a device id (SITE/HOST): {e}"))
}

/// Cordons, drains or uncordons a device; prints it as it is now.
async fn schedule(api: &Api, out: Output, device: &str, action: &str) -> anyhow::Result<()> {
    let path = format!("/devices/{}/{action}", device_path(device)?);
    let d = api.send(api.http.post(api.url(&path))).await?;
    print(out, &d, &["id", "status", "schedule"])
}

/// Asks the CO to ask the devices running `deployment` how its components are doing now.
async fn live(
    api: &Api,
    deployment: &str,
    component: Option<&str>,
    lines: u32,
) -> anyhow::Result<Value> {
    let mut url = reqwest::Url::parse(&api.url(&format!("/deployments/{deployment}/live")))
        .context("the CO's address (--server) is not a URL")?;
    url.query_pairs_mut()
        .append_pair("lines", &lines.to_string());
    if let Some(c) = component {
        url.query_pairs_mut().append_pair("component", c);
    }
    api.send(api.http.get(url)).await
}

/// Prints each component's lines, led by `DEVICE COMPONENT | ` when there is more than one;
/// what a device or driver could not tell goes to stderr. Fails when no device answered.
fn print_logs(live: &Value) -> anyhow::Result<()> {
    let devices = live.as_array().cloned().unwrap_or_default();
    if devices.is_empty() {
        bail!("the deployment runs on no device yet");
    }
    let streams: usize = devices
        .iter()
        .map(|d| d["components"].as_array().map_or(0, Vec::len))
        .sum();
    let mut answered = false;
    for d in &devices {
        let device = d["device_id"].as_str().unwrap_or("?");
        if let Some(error) = d["error"].as_str() {
            eprintln!("{device}: {error}");
            continue;
        }
        answered = true;
        for c in d["components"].as_array().into_iter().flatten() {
            let component = c["component"].as_str().unwrap_or("?");
            if let Some(error) = c["error"].as_str() {
                eprintln!("{device} {component}: {error}");
            }
            for line in c["log"].as_array().into_iter().flatten() {
                let line = line.as_str().unwrap_or_default();
                if streams > 1 {
                    println!("{device} {component} | {line}");
                } else {
                    println!("{line}");
                }
            }
        }
    }
    if !answered {
        bail!("no device running the deployment answered");
    }
    Ok(())
}

/// One row per device and component of a live answer, for `top`.
fn usage_rows(live: &Value) -> Value {
    let mut rows = Vec::new();
    for d in live.as_array().into_iter().flatten() {
        if !d["error"].is_null() {
            rows.push(json!({"device": d["device_id"], "component": "-", "error": d["error"]}));
            continue;
        }
        for c in d["components"].as_array().into_iter().flatten() {
            let cpu = c["cpu_percent"].as_f64().map(|p| format!("{p:.1}%"));
            let memory = c["memory_bytes"].as_u64().map(bytes);
            rows.push(
                json!({"device": d["device_id"], "component": c["component"],
                "runtime": c["runtime"], "cpu": cpu, "memory": memory, "error": c["error"]}),
            );
        }
    }
    Value::Array(rows)
}

/// `512 B`, `64.0 KiB`, `12.5 MiB`, `1.2 GiB`.
fn bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= f64::from(1u32 << 30) => format!("{:.1} GiB", n / f64::from(1u32 << 30)),
        n if n >= f64::from(1u32 << 20) => format!("{:.1} MiB", n / f64::from(1u32 << 20)),
        n if n >= 1024.0 => format!("{:.1} KiB", n / 1024.0),
        n => format!("{n} B"),
    }
}

/// One row per device and component of a deployment view, for the table under `status ID`.
fn component_rows(view: &Value) -> Value {
    let mut rows = Vec::new();
    for device in view["devices"].as_array().into_iter().flatten() {
        let components = device["components"].as_array().filter(|c| !c.is_empty());
        let Some(components) = components else {
            rows.push(json!({"device": device["device_id"], "component": "-",
                "state": device["state"], "error": device["error"]["message"]}));
            continue;
        };
        for c in components {
            rows.push(
                json!({"device": device["device_id"], "component": c["name"],
                "state": c["state"], "error": c["error"]["message"]}),
            );
        }
    }
    Value::Array(rows)
}

fn validate(path: &str, out: Output) -> anyhow::Result<()> {
    let file = if std::path::Path::new(path).is_dir() {
        format!("{path}/margo.yaml")
    } else {
        path.to_owned()
    };
    let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {file}"))?;
    match eos_domain::margo::ApplicationDescription::from_yaml(&text) {
        Ok(ad) => print(
            out,
            &json!({"valid": true, "id": ad.id, "version": ad.metadata.version}),
            &["valid", "id", "version"],
        ),
        Err(problems) => {
            if out == Output::Json {
                println!("{}", json!({"valid": false, "problems": problems}));
            } else {
                for p in problems.iter() {
                    println!("{file}: {p}");
                }
            }
            bail!("{} problem(s) in {file}", problems.len())
        }
    }
}

/// Adds the table columns `load`, `memory` and `workloads` from each device's `usage` (JSON
/// output keeps `usage` as it is; the added keys only show in tables).
fn with_usage_columns(mut devices: Value) -> Value {
    const GIB: f64 = (1u64 << 30) as f64;
    for d in devices.as_array_mut().into_iter().flatten() {
        let usage = d["usage"].clone();
        if usage.is_null() {
            continue;
        }
        let gib = |key: &str| usage[key].as_f64().unwrap_or(0.0) / GIB;
        d["load"] = json!(format!(
            "{:.2}",
            usage["cpu_load_1m"].as_f64().unwrap_or(0.0)
        ));
        d["memory"] = json!(format!(
            "{:.1}/{:.1} GiB",
            gib("memory_used_bytes"),
            gib("memory_total_bytes")
        ));
        d["workloads"] = usage["workloads"].clone();
    }
    devices
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_admin_token_goes_to_loopback_only() {
        for local in [
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://[::1]:80",
        ] {
            assert!(super::is_loopback(local), "{local}");
        }
        for remote in [
            "http://co.example:8080",
            "https://10.0.0.1",
            "http://127.0.0.1.nip.io",
            "nonsense",
        ] {
            assert!(!super::is_loopback(remote), "{remote}");
        }
    }
}
