//! GraphQL subscriptions: the tenant's events as they are committed, read from the same log and
//! shared feed as server-sent events; the status of one deployment (its rollout's progress);
//! nodes joining, going online and offline.

use super::gql;
use crate::events::{ChangeEvent, follow};
use crate::routes::Shared;
use async_graphql::{Context, Result, Subscription as GraphQlSubscription};
use eos_domain::ids::{SiteId, TenantId};
use eos_domain::service::EventFilter;
use eos_domain::service::records::change;
use futures::{Stream, StreamExt};
use std::sync::Arc;

pub struct Subscription;

/// The stream of the events of `filter` after `after` (`None`: from now on).
async fn stream(
    ctx: &Context<'_>,
    filter: EventFilter,
    after: Option<u64>,
) -> Result<impl Stream<Item = ChangeEvent> + use<>> {
    let control = ctx.data_unchecked::<Shared>().clone();
    let bell = ctx.data_unchecked::<Arc<crate::Bell>>().clone();
    let after = match after {
        Some(n) => n,
        None => control.last_event_id().await.map_err(gql)?,
    };
    let events = follow(control, bell, filter, after)
        .await
        .map_err(super::problem_error)?;
    Ok(events.map(ChangeEvent::from))
}

fn tenant(ctx: &Context<'_>) -> TenantId {
    ctx.data_unchecked::<TenantId>().clone()
}

fn site_id(site: Option<String>) -> Result<Option<SiteId>> {
    site.map(|s| SiteId::parse(&s).map_err(|e| async_graphql::Error::new(e.to_string())))
        .transpose()
}

#[GraphQlSubscription(guard = "crate::auth::RootGuard::SUBSCRIPTION")]
impl Subscription {
    /// The tenant's events as they happen: of a kind (or the kinds under it), a site, a
    /// subject; after event number `after`, or from now on.
    async fn events(
        &self,
        ctx: &Context<'_>,
        kind: Option<String>,
        site: Option<String>,
        subject: Option<String>,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = ChangeEvent> + use<>> {
        let filter = EventFilter {
            tenant: tenant(ctx),
            kind,
            site: site_id(site)?,
            subject,
        };
        stream(ctx, filter, after).await
    }

    /// One deployment's progress: created, updated, each device's status, removing, removed.
    /// Another tenant's deployment is not found.
    async fn deployment_status(
        &self,
        ctx: &Context<'_>,
        id: String,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = ChangeEvent> + use<>> {
        let t = tenant(ctx);
        let deployment = ctx
            .data_unchecked::<Shared>()
            .deployment_view(&t, &id)
            .await
            .map_err(gql)?;
        let filter = EventFilter {
            kind: Some("deployment".into()),
            subject: Some(deployment.deployment.id.to_string()),
            ..EventFilter::of(t)
        };
        stream(ctx, filter, after).await
    }

    /// Nodes joining, coming online and going offline, of one site or all of the tenant's.
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        site: Option<String>,
        after: Option<u64>,
    ) -> Result<impl Stream<Item = ChangeEvent> + use<>> {
        let t = tenant(ctx);
        if let Some(s) = &site {
            ctx.data_unchecked::<Shared>()
                .site(&t, s)
                .await
                .map_err(gql)?;
        }
        let filter = EventFilter {
            kind: Some(
                change::DEVICE_JOINED
                    .split('.')
                    .next()
                    .unwrap_or("device")
                    .into(),
            ),
            site: site_id(site)?,
            ..EventFilter::of(t)
        };
        stream(ctx, filter, after).await
    }
}
