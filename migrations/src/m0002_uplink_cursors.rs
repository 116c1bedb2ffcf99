//! How far the CO has applied each site's LO outbox (at-most-once application of reports).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum UplinkCursors {
    Table,
    SiteId,
    OutboxId,
    AppliedSeq,
    Applied,
    Duplicates,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(UplinkCursors::Table)
                .col(string(UplinkCursors::SiteId).primary_key())
                .col(string(UplinkCursors::OutboxId))
                .col(big_integer(UplinkCursors::AppliedSeq))
                .col(big_integer(UplinkCursors::Applied))
                .col(big_integer(UplinkCursors::Duplicates))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(UplinkCursors::Table).to_owned())
            .await
    }
}
