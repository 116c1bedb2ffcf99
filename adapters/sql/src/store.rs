//! `SqlStore`: the `ControlStore` port on sea-orm.

use crate::convert::*;
use crate::entity::*;
use eos_domain::ids::{AppId, DeploymentId, DeviceId, SiteId, TenantId};
use eos_domain::service::ports::StoreResult;
use eos_domain::service::*;
use eos_migrations::Migrator;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, SqlErr,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use std::collections::BTreeMap;

/// The store on a database connection (pool), or on a transaction of one (see `begin`).
pub struct SqlStore<C = DatabaseConnection> {
    db: C,
}

fn backend(e: DbErr) -> StoreError {
    match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(m)) => {
            StoreError::Conflict(format!("already exists: {m}"))
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

#[async_trait::async_trait]
impl StoreTransaction for SqlStore<DatabaseTransaction> {
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.db.commit().await.map_err(backend)
    }
}

impl SqlStore {
    /// Connects (creating an SQLite file when needed) and runs every pending migration.
    pub async fn connect(url: &str) -> Result<Self, DbErr> {
        let mut options = ConnectOptions::new(url.to_owned());
        options.sqlx_logging(false);
        if url.starts_with("sqlite:") {
            // One writer at a time is SQLite's model; a small pool avoids lock contention.
            options.max_connections(1);
            // Write-ahead log with FULL sync: one fsync of the log per commit (the rollback
            // journal needs several), readers never wait for the writer, and a committed
            // transaction survives a power loss, which acknowledgements to LOs rely on.
            options.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
            });
        }
        let db = Database::connect(options).await?;
        Migrator::up(&db, None).await?;
        Ok(Self { db })
    }

    /// The SQLite URL of a database file, created when missing.
    pub fn sqlite_url(path: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", path.display())
    }
}

impl<C: ConnectionTrait> SqlStore<C> {
    /// Writes `value` as JSON into the tenant's `column`; whether the tenant exists.
    async fn set_tenant_json(
        &self,
        id: &TenantId,
        column: tenants::Column,
        value: &impl serde::Serialize,
    ) -> StoreResult<bool> {
        let text = serde_json::to_string(value).expect("a policy is JSON");
        let done = tenants::Entity::update_many()
            .col_expr(column, sea_orm::sea_query::Expr::value(text))
            .filter(tenants::Column::Id.eq(id.as_str()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected == 1)
    }
}

#[async_trait::async_trait]
impl<C> ControlStore for SqlStore<C>
where
    C: ConnectionTrait
        + TransactionTrait<Transaction = DatabaseTransaction>
        + Send
        + Sync
        + 'static,
{
    async fn begin(&self) -> StoreResult<Box<dyn StoreTransaction>> {
        let tx = self.db.begin().await.map_err(backend)?;
        Ok(Box::new(SqlStore { db: tx }))
    }

    async fn insert_tenant(&self, tenant: &TenantRecord) -> StoreResult<()> {
        tenants::Entity::insert(tenant_to(tenant))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn insert_claim(&self, claim: &ClaimRecord) -> StoreResult<()> {
        claims::Entity::insert(claims::ActiveModel {
            token_hash: Set(claim.token_hash.clone()),
            tenant_id: Set(claim.tenant.to_string()),
            site_id: Set(claim.site.to_string()),
            role: Set(claim.role.as_str().into()),
            host: Set(claim.host.clone()),
            created_at: Set(claim.created_at.clone()),
            expires_at: Set(claim.expires_at.clone()),
            used_at: Set(claim.used_at.clone()),
        })
        .exec(&self.db)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn put_revocation(&self, revocation: &Revocation) -> StoreResult<()> {
        revocations::Entity::insert(revocations::ActiveModel {
            site_id: Set(revocation.site.to_string()),
            host: Set(revocation.host.clone().unwrap_or_default()),
            tenant_id: Set(revocation.tenant.to_string()),
            revoked_at: Set(revocation.revoked_at.clone()),
        })
        .on_conflict(
            OnConflict::columns([revocations::Column::SiteId, revocations::Column::Host])
                .update_columns([
                    revocations::Column::RevokedAt,
                    revocations::Column::TenantId,
                ])
                .to_owned(),
        )
        .exec(&self.db)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn site_revocations(&self, site: &SiteId) -> StoreResult<Vec<Revocation>> {
        let rows = revocations::Entity::find()
            .filter(revocations::Column::SiteId.eq(site.as_str()))
            .order_by_asc(revocations::Column::Host)
            .all(&self.db)
            .await
            .map_err(backend)?;
        rows.into_iter()
            .map(|m| {
                Ok(Revocation {
                    tenant: TenantId::parse(&m.tenant_id)
                        .map_err(|e| StoreError::Backend(format!("stored revocation: {e}")))?,
                    site: site.clone(),
                    host: (!m.host.is_empty()).then_some(m.host),
                    revoked_at: m.revoked_at,
                })
            })
            .collect()
    }

    async fn get_claim(&self, token_hash: &str) -> StoreResult<Option<ClaimRecord>> {
        let Some(m) = claims::Entity::find_by_id(token_hash.to_owned())
            .one(&self.db)
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        let corrupt_claim = |why: String| StoreError::Backend(format!("stored claim: {why}"));
        Ok(Some(ClaimRecord {
            tenant: TenantId::parse(&m.tenant_id).map_err(|e| corrupt_claim(e.to_string()))?,
            site: SiteId::parse(&m.site_id).map_err(|e| corrupt_claim(e.to_string()))?,
            role: ClaimRole::parse(&m.role)
                .ok_or_else(|| corrupt_claim(format!("role {:?}", m.role)))?,
            token_hash: m.token_hash,
            host: m.host,
            created_at: m.created_at,
            expires_at: m.expires_at,
            used_at: m.used_at,
        }))
    }

    async fn use_claim(&self, token_hash: &str, now: &str) -> StoreResult<bool> {
        let done = claims::Entity::update_many()
            .col_expr(claims::Column::UsedAt, sea_orm::sea_query::Expr::value(now))
            .filter(claims::Column::TokenHash.eq(token_hash))
            .filter(claims::Column::UsedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected == 1)
    }

    async fn set_signature_policy(
        &self,
        id: &TenantId,
        policy: &eos_domain::signing::SignaturePolicy,
    ) -> StoreResult<bool> {
        self.set_tenant_json(id, tenants::Column::SignaturePolicy, policy)
            .await
    }

    async fn set_workload_policy(
        &self,
        id: &TenantId,
        policy: &eos_domain::workload::WorkloadPolicy,
    ) -> StoreResult<bool> {
        self.set_tenant_json(id, tenants::Column::WorkloadPolicy, policy)
            .await
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<TenantRecord>> {
        tenants::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(tenant_from)
            .transpose()
    }

    async fn page_tenants(
        &self,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<TenantRecord>> {
        let mut q = tenants::Entity::find()
            .order_by_asc(tenants::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            q = q.filter(tenants::Column::Id.gt(after));
        }
        q.all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(tenant_from)
            .collect()
    }

    async fn insert_user(&self, user: &UserRecord) -> StoreResult<()> {
        users::Entity::insert(user_to(user))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_user(&self, tenant: &TenantId, id: &str) -> StoreResult<Option<UserRecord>> {
        users::Entity::find()
            .filter(users::Column::TenantId.eq(tenant.as_str()))
            .filter(users::Column::Id.eq(id))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(user_from)
            .transpose()
    }

    async fn page_users(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<UserRecord>> {
        let mut q = users::Entity::find()
            .filter(users::Column::TenantId.eq(tenant.as_str()))
            .order_by_asc(users::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            q = q.filter(users::Column::Id.gt(after));
        }
        q.all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(user_from)
            .collect()
    }

    async fn delete_user(&self, tenant: &TenantId, id: &str) -> StoreResult<bool> {
        let done = users::Entity::delete_many()
            .filter(users::Column::TenantId.eq(tenant.as_str()))
            .filter(users::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected > 0)
    }

    async fn set_user_role(&self, tenant: &TenantId, id: &str, role: Role) -> StoreResult<bool> {
        let done = users::Entity::update_many()
            .col_expr(
                users::Column::Role,
                sea_orm::sea_query::Expr::value(role.as_str()),
            )
            .filter(users::Column::TenantId.eq(tenant.as_str()))
            .filter(users::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected > 0)
    }

    async fn user_by_email(
        &self,
        tenant: &TenantId,
        email: &str,
    ) -> StoreResult<Option<UserRecord>> {
        users::Entity::find()
            .filter(users::Column::TenantId.eq(tenant.as_str()))
            .filter(users::Column::Email.eq(email))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(user_from)
            .transpose()
    }

    async fn insert_app_resource(&self, resource: &AppResourceRecord) -> StoreResult<()> {
        app_resources::Entity::insert(app_resource_to(resource))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_app_resource(
        &self,
        tenant: &TenantId,
        app_id: &str,
        version: &str,
        kind: ResourceKind,
    ) -> StoreResult<Option<AppResourceRecord>> {
        app_resources::Entity::find_by_id((
            tenant.to_string(),
            app_id.to_owned(),
            version.to_owned(),
            kind.as_str().to_owned(),
        ))
        .one(&self.db)
        .await
        .map_err(backend)?
        .map(app_resource_from)
        .transpose()
    }

    async fn insert_device_model(&self, model: &DeviceModelRecord) -> StoreResult<()> {
        device_models::Entity::insert(device_model_to(model))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_device_model(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> StoreResult<Option<DeviceModelRecord>> {
        device_models::Entity::find_by_id((tenant.to_string(), id.to_owned()))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(device_model_from)
            .transpose()
    }

    async fn page_device_models(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<DeviceModelRecord>> {
        let mut q = device_models::Entity::find()
            .filter(device_models::Column::TenantId.eq(tenant.as_str()))
            .order_by_asc(device_models::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            q = q.filter(device_models::Column::Id.gt(after));
        }
        q.all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(device_model_from)
            .collect()
    }

    async fn delete_device_model(&self, tenant: &TenantId, id: &str) -> StoreResult<bool> {
        let done = device_models::Entity::delete_many()
            .filter(device_models::Column::TenantId.eq(tenant.as_str()))
            .filter(device_models::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected > 0)
    }

    async fn insert_app_version(&self, record: &AppVersionRecord) -> StoreResult<()> {
        app_versions::Entity::insert(app_version_to(record))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn app_versions(
        &self,
        tenant: &TenantId,
        app: &AppId,
    ) -> StoreResult<Vec<AppVersionRecord>> {
        let rows = app_versions::Entity::find()
            .filter(app_versions::Column::TenantId.eq(tenant.as_str()))
            .filter(app_versions::Column::AppId.eq(app.as_str()))
            .order_by_asc(app_versions::Column::Seq)
            .all(&self.db)
            .await
            .map_err(backend)?;
        rows.into_iter().map(app_version_from).collect()
    }

    async fn upsert_site(&self, site: &SiteRecord) -> StoreResult<()> {
        // The connection columns belong to `set_site_contact`, labels and time zone to
        // `set_site_meta`; an upsert of an existing site leaves them alone, so no writer can put
        // back another's stale values.
        let conflict = OnConflict::column(sites::Column::Id)
            .update_columns([sites::Column::ManifestVersion])
            .to_owned();
        sites::Entity::insert(site_to(site))
            .on_conflict(conflict)
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn set_site_meta(
        &self,
        tenant: &TenantId,
        id: &SiteId,
        labels: &BTreeMap<String, String>,
        time_zone: Option<&str>,
    ) -> StoreResult<bool> {
        let done = sites::Entity::update_many()
            .col_expr(
                sites::Column::Labels,
                sea_orm::sea_query::Expr::value(serde_json::to_string(labels).expect("serializes")),
            )
            .col_expr(
                sites::Column::TimeZone,
                sea_orm::sea_query::Expr::value(time_zone.map(str::to_owned)),
            )
            .filter(sites::Column::TenantId.eq(tenant.as_str()))
            .filter(sites::Column::Id.eq(id.as_str()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected > 0)
    }

    async fn set_site_contact(
        &self,
        tenant: &TenantId,
        id: &SiteId,
        connected: bool,
        last_seen: Option<&str>,
    ) -> StoreResult<()> {
        let mut columns = vec![sites::Column::LoConnected];
        if last_seen.is_some() {
            columns.push(sites::Column::LastSeen);
        }
        // A site keeps the tenant it was created in: the tenant is not among the columns an
        // existing site's contact updates.
        let row = sites::ActiveModel {
            id: Set(id.to_string()),
            tenant_id: Set(tenant.to_string()),
            labels: Set("{}".into()),
            manifest_version: Set(0),
            lo_connected: Set(connected),
            last_seen: Set(last_seen.map(str::to_owned)),
            time_zone: Set(None),
        };
        sites::Entity::insert(row)
            .on_conflict(
                OnConflict::column(sites::Column::Id)
                    .update_columns(columns)
                    .to_owned(),
            )
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_site(&self, id: &SiteId) -> StoreResult<Option<SiteRecord>> {
        sites::Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(site_from)
            .transpose()
    }

    async fn sites_by_ids(
        &self,
        tenant: &TenantId,
        ids: &[SiteId],
    ) -> StoreResult<Vec<SiteRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        sites::Entity::find()
            .filter(sites::Column::TenantId.eq(tenant.as_str()))
            .filter(sites::Column::Id.is_in(ids.iter().map(|s| s.to_string())))
            .order_by_asc(sites::Column::Id)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(site_from)
            .collect()
    }

    async fn list_sites(&self) -> StoreResult<Vec<SiteRecord>> {
        sites::Entity::find()
            .order_by_asc(sites::Column::Id)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(site_from)
            .collect()
    }

    async fn upsert_device(&self, device: &DeviceRecord) -> StoreResult<()> {
        let conflict = OnConflict::column(devices::Column::Id)
            .update_columns([
                devices::Column::Capabilities,
                devices::Column::Online,
                devices::Column::LastSeen,
            ])
            .to_owned();
        devices::Entity::insert(device_to(device))
            .on_conflict(conflict)
            .exec(&self.db)
            .await
            .map_err(backend)?;
        // Its labels as rows, replaced whole (the device's report is in one transaction).
        let id = device.id.to_string();
        device_labels::Entity::delete_many()
            .filter(device_labels::Column::DeviceId.eq(&id))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        let rows: Vec<device_labels::ActiveModel> = label_pairs(&device.capabilities.labels)
            .into_iter()
            .map(|(key, value)| device_labels::ActiveModel {
                device_id: Set(id.clone()),
                key: Set(key),
                value: Set(value),
            })
            .collect();
        if !rows.is_empty() {
            device_labels::Entity::insert_many(rows)
                .exec(&self.db)
                .await
                .map_err(backend)?;
        }
        Ok(())
    }

    async fn set_device_schedule(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
        schedule: Schedule,
    ) -> StoreResult<bool> {
        let done = devices::Entity::update_many()
            .col_expr(
                devices::Column::Schedule,
                sea_orm::sea_query::Expr::value(schedule.as_str()),
            )
            .filter(devices::Column::TenantId.eq(tenant.as_str()))
            .filter(devices::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected > 0)
    }

    async fn set_device_usage(&self, device: &DeviceId, usage: &DeviceUsage) -> StoreResult<()> {
        devices::Entity::update_many()
            .col_expr(
                devices::Column::Usage,
                sea_orm::sea_query::Expr::value(serde_json::to_string(usage).expect("serializes")),
            )
            .filter(devices::Column::Id.eq(device.to_string()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_devices(
        &self,
        tenant: &TenantId,
        site: Option<&SiteId>,
    ) -> StoreResult<Vec<DeviceRecord>> {
        let mut q = devices::Entity::find()
            .filter(devices::Column::TenantId.eq(tenant.as_str()))
            .order_by_asc(devices::Column::Id);
        if let Some(site) = site {
            q = q.filter(devices::Column::SiteId.eq(site.as_str()));
        }
        q.all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(device_from)
            .collect()
    }

    async fn insert_deployment(&self, deployment: &DeploymentRecord) -> StoreResult<()> {
        deployments::Entity::insert(deployment_to(deployment))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn update_deployment_phase(
        &self,
        id: &DeploymentId,
        phase: DeploymentPhase,
    ) -> StoreResult<()> {
        deployments::Entity::update_many()
            .col_expr(
                deployments::Column::Phase,
                sea_orm::sea_query::Expr::value(phase.as_str()),
            )
            .filter(deployments::Column::Id.eq(id.as_str()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn replace_deployment(&self, deployment: &DeploymentRecord) -> StoreResult<()> {
        let set = |col, value: sea_orm::Value| (col, sea_orm::sea_query::Expr::value(value));
        let mut update = deployments::Entity::update_many();
        for (col, expr) in [
            set(
                deployments::Column::Version,
                deployment.version.clone().into(),
            ),
            set(
                deployments::Column::ProfileId,
                deployment.profile_id.clone().into(),
            ),
            set(
                deployments::Column::Parameters,
                crate::convert::json(&deployment.parameters).into(),
            ),
            set(
                deployments::Column::Document,
                deployment.document.clone().into(),
            ),
        ] {
            update = update.col_expr(col, expr);
        }
        update
            .filter(deployments::Column::Id.eq(deployment.id.as_str()))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn get_deployment(
        &self,
        tenant: &TenantId,
        id: &DeploymentId,
    ) -> StoreResult<Option<DeploymentRecord>> {
        deployments::Entity::find()
            .filter(deployments::Column::TenantId.eq(tenant.as_str()))
            .filter(deployments::Column::Id.eq(id.as_str()))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(deployment_from)
            .transpose()
    }

    async fn list_deployments(
        &self,
        tenant: &TenantId,
        site: Option<&SiteId>,
    ) -> StoreResult<Vec<DeploymentRecord>> {
        let mut q = deployments::Entity::find()
            .filter(deployments::Column::TenantId.eq(tenant.as_str()))
            .order_by_asc(deployments::Column::Seq);
        if let Some(site) = site {
            q = q.filter(deployments::Column::SiteId.eq(site.as_str()));
        }
        q.all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(deployment_from)
            .collect()
    }

    async fn upsert_device_status(&self, status: &DeviceStatusRecord) -> StoreResult<()> {
        let conflict = OnConflict::columns([
            device_statuses::Column::DeploymentId,
            device_statuses::Column::DeviceId,
        ])
        .update_columns([
            device_statuses::Column::State,
            device_statuses::Column::Error,
            device_statuses::Column::Components,
            device_statuses::Column::UpdatedAt,
        ])
        .to_owned();
        device_statuses::Entity::insert(status_to(status))
            .on_conflict(conflict)
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn device_statuses(
        &self,
        deployment: &DeploymentId,
    ) -> StoreResult<Vec<DeviceStatusRecord>> {
        device_statuses::Entity::find()
            .filter(device_statuses::Column::DeploymentId.eq(deployment.as_str()))
            .order_by_asc(device_statuses::Column::DeviceId)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(status_from)
            .collect()
    }

    async fn append_site_event(&self, event: &SiteEvent) -> StoreResult<()> {
        site_events::Entity::insert(event_to(event))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn site_events(&self, site: &SiteId, limit: u64) -> StoreResult<Vec<SiteEvent>> {
        let mut newest = site_events::Entity::find()
            .filter(site_events::Column::SiteId.eq(site.to_string()))
            .order_by_desc(site_events::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(backend)?;
        newest.reverse();
        newest.into_iter().map(event_from).collect()
    }

    async fn page_apps(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<AppVersionRecord>> {
        // The page's app ids first, then their versions; the newest of each is kept.
        let mut ids = app_versions::Entity::find()
            .filter(app_versions::Column::TenantId.eq(tenant.as_str()))
            .select_only()
            .column(app_versions::Column::AppId)
            .distinct()
            .order_by_asc(app_versions::Column::AppId)
            .limit(limit);
        if let Some(after) = after {
            ids = ids.filter(app_versions::Column::AppId.gt(after));
        }
        let ids: Vec<String> = ids.into_tuple().all(&self.db).await.map_err(backend)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = app_versions::Entity::find()
            .filter(app_versions::Column::TenantId.eq(tenant.as_str()))
            .filter(app_versions::Column::AppId.is_in(ids))
            .order_by_asc(app_versions::Column::AppId)
            .order_by_asc(app_versions::Column::Seq)
            .all(&self.db)
            .await
            .map_err(backend)?;
        newest_per_app(rows)
    }

    async fn page_sites(
        &self,
        tenant: &TenantId,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<SiteRecord>> {
        let mut q = sites::Entity::find()
            .filter(sites::Column::TenantId.eq(tenant.as_str()))
            .order_by_asc(sites::Column::Id)
            .limit(limit);
        if let Some(after) = after {
            q = q.filter(sites::Column::Id.gt(after));
        }
        q.all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(site_from)
            .collect()
    }

    async fn page_devices(
        &self,
        tenant: &TenantId,
        filter: &DeviceFilter,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<DeviceRecord>> {
        let mut q = devices::Entity::find()
            .filter(devices::Column::TenantId.eq(tenant.as_str()))
            .order_by_asc(devices::Column::Id)
            .limit(limit);
        if let Some(site) = &filter.site {
            q = q.filter(devices::Column::SiteId.eq(site.as_str()));
        }
        if let Some(online) = filter.online {
            q = q.filter(devices::Column::Online.eq(online));
        }
        if let Some(schedule) = filter.schedule {
            q = q.filter(devices::Column::Schedule.eq(schedule.as_str()));
        }
        for req in &filter.labels {
            let mut having = sea_orm::sea_query::Query::select()
                .column(device_labels::Column::DeviceId)
                .from(device_labels::Entity)
                .and_where(device_labels::Column::Key.eq(req.key.as_str()))
                .to_owned();
            if let Some(value) = &req.value {
                having.and_where(device_labels::Column::Value.eq(value.as_str()));
            }
            q = q.filter(devices::Column::Id.in_subquery(having));
        }
        if let Some(after) = after {
            q = q.filter(devices::Column::Id.gt(after));
        }
        q.all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(device_from)
            .collect()
    }

    async fn page_deployments(
        &self,
        tenant: &TenantId,
        filter: &DeploymentFilter,
        after: Option<&str>,
        limit: u64,
    ) -> StoreResult<Vec<DeploymentRecord>> {
        let mut q = deployments::Entity::find()
            .filter(deployments::Column::TenantId.eq(tenant.as_str()))
            .order_by_asc(deployments::Column::Seq)
            .limit(limit);
        if let Some(site) = &filter.site {
            q = q.filter(deployments::Column::SiteId.eq(site.as_str()));
        }
        if let Some(app) = &filter.app_id {
            q = q.filter(deployments::Column::AppId.eq(app.as_str()));
        }
        if let Some(phase) = &filter.phase {
            q = q.filter(deployments::Column::Phase.eq(phase.as_str()));
        }
        if let Some(after) = after {
            // The order is creation (seq); the cursor names the last deployment by id.
            let seq: Option<i32> = deployments::Entity::find()
                .select_only()
                .column(deployments::Column::Seq)
                .filter(deployments::Column::TenantId.eq(tenant.as_str()))
                .filter(deployments::Column::Id.eq(after))
                .into_tuple()
                .one(&self.db)
                .await
                .map_err(backend)?;
            let Some(seq) = seq else {
                return Err(StoreError::Conflict(format!(
                    "the cursor names deployment {after}, which is not stored"
                )));
            };
            q = q.filter(deployments::Column::Seq.gt(seq));
        }
        q.all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(deployment_from)
            .collect()
    }

    async fn get_device(
        &self,
        tenant: &TenantId,
        id: &DeviceId,
    ) -> StoreResult<Option<DeviceRecord>> {
        devices::Entity::find_by_id(id.to_string())
            .filter(devices::Column::TenantId.eq(tenant.as_str()))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(device_from)
            .transpose()
    }

    async fn append_event(&self, event: &EventRecord) -> StoreResult<u64> {
        // Numbers in commit order: on PostgreSQL two transactions could take numbers 20 and 21
        // and commit 21 first, and a reader past 21 would never see 20. The table lock (held
        // to the commit; reads go on) makes event-writing transactions take turns. SQLite has
        // one writer anyway. Inside a transaction this is a savepoint, and the lock stays with
        // the transaction; alone it is a transaction of its own.
        let tx = self.db.begin().await.map_err(backend)?;
        if tx.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            tx.execute_unprepared("LOCK TABLE events IN EXCLUSIVE MODE")
                .await
                .map_err(backend)?;
        }
        let row = events::ActiveModel {
            tenant_id: Set(event.tenant.to_string()),
            kind: Set(event.kind.clone()),
            site_id: Set(event.site.as_ref().map(|s| s.to_string())),
            subject: Set(event.subject.clone()),
            data: Set(event.data.to_string()),
            created_at: Set(event.created_at.clone()),
            ..Default::default()
        };
        let done = events::Entity::insert(row)
            .exec(&tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(done.last_insert_id as u64)
    }

    async fn prune_events(&self, before: &str) -> StoreResult<u64> {
        let done = events::Entity::delete_many()
            .filter(events::Column::CreatedAt.lt(before))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected)
    }

    async fn last_event_id(&self) -> StoreResult<u64> {
        Ok(events::Entity::find()
            .order_by_desc(events::Column::Id)
            .one(&self.db)
            .await
            .map_err(backend)?
            .map_or(0, |e| e.id as u64))
    }

    async fn feed_after(&self, after: u64, limit: u64) -> StoreResult<Vec<EventRecord>> {
        events::Entity::find()
            .filter(events::Column::Id.gt(after as i64))
            .order_by_asc(events::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(event_record_from)
            .collect()
    }

    async fn events_after(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: u64,
    ) -> StoreResult<Vec<EventRecord>> {
        let mut q = events::Entity::find()
            .filter(events::Column::TenantId.eq(filter.tenant.as_str()))
            .filter(events::Column::Id.gt(after as i64))
            .order_by_asc(events::Column::Id)
            .limit(limit);
        if let Some(site) = &filter.site {
            q = q.filter(events::Column::SiteId.eq(site.as_str()));
        }
        if let Some(subject) = &filter.subject {
            q = q.filter(events::Column::Subject.eq(subject.as_str()));
        }
        if let Some(kind) = &filter.kind {
            q = q.filter(
                sea_orm::Condition::any()
                    .add(events::Column::Kind.eq(kind.as_str()))
                    .add(events::Column::Kind.starts_with(format!("{kind}."))),
            );
        }
        q.all(&self.db)
            .await
            .map_err(backend)?
            .into_iter()
            .map(event_record_from)
            .collect()
    }

    async fn get_idempotency(
        &self,
        tenant: &TenantId,
        key: &str,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let Some(row) = idempotency_keys::Entity::find_by_id((tenant.to_string(), key.to_owned()))
            .one(&self.db)
            .await
            .map_err(backend)?
        else {
            return Ok(None);
        };
        Ok(Some(IdempotencyRecord {
            tenant: tenant_of("idempotency_keys", &row.key, &row.tenant_id)?,
            key: row.key,
            request_digest: row.request_digest,
            deployment_id: DeploymentId::parse(&row.deployment_id)
                .map_err(|e| StoreError::Backend(format!("stored deployment id: {e}")))?,
            created_at: row.created_at,
        }))
    }

    async fn insert_idempotency(&self, record: &IdempotencyRecord) -> StoreResult<()> {
        idempotency_keys::Entity::insert(idempotency_keys::ActiveModel {
            tenant_id: Set(record.tenant.to_string()),
            key: Set(record.key.clone()),
            request_digest: Set(record.request_digest.clone()),
            deployment_id: Set(record.deployment_id.to_string()),
            created_at: Set(record.created_at.clone()),
        })
        .exec(&self.db)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn get_cursor(&self, site: &SiteId) -> StoreResult<Option<UplinkCursor>> {
        let mut query = uplink_cursors::Entity::find_by_id(site.to_string());
        // Read for update: a transaction applying a site's reports holds its cursor until it
        // commits, so a second one (a reconnecting LO's) waits and sees what the first applied.
        // SQLite has one writer at a time (and a pool of one) and no row locks.
        if self.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            query = query.lock_exclusive();
        }
        query
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(cursor_from)
            .transpose()
    }

    async fn put_cursor(&self, cursor: &UplinkCursor) -> StoreResult<()> {
        let conflict = OnConflict::column(uplink_cursors::Column::SiteId)
            .update_columns([
                uplink_cursors::Column::OutboxId,
                uplink_cursors::Column::AppliedSeq,
                uplink_cursors::Column::Applied,
                uplink_cursors::Column::Duplicates,
            ])
            .to_owned();
        uplink_cursors::Entity::insert(cursor_to(cursor))
            .on_conflict(conflict)
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

/// The newest version of each app in `rows` (ordered by app, then oldest first).
fn newest_per_app(rows: Vec<app_versions::Model>) -> StoreResult<Vec<AppVersionRecord>> {
    let mut newest: Vec<AppVersionRecord> = Vec::new();
    for r in rows.into_iter().map(app_version_from) {
        let r = r?;
        match newest.last_mut() {
            Some(last) if last.app_id == r.app_id => *last = r,
            _ => newest.push(r),
        }
    }
    Ok(newest)
}

fn event_record_from(row: events::Model) -> StoreResult<EventRecord> {
    let key = row.id.to_string();
    Ok(EventRecord {
        id: row.id as u64,
        tenant: tenant_of("events", &key, &row.tenant_id)?,
        kind: row.kind,
        site: row
            .site_id
            .map(|s| SiteId::parse(&s))
            .transpose()
            .map_err(|e| StoreError::Backend(format!("stored site id: {e}")))?,
        subject: row.subject,
        data: serde_json::from_str(&row.data)
            .map_err(|e| StoreError::Backend(format!("stored event data: {e}")))?,
        created_at: row.created_at,
    })
}
