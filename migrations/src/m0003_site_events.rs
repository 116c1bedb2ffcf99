//! Each site's event log: refused and skipped desired states, crashed workloads.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum SiteEvents {
    Table,
    Id,
    SiteId,
    Kind,
    DeviceId,
    DeploymentId,
    Component,
    Message,
    ObservedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(SiteEvents::Table)
                .col(big_integer(SiteEvents::Id).primary_key().auto_increment())
                .col(string(SiteEvents::SiteId))
                .col(string(SiteEvents::Kind))
                .col(string_null(SiteEvents::DeviceId))
                .col(string_null(SiteEvents::DeploymentId))
                .col(string_null(SiteEvents::Component))
                .col(text(SiteEvents::Message))
                .col(string(SiteEvents::ObservedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("site_events_by_site")
                .table(SiteEvents::Table)
                .col(SiteEvents::SiteId)
                .col(SiteEvents::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(SiteEvents::Table).to_owned())
            .await
    }
}
