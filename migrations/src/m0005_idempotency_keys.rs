//! Idempotency keys of deployment requests: a retried `POST /api/v1/deployments` with the same
//! `Idempotency-Key` gets the deployment the first one made, not a second one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Key,
    RequestDigest,
    DeploymentId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                .col(string(IdempotencyKeys::Key).primary_key())
                .col(string(IdempotencyKeys::RequestDigest))
                .col(string(IdempotencyKeys::DeploymentId))
                .col(string(IdempotencyKeys::CreatedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await
    }
}
