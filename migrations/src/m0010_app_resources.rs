//! Catalog files of app versions (icon, description, license, release notes), kept with the
//! version they came in: one per tenant, app, version and kind.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AppResources {
    Table,
    TenantId,
    AppId,
    Version,
    Kind,
    MediaType,
    Data,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AppResources::Table)
                .col(string(AppResources::TenantId))
                .col(string(AppResources::AppId))
                .col(string(AppResources::Version))
                .col(string(AppResources::Kind))
                .col(string(AppResources::MediaType))
                .col(blob(AppResources::Data))
                .primary_key(
                    Index::create()
                        .col(AppResources::TenantId)
                        .col(AppResources::AppId)
                        .col(AppResources::Version)
                        .col(AppResources::Kind),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(AppResources::Table).to_owned())
            .await
    }
}
