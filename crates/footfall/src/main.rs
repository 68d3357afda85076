//! The footfall binary: `serve`, `sites`, `keys`, `users`, `rebuild`, `migrate`.

mod migrate;
mod settings;

use clap::{Parser, Subcommand};
use footfall_core::SiteId;
use footfall_server::{start, SystemClock};
use footfall_store::MetadataStore;
use settings::{ServeArgs, Settings};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "footfall",
    version,
    about = "Real-time, privacy-first web analytics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Manage sites in a data directory (offline: stop the server first).
    Sites {
        #[command(subcommand)]
        action: SitesAction,
    },
    /// Manage a site's goals (offline: stop the server first; online: the admin API,
    /// /api/admin/sites/{site}/goals).
    Goals {
        #[command(subcommand)]
        action: GoalsAction,
    },
    /// Manage a site's saved funnels (offline: stop the server first; online: the admin
    /// API, /api/admin/sites/{site}/funnels).
    Funnels {
        #[command(subcommand)]
        action: FunnelsAction,
    },
    /// Set a site's content catalogue from a sitemap, an RSS or Atom feed, or JSON
    /// (offline: stop the server first; online: PUT /api/sites/{site}/content).
    Content {
        #[command(subcommand)]
        action: ContentAction,
    },
    /// Manage Stats API keys (offline: stop the server first).
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Manage dashboard users (offline: stop the server first; online: POST /api/admin/users).
    Users {
        #[command(subcommand)]
        action: UsersAction,
    },
    /// Recompute the live counters from stored events and print them, or with --rollups
    /// the rollups (offline; resumable: run it again after an interruption).
    Rebuild {
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 500_000)]
        chunk: u64,
        /// Recompute the rollups from raw events instead of the live counters.
        #[arg(long)]
        rollups: bool,
        /// Only this site (with --rollups).
        #[arg(long, requires = "rollups")]
        site: Option<String>,
    },
    /// Copy this data directory into a cluster (offline: stop the server first; start the
    /// cluster's nodes after). Resumable: run it again after an interruption.
    Migrate {
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
        /// The cluster's settings file (redis, clickhouse, postgres, …; as for `serve`).
        #[arg(long)]
        to: PathBuf,
        /// Rows per chunk (each chunk is written once, whatever interrupts the copy).
        #[arg(long, default_value_t = 50_000)]
        chunk: usize,
    },
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key that may read the given sites; prints it once.
    Create {
        /// A site the key may read (repeatable).
        #[arg(long = "site", required = true)]
        sites: Vec<String>,
        /// Something more the key may do (repeatable): content:write sets its sites'
        /// content catalogues.
        #[arg(long = "scope", value_parser = clap::builder::PossibleValuesParser::new(footfall_server::keys::SCOPES))]
        scopes: Vec<String>,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// Revoke a key by its id.
    Revoke {
        id: String,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// List keys (ids and sites; never the keys).
    List {
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Add a user, or set an existing user's password.
    Add {
        #[arg(long)]
        username: String,
        /// The password; without it, one line is read from standard input (keeps it out of
        /// the process list and shell history).
        #[arg(long, env = "FOOTFALL_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// List users.
    List {
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// Remove a user and end their sessions.
    Remove {
        username: String,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum SitesAction {
    /// Register a site.
    Add {
        domain: String,
        /// Anyone may read this site's stats.
        #[arg(long)]
        public: bool,
        /// Time zone for reports (IANA name, e.g. Europe/Berlin).
        #[arg(long)]
        timezone: Option<String>,
        /// The client id OpenPanel's SDKs send for this site (`openpanel-client-id`), if not
        /// its domain; "" removes it.
        #[arg(long)]
        openpanel_client_id: Option<String>,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// List registered sites.
    List {
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum GoalsAction {
    /// Add a goal, or replace the site's goal of that name: one of --page PATTERN,
    /// --event NAME (with --prop key=value conditions), or --page with --scroll-depth N.
    Add {
        #[arg(long)]
        site: String,
        /// The goal's display name.
        #[arg(long)]
        name: String,
        /// Page views of paths matching this pattern (`*` within a segment, `**` across).
        #[arg(long)]
        page: Option<String>,
        /// Custom events of this name.
        #[arg(long)]
        event: Option<String>,
        /// With --event: only events with this property value (key=value; repeatable).
        #[arg(long = "prop", requires = "event")]
        props: Vec<String>,
        /// With --page: the page scrolled to at least this percent.
        #[arg(long, requires = "page")]
        scroll_depth: Option<u32>,
        /// With --event: a revenue goal; its conversions' revenue is reported in this
        /// currency (ISO 4217, e.g. EUR).
        #[arg(long, requires = "event")]
        currency: Option<String>,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// List a site's goals, as JSON lines.
    List {
        #[arg(long)]
        site: String,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// Remove a site's goal by name.
    Remove {
        #[arg(long)]
        site: String,
        #[arg(long)]
        name: String,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum FunnelsAction {
    /// Save a funnel, or replace the site's funnel of that name: 2 to 8 of the site's
    /// goals, in order (--step NAME, repeated).
    Add {
        #[arg(long)]
        site: String,
        #[arg(long)]
        name: String,
        /// A goal's name; give 2 to 8, in the funnel's order.
        #[arg(long = "step", required = true)]
        steps: Vec<String>,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// List a site's funnels, as JSON lines.
    List {
        #[arg(long)]
        site: String,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// Remove a site's funnel by name.
    Remove {
        #[arg(long)]
        site: String,
        #[arg(long)]
        name: String,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ContentAction {
    /// Replace the site's catalogue with the pages FILE lists: sitemap.xml entries are
    /// pages, RSS and Atom items posts; JSON is the API's list of {path, title, type,
    /// published}. URLs on other hosts are left out.
    Import {
        #[arg(long)]
        site: String,
        file: PathBuf,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
    /// Print the site's catalogue, as JSON lines.
    List {
        #[arg(long)]
        site: String,
        #[arg(long, env = "FOOTFALL_DATA_DIR", default_value = "./footfall-data")]
        data_dir: PathBuf,
    },
}

fn content(action: ContentAction) -> Result<()> {
    match action {
        ContentAction::Import {
            site,
            file,
            data_dir,
        } => {
            // Read no more than a catalogue may hold (and one byte to tell it is more).
            use std::io::Read;
            let mut bytes = Vec::new();
            std::fs::File::open(&file)
                .map_err(|e| format!("{}: {e}", file.display()))?
                .take(footfall_core::catalogue::MAX_BYTES as u64 + 1)
                .read_to_end(&mut bytes)?;
            let imported = footfall_core::catalogue::import(&bytes, &site)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let store = metadata(&data_dir)?;
            let site = known_site(store.as_ref(), &site)?;
            let now = chrono::Utc::now().timestamp_millis();
            let revision = store.set_catalogue(&site, &imported.entries, now)?;
            let count = |k: &str| imported.entries.iter().filter(|e| e.kind == k).count();
            println!(
                "{site}: {} entries ({} posts, {} pages), {} left out; revision {revision}",
                imported.entries.len(),
                count("post"),
                count("page"),
                imported.skipped
            );
        }
        ContentAction::List { site, data_dir } => {
            let store = metadata(&data_dir)?;
            let site = known_site(store.as_ref(), &site)?;
            for e in store.catalogue(&site)?.entries() {
                println!("{}", serde_json::to_string(e)?);
            }
        }
    }
    Ok(())
}

/// A registered site of the data directory, or why not.
fn known_site(store: &dyn MetadataStore, site: &str) -> Result<SiteId> {
    let site = SiteId::parse(site)?;
    if !store.sites()?.iter().any(|s| s.domain == site) {
        return Err(format!("no site {site}: add it with `footfall sites add`").into());
    }
    Ok(site)
}

fn funnels(action: FunnelsAction) -> Result<()> {
    match action {
        FunnelsAction::Add {
            site,
            name,
            steps,
            data_dir,
        } => {
            let funnel = footfall_core::goal::Funnel::try_from(footfall_core::goal::FunnelSpec {
                name,
                steps,
            })?;
            let store = metadata(&data_dir)?;
            let site = known_site(store.as_ref(), &site)?;
            let goals = store.goals(&site)?;
            if let Some(step) = funnel
                .steps
                .iter()
                .find(|s| !goals.iter().any(|g| &g.name == *s))
            {
                return Err(format!(
                    "step {step:?} is not one of {site}'s goals (add it with `footfall goals add`)"
                )
                .into());
            }
            let current = store.funnels(&site)?;
            if !current.iter().any(|f| f.name == funnel.name)
                && current.len() >= footfall_core::goal::MAX_FUNNELS
            {
                return Err(format!(
                    "{site} has {} funnels, the most a site may have",
                    current.len()
                )
                .into());
            }
            let created = store.put_funnel(&site, &funnel, now_ms())?;
            println!(
                "{} funnel {:?} on {site}",
                if created { "added" } else { "replaced" },
                funnel.name
            );
        }
        FunnelsAction::List { site, data_dir } => {
            let store = metadata(&data_dir)?;
            let site = known_site(store.as_ref(), &site)?;
            for funnel in store.funnels(&site)? {
                println!("{}", serde_json::to_string(&funnel)?);
            }
        }
        FunnelsAction::Remove {
            site,
            name,
            data_dir,
        } => {
            let store = metadata(&data_dir)?;
            let site = known_site(store.as_ref(), &site)?;
            if !store.delete_funnel(&site, name.trim())? {
                return Err(format!("no funnel {name:?} on {site}").into());
            }
            println!("removed funnel {name:?} from {site}");
        }
    }
    Ok(())
}

fn goals(action: GoalsAction) -> Result<()> {
    let known = known_site;
    match action {
        GoalsAction::Add {
            site,
            name,
            page,
            event,
            props,
            scroll_depth,
            currency,
            data_dir,
        } => {
            let mut conditions = std::collections::BTreeMap::new();
            for p in props {
                let Some((k, v)) = p.split_once('=') else {
                    return Err(format!("--prop {p:?}: expected key=value").into());
                };
                conditions.insert(k.to_string(), v.to_string());
            }
            let goal = footfall_core::goal::Goal::from_spec(footfall_core::goal::GoalSpec {
                name,
                page,
                event,
                props: conditions,
                scroll_depth,
                currency,
            })?;
            let store = metadata(&data_dir)?;
            let site = known(store.as_ref(), &site)?;
            let current = store.goals(&site)?;
            if !current.iter().any(|g| g.name == goal.name)
                && current.len() >= footfall_core::goal::MAX_GOALS
            {
                return Err(format!(
                    "{site} has {} goals, the most a site may have",
                    current.len()
                )
                .into());
            }
            let created = store.put_goal(&site, &goal, now_ms())?;
            println!(
                "{} goal {:?} on {site}",
                if created { "added" } else { "replaced" },
                goal.name
            );
        }
        GoalsAction::List { site, data_dir } => {
            let store = metadata(&data_dir)?;
            let site = known(store.as_ref(), &site)?;
            for goal in store.goals(&site)? {
                println!("{}", serde_json::to_string(&goal)?);
            }
        }
        GoalsAction::Remove {
            site,
            name,
            data_dir,
        } => {
            let store = metadata(&data_dir)?;
            let site = known(store.as_ref(), &site)?;
            if !store.delete_goal(&site, &name)? {
                return Err(format!("no goal {name:?} on {site}").into());
            }
            println!("removed goal {name:?} from {site}");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FOOTFALL_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(*args),
        Command::Sites { action } => sites(action),
        Command::Goals { action } => goals(action),
        Command::Funnels { action } => funnels(action),
        Command::Content { action } => content(action),
        Command::Keys { action } => keys(action),
        Command::Users { action } => users(action),
        Command::Rebuild {
            data_dir,
            rollups: true,
            site,
            ..
        } => rebuild_rollups(&data_dir, site.as_deref()),
        Command::Rebuild {
            data_dir, chunk, ..
        } => rebuild(&data_dir, chunk),
        Command::Migrate {
            data_dir,
            to,
            chunk,
        } => migrate::run(&data_dir, &to, chunk),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("footfall: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The metadata of the embedded backend in `data_dir`, for the offline commands.
fn metadata(data_dir: &std::path::Path) -> Result<Box<dyn MetadataStore>> {
    Ok(footfall_store::open_embedded(data_dir, None)?.metadata)
}

fn serve(args: ServeArgs) -> Result<()> {
    let settings = Settings::resolve(args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let running = start(settings.server, Arc::new(SystemClock)).await?;
        println!("footfall listening on http://{}", running.addr);
        shutdown_signal().await;
        tracing::info!("shutting down: draining the buffer");
        running.shutdown().await;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn sites(action: SitesAction) -> Result<()> {
    match action {
        SitesAction::Add {
            domain,
            public,
            timezone,
            openpanel_client_id,
            data_dir,
        } => {
            let site = SiteId::parse(&domain)?;
            let tz = timezone
                .as_deref()
                .map(footfall_server::pipeline::sites::parse_timezone)
                .transpose()?;
            let store = metadata(&data_dir)?;
            let client_id = openpanel_client_id.as_deref().map(|id| id.trim());
            if let Some(id) = client_id.filter(|id| !id.is_empty()) {
                if !footfall_server::pipeline::sites::valid_client_id(id) {
                    return Err(format!(
                        "--openpanel-client-id {id:?}: expected 1-128 visible ASCII characters, no commas"
                    )
                    .into());
                }
                // Held by another site, or another site's domain (which names that site).
                let owner = store.sites()?.into_iter().find(|s| {
                    s.domain != site
                        && (s.openpanel_client_id.as_deref() == Some(id)
                            || SiteId::parse(id).is_ok_and(|d| d == s.domain))
                });
                if let Some(owner) = owner {
                    return Err(format!(
                        "--openpanel-client-id {id:?} already names site {}",
                        owner.domain
                    )
                    .into());
                }
            }
            let created = store.add_site(&site, public, now_ms())?;
            if let Some(tz) = tz {
                store.set_site_timezone(&site, tz.name())?;
            }
            if let Some(id) = client_id {
                store.set_openpanel_client_id(&site, Some(id).filter(|i| !i.is_empty()))?;
            }
            println!(
                "{} {site}{}",
                if created { "added" } else { "updated" },
                if public { " (public)" } else { "" }
            );
        }
        SitesAction::List { data_dir } => {
            let store = metadata(&data_dir)?;
            for s in store.sites()? {
                let client = s
                    .openpanel_client_id
                    .map(|id| format!(" (OpenPanel client id {id})"))
                    .unwrap_or_default();
                println!(
                    "{}{}{client}",
                    s.domain,
                    if s.public { " (public)" } else { "" }
                );
            }
        }
    }
    Ok(())
}

fn keys(action: KeysAction) -> Result<()> {
    match action {
        KeysAction::Create {
            sites,
            scopes,
            data_dir,
        } => {
            let store = metadata(&data_dir)?;
            let known: Vec<SiteId> = store.sites()?.into_iter().map(|s| s.domain).collect();
            let mut scoped = Vec::new();
            for s in &sites {
                let site = SiteId::parse(s)?;
                if !known.contains(&site) {
                    return Err(format!(
                        "site {site} is not registered (footfall sites add {site})"
                    )
                    .into());
                }
                scoped.push(site);
            }
            let (id, key) =
                footfall_server::keys::create(store.as_ref(), &scoped, &scopes, now_ms())?;
            println!("{key}");
            eprintln!(
                "key {id} created for {}; it is shown only this once",
                sites.join(", ")
            );
        }
        KeysAction::Revoke { id, data_dir } => {
            let store = metadata(&data_dir)?;
            if !store.revoke_api_key(&id, now_ms())? {
                return Err(format!("no active key {id}").into());
            }
            println!("revoked {id}");
        }
        KeysAction::List { data_dir } => {
            let store = metadata(&data_dir)?;
            for k in store.api_keys()? {
                println!(
                    "{}\t{}\t{}",
                    k.id,
                    k.sites.join(","),
                    if k.revoked { "revoked" } else { "active" }
                );
            }
        }
    }
    Ok(())
}

fn users(action: UsersAction) -> Result<()> {
    match action {
        UsersAction::Add {
            username,
            password,
            data_dir,
        } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            let store = metadata(&data_dir)?;
            let created = footfall_server::accounts::add_user(
                store.as_ref(),
                &username,
                &password,
                now_ms(),
            )?;
            store.checkpoint()?;
            println!(
                "{} user {username}",
                if created {
                    "added"
                } else {
                    "updated password of"
                }
            );
        }
        UsersAction::List { data_dir } => {
            let store = metadata(&data_dir)?;
            for u in store.users()? {
                println!("{}", u.username);
            }
        }
        UsersAction::Remove { username, data_dir } => {
            let store = metadata(&data_dir)?;
            if !store.delete_user(&username)? {
                return Err(format!("no user {username}").into());
            }
            store.checkpoint()?;
            println!("removed user {username}");
        }
    }
    Ok(())
}

/// `rebuild --rollups`: each site (or one) recomputed from raw events, a week of days per
/// transaction, with a progress bar.
fn rebuild_rollups(data_dir: &std::path::Path, only: Option<&str>) -> Result<()> {
    let stores = footfall_store::open_embedded(data_dir, None)?;
    let (mut store, meta) = (stores.events, stores.metadata);
    let log = footfall_store::SegmentLog::open(&data_dir.join("log"), Default::default())?;
    let applied = footfall_server::pipeline::applier::catch_up(store.as_mut(), &log)?;
    if applied > 0 {
        eprintln!("rebuild: applied {applied} log records to storage first");
    }
    let registered: Vec<footfall_core::SiteId> =
        meta.sites()?.into_iter().map(|s| s.domain).collect();
    let sites = match only {
        Some(s) => {
            let site = footfall_core::SiteId::parse(s)?;
            if !registered.contains(&site) {
                return Err(format!("site {site} is not registered").into());
            }
            vec![site]
        }
        None => registered,
    };
    for site in sites {
        let bar = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>24} [{bar:40}] {pos}/{len} days ({elapsed}, {eta} left)",
            )
            .map_err(|e| e.to_string())?
            .progress_chars("=> "),
        );
        bar.set_message(site.to_string());
        store.rebuild_rollups(&site, &mut |p| {
            bar.set_length(p.total);
            bar.set_position(p.done);
            true
        })?;
        bar.finish();
    }
    Ok(())
}

fn rebuild(data_dir: &std::path::Path, chunk: u64) -> Result<()> {
    let mut store = footfall_store::open_embedded(data_dir, None)?.events;
    // Events acknowledged but not yet in storage (after a crash) are in the log: apply them
    // first, so the rebuild counts everything acknowledged.
    let log = footfall_store::SegmentLog::open(&data_dir.join("log"), Default::default())?;
    let applied = footfall_server::pipeline::applier::catch_up(store.as_mut(), &log)?;
    if applied > 0 {
        eprintln!("rebuild: applied {applied} log records to storage first");
    }
    let counters = store.rebuild_counters(chunk, &mut |p| {
        eprintln!(
            "rebuild: {}/{} events ({} chunks)",
            p.done, p.total, p.chunks
        );
        true
    })?;
    let mut sites: Vec<_> = counters.sites.iter().collect();
    sites.sort_by(|a, b| a.0.cmp(b.0));
    for (site, c) in sites {
        println!(
            "{site}: page views {}, unique visitors {}, visits {}, bounces {}, paths {}",
            c.total_pageviews,
            c.visitor_days.total(),
            c.visits,
            c.bounces,
            c.paths.len()
        );
    }
    Ok(())
}
