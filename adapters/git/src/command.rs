//! Running `git` with a fixed identity and clear errors.

use std::path::Path;
use tokio::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git {args} failed in {dir}: {stderr}")]
    Failed {
        args: String,
        dir: String,
        stderr: String,
    },
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
}

/// Runs `git ARGS` in `dir` and returns its standard output.
pub(crate) async fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    run(Command::new("git"), dir, args).await
}

/// Like [`git`], for a tenant's source: nothing of the CO's own credentials goes along (no
/// SSH key, agent or configuration of the CO's user; no stored credential helper), so a
/// tenant reads only what it could read without the CO.
pub(crate) async fn git_as_stranger(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let mut command = Command::new("git");
    command
        .env(
            "GIT_SSH_COMMAND",
            "ssh -F /dev/null -o IdentitiesOnly=yes -o IdentityFile=/dev/null \
             -o IdentityAgent=none -o BatchMode=yes -o UserKnownHostsFile=/dev/null \
             -o StrictHostKeyChecking=yes",
        )
        .env_remove("SSH_AUTH_SOCK")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    run(command, dir, args).await
}

async fn run(mut command: Command, dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let output = command
        .args([
            "-c",
            "user.name=EOS central orchestrator",
            "-c",
            "user.email=co@eos.invalid",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "advice.detachedHead=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true)
        .output()
        .await?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(GitError::Failed {
            args: args.join(" "),
            dir: dir.display().to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}
