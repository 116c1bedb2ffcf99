//! The Git watcher: fetches on a hint or every poll interval, validates, and keeps the last good
//! desired state. An invalid commit is refused and reported upstream; running workloads stay.

use crate::artifacts::Relay;
use crate::outbox::Report;
use crate::site::{HistoryEntry, Site};
use eos_adapter_git::SiteReader;
use eos_domain::layout::SiteDesiredState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

pub async fn run(
    site: Arc<Site>,
    relay: Arc<Relay>,
    reader: SiteReader,
    hints: Arc<Notify>,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut refused: Option<String> = None;
    loop {
        match reader.fetch().await {
            Ok(Some(fetched)) => check(&site, &relay, &reader, fetched, &mut refused).await,
            Ok(None) => tracing::debug!(site_id = %site.id, "no desired state yet"),
            Err(e) => {
                tracing::warn!(site_id = %site.id, error = %e, "cannot fetch desired state; keeping the last good one")
            }
        }
        tokio::select! {
            _ = hints.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = eos_app_common::stopped(&mut stop) => return,
        }
    }
}

async fn check(
    site: &Site,
    relay: &Arc<Relay>,
    reader: &SiteReader,
    fetched: eos_adapter_git::FetchedSite,
    refused: &mut Option<String>,
) {
    let current = site.desired_commit();
    if current.as_ref().is_some_and(|(c, _)| *c == fetched.commit)
        || refused.as_deref() == Some(fetched.commit.as_str())
    {
        return;
    }
    if fetched.files.is_empty() {
        return;
    }
    match SiteDesiredState::from_files(&site.id, &fetched.files) {
        Ok(desired)
            if current
                .as_ref()
                .is_some_and(|(_, v)| desired.manifest_version <= *v) =>
        {
            tracing::warn!(site_id = %site.id, commit = %fetched.commit, version = desired.manifest_version, "manifestVersion does not increase; refused");
            *refused = Some(fetched.commit);
        }
        Ok(desired) => {
            tracing::info!(site_id = %site.id, commit = %fetched.commit, version = desired.manifest_version, deployments = desired.deployments.len(), "accepted desired state");
            let skipped = match &current {
                Some((previous, _)) => reader
                    .commits_between(previous, &fetched.commit)
                    .await
                    .unwrap_or_default(),
                None => Vec::new(),
            };
            let entry = HistoryEntry {
                commit: fetched.commit.clone(),
                manifest_version: desired.manifest_version,
                skipped: skipped.clone(),
            };
            let artifacts = crate::artifacts::artifacts_of(&desired);
            eos_app_common::failpoint("lo.desired.before_store");
            if let Err(e) = site.accept_desired(fetched.commit.clone(), fetched.files, desired) {
                tracing::error!(site_id = %site.id, error = %e, "cannot store desired state");
                return;
            }
            if !artifacts.is_empty() {
                let relay = relay.clone();
                tokio::spawn(async move { relay.prefetch(artifacts).await });
            }
            if let Err(e) = site.record_history(entry) {
                tracing::error!(site_id = %site.id, error = %e, "cannot record the desired-state history");
            }
            if let (false, Some((previous, _))) = (skipped.is_empty(), current) {
                tracing::info!(site_id = %site.id, skipped = skipped.len(), "newest desired state wins; intermediate commits skipped");
                site.send_up(Report::Skipped {
                    from_commit: previous,
                    to_commit: fetched.commit,
                    skipped,
                });
            }
        }
        Err(problems) => {
            tracing::warn!(site_id = %site.id, commit = %fetched.commit, %problems, "invalid desired state refused; keeping the last good one");
            site.send_up(Report::Rejected {
                commit: fetched.commit.clone(),
                problems: problems.to_string(),
            });
            *refused = Some(fetched.commit);
        }
    }
}
