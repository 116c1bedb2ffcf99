//! The CO on PostgreSQL (`DATABASE_URL`), through the whole system: on a database of its own on
//! the test server `config/services.sh` starts, the sample app is registered, deployed and
//! installed; a restarted CO finds everything where it was; undeploying removes it. The rows
//! are read back from PostgreSQL itself, and no SQLite file is made.

use eos_adapter_sql::SqlStore;
use eos_adapter_sql::testing::TestDatabase;
use eos_domain::ids::TenantId;
use eos_domain::service::ports::ControlStore;
use eos_tests::{Fleet, LIMIT, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_co_runs_on_postgresql() {
    let db = TestDatabase::postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start_on_database(tmp.path(), "site-1", &["node-1"], &db.url)
        .await
        .unwrap();
    fleet.await_online(&["node-1"]).await;
    let id = fleet.deploy_sample(Some("node-1")).await.unwrap();
    eventually("the sample to greet", LIMIT, || async {
        (fleet.greetings("node-1", &id) >= 1).then_some(())
    })
    .await;

    // A new CO process on the same database knows the site, the device and the deployment.
    fleet.stop_co().await;
    fleet.start_co().await.unwrap();
    eventually(
        "the restarted CO to show the deployment installed",
        LIMIT,
        || async { (fleet.deployment(&id).await["state"] == "installed").then_some(()) },
    )
    .await;
    fleet.await_online(&["node-1"]).await;

    let store = SqlStore::connect(&db.url).await.unwrap();
    let stored = store
        .list_deployments(&TenantId::default_tenant(), None)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].id.as_str(), id);
    assert_eq!(
        store
            .list_devices(&TenantId::default_tenant(), None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        !tmp.path().join("co/co.db").exists(),
        "no SQLite file beside the PostgreSQL database"
    );

    fleet.undeploy(&id).await.unwrap();
    fleet.shutdown().await;
}
