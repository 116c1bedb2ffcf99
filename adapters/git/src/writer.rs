//! The CO's side: a working clone that commits a site's files and pushes them.

use crate::BRANCH;
use crate::command::{GitError, git};
use eos_domain::ids::SiteId;
use eos_domain::layout::{SiteFiles, site_dir};
use std::path::{Path, PathBuf};
use tokio::sync::Mutex;

pub struct DeploymentsWriter {
    remote: String,
    work: PathBuf,
    lock: Mutex<()>,
}

impl DeploymentsWriter {
    /// Opens the working clone at `work` of `remote`. When `remote` is a local path that does not
    /// exist yet, a bare repository is created there (the embedded default).
    pub async fn open(remote: &str, work: &Path) -> Result<Self, GitError> {
        let remote_path = Path::new(remote);
        if !remote.contains("://") && !remote_path.exists() {
            tokio::fs::create_dir_all(remote_path).await?;
            git(remote_path, &["init", "--quiet", "--bare"]).await?;
        }
        // Only this process writes its working clone (and the embedded bare repository), one
        // command at a time, and none runs yet: a lock file now is left over from a crash
        // mid-commit or mid-push, and would block every later commit.
        remove_stale_locks(&work.join(".git")).await;
        if !remote.contains("://") {
            remove_stale_locks(remote_path).await;
        }
        if !work.join(".git").exists() {
            tokio::fs::create_dir_all(work).await?;
            git(work, &["init", "--quiet"]).await?;
            git(work, &["remote", "add", "origin", remote]).await?;
        }
        let writer = Self {
            remote: remote.to_owned(),
            work: work.to_owned(),
            lock: Mutex::new(()),
        };
        writer.sync().await?;
        Ok(writer)
    }

    pub fn remote(&self) -> &str {
        &self.remote
    }

    /// Brings the working clone to the remote branch, if the branch exists yet.
    async fn sync(&self) -> Result<(), GitError> {
        git(&self.work, &["fetch", "--quiet", "origin"]).await?;
        let has_remote_branch = git(
            &self.work,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/remotes/origin/{BRANCH}"),
            ],
        )
        .await
        .is_ok();
        if has_remote_branch {
            git(
                &self.work,
                &[
                    "checkout",
                    "--quiet",
                    "-B",
                    BRANCH,
                    &format!("origin/{BRANCH}"),
                ],
            )
            .await?;
        } else {
            git(&self.work, &["checkout", "--quiet", "-B", BRANCH]).await?;
        }
        Ok(())
    }

    /// The files under `sites/<site>/` at the head of the repository (none for a new site).
    pub async fn current(&self, site: &SiteId) -> Result<SiteFiles, GitError> {
        let _guard = self.lock.lock().await;
        self.sync().await?;
        let mut files = SiteFiles::new();
        let mut folders = vec![self.work.join(site_dir(site))];
        while let Some(folder) = folders.pop() {
            let Ok(mut entries) = tokio::fs::read_dir(&folder).await else {
                continue;
            };
            while let Some(entry) = entries.next_entry().await? {
                let path = entry.path();
                if entry.file_type().await?.is_dir() {
                    folders.push(path);
                    continue;
                }
                let relative = path
                    .strip_prefix(&self.work)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                files.insert(relative, tokio::fs::read_to_string(&path).await?);
            }
        }
        Ok(files)
    }

    /// Replaces `sites/<site>/` with `files`, commits and pushes. Returns the commit id; when
    /// nothing changed, the current head.
    pub async fn publish(
        &self,
        site: &SiteId,
        files: SiteFiles,
        message: &str,
    ) -> Result<String, GitError> {
        let _guard = self.lock.lock().await;
        self.sync().await?;
        let dir = self.work.join(site_dir(site));
        if dir.exists() {
            tokio::fs::remove_dir_all(&dir).await?;
        }
        for (path, content) in &files {
            let full = self.work.join(path);
            if let Some(parent) = full.parent() {
                tokio::fs::create_dir_all(parent).await?;
            }
            tokio::fs::write(&full, content).await?;
        }
        git(&self.work, &["add", "--all", "--", &site_dir(site)]).await?;
        let changed = git(&self.work, &["status", "--porcelain"]).await?;
        if !changed.trim().is_empty() {
            git(&self.work, &["commit", "--quiet", "-m", message]).await?;
            git(
                &self.work,
                &[
                    "push",
                    "--quiet",
                    "origin",
                    &format!("HEAD:refs/heads/{BRANCH}"),
                ],
            )
            .await?;
        }
        Ok(git(&self.work, &["rev-parse", "HEAD"])
            .await?
            .trim()
            .to_owned())
    }
}

/// Removes `*.lock` files git leaves behind when killed (index, HEAD, config, refs).
async fn remove_stale_locks(git_dir: &Path) {
    let mut folders = vec![git_dir.to_owned()];
    while let Some(folder) = folders.pop() {
        let Ok(mut entries) = tokio::fs::read_dir(&folder).await else {
            continue;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let path = entry.path();
            let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
            let under_refs = path
                .strip_prefix(git_dir)
                .is_ok_and(|p| p.starts_with("refs"));
            if is_dir && (under_refs || path.file_name().is_some_and(|n| n == "refs")) {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "lock") {
                tracing::warn!(path = %path.display(), "removing a git lock left by a crash");
                let _ = tokio::fs::remove_file(&path).await;
            }
        }
    }
}

#[async_trait::async_trait]
impl eos_domain::service::DesiredStateRepo for DeploymentsWriter {
    async fn publish(
        &self,
        site: &SiteId,
        files: SiteFiles,
        message: &str,
    ) -> Result<String, String> {
        DeploymentsWriter::publish(self, site, files, message)
            .await
            .map_err(|e| e.to_string())
    }

    async fn current(&self, site: &SiteId) -> Result<SiteFiles, String> {
        DeploymentsWriter::current(self, site)
            .await
            .map_err(|e| e.to_string())
    }
}
