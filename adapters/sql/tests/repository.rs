//! The repository suite: every check of the `ControlStore` implementation runs on SQLite and on
//! the real PostgreSQL server `config/services.sh` starts, each on a database of its own.

use eos_adapter_sql::SqlStore;
use eos_adapter_sql::testing::TestDatabase;
use eos_domain::ids::{AppId, DeploymentId, DeviceId, SiteId, TenantId};
use eos_domain::service::ports::ControlStore;
use eos_domain::service::*;
use eos_migrations::Migrator;
use sea_orm::{ConnectionTrait, Database};
use sea_orm_migration::MigratorTrait;
use std::time::Duration;

/// The tenant every database has from its first migration.
fn main_tenant() -> TenantId {
    TenantId::default_tenant()
}

fn version(app: &str, v: &str) -> AppVersionRecord {
    AppVersionRecord {
        tenant: main_tenant(),
        app_id: app.into(),
        version: v.into(),
        name: "n".into(),
        description: None,
        digest: format!("sha256:{v}"),
        document: "doc".into(),
        source: "dir".into(),
        created_at: "t".into(),
    }
}

/// A store on a fresh database of each backend, with the database (kept alive by the caller).
async fn stores() -> Vec<(TestDatabase, SqlStore)> {
    let mut all = Vec::new();
    for db in TestDatabase::each().await {
        let store = SqlStore::connect(&db.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", db.backend));
        all.push((db, store));
    }
    all
}

#[tokio::test]
async fn app_versions_are_unique_and_listed_newest_first_per_app() {
    for (db, store) in stores().await {
        let on = db.backend;
        for (app, v) in [("a", "1.0.0"), ("a", "1.1.0"), ("b", "0.1.0")] {
            store.insert_app_version(&version(app, v)).await.unwrap();
        }
        assert!(
            matches!(
                store.insert_app_version(&version("a", "1.0.0")).await,
                Err(StoreError::Conflict(_))
            ),
            "{on}: a version is stored once"
        );
        let newest: Vec<String> = store
            .page_apps(&main_tenant(), None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| format!("{}@{}", r.app_id, r.version))
            .collect();
        assert_eq!(newest, ["a@1.1.0", "b@0.1.0"], "{on}");
        drop(store);
        let reopened = SqlStore::connect(&db.url).await.unwrap();
        assert_eq!(
            reopened
                .app_versions(&main_tenant(), &AppId::parse("a").unwrap())
                .await
                .unwrap()
                .len(),
            2,
            "{on}: data survives a restart and migrations rerun cleanly"
        );
    }
}

fn cursor(site: &SiteId, seq: u64) -> UplinkCursor {
    UplinkCursor {
        site: site.clone(),
        outbox_id: "o1".into(),
        applied_seq: seq,
        applied: seq,
        duplicates: 0,
    }
}

#[tokio::test]
async fn a_transaction_commits_all_its_writes_or_none() {
    for (db, store) in stores().await {
        let on = db.backend;
        let site = SiteId::parse("s1").unwrap();
        let tx = store.begin().await.unwrap();
        tx.put_cursor(&cursor(&site, 5)).await.unwrap();
        assert_eq!(tx.get_cursor(&site).await.unwrap(), Some(cursor(&site, 5)));
        drop(tx);
        assert_eq!(
            store.get_cursor(&site).await.unwrap(),
            None,
            "{on}: dropped, nothing"
        );
        let tx = store.begin().await.unwrap();
        tx.put_cursor(&cursor(&site, 7)).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            store.get_cursor(&site).await.unwrap(),
            Some(cursor(&site, 7)),
            "{on}"
        );
    }
}

#[tokio::test]
async fn a_second_transaction_on_a_sites_cursor_waits_for_the_first() {
    for (db, store) in stores().await {
        let on = db.backend;
        let site = SiteId::parse("s1").unwrap();
        store.put_cursor(&cursor(&site, 1)).await.unwrap();
        let store = std::sync::Arc::new(store);
        let first = store.begin().await.unwrap();
        assert_eq!(
            first.get_cursor(&site).await.unwrap(),
            Some(cursor(&site, 1))
        );
        // A second writer reads the cursor while the first holds it...
        let second = tokio::spawn({
            let (store, site) = (store.clone(), site.clone());
            async move {
                let tx = store.begin().await.unwrap();
                let seen = tx.get_cursor(&site).await.unwrap();
                tx.commit().await.unwrap();
                seen
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // ...and sees what the first applied, not what was there before.
        first.put_cursor(&cursor(&site, 2)).await.unwrap();
        first.commit().await.unwrap();
        assert_eq!(
            second.await.unwrap(),
            Some(cursor(&site, 2)),
            "{on}: the second read waited for the first commit"
        );
    }
}

#[tokio::test]
async fn usage_is_kept_apart_from_what_reports_rewrite() {
    let caps = eos_domain::margo::DeviceCapabilities::from_json(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/bench-capabilities.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for (db, store) in stores().await {
        let on = db.backend;
        let id = DeviceId::parse("s1/n1").unwrap();
        let record = |online| DeviceRecord {
            id: id.clone(),
            tenant: main_tenant(),
            capabilities: caps.clone(),
            online,
            last_seen: Some("t1".into()),
            usage: None,
            model: None,
            schedule: Schedule::Open,
        };
        store.upsert_device(&record(true)).await.unwrap();
        let usage = DeviceUsage {
            cpu_load_1m: 0.5,
            memory_used_bytes: 1 << 30,
            memory_total_bytes: 4 << 30,
            workloads: 3,
            observed_at: "t2".into(),
        };
        store.set_device_usage(&id, &usage).await.unwrap();
        store
            .set_device_usage(&DeviceId::parse("s1/unknown").unwrap(), &usage)
            .await
            .unwrap();
        store.upsert_device(&record(false)).await.unwrap();
        let devices = store.list_devices(&main_tenant(), None).await.unwrap();
        assert_eq!(devices.len(), 1, "{on}: an unknown device is not created");
        assert!(!devices[0].online, "{on}");
        assert_eq!(devices[0].usage.as_ref(), Some(&usage), "{on}");

        // A schedule is the operator's: set for the device's tenant only, and kept when the
        // site reports the device again.
        let other = TenantId::parse("other").unwrap();
        assert!(
            !store
                .set_device_schedule(&other, &id, Schedule::Draining)
                .await
                .unwrap(),
            "{on}: another tenant's device is not there"
        );
        assert!(
            store
                .set_device_schedule(&main_tenant(), &id, Schedule::Draining)
                .await
                .unwrap()
        );
        store.upsert_device(&record(true)).await.unwrap();
        let device = store
            .get_device(&main_tenant(), &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(device.schedule, Schedule::Draining, "{on}");
        assert!(device.online, "{on}");
    }
}

#[tokio::test]
async fn a_site_lists_its_own_newest_events_oldest_first() {
    let event = |site: &str, n: u32| SiteEvent {
        site: SiteId::parse(site).unwrap(),
        kind: event_kind::COMPONENT_CRASHED.into(),
        device_id: Some(format!("{site}/n1")),
        deployment_id: None,
        component: Some("c".into()),
        message: format!("crash {n}"),
        observed_at: format!("2026-01-01T00:00:0{n}.000Z"),
    };
    for (db, store) in stores().await {
        let on = db.backend;
        for n in 1..=3 {
            store.append_site_event(&event("s1", n)).await.unwrap();
            store.append_site_event(&event("s2", n)).await.unwrap();
        }
        let s1 = SiteId::parse("s1").unwrap();
        let newest = store.site_events(&s1, 2).await.unwrap();
        assert_eq!(newest, vec![event("s1", 2), event("s1", 3)], "{on}");
        assert_eq!(store.site_events(&s1, 100).await.unwrap().len(), 3, "{on}");
    }
}

#[tokio::test]
async fn contact_and_manifest_version_are_written_without_clobbering_each_other() {
    for (db, store) in stores().await {
        let on = db.backend;
        let id = SiteId::parse("s1").unwrap();
        let t = main_tenant();
        store
            .set_site_contact(&t, &id, true, Some("t1"))
            .await
            .unwrap();
        let mut site = store.get_site(&id).await.unwrap().unwrap();
        assert_eq!(
            (site.manifest_version, site.lo_connected),
            (0, true),
            "{on}"
        );
        // A publisher read the record, then the link dropped, then the publisher wrote.
        site.manifest_version = 7;
        store.set_site_contact(&t, &id, false, None).await.unwrap();
        store.upsert_site(&site).await.unwrap();
        let now = store.get_site(&id).await.unwrap().unwrap();
        assert_eq!(now.manifest_version, 7, "{on}");
        assert!(
            !now.lo_connected,
            "{on}: the publisher's stale copy did not reconnect the site"
        );
        assert_eq!(
            now.last_seen.as_deref(),
            Some("t1"),
            "{on}: losing the link is not contact"
        );
        // And contact never moves the version back.
        store
            .set_site_contact(&t, &id, true, Some("t2"))
            .await
            .unwrap();
        assert_eq!(
            store.get_site(&id).await.unwrap().unwrap().manifest_version,
            7,
            "{on}"
        );
        // Labels and time zone are the operator's: a publisher's stale copy leaves them, and
        // another tenant cannot set them.
        let stale = store.get_site(&id).await.unwrap().unwrap();
        let labels = std::collections::BTreeMap::from([("region".to_owned(), "eu".to_owned())]);
        let other = TenantId::parse("other").unwrap();
        assert!(
            !store
                .set_site_meta(&other, &id, &labels, Some("UTC"))
                .await
                .unwrap()
        );
        assert!(
            store
                .set_site_meta(&t, &id, &labels, Some("Europe/Berlin"))
                .await
                .unwrap()
        );
        store.upsert_site(&stale).await.unwrap();
        let now = store.get_site(&id).await.unwrap().unwrap();
        assert_eq!(
            (now.labels, now.time_zone.as_deref()),
            (labels, Some("Europe/Berlin")),
            "{on}"
        );
    }
}

#[tokio::test]
async fn an_idempotency_key_is_recorded_once() {
    for (db, store) in stores().await {
        let on = db.backend;
        let record = |deployment: &str| IdempotencyRecord {
            tenant: main_tenant(),
            key: "k1".into(),
            request_digest: "d1".into(),
            deployment_id: DeploymentId::parse(deployment).unwrap(),
            created_at: "t".into(),
        };
        assert_eq!(
            store.get_idempotency(&main_tenant(), "k1").await.unwrap(),
            None,
            "{on}"
        );
        store
            .insert_idempotency(&record("00000000-0000-4000-8000-000000000001"))
            .await
            .unwrap();
        assert!(
            matches!(
                store
                    .insert_idempotency(&record("00000000-0000-4000-8000-000000000002"))
                    .await,
                Err(StoreError::Conflict(_))
            ),
            "{on}: the first stays"
        );
        assert_eq!(
            store.get_idempotency(&main_tenant(), "k1").await.unwrap(),
            Some(record("00000000-0000-4000-8000-000000000001")),
            "{on}"
        );
    }
}

/// The schema of the previous release (its migrations; raise this with each release): the
/// idempotency keys came after it.
const PREVIOUS_RELEASE: u32 = 4;

#[tokio::test]
async fn a_database_of_the_previous_release_is_migrated_with_its_data() {
    for db in TestDatabase::each().await {
        let on = db.backend;
        let old = Database::connect(&db.url).await.unwrap();
        Migrator::up(&old, Some(PREVIOUS_RELEASE)).await.unwrap();
        let mut caps: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../tests/fixtures/bench-capabilities.json"
            ))
            .unwrap(),
        )
        .unwrap();
        caps["labels"]["line"] = "3".into();
        let device = format!(
            "INSERT INTO devices (id, site_id, capabilities, online, last_seen) \
             VALUES ('s1/n1', 's1', '{caps}', true, 't1')"
        );
        // Rows as that release wrote them.
        for sql in [
            device.as_str(),
            "INSERT INTO sites (id, labels, manifest_version, lo_connected, last_seen) \
             VALUES ('s1', '{}', 3, false, 't1')",
            "INSERT INTO app_versions (app_id, version, name, description, digest, document, \
             source, created_at) VALUES ('a', '1.0.0', 'A', NULL, 'sha256:x', 'doc', 'dir', 't')",
        ] {
            old.execute_unprepared(sql)
                .await
                .unwrap_or_else(|e| panic!("{on}: {sql}: {e}"));
        }
        assert_eq!(
            Migrator::get_pending_migrations(&old).await.unwrap().len(),
            Migrator::migrations().len() - PREVIOUS_RELEASE as usize,
            "{on}"
        );
        old.close().await.unwrap();

        // This release opens it: the newest migrations run, the rows are kept.
        let store = SqlStore::connect(&db.url).await.unwrap();
        let site = store
            .get_site(&SiteId::parse("s1").unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{on}: the site survives"));
        assert_eq!(site.manifest_version, 3, "{on}");
        assert_eq!(
            site.tenant,
            main_tenant(),
            "{on}: what was there is the default tenant's"
        );
        let apps = store.page_apps(&main_tenant(), None, 100).await.unwrap();
        assert_eq!(apps.len(), 1, "{on}");
        assert_eq!(
            store.get_idempotency(&main_tenant(), "k").await.unwrap(),
            None,
            "{on}"
        );
        assert!(
            store.get_tenant(&main_tenant()).await.unwrap().is_some(),
            "{on}: the default tenant exists"
        );
        // The device is open, and selected by the labels it had (rows made by m0012).
        let filter = DeviceFilter {
            labels: parse_label_selector("line=3,eos.dev/runtimes=wasm").unwrap(),
            ..Default::default()
        };
        let found = store
            .page_devices(&main_tenant(), &filter, None, 10)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{on}");
        assert_eq!(found[0].schedule, Schedule::Open, "{on}");
    }
}

#[tokio::test]
async fn an_empty_database_is_migrated_up_and_back_down() {
    for db in TestDatabase::each().await {
        let on = db.backend;
        let conn = Database::connect(&db.url).await.unwrap();
        Migrator::up(&conn, None).await.unwrap();
        assert!(
            Migrator::get_pending_migrations(&conn)
                .await
                .unwrap()
                .is_empty(),
            "{on}"
        );
        Migrator::down(&conn, None).await.unwrap();
        assert_eq!(
            Migrator::get_pending_migrations(&conn).await.unwrap().len(),
            Migrator::migrations().len(),
            "{on}: every migration undone"
        );
        Migrator::up(&conn, None).await.unwrap();
    }
}

#[tokio::test]
async fn the_event_log_is_numbered_in_order_and_read_by_kind_and_site() {
    let event = |kind: &str, site: Option<&str>, subject: &str| EventRecord {
        id: 0,
        tenant: main_tenant(),
        kind: kind.into(),
        site: site.map(|s| SiteId::parse(s).unwrap()),
        subject: subject.into(),
        data: serde_json::json!({"n": subject}),
        created_at: "t".into(),
    };
    for (db, store) in stores().await {
        let on = db.backend;
        assert_eq!(store.last_event_id().await.unwrap(), 0, "{on}");
        let mut ids = Vec::new();
        for e in [
            event(change::APP_ADDED, None, "a"),
            event(change::DEPLOYMENT_CREATED, Some("s1"), "d1"),
            event(change::DEPLOYMENT_STATUS, Some("s2"), "d2"),
            event(change::DEVICE_JOINED, Some("s1"), "s1/n1"),
            event(change::DEPLOYMENT_STATUS, Some("s1"), "d1"),
        ] {
            ids.push(store.append_event(&e).await.unwrap());
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{on}: {ids:?}");
        assert_eq!(store.last_event_id().await.unwrap(), ids[4], "{on}");
        let subjects = |events: Vec<EventRecord>| -> Vec<String> {
            events.into_iter().map(|e| e.subject).collect()
        };
        let all = store
            .events_after(0, &EventFilter::of(main_tenant()), 100)
            .await
            .unwrap();
        assert_eq!(all[1].data, serde_json::json!({"n": "d1"}), "{on}");
        assert_eq!(subjects(all), ["a", "d1", "d2", "s1/n1", "d1"], "{on}");
        let deployments_of_s1 = EventFilter {
            tenant: main_tenant(),
            kind: Some("deployment".into()),
            site: Some(SiteId::parse("s1").unwrap()),
            subject: None,
        };
        let got = store
            .events_after(0, &deployments_of_s1, 100)
            .await
            .unwrap();
        assert_eq!(subjects(got), ["d1", "d1"], "{on}");
        let statuses = EventFilter {
            tenant: main_tenant(),
            kind: Some(change::DEPLOYMENT_STATUS.into()),
            site: None,
            subject: None,
        };
        let got = store.events_after(ids[2], &statuses, 100).await.unwrap();
        assert_eq!(subjects(got), ["d1"], "{on}: after a number");
        let got = store
            .events_after(0, &EventFilter::of(main_tenant()), 2)
            .await
            .unwrap();
        assert_eq!(got.len(), 2, "{on}: limited");
        // `deploy` is no kind's prefix: only whole dotted parts match.
        let partial = EventFilter {
            tenant: main_tenant(),
            kind: Some("deploy".into()),
            site: None,
            subject: None,
        };
        assert!(
            store
                .events_after(0, &partial, 100)
                .await
                .unwrap()
                .is_empty(),
            "{on}"
        );
    }
}

#[tokio::test]
async fn events_older_than_the_retention_are_pruned() {
    let event = |at: &str| EventRecord {
        id: 0,
        tenant: main_tenant(),
        kind: change::SITE_CONNECTED.into(),
        site: None,
        subject: "s1".into(),
        data: serde_json::Value::Null,
        created_at: at.into(),
    };
    for (db, store) in stores().await {
        let on = db.backend;
        for at in [
            "2026-01-01T00:00:00.000Z",
            "2026-01-31T23:59:59.999Z",
            "2026-02-01T00:00:00.000Z",
        ] {
            store.append_event(&event(at)).await.unwrap();
        }
        let newest = store.last_event_id().await.unwrap();
        assert_eq!(
            store
                .prune_events("2026-02-01T00:00:00.000Z")
                .await
                .unwrap(),
            2,
            "{on}"
        );
        let left = store
            .events_after(0, &EventFilter::of(main_tenant()), 10)
            .await
            .unwrap();
        assert_eq!(left.len(), 1, "{on}");
        assert_eq!(left[0].id, newest, "{on}: numbers are not reused");
        assert_eq!(
            store
                .prune_events("2026-02-01T00:00:00.000Z")
                .await
                .unwrap(),
            0
        );
    }
}

/// Two tenants with rows of every kind, some under the same ids: each read of one returns only
/// its rows, and what is keyed per tenant (app versions, idempotency keys, user emails) may repeat
/// across tenants.
#[tokio::test]
async fn every_read_of_a_tenant_returns_only_its_rows() {
    let caps = eos_domain::margo::DeviceCapabilities::from_json(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/bench-capabilities.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let globex = TenantId::parse("globex").unwrap();
    for (db, store) in stores().await {
        let on = db.backend;
        for t in [&acme, &globex] {
            store
                .insert_tenant(&TenantRecord {
                    id: t.clone(),
                    name: t.to_string(),
                    plan: "standard".into(),
                    created_at: "t".into(),
                    signature_policy: None,
                    workload_policy: None,
                })
                .await
                .unwrap();
        }
        assert!(
            matches!(
                store
                    .insert_tenant(&TenantRecord {
                        id: acme.clone(),
                        name: "again".into(),
                        plan: "p".into(),
                        created_at: "t".into(),
                        signature_policy: None,
                        workload_policy: None,
                    })
                    .await,
                Err(StoreError::Conflict(_))
            ),
            "{on}: a tenant id is taken once"
        );
        // A workload policy is the tenant's alone, and round-trips whole.
        let grant = eos_domain::workload::WorkloadPolicy {
            host_paths: vec!["/srv/acme".into()],
            cluster_scoped: false,
            ..Default::default()
        };
        assert!(store.set_workload_policy(&acme, &grant).await.unwrap());
        let read = |t: TenantId| {
            let store = &store;
            async move { store.get_tenant(&t).await.unwrap().unwrap().workload_policy }
        };
        assert_eq!(read(acme.clone()).await, Some(grant), "{on}");
        assert_eq!(read(globex.clone()).await, None, "{on}");
        let nowhere = TenantId::parse("nowhere").unwrap();
        assert!(
            !store
                .set_workload_policy(&nowhere, &Default::default())
                .await
                .unwrap()
        );
        let tenants: Vec<String> = store
            .page_tenants(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id.to_string())
            .collect();
        assert_eq!(tenants, ["acme", "default", "globex"], "{on}");

        // The same app id and version in both tenants, with different digests.
        let deployment = |t: &TenantId, id: &str, site: &str| DeploymentRecord {
            id: DeploymentId::parse(id).unwrap(),
            tenant: t.clone(),
            app_id: "hello".into(),
            version: "1.0.0".into(),
            site: SiteId::parse(site).unwrap(),
            target: format!("{site}/*"),
            profile_id: "p".into(),
            parameters: Default::default(),
            phase: DeploymentPhase::Active,
            document: "doc".into(),
            created_at: "t".into(),
        };
        let (dep_a, dep_g) = (
            "00000000-0000-4000-8000-00000000000a",
            "00000000-0000-4000-8000-00000000000b",
        );
        for (t, site, dep) in [(&acme, "site-a", dep_a), (&globex, "site-g", dep_g)] {
            store
                .insert_app_version(&AppVersionRecord {
                    tenant: t.clone(),
                    digest: format!("sha256:{t}"),
                    ..version("hello", "1.0.0")
                })
                .await
                .unwrap_or_else(|e| panic!("{on}: {t}'s hello@1.0.0: {e}"));
            let site = SiteId::parse(site).unwrap();
            store
                .set_site_contact(t, &site, true, Some("t"))
                .await
                .unwrap();
            store
                .upsert_device(&DeviceRecord {
                    id: DeviceId::parse(&format!("{site}/n1")).unwrap(),
                    tenant: t.clone(),
                    capabilities: caps.clone(),
                    online: true,
                    last_seen: None,
                    usage: None,
                    model: None,
                    schedule: Schedule::Open,
                })
                .await
                .unwrap();
            store
                .insert_deployment(&deployment(t, dep, site.as_str()))
                .await
                .unwrap();
            store
                .append_event(&EventRecord {
                    id: 0,
                    tenant: t.clone(),
                    kind: change::APP_ADDED.into(),
                    site: None,
                    subject: "hello".into(),
                    data: serde_json::Value::Null,
                    created_at: "t".into(),
                })
                .await
                .unwrap();
            store
                .insert_idempotency(&IdempotencyRecord {
                    tenant: t.clone(),
                    key: "same-key".into(),
                    request_digest: t.to_string(),
                    deployment_id: DeploymentId::parse(dep).unwrap(),
                    created_at: "t".into(),
                })
                .await
                .unwrap_or_else(|e| panic!("{on}: {t}'s key: {e}"));
            store
                .insert_user(&UserRecord {
                    id: format!("user-{t}"),
                    tenant: t.clone(),
                    email: "ops@example.com".into(),
                    role: Role::Operator,
                    sso_id: None,
                    created_at: "t".into(),
                })
                .await
                .unwrap_or_else(|e| panic!("{on}: {t}'s user: {e}"));
        }
        let hello = AppId::parse("hello").unwrap();
        for (t, other, site, dep, other_dep) in [
            (&acme, &globex, "site-a", dep_a, dep_g),
            (&globex, &acme, "site-g", dep_g, dep_a),
        ] {
            let versions = store.app_versions(t, &hello).await.unwrap();
            assert_eq!(versions.len(), 1, "{on}: {t}");
            assert_eq!(versions[0].digest, format!("sha256:{t}"), "{on}");
            let apps = store.page_apps(t, None, 10).await.unwrap();
            assert_eq!(apps.len(), 1, "{on}");
            assert_eq!(&apps[0].tenant, t, "{on}");
            let sites = store.page_sites(t, None, 10).await.unwrap();
            assert_eq!(sites.len(), 1, "{on}: {t} sees its site only");
            assert_eq!(sites[0].id.as_str(), site, "{on}");
            let devices = store
                .page_devices(t, &DeviceFilter::default(), None, 10)
                .await
                .unwrap();
            assert_eq!(devices.len(), 1, "{on}");
            assert_eq!(devices[0].id.site().as_str(), site, "{on}");
            assert_eq!(store.list_devices(t, None).await.unwrap().len(), 1, "{on}");
            let other_device = DeviceId::parse(&format!(
                "{}/n1",
                if site == "site-a" { "site-g" } else { "site-a" }
            ))
            .unwrap();
            assert_eq!(
                store.get_device(t, &other_device).await.unwrap(),
                None,
                "{on}: {t} cannot get {other}'s device"
            );
            let deployments = store
                .page_deployments(t, &DeploymentFilter::default(), None, 10)
                .await
                .unwrap();
            assert_eq!(deployments.len(), 1, "{on}");
            assert_eq!(deployments[0].id.as_str(), dep, "{on}");
            assert_eq!(store.list_deployments(t, None).await.unwrap().len(), 1);
            let theirs = DeploymentId::parse(other_dep).unwrap();
            assert_eq!(
                store.get_deployment(t, &theirs).await.unwrap(),
                None,
                "{on}: {t} cannot get {other}'s deployment"
            );
            assert!(
                matches!(
                    store
                        .page_deployments(t, &DeploymentFilter::default(), Some(other_dep), 10)
                        .await,
                    Err(StoreError::Conflict(_))
                ),
                "{on}: a cursor naming {other}'s deployment is no cursor of {t}'s"
            );
            let events = store
                .events_after(0, &EventFilter::of(t.clone()), 100)
                .await
                .unwrap();
            assert_eq!(events.len(), 1, "{on}");
            assert_eq!(&events[0].tenant, t, "{on}");
            let key = store.get_idempotency(t, "same-key").await.unwrap().unwrap();
            assert_eq!(key.request_digest, t.to_string(), "{on}");
            let users = store.page_users(t, None, 10).await.unwrap();
            assert_eq!(users.len(), 1, "{on}");
            assert_eq!(&users[0].tenant, t, "{on}");
            let their_user = format!("user-{other}");
            assert_eq!(store.get_user(t, &their_user).await.unwrap(), None, "{on}");
            assert!(
                !store.delete_user(t, &their_user).await.unwrap(),
                "{on}: {t} cannot delete {other}'s user"
            );
        }
        assert_eq!(
            store.page_users(&globex, None, 10).await.unwrap().len(),
            1,
            "{on}: acme's delete left globex's user alone"
        );
        // The shared feed reads every tenant's events, in order.
        assert_eq!(store.feed_after(0, 100).await.unwrap().len(), 2, "{on}");
        // A site keeps the tenant it was created in, whoever reports contact later.
        let site_a = SiteId::parse("site-a").unwrap();
        store
            .set_site_contact(&globex, &site_a, false, None)
            .await
            .unwrap();
        assert_eq!(
            store.get_site(&site_a).await.unwrap().unwrap().tenant,
            acme,
            "{on}"
        );
        assert!(
            matches!(
                store
                    .insert_user(&UserRecord {
                        id: "another-id".into(),
                        tenant: acme.clone(),
                        email: "ops@example.com".into(),
                        role: Role::Viewer,
                        sso_id: None,
                        created_at: "t".into(),
                    })
                    .await,
                Err(StoreError::Conflict(_))
            ),
            "{on}: an email is taken once per tenant"
        );
    }
}

/// Device models: one per id and one per vendor and model number within a tenant, read back
/// with their template, listed by id, and invisible to other tenants.
#[tokio::test]
async fn device_models_are_unique_per_tenant_by_id_and_by_vendor_and_model() {
    let caps = eos_domain::margo::DeviceCapabilities::from_json(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/bench-capabilities.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let globex = TenantId::parse("globex").unwrap();
    let model = |tenant: &TenantId, id: &str, number: &str| {
        let mut c = caps.clone();
        c.properties.model_number = number.into();
        DeviceModelRecord {
            tenant: tenant.clone(),
            id: id.into(),
            vendor: "EOS".into(),
            model: number.into(),
            capabilities: c,
            created_at: "t".into(),
        }
    };
    for (db, store) in stores().await {
        let on = db.backend;
        store
            .insert_tenant(&TenantRecord {
                id: globex.clone(),
                name: "Globex".into(),
                plan: "standard".into(),
                created_at: "t".into(),
                signature_policy: None,
                workload_policy: None,
            })
            .await
            .unwrap();
        let t = main_tenant();
        store
            .insert_device_model(&model(&t, "b-box", "b"))
            .await
            .unwrap();
        store
            .insert_device_model(&model(&t, "a-box", "a"))
            .await
            .unwrap();
        for (dup, what) in [
            (model(&t, "a-box", "other"), "the same id"),
            (model(&t, "c-box", "a"), "the same vendor and model"),
        ] {
            assert!(
                matches!(
                    store.insert_device_model(&dup).await,
                    Err(StoreError::Conflict(_))
                ),
                "{on}: {what} is refused"
            );
        }
        // Another tenant may use the same id and the same vendor and model.
        store
            .insert_device_model(&model(&globex, "a-box", "a"))
            .await
            .unwrap();
        let got = store.get_device_model(&t, "a-box").await.unwrap().unwrap();
        assert_eq!(got, model(&t, "a-box", "a"), "{on}: read back whole");
        let ids = |page: Vec<DeviceModelRecord>| page.into_iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(
            ids(store.page_device_models(&t, None, 10).await.unwrap()),
            ["a-box", "b-box"],
            "{on}: by id"
        );
        assert_eq!(
            ids(store
                .page_device_models(&t, Some("a-box"), 10)
                .await
                .unwrap()),
            ["b-box"],
            "{on}: after a cursor"
        );
        assert!(store.delete_device_model(&globex, "a-box").await.unwrap());
        assert!(
            !store.delete_device_model(&globex, "b-box").await.unwrap(),
            "{on}: globex cannot delete the default tenant's model"
        );
        assert!(
            store
                .get_device_model(&globex, "a-box")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store.get_device_model(&t, "a-box").await.unwrap().is_some(),
            "{on}: deleting globex's a-box left the default tenant's"
        );
    }
}

/// Catalog files are kept byte for byte, one per tenant, app, version and kind.
#[tokio::test]
async fn catalog_files_are_kept_byte_for_byte_per_version_and_kind() {
    let globex = TenantId::parse("globex").unwrap();
    let icon = |tenant: &TenantId| AppResourceRecord {
        tenant: tenant.clone(),
        app_id: "com-a".into(),
        version: "1.0.0".into(),
        kind: ResourceKind::Icon,
        media_type: "image/png".into(),
        data: (0..=255u8).chain([0, 0, 255]).collect(),
    };
    for (db, store) in stores().await {
        let on = db.backend;
        let t = main_tenant();
        store.insert_app_resource(&icon(&t)).await.unwrap();
        assert!(
            matches!(
                store.insert_app_resource(&icon(&t)).await,
                Err(StoreError::Conflict(_))
            ),
            "{on}: one icon per version"
        );
        let got = store
            .get_app_resource(&t, "com-a", "1.0.0", ResourceKind::Icon)
            .await
            .unwrap();
        assert_eq!(got, Some(icon(&t)), "{on}: every byte back");
        for (tenant, version, kind) in [
            (&globex, "1.0.0", ResourceKind::Icon),
            (&t, "2.0.0", ResourceKind::Icon),
            (&t, "1.0.0", ResourceKind::ReleaseNotes),
        ] {
            assert!(
                store
                    .get_app_resource(tenant, "com-a", version, kind)
                    .await
                    .unwrap()
                    .is_none(),
                "{on}: {tenant} {version} {kind:?}"
            );
        }
    }
}

/// Devices are selected by their capabilities' labels (an array label by any element), and a
/// device's labels are replaced whole when its site reports it again.
#[tokio::test]
async fn devices_are_selected_by_label_and_schedule() {
    let caps = |labels: serde_json::Value| {
        eos_domain::margo::DeviceCapabilities::from_json(
            &serde_json::json!({"properties": {"id": "x", "vendor": "v", "modelNumber": "m",
                "serialNumber": "s", "cpus": [{"cores": 1, "architecture": "amd64"}]},
                "labels": labels})
            .to_string(),
        )
        .unwrap()
    };
    let device = |id: &str, labels: serde_json::Value| DeviceRecord {
        id: DeviceId::parse(id).unwrap(),
        tenant: main_tenant(),
        capabilities: caps(labels),
        online: true,
        last_seen: None,
        usage: None,
        model: None,
        schedule: Schedule::Open,
    };
    let select = |selector: &str| DeviceFilter {
        labels: parse_label_selector(selector).unwrap(),
        ..Default::default()
    };
    for (db, store) in stores().await {
        let on = db.backend;
        store
            .upsert_device(&device(
                "s1/a",
                serde_json::json!({"line": "3", "eos.dev/runtimes": ["wasm", "oci"]}),
            ))
            .await
            .unwrap();
        store
            .upsert_device(&device(
                "s1/b",
                serde_json::json!({"line": "4", "eos.dev/runtimes": ["wasm"]}),
            ))
            .await
            .unwrap();
        let page = |filter: DeviceFilter| {
            let store = &store;
            async move {
                store
                    .page_devices(&main_tenant(), &filter, None, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|d| d.id.to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(page(select("line=3")).await, ["s1/a"], "{on}");
        assert_eq!(page(select("eos.dev/runtimes=oci")).await, ["s1/a"], "{on}");
        assert_eq!(
            page(select("eos.dev/runtimes=wasm")).await,
            ["s1/a", "s1/b"],
            "{on}"
        );
        assert_eq!(
            page(select("line,eos.dev/runtimes=wasm")).await,
            ["s1/a", "s1/b"],
            "{on}"
        );
        assert!(
            page(select("line=3,eos.dev/runtimes=wasm,gpu"))
                .await
                .is_empty(),
            "{on}"
        );
        // Reported again with other labels: the old ones are gone.
        store
            .upsert_device(&device("s1/a", serde_json::json!({"line": "5"})))
            .await
            .unwrap();
        assert!(page(select("line=3")).await.is_empty(), "{on}");
        assert_eq!(
            page(select("eos.dev/runtimes=wasm")).await,
            ["s1/b"],
            "{on}"
        );
        store
            .set_device_schedule(
                &main_tenant(),
                &DeviceId::parse("s1/b").unwrap(),
                Schedule::Cordoned,
            )
            .await
            .unwrap();
        let cordoned = DeviceFilter {
            schedule: Some(Schedule::Cordoned),
            ..Default::default()
        };
        assert_eq!(page(cordoned).await, ["s1/b"], "{on}");
    }
}
