//! Tenants and users. Every application version, site, device, deployment, event and
//! idempotency key gets the tenant it belongs to; what a database held before is the `default`
//! tenant's, which this migration creates. Application versions are unique per tenant (two
//! tenants may each have `hello@1.0.0`), and so are idempotency keys.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Plan,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    TenantId,
    Email,
    Role,
    SsoId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AppVersions {
    Table,
    AppId,
    Version,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    TenantId,
    Key,
    RequestDigest,
    DeploymentId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeysPrevious {
    #[sea_orm(iden = "idempotency_keys_previous")]
    Table,
}

/// The tables that get a `tenant_id` column, with the index each list is read by.
const OWNED: [(&str, &str); 5] = [
    ("app_versions", "app_id"),
    ("sites", "id"),
    ("devices", "id"),
    ("deployments", "seq"),
    ("events", "id"),
];

const TENANT_ID: &str = "tenant_id";
/// When the `default` tenant came to be, as far as this migration knows.
const DEFAULT_CREATED: &str = "1970-01-01T00:00:00Z";

fn idempotency_keys(primary: &[&str]) -> TableCreateStatement {
    let mut key = Index::create();
    for col in primary {
        key.col(Alias::new(*col));
    }
    let mut t = Table::create();
    t.table(IdempotencyKeys::Table);
    if primary.len() > 1 {
        t.col(string(IdempotencyKeys::TenantId))
            .col(string(IdempotencyKeys::Key))
            .primary_key(&mut key);
    } else {
        t.col(string(IdempotencyKeys::Key).primary_key());
    }
    t.col(string(IdempotencyKeys::RequestDigest))
        .col(string(IdempotencyKeys::DeploymentId))
        .col(string(IdempotencyKeys::CreatedAt))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Tenants::Table)
                .col(string(Tenants::Id).primary_key())
                .col(string(Tenants::Name))
                .col(string(Tenants::Plan))
                .col(string(Tenants::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table(Tenants::Table)
                .columns([
                    Tenants::Id,
                    Tenants::Name,
                    Tenants::Plan,
                    Tenants::CreatedAt,
                ])
                .values_panic([
                    "default".into(),
                    "Default tenant".into(),
                    "standard".into(),
                    DEFAULT_CREATED.into(),
                ])
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Users::Table)
                .col(string(Users::Id).primary_key())
                .col(string(Users::TenantId))
                .col(string(Users::Email))
                .col(string(Users::Role))
                .col(string_null(Users::SsoId))
                .col(string(Users::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("users_tenant_email")
                .table(Users::Table)
                .col(Users::TenantId)
                .col(Users::Email)
                .unique()
                .to_owned(),
        )
        .await?;

        for (table, order) in OWNED {
            m.alter_table(
                Table::alter()
                    .table(Alias::new(table))
                    .add_column(
                        ColumnDef::new(Alias::new(TENANT_ID))
                            .string()
                            .not_null()
                            .default("default"),
                    )
                    .to_owned(),
            )
            .await?;
            m.create_index(
                Index::create()
                    .name(format!("{table}_tenant"))
                    .table(Alias::new(table))
                    .col(Alias::new(TENANT_ID))
                    .col(Alias::new(order))
                    .to_owned(),
            )
            .await?;
        }
        m.drop_index(
            Index::drop()
                .name("app_versions_app_version")
                .table(AppVersions::Table)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("app_versions_tenant_app_version")
                .table(AppVersions::Table)
                .col(Alias::new(TENANT_ID))
                .col(AppVersions::AppId)
                .col(AppVersions::Version)
                .unique()
                .to_owned(),
        )
        .await?;

        // Idempotency keys are the tenant's own: the key table is made again with the tenant
        // in its primary key, keeping every key recorded.
        m.rename_table(
            Table::rename()
                .table(IdempotencyKeys::Table, IdempotencyKeysPrevious::Table)
                .to_owned(),
        )
        .await?;
        m.create_table(idempotency_keys(&[TENANT_ID, "key"]))
            .await?;
        m.get_connection()
            .execute_unprepared(
                r#"INSERT INTO idempotency_keys (tenant_id, "key", request_digest, deployment_id, created_at)
                   SELECT 'default', "key", request_digest, deployment_id, created_at FROM idempotency_keys_previous"#,
            )
            .await?;
        m.drop_table(
            Table::drop()
                .table(IdempotencyKeysPrevious::Table)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.rename_table(
            Table::rename()
                .table(IdempotencyKeys::Table, IdempotencyKeysPrevious::Table)
                .to_owned(),
        )
        .await?;
        m.create_table(idempotency_keys(&["key"])).await?;
        // Before tenants a key was one for all: the default tenant's keys are kept.
        m.get_connection()
            .execute_unprepared(
                r#"INSERT INTO idempotency_keys ("key", request_digest, deployment_id, created_at)
                   SELECT "key", request_digest, deployment_id, created_at FROM idempotency_keys_previous
                   WHERE tenant_id = 'default'"#,
            )
            .await?;
        m.drop_table(
            Table::drop()
                .table(IdempotencyKeysPrevious::Table)
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("app_versions_tenant_app_version")
                .table(AppVersions::Table)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("app_versions_app_version")
                .table(AppVersions::Table)
                .col(AppVersions::AppId)
                .col(AppVersions::Version)
                .unique()
                .to_owned(),
        )
        .await?;
        for (table, _) in OWNED {
            m.drop_index(
                Index::drop()
                    .name(format!("{table}_tenant"))
                    .table(Alias::new(table))
                    .to_owned(),
            )
            .await?;
            m.alter_table(
                Table::alter()
                    .table(Alias::new(table))
                    .drop_column(Alias::new(TENANT_ID))
                    .to_owned(),
            )
            .await?;
        }
        m.drop_table(Table::drop().table(Users::Table).to_owned())
            .await?;
        m.drop_table(Table::drop().table(Tenants::Table).to_owned())
            .await
    }
}
