//! Schema migrations of the CO database, run at start (SQLite by default, or PostgreSQL).

use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_uplink_cursors;
mod m0003_site_events;
mod m0004_device_usage;
mod m0005_idempotency_keys;
mod m0006_events;
mod m0007_tenants;
mod m0008_device_models;
mod m0009_device_schedule;
mod m0010_app_resources;
mod m0011_site_time_zone;
mod m0012_device_labels;
mod m0013_tenant_signature_policy;
mod m0014_claims;
mod m0015_revocations;
mod m0016_tenant_workload_policy;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_uplink_cursors::Migration),
            Box::new(m0003_site_events::Migration),
            Box::new(m0004_device_usage::Migration),
            Box::new(m0005_idempotency_keys::Migration),
            Box::new(m0006_events::Migration),
            Box::new(m0007_tenants::Migration),
            Box::new(m0008_device_models::Migration),
            Box::new(m0009_device_schedule::Migration),
            Box::new(m0010_app_resources::Migration),
            Box::new(m0011_site_time_zone::Migration),
            Box::new(m0012_device_labels::Migration),
            Box::new(m0013_tenant_signature_policy::Migration),
            Box::new(m0014_claims::Migration),
            Box::new(m0015_revocations::Migration),
            Box::new(m0016_tenant_workload_policy::Migration),
        ]
    }
}
