//! The CO's event log: every change of the control plane's data, numbered in the order it was
//! committed, for `GET /api/v1/events` (server-sent events, resumable by number).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    Kind,
    SiteId,
    Subject,
    Data,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Events::Table)
                .col(big_integer(Events::Id).primary_key().auto_increment())
                .col(string(Events::Kind))
                .col(string_null(Events::SiteId))
                .col(string(Events::Subject))
                .col(text(Events::Data))
                .col(string(Events::CreatedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Events::Table).to_owned())
            .await
    }
}
