//! Revocations: the LO of a site (host empty) or one of its ENs whose certificates issued until
//! `revoked_at` are refused; one row per site and host, the latest.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Revocations {
    Table,
    SiteId,
    Host,
    TenantId,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Revocations::Table)
                .col(string(Revocations::SiteId))
                .col(string(Revocations::Host))
                .col(string(Revocations::TenantId))
                .col(string(Revocations::RevokedAt))
                .primary_key(
                    Index::create()
                        .col(Revocations::SiteId)
                        .col(Revocations::Host),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Revocations::Table).to_owned())
            .await
    }
}
