//! The GraphQL queries and mutations: each resolver reads the request's tenant and calls one
//! control-plane service, as the REST handler of the same thing does.

use super::{Sites, gql};
use crate::events::ChangeEvent;
use crate::models::{Compatibility, DeviceModel, against};
use crate::routes::{
    App, AppVersion, CreateDeployment, Deployment, Device, DeviceLive, PlacementPreview, Shared,
    Site, SiteEvent,
};
use crate::tenancy::{Tenant, User};
use async_graphql::{ComplexObject, Context, InputObject, Object, Result, SimpleObject};
use eos_domain::ids::{SiteId, TenantId};
use eos_domain::service::control::UpdateRequest;
use eos_domain::service::{AppFilter, DeploymentFilter, Page, PageRequest, Schedule, UserRequest};
use serde_json::Value;
use std::collections::BTreeMap;

/// The page size of a list when the query gives none.
const DEFAULT_PAGE: i32 = 100;

fn ctl<'a>(ctx: &'a Context<'_>) -> &'a Shared {
    ctx.data_unchecked::<Shared>()
}

fn tenant<'a>(ctx: &'a Context<'_>) -> &'a TenantId {
    ctx.data_unchecked::<TenantId>()
}

/// The caller (its root field was authorized, so it is there).
fn actor<'a>(ctx: &'a Context<'_>) -> &'a eos_domain::auth::Principal {
    ctx.data_unchecked::<eos_domain::auth::Principal>()
}

fn page(after: Option<String>, limit: Option<i32>) -> Result<PageRequest> {
    let limit = u64::try_from(limit.unwrap_or(DEFAULT_PAGE)).unwrap_or(0);
    PageRequest::parse(after.as_deref(), Some(limit)).map_err(gql)
}

fn site_id(site: Option<String>) -> Result<Option<SiteId>> {
    site.map(|s| SiteId::parse(&s).map_err(|e| async_graphql::Error::new(e.to_string())))
        .transpose()
}

macro_rules! page_type {
    ($name:ident, $item:ty, $doc:literal) => {
        #[doc = $doc]
        #[derive(SimpleObject)]
        pub struct $name {
            pub items: Vec<$item>,
            /// The `after` of the next page; `null` on the last page.
            pub next_cursor: Option<String>,
        }

        impl<T: Into<$item>> From<Page<T>> for $name {
            fn from(p: Page<T>) -> Self {
                Self {
                    items: p.items.into_iter().map(Into::into).collect(),
                    next_cursor: p.next,
                }
            }
        }
    };
}

page_type!(
    AppPage,
    AppVersion,
    "A page of applications: the newest version of each."
);
page_type!(SitePage, Site, "A page of sites.");
page_type!(DevicePage, Device, "A page of devices.");
page_type!(DeploymentPage, Deployment, "A page of deployments.");
page_type!(TenantPage, Tenant, "A page of tenants.");
page_type!(DeviceModelPage, DeviceModel, "A page of device models.");
page_type!(UserPage, User, "A page of users.");

pub struct Query;

#[Object(guard = "crate::auth::RootGuard::QUERY")]
impl Query {
    /// The tenant this request acts for.
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Tenant> {
        Ok(ctl(ctx).tenant(tenant(ctx)).await.map_err(gql)?.into())
    }

    /// The newest version of every application, by id; `q` takes apps whose id, name,
    /// description or tagline hold every word, `tag` those with that catalog tag.
    #[graphql(complexity = "limit.unwrap_or(DEFAULT_PAGE).max(1) as usize * child_complexity")]
    async fn apps(
        &self,
        ctx: &Context<'_>,
        q: Option<String>,
        tag: Option<String>,
        after: Option<String>,
        limit: Option<i32>,
    ) -> Result<AppPage> {
        let filter = AppFilter { q, tag };
        let p = page(after, limit)?;
        Ok(ctl(ctx)
            .apps_page(tenant(ctx), &filter, &p)
            .await
            .map_err(gql)?
            .into())
    }

    /// One application with all its versions.
    async fn app(&self, ctx: &Context<'_>, id: String) -> Result<App> {
        let versions = ctl(ctx).app_versions(tenant(ctx), &id).await.map_err(gql)?;
        Ok(App::of(versions))
    }

    #[graphql(complexity = "limit.unwrap_or(DEFAULT_PAGE).max(1) as usize * child_complexity")]
    async fn sites(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        limit: Option<i32>,
    ) -> Result<SitePage> {
        let p = page(after, limit)?;
        Ok(ctl(ctx)
            .sites_page(tenant(ctx), &p)
            .await
            .map_err(gql)?
            .into())
    }

    async fn site(&self, ctx: &Context<'_>, id: String) -> Result<Site> {
        Ok(ctl(ctx).site(tenant(ctx), &id).await.map_err(gql)?.into())
    }

    /// A site's newest events (refused or skipped desired states, crashed workloads), oldest
    /// first.
    async fn site_events(
        &self,
        ctx: &Context<'_>,
        site: String,
        #[graphql(default = 100, validator(minimum = 1, maximum = 1000))] limit: i32,
    ) -> Result<Vec<SiteEvent>> {
        let events = ctl(ctx)
            .site_events(tenant(ctx), &site, limit as u64)
            .await
            .map_err(gql)?;
        Ok(events.into_iter().map(Into::into).collect())
    }

    /// One device (`<site>/<host>`).
    async fn device(&self, ctx: &Context<'_>, id: String) -> Result<Device> {
        Ok(ctl(ctx).device(tenant(ctx), &id).await.map_err(gql)?.into())
    }

    /// Devices by id; of one site, online or not, of a status (`online`, `offline`,
    /// `cordoned`, `draining`), with labels (`line=3,gpu`, as `kubectl -l` writes them).
    #[graphql(complexity = "limit.unwrap_or(DEFAULT_PAGE).max(1) as usize * child_complexity")]
    #[allow(clippy::too_many_arguments)] // each is an argument of the GraphQL field
    async fn devices(
        &self,
        ctx: &Context<'_>,
        site: Option<String>,
        online: Option<bool>,
        status: Option<String>,
        label: Option<String>,
        after: Option<String>,
        limit: Option<i32>,
    ) -> Result<DevicePage> {
        let filter = crate::lists::device_filter(
            site.as_deref(),
            online,
            status.as_deref(),
            label.as_deref(),
        )
        .map_err(super::problem_error)?;
        let p = page(after, limit)?;
        let devices = ctl(ctx)
            .devices_page(tenant(ctx), &filter, &p)
            .await
            .map_err(gql)?;
        // When the query wants each device's site, the sites of the whole page are read at
        // once here, and each device's `site` finds its own in the loader's cache: one read,
        // however the items' resolvers are scheduled.
        if ctx.look_ahead().field("items").field("site").exists() {
            let ids: std::collections::BTreeSet<SiteId> =
                devices.items.iter().map(|d| d.id.site().clone()).collect();
            ctx.data_unchecked::<Sites>().load_many(ids).await?;
        }
        Ok(devices.into())
    }

    /// Deployments with their status, oldest first.
    #[graphql(complexity = "limit.unwrap_or(DEFAULT_PAGE).max(1) as usize * child_complexity")]
    async fn deployments(
        &self,
        ctx: &Context<'_>,
        site: Option<String>,
        app_id: Option<String>,
        phase: Option<String>,
        after: Option<String>,
        limit: Option<i32>,
    ) -> Result<DeploymentPage> {
        let filter = DeploymentFilter {
            site: site_id(site)?,
            app_id,
            phase,
        };
        let p = page(after, limit)?;
        Ok(ctl(ctx)
            .deployments_page(tenant(ctx), &filter, &p)
            .await
            .map_err(gql)?
            .into())
    }

    async fn deployment(&self, ctx: &Context<'_>, id: String) -> Result<Deployment> {
        Ok(ctl(ctx)
            .deployment_view(tenant(ctx), &id)
            .await
            .map_err(gql)?
            .into())
    }

    /// Where the site would place a deployment, and why each other device would not take it.
    async fn preview(
        &self,
        ctx: &Context<'_>,
        input: CreateDeployment,
    ) -> Result<PlacementPreview> {
        Ok(ctl(ctx)
            .preview(tenant(ctx), &input.into_request(None))
            .await
            .map_err(gql)?
            .into())
    }

    /// A deployment's components now, asked live of the devices that run it.
    async fn live(
        &self,
        ctx: &Context<'_>,
        deployment: String,
        component: Option<String>,
        #[graphql(default = 50)] lines: u32,
    ) -> Result<Vec<DeviceLive>> {
        let live = ctl(ctx)
            .live(tenant(ctx), &deployment, component.as_deref(), lines)
            .await
            .map_err(gql)?;
        Ok(live.into_iter().map(Into::into).collect())
    }

    /// Events of the tenant numbered above `after`, oldest first.
    #[graphql(complexity = "limit as usize * child_complexity")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 0)] after: u64,
        kind: Option<String>,
        site: Option<String>,
        subject: Option<String>,
        #[graphql(default = 100, validator(minimum = 1, maximum = 1000))] limit: i32,
    ) -> Result<Vec<ChangeEvent>> {
        let filter = eos_domain::service::EventFilter {
            tenant: tenant(ctx).clone(),
            kind,
            site: site_id(site)?,
            subject,
        };
        let events = ctl(ctx)
            .events_after(after, &filter, limit as u64)
            .await
            .map_err(gql)?;
        Ok(events.into_iter().map(Into::into).collect())
    }

    /// The tenant's device models.
    #[graphql(complexity = "limit.unwrap_or(DEFAULT_PAGE).max(1) as usize * child_complexity")]
    async fn device_models(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        limit: Option<i32>,
    ) -> Result<DeviceModelPage> {
        let p = page(after, limit)?;
        Ok(ctl(ctx)
            .models_page(tenant(ctx), &p)
            .await
            .map_err(gql)?
            .into())
    }

    async fn device_model(&self, ctx: &Context<'_>, id: String) -> Result<DeviceModel> {
        Ok(ctl(ctx)
            .device_model(tenant(ctx), &id)
            .await
            .map_err(gql)?
            .into())
    }

    /// Whether an app version (the newest when absent) can run on a device model or a device
    /// (exactly one of the two), per deployment profile.
    async fn compatibility(
        &self,
        ctx: &Context<'_>,
        app_id: String,
        version: Option<String>,
        model: Option<String>,
        device: Option<String>,
    ) -> Result<Compatibility> {
        let against = against(model, device).map_err(super::problem_error)?;
        Ok(ctl(ctx)
            .compatibility(tenant(ctx), &app_id, version.as_deref(), &against)
            .await
            .map_err(gql)?
            .into())
    }

    /// The platform's tenants.
    #[graphql(complexity = "limit.unwrap_or(DEFAULT_PAGE).max(1) as usize * child_complexity")]
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        limit: Option<i32>,
    ) -> Result<TenantPage> {
        let p = page(after, limit)?;
        Ok(ctl(ctx).tenants_page(&p).await.map_err(gql)?.into())
    }

    /// The tenant's workload security policy (the strict default until set).
    async fn workload_policy(
        &self,
        ctx: &Context<'_>,
    ) -> Result<crate::tenancy::WorkloadPolicyBody> {
        Ok(ctl(ctx)
            .workload_policy(tenant(ctx))
            .await
            .map_err(gql)?
            .into())
    }

    /// The tenant's users.
    #[graphql(complexity = "limit.unwrap_or(DEFAULT_PAGE).max(1) as usize * child_complexity")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
        limit: Option<i32>,
    ) -> Result<UserPage> {
        let p = page(after, limit)?;
        Ok(ctl(ctx)
            .users_page(tenant(ctx), &p)
            .await
            .map_err(gql)?
            .into())
    }
}

#[ComplexObject]
impl Device {
    /// The device's site, loaded together with the sites of the other devices of the answer.
    #[graphql(name = "site")]
    async fn site_of(&self, ctx: &Context<'_>) -> Result<Option<Site>> {
        let id = SiteId::parse(&self.site).map_err(|e| async_graphql::Error::new(e.to_string()))?;
        ctx.data_unchecked::<Sites>().load_one(id).await
    }
}

#[ComplexObject]
impl Deployment {
    /// What happened to the deployment, oldest first (needs read-operations, as its REST
    /// twin does).
    #[graphql(guard = "crate::auth::Needs(eos_domain::auth::Action::ReadOperations)")]
    async fn history(&self, ctx: &Context<'_>) -> Result<Vec<ChangeEvent>> {
        let events = ctl(ctx)
            .deployment_history(tenant(ctx), &self.id)
            .await
            .map_err(gql)?;
        Ok(events.into_iter().map(Into::into).collect())
    }
}

/// A change to a deployment; what is absent stays.
#[derive(InputObject)]
pub struct DeploymentChange {
    /// Another version of its application (a rollout or a rollback).
    pub version: Option<String>,
    /// New parameters, replacing the current ones.
    pub parameters: Option<BTreeMap<String, Value>>,
    /// The ETag the deployment had when read: the change is made only if it is unchanged.
    pub if_match: Option<String>,
}

pub struct Mutation;

#[Object(guard = "crate::auth::RootGuard::MUTATION")]
impl Mutation {
    /// Registers an application from a directory or Git repository the CO reads, or from the
    /// description text itself (exactly one of the two).
    async fn add_app(
        &self,
        ctx: &Context<'_>,
        source: Option<String>,
        description: Option<String>,
    ) -> Result<AppVersion> {
        let (c, t) = (ctl(ctx), tenant(ctx));
        let record = match (source, description) {
            (Some(source), None) => c.add_app_from_source(actor(ctx), t, &source).await,
            (None, Some(text)) => c.add_app(t, &text, "inline", None).await,
            _ => return Err("give exactly one of source or description".into()),
        }
        .map_err(gql)?;
        Ok(record.into())
    }

    /// Deploys an application version to a site. With `idempotencyKey`, a retry of the same
    /// request gets the deployment the first one made.
    async fn deploy(
        &self,
        ctx: &Context<'_>,
        input: CreateDeployment,
        idempotency_key: Option<String>,
    ) -> Result<Deployment> {
        let (c, t) = (ctl(ctx), tenant(ctx));
        let record = c
            .deploy(t, input.into_request(idempotency_key))
            .await
            .map_err(gql)?;
        Ok(c.deployment_view(t, record.id.as_str())
            .await
            .map_err(gql)?
            .into())
    }

    /// Moves a deployment to another version and/or new parameters.
    async fn update_deployment(
        &self,
        ctx: &Context<'_>,
        id: String,
        change: DeploymentChange,
    ) -> Result<Deployment> {
        let (c, t) = (ctl(ctx), tenant(ctx));
        c.update_deployment(
            t,
            &id,
            UpdateRequest {
                version: change.version,
                parameters: change.parameters,
                if_match: change.if_match.map(|tag| vec![tag]),
            },
        )
        .await
        .map_err(gql)?;
        Ok(c.deployment_view(t, &id).await.map_err(gql)?.into())
    }

    /// Removes a deployment; its phase is `removed` once its site confirms.
    async fn undeploy(&self, ctx: &Context<'_>, id: String) -> Result<Deployment> {
        let (c, t) = (ctl(ctx), tenant(ctx));
        c.undeploy(t, &id).await.map_err(gql)?;
        Ok(c.deployment_view(t, &id).await.map_err(gql)?.into())
    }

    /// Registers a device model from its capability template (a Margo DeviceCapabilities
    /// document).
    async fn register_device_model(
        &self,
        ctx: &Context<'_>,
        id: String,
        capabilities: Value,
    ) -> Result<DeviceModel> {
        Ok(ctl(ctx)
            .register_model(tenant(ctx), &id, &capabilities.to_string())
            .await
            .map_err(gql)?
            .into())
    }

    /// Sets a site's labels (all of them) and time zone (an IANA name; `null` clears it); a
    /// field left out stays as it is.
    async fn update_site(
        &self,
        ctx: &Context<'_>,
        id: String,
        labels: Option<BTreeMap<String, String>>,
        time_zone: async_graphql::MaybeUndefined<String>,
    ) -> Result<Site> {
        let update = eos_domain::service::control::SiteUpdate {
            labels,
            time_zone: match time_zone {
                async_graphql::MaybeUndefined::Undefined => None,
                async_graphql::MaybeUndefined::Null => Some(None),
                async_graphql::MaybeUndefined::Value(tz) => Some(Some(tz)),
            },
        };
        Ok(ctl(ctx)
            .update_site(tenant(ctx), &id, update)
            .await
            .map_err(gql)?
            .into())
    }

    /// Cordons a device: it takes no new workloads; what runs there stays.
    async fn cordon_device(&self, ctx: &Context<'_>, id: String) -> Result<Device> {
        schedule(ctx, &id, Schedule::Cordoned).await
    }

    /// Drains a device: what runs there moves to other devices of its site.
    async fn drain_device(&self, ctx: &Context<'_>, id: String) -> Result<Device> {
        schedule(ctx, &id, Schedule::Draining).await
    }

    /// Opens a cordoned or draining device to workloads again.
    async fn uncordon_device(&self, ctx: &Context<'_>, id: String) -> Result<Device> {
        schedule(ctx, &id, Schedule::Open).await
    }

    /// Removes one of the tenant's device models; its id.
    async fn remove_device_model(&self, ctx: &Context<'_>, id: String) -> Result<String> {
        ctl(ctx).remove_model(tenant(ctx), &id).await.map_err(gql)?;
        Ok(id)
    }

    /// Creates a tenant.
    async fn create_tenant(
        &self,
        ctx: &Context<'_>,
        id: String,
        name: String,
        plan: Option<String>,
    ) -> Result<Tenant> {
        let req = eos_domain::service::TenantRequest { id, name, plan };
        Ok(ctl(ctx).create_tenant(req).await.map_err(gql)?.into())
    }

    /// Adds a user to the tenant, with a role no higher than the caller's own.
    async fn add_user(
        &self,
        ctx: &Context<'_>,
        email: String,
        role: String,
        sso_id: Option<String>,
    ) -> Result<User> {
        let req = UserRequest {
            email,
            role,
            sso_id,
        };
        Ok(ctl(ctx)
            .add_user(actor(ctx), tenant(ctx), req)
            .await
            .map_err(gql)?
            .into())
    }

    /// Removes one of the tenant's users (not one above the caller's role); its id.
    async fn remove_user(&self, ctx: &Context<'_>, id: String) -> Result<String> {
        ctl(ctx)
            .remove_user(actor(ctx), tenant(ctx), &id)
            .await
            .map_err(gql)?;
        Ok(id)
    }

    /// Sets the tenant's workload security policy (platform admins only).
    async fn set_workload_policy(
        &self,
        ctx: &Context<'_>,
        policy: crate::tenancy::WorkloadPolicyBody,
    ) -> Result<crate::tenancy::WorkloadPolicyBody> {
        Ok(ctl(ctx)
            .set_workload_policy(tenant(ctx), policy.into())
            .await
            .map_err(gql)?
            .into())
    }

    /// Changes a user's role (neither the present nor the new role above the caller's).
    async fn set_user_role(&self, ctx: &Context<'_>, id: String, role: String) -> Result<User> {
        Ok(ctl(ctx)
            .set_user_role(actor(ctx), tenant(ctx), &id, &role)
            .await
            .map_err(gql)?
            .into())
    }
}

async fn schedule(ctx: &Context<'_>, id: &str, to: Schedule) -> Result<Device> {
    Ok(ctl(ctx)
        .set_schedule(tenant(ctx), id, to)
        .await
        .map_err(gql)?
        .into())
}
