//! `edgectl login` through a real OpenID Connect provider (npm oidc-provider): edgectl prints the
//! address, the test plays the browser, edgectl takes the code on its loopback address, keeps
//! the session (mode 0600) and acts with it; an access token about to expire is refreshed with
//! the refresh token; `logout` forgets the session. Against a CO that issues its own tokens,
//! `login` says how to get one instead.

use eos_tests::Fleet;
use eos_tests::oidc::{IdentityProvider, play_browser};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};

/// edgectl with `home` as its home and working folder, and no token from the environment.
fn edgectl(fleet: &Fleet, home: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_edgectl"));
    command
        .arg("--server")
        .arg(format!("http://{}", fleet.co().http_addr))
        .current_dir(home)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("EOS_TOKEN")
        .env_remove("EOS_TOKEN_FILE")
        .kill_on_drop(true);
    command
}

async fn run(fleet: &Fleet, home: &Path, args: &[&str]) -> (bool, String, String) {
    let out = edgectl(fleet, home).args(args).output().await.unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn access_token(home: &Path) -> String {
    let text = std::fs::read_to_string(home.join(".config/eos/session.json")).unwrap();
    let session: serde_json::Value = serde_json::from_str(&text).unwrap();
    session["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_keeps_a_session_that_edgectl_acts_with_and_refreshes() {
    // Access tokens live 40 s: less than edgectl's minute of refresh ahead, so every use
    // refreshes.
    let accounts = json!({"olga": {"realm": ["operator"], "tenant": "default"}});
    let provider = IdentityProvider::start(accounts, 40).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let oidc = provider.co_config();
    let fleet = Fleet::start_with_co(&tmp.path().join("fleet"), "site-1", &[], |c| {
        c.oidc = Some(oidc)
    })
    .await
    .unwrap();
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    // Without a session there is no token.
    let (ok, _, err) = run(&fleet, &home, &["whoami"]).await;
    assert!(!ok && err.contains("401"), "{err}");

    let mut login = edgectl(&fleet, &home)
        .args(["login", "--no-browser", "--login-hint", "olga"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(login.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("edgectl printed no address");
        if let Some(url) = line.trim().strip_prefix("http") {
            break format!("http{url}");
        }
    };
    assert!(url.starts_with(&provider.issuer), "{url}");
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    play_browser(&url).await.unwrap();
    let out = login.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("Logged in as olga (tenant default, roles: operator)"),
        "{stdout}"
    );
    let file = home.join(".config/eos/session.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let first = access_token(&home);

    // edgectl acts with the session, refreshing the token that is about to expire.
    let (ok, out, err) = run(&fleet, &home, &["-o", "json", "whoami"]).await;
    assert!(ok, "{err}");
    let me: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(me[0]["subject"], "olga");
    assert_eq!(me[0]["roles"], json!(["operator"]));
    let second = access_token(&home);
    assert_ne!(first, second, "the session was refreshed");
    let (ok, _, err) = run(&fleet, &home, &["status"]).await;
    assert!(ok, "an operator reads deployments: {err}");

    let (ok, out, _) = run(&fleet, &home, &["logout"]).await;
    assert!(ok && out.contains("Logged out"), "{out}");
    assert!(!file.exists());
    let (ok, _, err) = run(&fleet, &home, &["whoami"]).await;
    assert!(!ok && err.contains("401"), "{err}");
    fleet.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_at_a_co_without_a_provider_says_how_to_get_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = Fleet::start(&tmp.path().join("fleet"), "site-1", &[])
        .await
        .unwrap();
    let (ok, _, err) = run(&fleet, tmp.path(), &["login", "--no-browser"]).await;
    assert!(!ok);
    assert!(err.contains("issues its own tokens"), "{err}");
    assert!(err.contains("edgectl user token"), "{err}");
    fleet.shutdown().await;
}
