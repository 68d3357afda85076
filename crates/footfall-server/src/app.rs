//! Wiring: open the store and the log, recover the sequencer and live state from them, start
//! the sequencer and the storage applier, serve HTTP, and shut down in order (stop
//! accepting, answer what is queued and snapshot, drain the log into storage, checkpoint).

use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::ingest::geo::GeoDb;
use crate::ingest::single_event_route;
use crate::metrics::Metrics;
use crate::pipeline::applier::{ApplierHandle, ReadBarrier, StorageApplier};
use crate::pipeline::live::{spawn_expiry, Live};
use crate::pipeline::recovery::{self, Retention};
use crate::pipeline::salts::Salts;
use crate::pipeline::sequencer::{SequencerThread, SnapshotFiles};
use crate::pipeline::sites::Sites;
use crate::pipeline::snapshot::SnapshotFile;
use crate::state::{AccessState, AppState, IngestState, ReadState};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use footfall_core::decode::{plausible, seed};
use footfall_core::identify::Config as IdentifyConfig;
use footfall_store::{Log, LogOptions, SegmentLog};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tower_http::cors::{Any, CorsLayer};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("storage: {0}")]
    Store(#[from] footfall_store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Geo(String),
    #[error("currency rates {path}: {reason}")]
    Rates { path: String, reason: String },
    #[error("accounts: {0}")]
    Accounts(#[from] crate::accounts::AccountError),
    #[error("log: {0}")]
    Log(#[from] footfall_store::LogError),
    #[error("recovery: {0}")]
    Recovery(#[from] crate::pipeline::recovery::RecoveryError),
    #[error("cannot start a thread: {0}")]
    Thread(std::io::Error),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("the log ends at position {log_end} but storage already holds records up to {applied}: acknowledged records are missing from the log. Restore the log/ folder from a backup; or, if storage holds everything, move log/ aside and start again (a new log continues after {applied})")]
    LogBehindStorage { log_end: u64, applied: u64 },
}

pub fn router(state: Arc<AppState>) -> Router {
    // Trackers run on other origins; they may post events from anywhere. Everything else
    // gets no CORS headers, so browsers refuse cross-origin reads.
    let ingest_cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([header::CONTENT_TYPE])
        .max_age(std::time::Duration::from_secs(86_400));
    let ingest = Router::new()
        .route(
            "/api/event",
            single_event_route(plausible::decode).options(preflight),
        )
        .route(
            "/api/pageview",
            single_event_route(seed::decode_pageview).options(preflight),
        )
        .route(
            "/api/heartbeat",
            single_event_route(seed::decode_heartbeat).options(preflight),
        )
        .layer(ingest_cors);
    // OpenPanel's SDKs send their own headers, which a preflight must allow.
    let openpanel = Router::new()
        .route(
            "/track",
            post(crate::ingest::openpanel_track).options(preflight),
        )
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::POST, Method::OPTIONS])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::HeaderName::from_static("openpanel-client-id"),
                    header::HeaderName::from_static("openpanel-client-secret"),
                    header::HeaderName::from_static("openpanel-sdk-name"),
                    header::HeaderName::from_static("openpanel-sdk-version"),
                ])
                .max_age(std::time::Duration::from_secs(86_400)),
        );
    Router::new()
        .merge(ingest)
        .merge(openpanel)
        .merge(crate::dashboard::routes())
        .route("/api/events", post(crate::ingest::batch))
        .route("/api/stats/{site}/live", get(crate::read::stats::live))
        .route("/api/stats/{site}/funnels", get(crate::read::funnel::saved))
        .route(
            "/api/sites/{site}/content",
            axum::routing::put(crate::content::put).get(crate::content::get),
        )
        .route(
            "/api/stats/{site}/live/stream",
            get(crate::read::stream::live_stream),
        )
        .route(
            "/api/admin/sites",
            post(crate::admin::add_site).get(crate::admin::list_sites),
        )
        .route(
            "/api/admin/sites/{site}/goals",
            post(crate::admin::put_goal).get(crate::admin::list_goals),
        )
        .route(
            "/api/admin/sites/{site}/goals/{name}",
            axum::routing::delete(crate::admin::delete_goal),
        )
        .route(
            "/api/admin/sites/{site}/funnels",
            post(crate::admin::put_funnel).get(crate::admin::list_funnels),
        )
        .route(
            "/api/admin/sites/{site}/funnels/{name}",
            axum::routing::delete(crate::admin::delete_funnel),
        )
        // The same, for the dashboard's settings (a signed-in user's change).
        .route(
            "/api/dashboard/sites/{site}/goals",
            post(crate::admin::put_goal).get(crate::admin::list_goals),
        )
        .route(
            "/api/dashboard/sites/{site}/goals/{name}",
            axum::routing::delete(crate::admin::delete_goal),
        )
        .route(
            "/api/dashboard/sites/{site}/segments",
            post(crate::segments::put).get(crate::segments::list),
        )
        .route(
            "/api/dashboard/sites/{site}/segments/{name}",
            axum::routing::delete(crate::segments::delete),
        )
        .route(
            "/api/admin/sites/{site}/segments",
            post(crate::segments::put).get(crate::segments::list),
        )
        .route(
            "/api/admin/sites/{site}/segments/{name}",
            axum::routing::delete(crate::segments::delete),
        )
        .route(
            "/api/dashboard/sites/{site}/funnels",
            post(crate::admin::put_funnel).get(crate::admin::list_funnels),
        )
        .route(
            "/api/dashboard/sites/{site}/funnels/{name}",
            axum::routing::delete(crate::admin::delete_funnel),
        )
        .route("/api/admin/keys", post(crate::admin::create_key))
        .route(
            "/api/admin/keys/{id}",
            axum::routing::delete(crate::admin::revoke_key),
        )
        .route("/api/v2/query", post(crate::read::query::v2))
        .route("/api/v2/query/batch", post(crate::read::query::v2_batch))
        .route("/api/v2/funnel", post(crate::read::funnel::funnel))
        .route(
            "/api/v1/stats/realtime/visitors",
            get(crate::read::v1::realtime),
        )
        .route("/api/v1/stats/aggregate", get(crate::read::v1::aggregate))
        .route("/api/v1/stats/timeseries", get(crate::read::v1::timeseries))
        .route("/api/v1/stats/breakdown", get(crate::read::v1::breakdown))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                axum::Json(serde_json::json!({"error": "method not allowed"})),
            )
        })
        .layer(axum::middleware::map_request(
            crate::auth::share_param_to_header,
        ))
        .layer(axum::middleware::map_response(no_store))
        .with_state(state)
}

/// Answers carry stats, tokens and share links: no cache may keep them, unless a route said
/// otherwise (the web files).
async fn no_store(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(axum::http::HeaderValue::from_static("private, no-store"));
    res
}

/// Not ready while writes are refused until a restart (the log became unusable).
async fn readyz(axum::extract::State(st): axum::extract::State<Arc<AppState>>) -> Response {
    if st
        .metrics
        .refusing_writes
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "refusing writes: the log is unusable; restart footfall",
        )
            .into_response();
    }
    "ok".into_response()
}

/// The CORS layer answers preflights itself; this only gives OPTIONS a route to land on.
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

async fn metrics(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown_tx: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    background: Background,
}

/// The threads behind the server, stopped in order at shutdown.
pub(crate) enum Background {
    Embedded {
        sequencer_thread: std::thread::JoinHandle<()>,
        applier: ApplierHandle,
    },
    Cluster(crate::cluster::node::NodeHandle),
}

impl Running {
    /// A thread the cluster node started after the server (joined at shutdown).
    pub(crate) fn add_thread(&mut self, t: std::thread::JoinHandle<()>) {
        if let Background::Cluster(node) = &mut self.background {
            node.threads.push(t);
        }
    }

    /// Stops accepting requests, lets in-flight ones finish, answers everything queued and
    /// snapshots the state, then drains the log into storage and checkpoints the database.
    pub async fn shutdown(self) {
        let _ = self.shutdown_tx.send(true);
        // Connections get a grace period to finish; a client that never does (a stalled
        // upload, say) must not keep the buffer from draining.
        let mut server = self.server;
        if tokio::time::timeout(std::time::Duration::from_secs(10), &mut server)
            .await
            .is_err()
        {
            tracing::warn!("connections still open after 10 s; closing them");
            server.abort();
        }
        self.state.ingest.writer.shutdown().await;
        match self.background {
            Background::Embedded {
                sequencer_thread,
                applier,
            } => {
                let _ = tokio::task::spawn_blocking(move || sequencer_thread.join()).await;
                applier.shutdown().await;
            }
            Background::Cluster(node) => node.shutdown().await,
        }
        tracing::info!("footfall stopped");
    }
}

/// Recovers state from the log, snapshots and storage, and starts serving. Returns once the
/// server is listening, so `/healthz` answers as soon as this returns.
pub async fn start(config: ServerConfig, clock: Arc<dyn Clock>) -> Result<Running, StartError> {
    if config.cluster.is_some() {
        return crate::cluster::node::start(config, clock).await;
    }
    start_with_log(config, clock, LogOptions::default()).await
}

/// As [`start`], with the log's options (tests inject write failures through them).
pub async fn start_with_log(
    config: ServerConfig,
    clock: Arc<dyn Clock>,
    log_options: LogOptions,
) -> Result<Running, StartError> {
    let cfg = config.clone();
    let clock2 = clock.clone();
    let identify = IdentifyConfig {
        visit_gap_ms: cfg.visit_gap_ms,
        dedup_window_ms: cfg.dedup_window_ms,
    };
    let snapshots = SnapshotFiles {
        sequencer: SnapshotFile::new(&cfg.data_dir, "sequencer.snap"),
        live: SnapshotFile::new(&cfg.data_dir, "live.snap"),
    };
    let snaps = snapshots.clone();
    let (store, metadata, log, sequencer, model, id_base, applied, snapshot_at) =
        tokio::task::spawn_blocking(move || -> Result<_, StartError> {
            let started = std::time::Instant::now();
            let footfall_store::Stores {
                events: store,
                metadata,
            } = footfall_store::open_embedded(&cfg.data_dir, cfg.db_memory_limit.as_deref())?;
            register_sites(&cfg, metadata.as_ref(), clock2.now().0)?;
            let (applied, id_base) = store.applied()?;
            // A log set up anew beside storage continues after storage's position.
            let log_options = LogOptions {
                first_position: applied.0 + 1,
                ..log_options
            };
            let log = SegmentLog::open(&cfg.data_dir.join("log"), log_options)?;
            if log.cut_at_open() > 0 {
                tracing::warn!(
                    bytes = log.cut_at_open(),
                    "cut a torn tail off the log (a write that was never acknowledged)"
                );
            }
            if log.end() < applied {
                return Err(StartError::LogBehindStorage {
                    log_end: log.end().0,
                    applied: applied.0,
                });
            }
            let log: Arc<dyn Log> = Arc::new(log);
            let sequencer =
                recovery::load_sequencer(&snaps.sequencer, log.as_ref(), identify, id_base)?;
            let model = recovery::load_live(
                &snaps.live,
                log.as_ref(),
                store.as_ref(),
                cfg.active_timeout_ms,
                cfg.rebuild_chunk,
            )?;
            // Until a snapshot is written at the new end, the log must keep what replay
            // just used.
            let snapshot_at = footfall_store::LogPosition(log.first().0.saturating_sub(1));
            tracing::info!(
                ms = started.elapsed().as_millis() as u64,
                log_end = log.end().0,
                applied = applied.0,
                "state recovered"
            );
            Ok((
                store,
                metadata,
                log,
                sequencer,
                model,
                id_base,
                applied,
                snapshot_at,
            ))
        })
        .await
        .map_err(|e| StartError::Geo(format!("startup task failed: {e}")))??;

    let metrics = Arc::new(Metrics::default());
    metrics
        .cluster_backlog
        .store(-1, std::sync::atomic::Ordering::Relaxed);
    let live = Arc::new(Live::new(model));
    let reads = store.connect()?;
    let retention = Arc::new(Retention::new(applied, snapshot_at));
    let (applied_tx, applied_rx) = watch::channel(applied);
    let nudge = Arc::new(tokio::sync::Notify::new());
    let mut store = store;
    if !config.rollups {
        store.stop_rollups()?;
    }
    let applier = StorageApplier {
        store,
        log: log.clone(),
        retention: retention.clone(),
        metrics: metrics.clone(),
        applied: applied_tx,
        nudge: nudge.clone(),
        keep_rollups: config.rollups,
    }
    .spawn()
    .map_err(StartError::Thread)?;
    let (sequencer, sequencer_thread) = SequencerThread {
        sequencer,
        identify,
        id_base,
        log: log.clone(),
        live: live.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
        max_batch: config.batch_max_events.max(1),
        snapshots,
        snapshot_every: std::time::Duration::from_secs(config.snapshot_every_secs.max(1)),
        snapshot_bytes: config.snapshot_every_bytes.max(1),
        retention,
        failed: None,
    }
    .spawn()
    .map_err(StartError::Thread)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    spawn_expiry(live.clone(), clock.clone(), shutdown_rx.clone());
    let background = Background::Embedded {
        sequencer_thread,
        applier,
    };
    let backend = Backend {
        metadata,
        reads,
        live,
        stored: crate::state::Stored::Embedded(ReadBarrier {
            log,
            applied: applied_rx,
            nudge,
        }),
        writer: crate::ingest::EventWriter::Embedded(sequencer),
        background,
    };
    serve(config, clock, metrics, backend, (shutdown_tx, shutdown_rx)).await
}

/// Registers the sites the settings name (and the demo's) in the metadata store.
pub(crate) fn register_sites(
    cfg: &ServerConfig,
    metadata: &dyn footfall_store::MetadataStore,
    now: i64,
) -> Result<(), footfall_store::StoreError> {
    for site in &cfg.sites {
        metadata.add_site(site, cfg.public_sites.contains(site), now)?;
    }
    for site in &cfg.public_sites {
        metadata.add_site(site, true, now)?;
    }
    if cfg.demo {
        metadata.add_site(&crate::demo::site(), true, now)?;
    }
    Ok(())
}

/// What a mode (embedded or cluster) hands the HTTP server.
pub(crate) struct Backend {
    pub metadata: Box<dyn footfall_store::MetadataStore>,
    /// A connection for reports.
    pub reads: Box<dyn footfall_store::EventStore>,
    pub live: Arc<dyn crate::pipeline::live::LiveState>,
    pub stored: crate::state::Stored,
    pub writer: crate::ingest::EventWriter,
    pub background: Background,
}

/// Loads what requests need from the metadata store, binds, and serves.
pub(crate) async fn serve(
    config: ServerConfig,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    backend: Backend,
    (shutdown_tx, shutdown_rx): (watch::Sender<bool>, watch::Receiver<bool>),
) -> Result<Running, StartError> {
    let geo = match &config.geoip_db {
        Some(p) => Some(GeoDb::open(p).map_err(StartError::Geo)?),
        None => None,
    };
    let rates = match &config.currency_rates {
        Some(p) => {
            let bad = |reason: String| StartError::Rates {
                path: p.display().to_string(),
                reason,
            };
            let text = std::fs::read(p).map_err(|e| bad(e.to_string()))?;
            if text.len() > 1 << 20 {
                return Err(bad("larger than 1 MiB".into()));
            }
            let text = String::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
            footfall_core::money::Rates::from_json(&text).map_err(|e| bad(e.to_string()))?
        }
        None => footfall_core::money::Rates::none(),
    };
    let metadata = backend.metadata;
    let (rate, now) = (config.api_rate_limit_per_hour, clock.now().0);
    // Store calls block (a networked store's client runs its own runtime): off the workers.
    let (sites, salts, keys, accounts) = tokio::task::spawn_blocking(move || {
        let sites = Sites::load(metadata.connect()?)?;
        let salts = Salts::new(metadata.connect()?);
        let keys = crate::keys::ApiKeys::load(metadata.connect()?, rate)?;
        let accounts = crate::accounts::Accounts::load(metadata, now)?;
        Ok::<_, StartError>((sites, salts, keys, accounts))
    })
    .await
    .map_err(|e| StartError::Cluster(format!("startup task failed: {e}")))??;
    let reads = crate::read::query::ReadPool::new(backend.reads);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    let state = Arc::new(AppState {
        config,
        clock,
        metrics,
        shutdown: shutdown_rx.clone(),
        ingest: IngestState {
            sites,
            salts,
            geo,
            user_agents: Default::default(),
            writer: backend.writer,
        },
        read: ReadState {
            live: backend.live,
            reads,
            stored: backend.stored,
            rates,
        },
        access: AccessState { keys, accounts },
    });
    if let Some(token) = state.access.accounts.setup_token() {
        tracing::warn!(
            "no dashboard users yet: open http://{addr}/setup and create the first one with setup token: {token}"
        );
    }
    if state.config.demo {
        crate::demo::spawn(state.clone());
    }
    let app = router(state.clone());
    let mut stop = shutdown_rx;
    let server = tokio::spawn(async move {
        let graceful = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(graceful)
        .await
        {
            tracing::error!(error = %e, "server error");
        }
    });
    tracing::info!(%addr, "footfall listening");
    Ok(Running {
        addr,
        state,
        shutdown_tx,
        server,
        background: backend.background,
    })
}
