//! `edgectl login` and `logout`, and the token edgectl acts with. A login session (from an
//! OpenID Connect provider) is kept in `~/.config/eos/session.json` (mode 0600) with its refresh
//! token, and refreshed when its access token has less than a minute left.

use crate::api::Api;
use anyhow::{Context, bail};
use eos_adapter_oidc::login::{self, LoginSettings, Session};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Refresh an access token that expires within this many seconds.
const REFRESH_AHEAD_SECS: u64 = 60;

/// A session, and the CO it was made for.
#[derive(Serialize, Deserialize)]
struct Saved {
    server: String,
    #[serde(flatten)]
    session: Session,
}

/// `~/.config/eos` (or `$XDG_CONFIG_HOME/eos`).
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")))
        .map(|c| c.join("eos"))
}

fn session_file() -> Option<PathBuf> {
    config_dir().map(|d| d.join("session.json"))
}

/// The access token of the saved session for `server`, refreshed first when it is about to
/// expire; `None` when there is no session for `server`.
pub async fn saved_token(server: &str) -> anyhow::Result<Option<String>> {
    let Some(path) = session_file() else {
        return Ok(None);
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let saved: Saved = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a session; `edgectl logout` removes it",
            path.display()
        )
    })?;
    if saved.server != server {
        return Ok(None);
    }
    if !saved.session.expires_within(REFRESH_AHEAD_SECS) {
        return Ok(Some(saved.session.access_token));
    }
    let fresh = login::refresh(&saved.session).await.with_context(
        || "the login session has expired and cannot be renewed; run `edgectl login` again",
    )?;
    save(&path, server, &fresh)?;
    Ok(Some(fresh.access_token))
}

fn save(path: &Path, server: &str, session: &Session) -> anyhow::Result<()> {
    let dir = path.parent().expect("the session file is in a folder");
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let text = serde_json::to_string_pretty(&Saved {
        server: server.to_owned(),
        session: session.clone(),
    })?;
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.write_all(text.as_bytes())?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// `edgectl login`: asks the CO where people log in, runs the login there, keeps the session.
pub async fn login(
    api: &Api,
    server: &str,
    login_hint: Option<&str>,
    open_browser: bool,
) -> anyhow::Result<()> {
    let provider = api.get("/auth/provider").await?;
    if provider["kind"] != "oidc" {
        bail!(
            "this CO issues its own tokens (issuer {}): ask an admin for one (`edgectl user token \
             USER`) and pass it with --token-file, or use the bootstrap admin.token in the CO's \
             data directory",
            provider["issuer"]
        );
    }
    let settings: LoginSettings =
        serde_json::from_value(provider).context("the CO's login settings")?;
    let session = login::login(&settings, login_hint, |url| {
        eprintln!("Open this address in a browser to log in:\n\n  {url}\n");
        if open_browser {
            let _ = std::process::Command::new("xdg-open")
                .arg(url)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn();
        }
        eprintln!("Waiting for the browser…");
    })
    .await?;
    let path = session_file().context("no home folder to keep the session in (set HOME)")?;
    save(&path, server, &session)?;
    let me = api
        .send(
            api.http
                .get(api.url("/me"))
                .bearer_auth(&session.access_token),
        )
        .await
        .context("the provider's token is not accepted by the CO")?;
    let roles: Vec<&str> = me["roles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_str())
        .collect();
    println!(
        "Logged in as {} (tenant {}, roles: {}). The session is kept in {}.",
        me["subject"].as_str().unwrap_or("?"),
        me["tenant"].as_str().unwrap_or("?"),
        if roles.is_empty() {
            "none".into()
        } else {
            roles.join(", ")
        },
        path.display()
    );
    Ok(())
}

/// `edgectl logout`: forgets the session.
pub fn logout() -> anyhow::Result<()> {
    match session_file() {
        Some(path) if path.exists() => {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
            println!("Logged out ({} removed).", path.display());
        }
        _ => println!("No login session to end."),
    }
    Ok(())
}
