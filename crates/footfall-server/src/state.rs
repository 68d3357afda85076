//! What request handlers share, grouped by concern. Handlers depend on this module, not on
//! each other or on the router (`app.rs`), so the module graph has no cycles.

use crate::accounts::Accounts;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::ingest::geo::GeoDb;
use crate::ingest::ua_cache::UaCache;
use crate::ingest::EventWriter;
use crate::keys::ApiKeys;
use crate::metrics::Metrics;
use crate::pipeline::applier::ReadBarrier;
use crate::pipeline::live::LiveState;
use crate::pipeline::salts::Salts;
use crate::pipeline::sites::Sites;
use crate::read::query::ReadPool;
use std::sync::Arc;
use tokio::sync::watch;

pub struct AppState {
    pub config: ServerConfig,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Becomes true when the server starts shutting down (ends streams).
    pub shutdown: watch::Receiver<bool>,
    pub ingest: IngestState,
    pub read: ReadState,
    pub access: AccessState,
}

/// The write side as requests see it: which sites exist, how visitors are hashed and
/// classified, and the sequencer that makes events durable.
pub struct IngestState {
    pub sites: Sites,
    pub salts: Salts,
    pub geo: Option<GeoDb>,
    pub user_agents: UaCache,
    /// Where events become durable: the sequencer, or the cluster's inboxes.
    pub writer: EventWriter,
}

/// The read side: live state, stored events, and the barrier that makes a query see every
/// event acknowledged before it began.
pub struct ReadState {
    pub live: Arc<dyn LiveState>,
    pub reads: ReadPool,
    pub stored: Stored,
    /// The operator's exchange rates for revenue (empty: no conversions).
    pub rates: footfall_core::money::Rates,
}

/// What a query waits for before reading storage: the embedded applier, or the cluster's
/// inboxes, logs and ClickHouse.
pub enum Stored {
    Embedded(ReadBarrier),
    Cluster(crate::cluster::barrier::ClusterBarrier),
}

impl Stored {
    /// Waits (up to `limit`) until storage holds every event acknowledged before now.
    pub async fn wait(&self, limit: std::time::Duration) -> bool {
        match self {
            Stored::Embedded(b) => b.wait(limit).await,
            Stored::Cluster(b) => b.wait(limit).await,
        }
    }
}

/// Who may do what: API keys and dashboard accounts.
pub struct AccessState {
    pub keys: ApiKeys,
    pub accounts: Accounts,
}
