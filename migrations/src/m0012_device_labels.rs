//! Device labels as rows, for selecting devices by label (`?label=line=3,gpu`): one row per
//! label of a device's capabilities, and per element of an array label (`eos.dev/runtimes`).
//! Devices stored before get theirs from their capabilities.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, FromQueryResult};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeviceLabels {
    Table,
    DeviceId,
    Key,
    Value,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    Capabilities,
}

#[derive(FromQueryResult)]
struct Row {
    id: String,
    capabilities: String,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(DeviceLabels::Table)
                .col(string(DeviceLabels::DeviceId))
                .col(string(DeviceLabels::Key))
                .col(string(DeviceLabels::Value))
                .primary_key(
                    Index::create()
                        .col(DeviceLabels::DeviceId)
                        .col(DeviceLabels::Key)
                        .col(DeviceLabels::Value),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("device_labels_key_value")
                .table(DeviceLabels::Table)
                .col(DeviceLabels::Key)
                .col(DeviceLabels::Value)
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        let select = Query::select()
            .columns([Devices::Id, Devices::Capabilities])
            .from(Devices::Table)
            .to_owned();
        let rows = Row::find_by_statement(db.get_database_backend().build(&select))
            .all(db)
            .await?;
        for row in rows {
            let caps: serde_json::Value = serde_json::from_str(&row.capabilities)
                .map_err(|e| DbErr::Migration(format!("device {}: {e}", row.id)))?;
            let pairs = pairs_of(&caps["labels"]);
            if pairs.is_empty() {
                continue;
            }
            let mut insert = Query::insert()
                .into_table(DeviceLabels::Table)
                .columns([
                    DeviceLabels::DeviceId,
                    DeviceLabels::Key,
                    DeviceLabels::Value,
                ])
                .to_owned();
            for (k, v) in pairs {
                insert.values_panic([row.id.clone().into(), k.into(), v.into()]);
            }
            db.execute(&insert).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(DeviceLabels::Table).to_owned())
            .await
    }
}

/// The (key, value) rows of a capabilities `labels` object: a string, number or boolean is one
/// value, each such element of an array another. (This migration keeps its own copy of the
/// rule the store applies, so it means the same whatever later code does.)
fn pairs_of(labels: &serde_json::Value) -> Vec<(String, String)> {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let mut pairs = Vec::new();
    for (key, value) in labels.as_object().into_iter().flatten() {
        match value {
            Value::Array(items) => {
                pairs.extend(items.iter().filter_map(scalar).map(|v| (key.clone(), v)))
            }
            other => pairs.extend(scalar(other).map(|v| (key.clone(), v))),
        }
    }
    pairs.sort();
    pairs.dedup();
    pairs
}
