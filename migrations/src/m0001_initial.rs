//! The first schema: applications, sites, devices, deployments and per-device status.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AppVersions {
    Table,
    Seq,
    AppId,
    Version,
    Name,
    Description,
    Digest,
    Document,
    Source,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Sites {
    Table,
    Id,
    Labels,
    ManifestVersion,
    LoConnected,
    LastSeen,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    SiteId,
    Capabilities,
    Online,
    LastSeen,
}

#[derive(DeriveIden)]
enum Deployments {
    Table,
    Seq,
    Id,
    AppId,
    Version,
    SiteId,
    Target,
    ProfileId,
    Parameters,
    Phase,
    Document,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DeviceStatuses {
    Table,
    DeploymentId,
    DeviceId,
    State,
    Error,
    Components,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(AppVersions::Table)
                .col(pk_auto(AppVersions::Seq))
                .col(string(AppVersions::AppId))
                .col(string(AppVersions::Version))
                .col(string(AppVersions::Name))
                .col(text_null(AppVersions::Description))
                .col(string(AppVersions::Digest))
                .col(text(AppVersions::Document))
                .col(text(AppVersions::Source))
                .col(string(AppVersions::CreatedAt))
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
        m.create_table(
            Table::create()
                .table(Sites::Table)
                .col(string(Sites::Id).primary_key())
                .col(text(Sites::Labels))
                .col(big_integer(Sites::ManifestVersion))
                .col(boolean(Sites::LoConnected))
                .col(string_null(Sites::LastSeen))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Devices::Table)
                .col(string(Devices::Id).primary_key())
                .col(string(Devices::SiteId))
                .col(text(Devices::Capabilities))
                .col(boolean(Devices::Online))
                .col(string_null(Devices::LastSeen))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("devices_site")
                .table(Devices::Table)
                .col(Devices::SiteId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(Deployments::Table)
                .col(pk_auto(Deployments::Seq))
                .col(string_uniq(Deployments::Id))
                .col(string(Deployments::AppId))
                .col(string(Deployments::Version))
                .col(string(Deployments::SiteId))
                .col(string(Deployments::Target))
                .col(string(Deployments::ProfileId))
                .col(text(Deployments::Parameters))
                .col(string(Deployments::Phase))
                .col(text(Deployments::Document))
                .col(string(Deployments::CreatedAt))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("deployments_site")
                .table(Deployments::Table)
                .col(Deployments::SiteId)
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(DeviceStatuses::Table)
                .col(string(DeviceStatuses::DeploymentId))
                .col(string(DeviceStatuses::DeviceId))
                .col(string(DeviceStatuses::State))
                .col(text_null(DeviceStatuses::Error))
                .col(text(DeviceStatuses::Components))
                .col(string(DeviceStatuses::UpdatedAt))
                .primary_key(
                    Index::create()
                        .col(DeviceStatuses::DeploymentId)
                        .col(DeviceStatuses::DeviceId),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            DeviceStatuses::Table.into_iden(),
            Deployments::Table.into_iden(),
            Devices::Table.into_iden(),
            Sites::Table.into_iden(),
            AppVersions::Table.into_iden(),
        ] {
            m.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
