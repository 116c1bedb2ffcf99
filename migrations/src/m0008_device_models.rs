//! Device models: a tenant's registered vendor/model pairs with their capability template
//! (a Margo DeviceCapabilities document as JSON). One id and one vendor/model pair per tenant.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeviceModels {
    Table,
    TenantId,
    Id,
    Vendor,
    Model,
    Capabilities,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DeviceModels::Table)
                .col(string(DeviceModels::TenantId))
                .col(string(DeviceModels::Id))
                .col(string(DeviceModels::Vendor))
                .col(string(DeviceModels::Model))
                .col(text(DeviceModels::Capabilities))
                .col(string(DeviceModels::CreatedAt))
                .primary_key(
                    Index::create()
                        .col(DeviceModels::TenantId)
                        .col(DeviceModels::Id),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("device_models_tenant_vendor_model")
                .table(DeviceModels::Table)
                .col(DeviceModels::TenantId)
                .col(DeviceModels::Vendor)
                .col(DeviceModels::Model)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(DeviceModels::Table).to_owned())
            .await
    }
}
