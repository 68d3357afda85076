//! Cluster nodes for tests: each test gets its own PostgreSQL database, Redis prefix and
//! ClickHouse database on the servers `scripts/test` starts (FOOTFALL_TEST_REDIS,
//! FOOTFALL_TEST_CLICKHOUSE, FOOTFALL_TEST_POSTGRES); without them the tests fail loudly.

use footfall_server::config::ClusterConfig;
use footfall_server::ServerConfig;
use std::time::{Duration, Instant};

pub fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test"))
}

/// A fresh PostgreSQL database, dropped at the end.
pub struct Pg {
    name: String,
}

impl Pg {
    /// The blocking client runs its own runtime: call it off the test's.
    pub fn new() -> Pg {
        std::thread::spawn(Pg::create).join().unwrap()
    }

    fn create() -> Pg {
        let name = format!("footfall_nodes_{:08x}", rand::random::<u32>());
        let mut admin = postgres::Client::connect(&env("FOOTFALL_TEST_POSTGRES"), postgres::NoTls)
            .expect("connect to FOOTFALL_TEST_POSTGRES");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        Pg { name }
    }

    pub fn url(&self) -> String {
        let base = env("FOOTFALL_TEST_POSTGRES");
        let (server, _) = base.rsplit_once('/').unwrap();
        format!("{server}/{}", self.name)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Off the test's runtime, like the connect.
        let _ = std::thread::spawn(move || {
            if let Ok(mut admin) =
                postgres::Client::connect(&env("FOOTFALL_TEST_POSTGRES"), postgres::NoTls)
            {
                let _ =
                    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
            }
        })
        .join();
    }
}

/// One cluster: a PostgreSQL database, a Redis prefix and a ClickHouse database of its
/// own, so tests running at once never see each other's data.
pub struct Cluster {
    pub pg: Pg,
    pub prefix: String,
    pub database: String,
}

impl Cluster {
    pub fn new() -> Cluster {
        let prefix = format!("n{:08x}", rand::random::<u32>());
        Cluster {
            pg: Pg::new(),
            database: format!("footfall_nodes_{prefix}"),
            prefix,
        }
    }

    /// The configuration of node `name` of this cluster, with short leases.
    pub fn node(&self, name: &str, partitions: u32) -> impl FnOnce(&mut ServerConfig) {
        let mut k = ClusterConfig::new(
            env("FOOTFALL_TEST_REDIS"),
            env("FOOTFALL_TEST_CLICKHOUSE"),
            self.pg.url(),
        );
        k.clickhouse_database = self.database.clone();
        k.prefix = self.prefix.clone();
        k.partitions = partitions;
        k.node = name.into();
        k.owner_lease = Duration::from_secs(2);
        k.applier_lease = Duration::from_secs(5);
        move |c: &mut ServerConfig| c.cluster = Some(k)
    }

    /// Drops the cluster's ClickHouse database (call after the nodes stopped).
    pub async fn drop_storage(&self) {
        let _ = reqwest::Client::new()
            .post(env("FOOTFALL_TEST_CLICKHOUSE"))
            .body(format!("DROP DATABASE IF EXISTS {}", self.database))
            .send()
            .await;
    }
}

/// Polls `probe` until `ok` holds (or fails after 30 s): for changes that travel between
/// nodes, whose arrival the test can only observe.
pub async fn eventually<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    mut probe: impl FnMut() -> F,
    ok: impl Fn(&T) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = probe().await;
        if ok(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
