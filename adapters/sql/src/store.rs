//! `SqlStore`: the `ControlStore` port on sea-orm.

use crate::convert::*;
use crate::entity::*;
use eos_domain::ids::{AppId, DeploymentId, DeviceId, SiteId};
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

    async fn insert_app_version(&self, record: &AppVersionRecord) -> StoreResult<()> {
        app_versions::Entity::insert(app_version_to(record))
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn app_versions(&self, app: &AppId) -> StoreResult<Vec<AppVersionRecord>> {
        let rows = app_versions::Entity::find()
            .filter(app_versions::Column::AppId.eq(app.as_str()))
            .order_by_asc(app_versions::Column::Seq)
            .all(&self.db)
            .await
            .map_err(backend)?;
        Ok(rows.into_iter().map(app_version_from).collect())
    }

    async fn list_apps(&self) -> StoreResult<Vec<AppVersionRecord>> {
        let rows = app_versions::Entity::find()
            .order_by_asc(app_versions::Column::AppId)
            .order_by_asc(app_versions::Column::Seq)
            .all(&self.db)
            .await
            .map_err(backend)?;
        let mut newest: Vec<AppVersionRecord> = Vec::new();
        for r in rows.into_iter().map(app_version_from) {
            match newest.last_mut() {
                Some(last) if last.app_id == r.app_id => *last = r,
                _ => newest.push(r),
            }
        }
        Ok(newest)
    }

    async fn upsert_site(&self, site: &SiteRecord) -> StoreResult<()> {
        // The connection columns belong to `set_site_contact`; an upsert of an existing site
        // leaves them alone, so neither writer can put back the other's stale values.
        let conflict = OnConflict::column(sites::Column::Id)
            .update_columns([sites::Column::Labels, sites::Column::ManifestVersion])
            .to_owned();
        sites::Entity::insert(site_to(site))
            .on_conflict(conflict)
            .exec(&self.db)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn set_site_contact(
        &self,
        id: &SiteId,
        connected: bool,
        last_seen: Option<&str>,
    ) -> StoreResult<()> {
        let mut columns = vec![sites::Column::LoConnected];
        if last_seen.is_some() {
            columns.push(sites::Column::LastSeen);
        }
        let row = sites::ActiveModel {
            id: Set(id.to_string()),
            labels: Set("{}".into()),
            manifest_version: Set(0),
            lo_connected: Set(connected),
            last_seen: Set(last_seen.map(str::to_owned)),
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
        Ok(())
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

    async fn list_devices(&self, site: Option<&SiteId>) -> StoreResult<Vec<DeviceRecord>> {
        let mut q = devices::Entity::find().order_by_asc(devices::Column::Id);
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

    async fn get_deployment(&self, id: &DeploymentId) -> StoreResult<Option<DeploymentRecord>> {
        deployments::Entity::find()
            .filter(deployments::Column::Id.eq(id.as_str()))
            .one(&self.db)
            .await
            .map_err(backend)?
            .map(deployment_from)
            .transpose()
    }

    async fn list_deployments(&self, site: Option<&SiteId>) -> StoreResult<Vec<DeploymentRecord>> {
        let mut q = deployments::Entity::find().order_by_asc(deployments::Column::Seq);
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

    async fn get_cursor(&self, site: &SiteId) -> StoreResult<Option<UplinkCursor>> {
        uplink_cursors::Entity::find_by_id(site.to_string())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn version(app: &str, v: &str) -> AppVersionRecord {
        AppVersionRecord {
            app_id: app.into(),
            version: v.into(),
            name: "n".into(),
            description: None,
            digest: format!("sha256:{v}"),
            document: "doc".into(),
            source: "dir".into(),
            created_at: "t".into(),
        }
    }

    #[tokio::test]
    async fn app_versions_are_unique_and_listed_newest_first_per_app() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&SqlStore::sqlite_url(&tmp.path().join("co.db")))
            .await
            .unwrap();
        store
            .insert_app_version(&version("a", "1.0.0"))
            .await
            .unwrap();
        store
            .insert_app_version(&version("a", "1.1.0"))
            .await
            .unwrap();
        store
            .insert_app_version(&version("b", "0.1.0"))
            .await
            .unwrap();
        assert!(matches!(
            store.insert_app_version(&version("a", "1.0.0")).await,
            Err(StoreError::Conflict(_))
        ));
        let newest: Vec<String> = store
            .list_apps()
            .await
            .unwrap()
            .into_iter()
            .map(|r| format!("{}@{}", r.app_id, r.version))
            .collect();
        assert_eq!(newest, ["a@1.1.0", "b@0.1.0"]);
        drop(store);
        let reopened = SqlStore::connect(&SqlStore::sqlite_url(&tmp.path().join("co.db")))
            .await
            .unwrap();
        assert_eq!(
            reopened
                .app_versions(&AppId::parse("a").unwrap())
                .await
                .unwrap()
                .len(),
            2,
            "data survives a restart and migrations rerun cleanly"
        );
    }

    #[tokio::test]
    async fn a_transaction_commits_all_its_writes_or_none() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&SqlStore::sqlite_url(&tmp.path().join("co.db")))
            .await
            .unwrap();
        let site = SiteId::parse("s1").unwrap();
        let cursor = |seq| UplinkCursor {
            site: site.clone(),
            outbox_id: "o1".into(),
            applied_seq: seq,
            applied: seq,
            duplicates: 0,
        };
        let tx = store.begin().await.unwrap();
        tx.put_cursor(&cursor(5)).await.unwrap();
        assert_eq!(tx.get_cursor(&site).await.unwrap(), Some(cursor(5)));
        drop(tx);
        assert_eq!(
            store.get_cursor(&site).await.unwrap(),
            None,
            "dropped: nothing"
        );
        let tx = store.begin().await.unwrap();
        tx.put_cursor(&cursor(7)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(store.get_cursor(&site).await.unwrap(), Some(cursor(7)));
    }

    #[tokio::test]
    async fn usage_is_kept_apart_from_what_reports_rewrite() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&SqlStore::sqlite_url(&tmp.path().join("co.db")))
            .await
            .unwrap();
        let id = DeviceId::parse("s1/n1").unwrap();
        let caps = eos_domain::margo::DeviceCapabilities::from_json(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/bench-capabilities.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let record = |online| DeviceRecord {
            id: id.clone(),
            capabilities: caps.clone(),
            online,
            last_seen: Some("t1".into()),
            usage: None,
        };
        store.upsert_device(&record(true)).await.unwrap();
        let usage = DeviceUsage {
            cpu_load_1m: 0.5,
            memory_used_bytes: 1 << 30,
            memory_total_bytes: 4 << 30,
            workloads: 3,
            observed_at: "t2".into(),
        };
        store.set_device_usage(&id, &usage).await.unwrap();
        store
            .set_device_usage(&DeviceId::parse("s1/unknown").unwrap(), &usage)
            .await
            .unwrap();
        store.upsert_device(&record(false)).await.unwrap();
        let devices = store.list_devices(None).await.unwrap();
        assert_eq!(devices.len(), 1, "an unknown device is not created");
        assert!(!devices[0].online);
        assert_eq!(devices[0].usage.as_ref(), Some(&usage));
    }

    #[tokio::test]
    async fn a_site_lists_its_own_newest_events_oldest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&SqlStore::sqlite_url(&tmp.path().join("co.db")))
            .await
            .unwrap();
        let event = |site: &str, n: u32| SiteEvent {
            site: SiteId::parse(site).unwrap(),
            kind: event_kind::COMPONENT_CRASHED.into(),
            device_id: Some(format!("{site}/n1")),
            deployment_id: None,
            component: Some("c".into()),
            message: format!("crash {n}"),
            observed_at: format!("2026-01-01T00:00:0{n}.000Z"),
        };
        for n in 1..=3 {
            store.append_site_event(&event("s1", n)).await.unwrap();
            store.append_site_event(&event("s2", n)).await.unwrap();
        }
        let s1 = SiteId::parse("s1").unwrap();
        let newest = store.site_events(&s1, 2).await.unwrap();
        assert_eq!(newest, vec![event("s1", 2), event("s1", 3)]);
        assert_eq!(store.site_events(&s1, 100).await.unwrap().len(), 3);
    }

    #[tokio::test]
    async fn contact_and_manifest_version_are_written_without_clobbering_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SqlStore::connect(&SqlStore::sqlite_url(&tmp.path().join("co.db")))
            .await
            .unwrap();
        let id = SiteId::parse("s1").unwrap();
        store.set_site_contact(&id, true, Some("t1")).await.unwrap();
        let mut site = store.get_site(&id).await.unwrap().unwrap();
        assert_eq!((site.manifest_version, site.lo_connected), (0, true));
        // A publisher read the record, then the link dropped, then the publisher wrote.
        site.manifest_version = 7;
        store.set_site_contact(&id, false, None).await.unwrap();
        store.upsert_site(&site).await.unwrap();
        let now = store.get_site(&id).await.unwrap().unwrap();
        assert_eq!(now.manifest_version, 7);
        assert!(
            !now.lo_connected,
            "the publisher's stale copy did not reconnect the site"
        );
        assert_eq!(
            now.last_seen.as_deref(),
            Some("t1"),
            "losing the link is not contact"
        );
        // And contact never moves the version back.
        store.set_site_contact(&id, true, Some("t2")).await.unwrap();
        assert_eq!(
            store.get_site(&id).await.unwrap().unwrap().manifest_version,
            7
        );
    }
}
