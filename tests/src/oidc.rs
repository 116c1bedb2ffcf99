//! A real OpenID Connect provider for identity tests: the npm package oidc-provider, run by
//! `tests/oidc/op.mjs` with Keycloak-shaped claims (installed by `config/services.sh`). A test
//! names the accounts; [`IdentityProvider::token`] logs one in through the same login code as
//! `edgectl login`, with a plain HTTP client (cookies kept, redirects followed) as the browser.

use anyhow::{Context, bail};
use eos_adapter_oidc::OidcConfig;
use eos_adapter_oidc::login::{self, LoginSettings};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The resource the provider issues JWT access tokens for.
pub const RESOURCE: &str = "urn:eos";

/// The provider, running on a loopback port until dropped.
pub struct IdentityProvider {
    child: Child,
    pub port: u16,
    pub issuer: String,
    accounts: Value,
    ttl_secs: u64,
}

impl IdentityProvider {
    /// Starts the provider with `accounts` (`{"alice": {"realm": ["operator"], "tenant":
    /// "acme"}}`; also `client` roles and `groups`), its access tokens living `ttl_secs`.
    pub async fn start(accounts: Value, ttl_secs: u64) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = spawn(port, &accounts, ttl_secs).await?;
        Ok(Self {
            child,
            port,
            issuer: format!("http://127.0.0.1:{port}"),
            accounts,
            ttl_secs,
        })
    }

    /// Stops the provider and starts it again on the same port with a new signing key: a key
    /// rotation (sessions and refresh tokens are forgotten too).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.child.kill().await?;
        self.child = spawn(self.port, &self.accounts, self.ttl_secs).await?;
        Ok(())
    }

    /// The CO's `[oidc]` settings for this provider.
    pub fn co_config(&self) -> OidcConfig {
        OidcConfig {
            issuer: self.issuer.clone(),
            resource: Some(RESOURCE.into()),
            ..OidcConfig::default()
        }
    }

    /// What `GET /api/v1/auth/provider` says for this provider.
    pub fn login_settings(&self) -> LoginSettings {
        let c = self.co_config();
        LoginSettings {
            issuer: c.issuer,
            client_id: c.client_id,
            scopes: c.scopes,
            resource: c.resource,
        }
    }

    /// An access token of `account`, by logging in (authorization code with PKCE).
    pub async fn token(&self, account: &str) -> anyhow::Result<String> {
        let (url_tx, url_rx) = tokio::sync::oneshot::channel::<String>();
        let settings = self.login_settings();
        let account = account.to_owned();
        let login = tokio::spawn(async move {
            login::login(&settings, Some(&account), |url| {
                let _ = url_tx.send(url.to_owned());
            })
            .await
        });
        let url = url_rx.await.context("the login showed no address")?;
        play_browser(&url).await?;
        let session = login.await??;
        Ok(session.access_token)
    }
}

/// Opens `url` as a browser would: keeps cookies and follows redirects, through the provider's
/// interaction and back to the loopback callback, whose page must say the login worked.
pub async fn play_browser(url: &str) -> anyhow::Result<()> {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .timeout(Duration::from_secs(20))
        .build()?;
    let page = browser.get(url).send().await?;
    let (status, at) = (page.status(), page.url().clone());
    let text = page.text().await?;
    if !status.is_success() || !text.contains("Logged in to EOS") {
        bail!("the login ended at {at} with {status}: {text}");
    }
    Ok(())
}

async fn spawn(port: u16, accounts: &Value, ttl_secs: u64) -> anyhow::Result<Child> {
    let dir = crate::repo_root().join("tests/oidc");
    if !dir.join("node_modules/oidc-provider").is_dir() {
        bail!(
            "the test OIDC provider is not installed: run config/services.sh (it runs npm ci in {})",
            dir.display()
        );
    }
    let mut child = Command::new("node")
        .arg("op.mjs")
        .current_dir(&dir)
        .env("EOS_OP_PORT", port.to_string())
        .env("EOS_OP_ACCOUNTS", accounts.to_string())
        .env("EOS_OP_TTL", ttl_secs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start node (is Node.js installed? config/services.sh installs it)")?;
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("listening") {
                return Ok(());
            }
        }
        bail!("the OIDC provider exited before listening")
    })
    .await
    .context("the OIDC provider did not listen within 30 s")?;
    ready?;
    // Keep reading its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(child)
}
