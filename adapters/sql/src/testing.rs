//! Databases for tests: a fresh SQLite file, or a fresh database on the test PostgreSQL server
//! that `config/services.sh` starts (`EOS_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:55432/postgres`), dropped again when the test ends.

use sea_orm::{ConnectionTrait, Database};
use std::sync::atomic::{AtomicU32, Ordering};

/// The PostgreSQL server the tests use, as an URL of its maintenance database.
pub fn postgres_admin_url() -> String {
    std::env::var("EOS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:55432/postgres".into())
}

/// A database of its own for one test; a PostgreSQL one is dropped when this is.
pub struct TestDatabase {
    /// `sqlite` or `postgres`: what a failing assertion names.
    pub backend: &'static str,
    /// What `SqlStore::connect` (or the CO's `DATABASE_URL`) takes.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres_name: Option<String>,
}

impl TestDatabase {
    /// A new SQLite file in a temporary folder.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary folder");
        Self {
            backend: "sqlite",
            url: crate::SqlStore::sqlite_url(&dir.path().join("co.db")),
            _dir: Some(dir),
            postgres_name: None,
        }
    }

    /// A new, empty database on the test PostgreSQL server. Panics, saying how to start the
    /// server, when it does not answer.
    pub async fn postgres() -> Self {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "eos_test_{}_{}_{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let admin_url = postgres_admin_url();
        let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "the test PostgreSQL server at {admin_url} does not answer ({e}): \
                 start it with `bash config/services.sh`"
            )
        });
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        admin.close().await.ok();
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(&admin_url);
        Self {
            backend: "postgres",
            url: format!("{base}/{name}"),
            _dir: None,
            postgres_name: Some(name),
        }
    }

    /// One database of each backend: the repository suite runs its checks on both.
    pub async fn each() -> Vec<Self> {
        vec![Self::sqlite(), Self::postgres().await]
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some(name) = self.postgres_name.take() else {
            return;
        };
        // Drop may run inside an async test: a thread of its own with its own runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&postgres_admin_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    admin.close().await.ok();
                }
            })
        })
        .join();
    }
}
