//! The LO's side: a local mirror that fetches and reads one site's files at a commit.

use crate::BRANCH;
use crate::command::{GitError, git};
use eos_domain::ids::SiteId;
use eos_domain::layout::{SiteFiles, site_dir};
use std::path::{Path, PathBuf};

pub struct SiteReader {
    mirror: PathBuf,
    site: SiteId,
}

/// A site's files as of one commit.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchedSite {
    pub commit: String,
    pub files: SiteFiles,
}

impl SiteReader {
    /// Opens (creating on first use) the local mirror at `mirror` of `remote`.
    pub async fn open(remote: &str, mirror: &Path, site: SiteId) -> Result<Self, GitError> {
        if !mirror.join("HEAD").exists() {
            tokio::fs::create_dir_all(mirror).await?;
            git(mirror, &["init", "--quiet", "--bare"]).await?;
            git(mirror, &["remote", "add", "origin", remote]).await?;
        }
        Ok(Self {
            mirror: mirror.to_owned(),
            site,
        })
    }

    /// Fetches from the remote. `Ok(None)` when the branch does not exist yet.
    pub async fn fetch(&self) -> Result<Option<FetchedSite>, GitError> {
        git(
            &self.mirror,
            &[
                "fetch",
                "--quiet",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            ],
        )
        .await?;
        self.read_latest().await
    }

    /// Reads the site at the last fetched commit, without touching the network.
    pub async fn read_latest(&self) -> Result<Option<FetchedSite>, GitError> {
        let Ok(commit) = git(
            &self.mirror,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("refs/remotes/origin/{BRANCH}"),
            ],
        )
        .await
        else {
            return Ok(None);
        };
        let commit = commit.trim().to_owned();
        let listing = git(
            &self.mirror,
            &[
                "ls-tree",
                "-r",
                "--name-only",
                &commit,
                "--",
                &format!("{}/", site_dir(&self.site)),
            ],
        )
        .await?;
        let mut files = SiteFiles::new();
        for path in listing.lines().filter(|l| !l.is_empty()) {
            let content = git(&self.mirror, &["show", &format!("{commit}:{path}")]).await?;
            files.insert(path.to_owned(), content);
        }
        Ok(Some(FetchedSite { commit, files }))
    }

    /// The commits that changed this site after `from` and before `to`, oldest first: the
    /// desired states a site that jumps from `from` straight to `to` never applied. Empty when
    /// `from` is unknown here (a rewritten history).
    pub async fn commits_between(&self, from: &str, to: &str) -> Result<Vec<String>, GitError> {
        let range = format!("{from}..{to}");
        let Ok(listing) = git(
            &self.mirror,
            &[
                "rev-list",
                "--reverse",
                &range,
                "--",
                &format!("{}/", site_dir(&self.site)),
            ],
        )
        .await
        else {
            return Ok(Vec::new());
        };
        Ok(listing
            .lines()
            .map(str::trim)
            .filter(|c| !c.is_empty() && *c != to)
            .map(str::to_owned)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DeploymentsWriter;

    #[tokio::test]
    async fn a_published_site_reads_back_byte_for_byte() {
        let tmp = tempfile::tempdir().unwrap();
        let remote = tmp.path().join("deployments.git");
        let writer = DeploymentsWriter::open(remote.to_str().unwrap(), &tmp.path().join("work"))
            .await
            .unwrap();
        let site = SiteId::parse("s1").unwrap();
        let files = SiteFiles::from([
            (
                "sites/s1/manifest.yaml".to_owned(),
                "manifestVersion: 1\n".to_owned(),
            ),
            ("sites/s1/site.yaml".to_owned(), "id: s1\n".to_owned()),
        ]);
        let commit = writer.publish(&site, files.clone(), "first").await.unwrap();
        let reader = SiteReader::open(
            remote.to_str().unwrap(),
            &tmp.path().join("mirror"),
            site.clone(),
        )
        .await
        .unwrap();
        let fetched = reader.fetch().await.unwrap().unwrap();
        assert_eq!(fetched.commit, commit);
        assert_eq!(fetched.files, files);
        // The writer reads the head back the same (what the CO compares at start), and a new
        // writer on the same repository sees it too; a site never published has no files.
        assert_eq!(writer.current(&site).await.unwrap(), files);
        let again = DeploymentsWriter::open(remote.to_str().unwrap(), &tmp.path().join("work2"))
            .await
            .unwrap();
        assert_eq!(again.current(&site).await.unwrap(), files);
        let unknown = SiteId::parse("s2").unwrap();
        assert!(writer.current(&unknown).await.unwrap().is_empty());
        let other = SiteFiles::from([("sites/s1/site.yaml".to_owned(), "id: s1\n".to_owned())]);
        let second = writer
            .publish(&site, other.clone(), "second")
            .await
            .unwrap();
        assert_ne!(second, commit);
        assert_eq!(
            reader.fetch().await.unwrap().unwrap().files,
            other,
            "a removed file is gone after the next commit"
        );
    }
}
