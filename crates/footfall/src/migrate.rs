//! `footfall migrate --to cluster.toml`: copies an embedded installation (its data
//! directory, server stopped) into a cluster, then checks the copy.
//!
//! What goes where: sites, keys, users, goals, funnels, segments, content catalogues and the
//! current salts to PostgreSQL (salts too, so a visitor seen before the move keeps its id for the rest of
//! the day); stored events,
//! the current state of every visit and complete rollups to ClickHouse, in numbered
//! chunks under partitions of their own (see `footfall_store::clickhouse::import`) so an
//! interrupted copy resumes where it stopped, exactly once; the live counters to Redis,
//! which every node adds to its own. Visits in progress when the embedded server stopped
//! end there (a visitor coming back starts a new one).

use crate::settings::{ServeArgs, Settings};
use footfall_core::query::plan::{self, BucketKey, Context};
use footfall_core::query::{parse, time, Dimension};
use footfall_core::SiteId;
use footfall_store::clickhouse::{
    MIGRATED_EVENTS, MIGRATED_ROLLUPS, MIGRATED_SOURCE, MIGRATED_VISITS,
};
use footfall_store::{ChStore, DuckStore, EventStore, MetadataStore, PgStore, QueryRow};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Test hook: stop (as a crash would) with the chunk after this many written this run
/// half-written — its events in ClickHouse, no marker.
const CRASH_AFTER: &str = "FOOTFALL_MIGRATE_CRASH_AFTER_CHUNKS";

fn bar(len: u64, what: &str) -> Result<indicatif::ProgressBar> {
    let b = indicatif::ProgressBar::new(len).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {pos}/{len} ({elapsed}, {eta} left)",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    Ok(b)
}

pub fn run(data_dir: &Path, to: &Path, chunk: usize) -> Result<()> {
    let settings = Settings::resolve(ServeArgs {
        config: Some(to.to_path_buf()),
        ..Default::default()
    })?;
    let Some(k) = settings.server.cluster else {
        return Err(format!(
            "{} names no cluster: it needs redis, clickhouse and postgres",
            to.display()
        )
        .into());
    };
    let chunk = chunk.max(1);
    let crash_after: Option<u64> = std::env::var(CRASH_AFTER).ok().and_then(|v| v.parse().ok());

    let mut source = DuckStore::open(data_dir)?;
    let log = footfall_store::SegmentLog::open(&data_dir.join("log"), Default::default())?;
    let applied = footfall_server::pipeline::applier::catch_up(&mut source, &log)?;
    if applied > 0 {
        eprintln!("migrate: applied {applied} log records to storage first");
    }

    // A cluster that took traffic of its own is not a target: its partitions' history
    // would interleave with the copy's.
    let reader = ChStore::open(&k.clickhouse, &k.clickhouse_database, 0)?;
    if let Some(p) = reader
        .applied_positions()?
        .keys()
        .find(|p| **p < MIGRATED_SOURCE)
    {
        return Err(format!(
            "the cluster already stores events of its own (log partition {p}); migrate into a new cluster"
        )
        .into());
    }

    same_source(&source, &k.clickhouse, &k.clickhouse_database)?;

    let pg = PgStore::open(&k.postgres)?;
    copy_metadata(&source, &pg)?;
    eprintln!("migrate: sites, keys, users and salts copied");

    let mut written = 0u64;
    let mut crash = |ch: &mut ChStore| {
        written += 1;
        if crash_after.is_some_and(|n| written > n) {
            ch.fail_at(Some(footfall_store::clickhouse::FlushStage::AfterEvents));
        }
    };
    let (total_events, total_visits) = source.totals()?;

    // Events, in id order; then visits (their current state), in id order.
    for (part, table, id, total) in [
        (MIGRATED_EVENTS, "events", "event_id", total_events),
        (MIGRATED_VISITS, "sessions", "session_id", total_visits),
    ] {
        let mut ch = ChStore::open(&k.clickhouse, &k.clickhouse_database, part)?;
        let (mut done, cursor) = ch.import_progress()?;
        let b = bar(
            total,
            if part == MIGRATED_EVENTS {
                "events"
            } else {
                "visits"
            },
        )?;
        let through = if part == MIGRATED_EVENTS {
            source.exported_through(cursor, 0)?.0
        } else {
            source.exported_through(0, cursor)?.1
        };
        b.set_position(through);
        let mut each = |rows: Vec<serde_json::Map<String, serde_json::Value>>| {
            let Some(last) = rows.last().and_then(|r| r[id].as_u64()) else {
                return Ok(());
            };
            let n = rows.len() as u64;
            crash(&mut ch);
            ch.import_chunk(done + 1, last, vec![(table, rows)])?;
            done += 1;
            b.inc(n);
            Ok(())
        };
        if part == MIGRATED_EVENTS {
            source.export_events(cursor, chunk, &mut each)?;
        } else {
            source.export_visits(cursor, chunk, &mut each)?;
        }
        b.finish();
    }

    // Rollups, a site per chunk: complete ones are copied and marked complete; a site
    // whose rollups are not complete in its zone is marked so, and reads raw rows.
    let mut sites: Vec<footfall_store::Site> = source.sites()?;
    sites.sort_by(|a, b| a.domain.cmp(&b.domain));
    let mut ch = ChStore::open(&k.clickhouse, &k.clickhouse_database, MIGRATED_ROLLUPS)?;
    let (mut done, _) = ch.import_progress()?;
    let b = bar(sites.len() as u64, "rollups")?;
    b.set_position(done.min(sites.len() as u64));
    for (i, site) in sites.iter().enumerate().skip(done as usize) {
        let complete = source.rollup_zone(&site.domain)?.as_deref() == Some(&site.timezone);
        let rows = if complete {
            source.export_rollups(&site.domain)?
        } else {
            Vec::new()
        };
        let mark = json!({"site": site.domain.as_str(), "timezone": site.timezone,
            "complete": u8::from(complete)});
        let serde_json::Value::Object(mark) = mark else {
            unreachable!("a JSON object literal")
        };
        crash(&mut ch);
        ch.import_chunk(
            done + 1,
            i as u64 + 1,
            vec![("rollups", rows), ("rollup_sites", vec![mark])],
        )?;
        done += 1;
        b.inc(1);
    }
    b.finish();

    // Live counters, recomputed from the stored rows (as an embedded start does).
    let b = bar(total_events, "live")?;
    let counters =
        source.rebuild_counters(500_000, &mut |p: footfall_store::RebuildProgress| {
            b.set_position(p.done);
            true
        })?;
    b.finish();
    let conn = Arc::new(footfall_store::redis::Conn::open(&k.redis)?);
    footfall_server::cluster::live::write_base(
        &footfall_server::cluster::live::base_blob(conn, &k.prefix),
        &counters,
    )?;

    verify(&source, &reader, &sites)?;
    // Done: partition 0's applier may now rebuild the copied rollups (a zone change).
    let mut mark = ChStore::open(&k.clickhouse, &k.clickhouse_database, MIGRATED_SOURCE)?;
    let (done, fingerprint) = mark.import_progress()?;
    if done < 2 {
        mark.import_chunk(2, fingerprint, vec![])?;
    }
    eprintln!("migrate: done; start the cluster's nodes");
    Ok(())
}

/// A resumed copy goes on only from the source it began with: the cursors it resumes
/// from mean nothing in another (or a changed) data directory. The source's fingerprint —
/// its newest event id and how many events it has, mixed — is recorded before the first
/// chunk and compared at every later run.
fn same_source(source: &DuckStore, clickhouse: &str, database: &str) -> Result<()> {
    let (events, _) = source.totals()?;
    let newest = source.max_event_id()?;
    let fingerprint = newest.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ events;
    let mut mark = ChStore::open(clickhouse, database, MIGRATED_SOURCE)?;
    let (done, recorded) = mark.import_progress()?;
    if done == 0 {
        let begun = ChStore::open(clickhouse, database, MIGRATED_EVENTS)?.import_progress()?;
        if begun.0 > 0 {
            eprintln!("migrate: this copy began before sources were fingerprinted; resuming without that check");
        }
        mark.import_chunk(1, fingerprint, vec![])?;
    } else if recorded != fingerprint {
        return Err(format!(
            "the data directory is not the one this copy began with, or it changed since \
             (now {events} events, newest id {newest}): resuming would mix two sources. \
             Copy into a new cluster (another ClickHouse database, Redis prefix and PostgreSQL database)"
        )
        .into());
    }
    Ok(())
}

/// Sites (with zone, share link and OpenPanel id), keys (revoked ones stay revoked),
/// users, goals, funnels, segments and content catalogues, and the salts of the last two
/// days. Idempotent: a resumed copy runs it again.
fn copy_metadata(source: &DuckStore, to: &PgStore) -> Result<()> {
    for s in source.sites()? {
        to.add_site(&s.domain, s.public, s.created_at)?;
        to.set_site_timezone(&s.domain, &s.timezone)?;
        to.set_share_token(&s.domain, s.share_token.as_deref())?;
        to.set_openpanel_client_id(&s.domain, s.openpanel_client_id.as_deref())?;
    }
    let existing: Vec<String> = to.api_keys()?.into_iter().map(|k| k.id).collect();
    for key in source.api_keys()? {
        if !existing.contains(&key.id) {
            let sites: Vec<SiteId> = key
                .sites
                .iter()
                .filter_map(|s| SiteId::parse(s).ok())
                .collect();
            to.create_api_key(&key.id, &key.hash, &sites, &key.scopes, key.created_at)?;
        }
        if key.revoked {
            to.revoke_api_key(&key.id, key.created_at)?;
        }
    }
    for u in source.users()? {
        to.put_user(&u.username, &u.password_hash, u.created_at)?;
    }
    // Goals before funnels, which name them; in their order (put keeps a name's place).
    let now = chrono::Utc::now().timestamp_millis();
    for s in source.sites()? {
        for g in source.goals(&s.domain)? {
            to.put_goal(&s.domain, &g, now)?;
        }
        for f in source.funnels(&s.domain)? {
            to.put_funnel(&s.domain, &f, now)?;
        }
        for seg in source.segments(&s.domain)? {
            to.put_segment(&s.domain, &seg, now)?;
        }
        let catalogue = source.catalogue(&s.domain)?;
        if catalogue.entries() != to.catalogue(&s.domain)?.entries() {
            to.set_catalogue(&s.domain, catalogue.entries(), now)?;
        }
    }
    // Oldest first: storing a day's salt drops those older than the day before it.
    for day in source.salt_days()? {
        let (salt, _) = MetadataStore::rotate_salts(source, day, "")?;
        to.rotate_salts(day, &salt)?;
    }
    Ok(())
}

/// Every site's event and visit counts, and a sample of reports, answered alike by the
/// embedded store and by ClickHouse.
fn verify(source: &DuckStore, cluster: &ChStore, sites: &[footfall_store::Site]) -> Result<()> {
    for s in sites {
        let want = source.row_counts(&s.domain)?;
        let got = cluster.row_counts(&s.domain)?;
        if got != want {
            return Err(format!(
                "{}: the cluster holds {} events and {} visits, the data directory {} and {}",
                s.domain, got.0, got.1, want.0, want.1
            )
            .into());
        }
        let tz: chrono_tz::Tz = s.timezone.parse().unwrap_or(chrono_tz::UTC);
        for body in sample_queries(s.domain.as_str()) {
            let q = parse::parse_v2(&body, tz).map_err(|e| format!("{body}: {e:?}"))?;
            if answer(source, &q, s.domain.as_str())? != answer(cluster, &q, s.domain.as_str())? {
                return Err(format!("{}: the cluster answers {body} differently", s.domain).into());
            }
        }
        eprintln!(
            "migrate: {} checked: {} events, {} visits, reports alike",
            s.domain, want.0, want.1
        );
    }
    Ok(())
}

fn sample_queries(site: &str) -> Vec<serde_json::Value> {
    let all = [
        "visitors",
        "visits",
        "pageviews",
        "events",
        "bounce_rate",
        "visit_duration",
    ];
    vec![
        json!({"site_id": site, "date_range": "all", "metrics": all}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "pageviews"], "dimensions": ["event:page"]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "visits"], "dimensions": ["visit:source"]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors"], "dimensions": ["visit:country", "visit:device"]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["events"], "dimensions": ["event:name"]}),
        json!({"site_id": site, "date_range": "all", "metrics": ["visitors", "pageviews"], "dimensions": ["time:month"]}),
    ]
}

/// A query's rows as each part's planned statement returns them (raw rows), sorted, with
/// numbers rounded: what must not differ between the engines.
fn answer(
    store: &dyn EventStore,
    q: &footfall_core::query::Query,
    site: &str,
) -> Result<Vec<String>> {
    let today = chrono::Utc::now().date_naive();
    let range = time::resolve(&q.date_range, q.timezone, today, Some(0));
    let buckets = q.time_dimension().map(|d| {
        let unit = match d {
            Dimension::Time(Some(b)) => *b,
            _ => time::auto_bucket(&range),
        };
        let bs = time::buckets(&range, unit, q.timezone, 100_000);
        BucketKey::new(unit, &bs, q.timezone)
    });
    let cx = Context {
        site,
        start: range.start,
        end: range.end,
        buckets: buckets.as_ref(),
        tz: q.timezone,
        rollups: false,
        goals: &[],
        by_goal: None,
    };
    let mut out = Vec::new();
    for (i, part) in plan::plan(q, &cx, store.dialect()).iter().enumerate() {
        let rows: Vec<QueryRow> = store.run_query(part)?;
        for (dims, nums) in rows {
            let nums: Vec<String> = nums
                .iter()
                .map(|n| n.map_or("-".into(), |v| format!("{v:.6e}")))
                .collect();
            out.push(format!("{i}|{}|{}", dims.join("|"), nums.join("|")));
        }
    }
    out.sort();
    Ok(out)
}
