//! Claim tokens for enrolling LOs and ENs: the token's SHA-256 (never the token), the tenant,
//! site, role and host it is for, when it expires, and when it was used (a token works once).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Claims {
    Table,
    TokenHash,
    TenantId,
    SiteId,
    Role,
    Host,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Claims::Table)
                .col(string(Claims::TokenHash).primary_key())
                .col(string(Claims::TenantId))
                .col(string(Claims::SiteId))
                .col(string(Claims::Role))
                .col(string_null(Claims::Host))
                .col(string(Claims::CreatedAt))
                .col(string(Claims::ExpiresAt))
                .col(string_null(Claims::UsedAt))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Claims::Table).to_owned())
            .await
    }
}
