//! Rows stored straight into a CO database, for lists larger than a test can run: devices of
//! many sites with the capabilities of `tests/fixtures/bench-capabilities.json`.

use crate::repo_root;
use eos_adapter_sql::SqlStore;
use eos_domain::ids::DeviceId;
use eos_domain::margo::DeviceCapabilities;
use eos_domain::service::ports::ControlStore;
use eos_domain::service::{DeviceRecord, Schedule};

/// Stores `count` devices `<site>/n<NNNNNN>` in the CO database at `database_url`, spread over
/// `sites` in turn, every third one offline, device `n` labelled `line` = `n % 10`. Returns
/// their ids in the order stored.
pub async fn devices(database_url: &str, count: usize, sites: &[&str]) -> Vec<String> {
    let store = SqlStore::connect(database_url)
        .await
        .unwrap_or_else(|e| panic!("{database_url}: {e}"));
    let caps = DeviceCapabilities::from_json(
        &std::fs::read_to_string(repo_root().join("tests/fixtures/bench-capabilities.json"))
            .expect("the fixture capabilities"),
    )
    .expect("they parse");
    let mut ids = Vec::with_capacity(count);
    // A transaction per 5,000: one commit (one sync) for each, not for each row.
    for chunk in (0..count).collect::<Vec<_>>().chunks(5000) {
        let tx = store.begin().await.expect("a transaction");
        for &n in chunk {
            let id = format!("{}/n{n:06}", sites[n % sites.len()]);
            let mut capabilities = caps.clone();
            capabilities
                .labels
                .insert("line".into(), (n % 10).to_string().into());
            tx.upsert_device(&DeviceRecord {
                id: DeviceId::parse(&id).expect("a device id"),
                tenant: eos_domain::ids::TenantId::default_tenant(),
                capabilities,
                online: n % 3 != 0,
                last_seen: None,
                usage: None,
                model: None,
                schedule: Schedule::Open,
            })
            .await
            .unwrap_or_else(|e| panic!("storing {id}: {e}"));
            ids.push(id);
        }
        tx.commit().await.expect("the devices are stored");
    }
    ids
}

/// Makes the sites of `ids` in the default tenant, leaving those that exist alone.
pub async fn sites(database_url: &str, ids: &[&str]) {
    let store = SqlStore::connect(database_url)
        .await
        .unwrap_or_else(|e| panic!("{database_url}: {e}"));
    let tenant = eos_domain::ids::TenantId::default_tenant();
    for id in ids {
        let site = eos_domain::ids::SiteId::parse(*id).expect("a site id");
        if store
            .get_site(&site)
            .await
            .expect("the store answers")
            .is_none()
        {
            store
                .set_site_contact(&tenant, &site, false, None)
                .await
                .unwrap_or_else(|e| panic!("storing site {id}: {e}"));
        }
    }
}
