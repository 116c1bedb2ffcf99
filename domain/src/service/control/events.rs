//! The event log as the control plane gives it out: by number, by deployment, and pruned to
//! its retention.

use super::super::ServiceError;
use super::super::records::{EventFilter, EventRecord};
use super::ControlPlane;
use crate::ids::TenantId;

impl ControlPlane {
    /// Deletes the events created before `before` (RFC 3339); returns how many.
    pub async fn prune_events(&self, before: &str) -> Result<u64, ServiceError> {
        Ok(self.store.prune_events(before).await?)
    }

    /// The number of the newest event (0 when there is none).
    pub async fn last_event_id(&self) -> Result<u64, ServiceError> {
        Ok(self.store.last_event_id().await?)
    }

    /// What happened to a deployment, oldest first: created, updated, each device's status
    /// changes, removing, removed (at most the first 1,000 events).
    pub async fn deployment_history(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<Vec<EventRecord>, ServiceError> {
        let deployment = self.deployment(tenant, id).await?;
        let filter = EventFilter {
            subject: Some(deployment.id.to_string()),
            ..EventFilter::of(tenant.clone())
        };
        Ok(self.store.events_after(0, &filter, 1000).await?)
    }

    /// Events numbered above `after` of `filter`, at most `limit`, in order.
    pub async fn events_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: u64,
    ) -> Result<Vec<EventRecord>, ServiceError> {
        Ok(self.store.events_after(after, filter, limit).await?)
    }

    /// Up to `limit` events of every tenant numbered above `after`: for the one feed that
    /// hands each reader's stream the events of its filter (and so of its tenant).
    pub async fn feed_after(
        &self,
        after: u64,
        limit: u64,
    ) -> Result<Vec<EventRecord>, ServiceError> {
        Ok(self.store.feed_after(after, limit).await?)
    }
}
