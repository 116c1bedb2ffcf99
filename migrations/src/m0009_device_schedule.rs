//! Each device's schedule: `open`, `cordoned` (takes no new workloads) or `draining` (its
//! workloads move elsewhere). Existing devices are open.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    Schedule,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .add_column(
                    ColumnDef::new(Devices::Schedule)
                        .string()
                        .not_null()
                        .default("open"),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Devices::Table)
                .drop_column(Devices::Schedule)
                .to_owned(),
        )
        .await
    }
}
