//! The cluster's tables in ClickHouse, created in order by versioned migrations. Every
//! statement is idempotent (`IF NOT EXISTS`), so nodes starting at once may all run them.
//!
//! Times are Int64 unix milliseconds as in the embedded store (DateTime64 is not in 18.16),
//! and partitions and sort keys take the UTC day of them. Every raw row carries the log
//! partition and position of the record it came from (`log_part`, `log_pos`): how an
//! applier that took over from a crashed one finds and removes a half-written chunk.

use super::http::Http;
use crate::StoreError;

/// `toDate` of a millisecond column, in UTC.
macro_rules! day_of {
    ($col:literal) => {
        concat!("toDate(toDateTime(intDiv(", $col, ", 1000), 'UTC'))")
    };
}

const MIGRATIONS: &[(u32, &[&str])] = &[
    (
        1,
        &[
            concat!(
                "CREATE TABLE IF NOT EXISTS events (
    event_id        UInt64,
    site            String,
    ts              Int64,
    name            String,
    visitor_id      UInt64,
    session_id      UInt64,
    hostname        String,
    pathname        String,
    title           Nullable(String),
    page_type       Nullable(String),
    referrer        String,
    referrer_source String,
    utm_source      String,
    utm_medium      String,
    utm_campaign    String,
    utm_content     String,
    utm_term        String,
    country         String,
    region          String,
    city            String,
    latitude        Nullable(Float64),
    longitude       Nullable(Float64),
    browser         String,
    browser_version String,
    os              String,
    os_version      String,
    device          String,
    props           String,
    scroll_depth    Nullable(UInt8),
    engaged_ms      Nullable(UInt64),
    interactive     UInt8,
    prop_keys       Array(String),
    prop_values     Array(String),
    log_part        UInt16,
    log_pos         UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(",
                day_of!("ts"),
                ")
ORDER BY (site, ",
                day_of!("ts"),
                ", name, visitor_id, ts)"
            ),
            // A visit's state changes are collapsing pairs: −1 for the old version (an exact
            // copy of its +1 row), +1 for the new. Both rows of a version share the visit's
            // start, so they share a partition and a sort key and merges cancel them.
            concat!(
                "CREATE TABLE IF NOT EXISTS sessions (
    site            String,
    session_id      UInt64,
    visitor_id      UInt64,
    sign            Int8,
    version         UInt64,
    start_ts        Int64,
    end_ts          Int64,
    duration_ms     Int64,
    entry_page      String,
    exit_page       String,
    pageviews       UInt32,
    events          UInt32,
    is_bounce       UInt8,
    hostname        String,
    referrer        String,
    referrer_source String,
    utm_source      String,
    utm_medium      String,
    utm_campaign    String,
    utm_content     String,
    utm_term        String,
    country         String,
    region          String,
    city            String,
    browser         String,
    browser_version String,
    os              String,
    os_version      String,
    device          String,
    log_part        UInt16,
    log_pos         UInt64
) ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(",
                day_of!("start_ts"),
                ")
ORDER BY (site, ",
                day_of!("start_ts"),
                ", session_id)"
            ),
            // One row per applied chunk, written after the chunk's rows: the highest position
            // of a partition is where its applier resumes.
            "CREATE TABLE IF NOT EXISTS log_applied (
    log_part   UInt16,
    position   UInt64,
    id_base    UInt64,
    applied_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree ORDER BY (log_part, position)",
        ],
    ),
    (
        2,
        &[
            // Rollups kept on write (footfall_core::rollup): the applier of each log
            // partition adds its chunk's changes as rows of their own, tagged like the raw
            // rows so an unfinished flush's are removed with them; reads sum them. A
            // partition's visitors are its own, so the partitions' sums add up exactly.
            // Partitioned by log partition: a partition's applier folds or rebuilds its
            // rows (fold.rs, rebuild.rs) by swapping in its table partition from a staging
            // table of the same shape.
            "CREATE TABLE IF NOT EXISTS rollups (
    site             String,
    grain            Int8,
    bucket           Int64,
    dim              UInt8,
    value            String,
    visitors         Int64,
    pageviews        Int64,
    events           Int64,
    visits           Int64,
    bounces          Int64,
    duration_ms      Int64,
    visit_pageviews  Int64,
    scroll_sum       Int64,
    scroll_visits    Int64,
    page_time_ms     Int64,
    page_time_visits Int64,
    log_part         UInt16,
    log_pos          UInt64
) ENGINE = MergeTree PARTITION BY log_part ORDER BY (site, grain, dim, bucket, value)",
            // Per site and partition, the zone its rollups are kept in and whether they
            // are complete (kept since the partition's first row of the site). The row with
            // the highest (log_pos, rev) is current: a rebuild between chunks writes at the
            // applied position with the next rev. A row is written only when that changes, so
            // they are few; a plain MergeTree, as a replacing merge could drop the row an
            // unfinished flush's (later removed) row had replaced.
            "CREATE TABLE IF NOT EXISTS rollup_sites (
    site      String,
    log_part  UInt16,
    timezone  String,
    complete  UInt8,
    log_pos   UInt64,
    rev       UInt64 DEFAULT 0
) ENGINE = MergeTree ORDER BY (site, log_part)",
            // Rows stored before rollups were kept (an upgrade from version 1): their sites
            // are incomplete in their partitions, so reports read them raw.
            "INSERT INTO rollup_sites (site, log_part, timezone, complete, log_pos) \
             SELECT site, log_part, 'UTC', 0, 0 FROM events GROUP BY site, log_part",
        ],
    ),
    (
        3,
        &[
            // Revenue of custom events, as in the embedded store: exact thousandths and
            // the ISO 4217 code, NULL without revenue. 18.16 has no ADD COLUMN IF NOT
            // EXISTS: `migrate` lets a node find a column another node just added.
            "ALTER TABLE events ADD COLUMN revenue_amount Nullable(Int64)",
            "ALTER TABLE events ADD COLUMN revenue_currency Nullable(String)",
        ],
    ),
];

pub const VERSION: u32 = 3;

/// ClickHouse's codes for "column with this name already exists": 44 in 18.16, 15
/// (DUPLICATE_COLUMN) in later releases.
const DUPLICATE_COLUMN: [&str; 2] = ["Code: 44,", "Code: 15,"];

const VERSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (version UInt32, applied_at DateTime DEFAULT now()) \
     ENGINE = ReplacingMergeTree ORDER BY version";

/// Every statement that creates the current tables, in order (for checking the schema on
/// another ClickHouse release).
pub fn statements() -> Vec<&'static str> {
    std::iter::once(VERSIONS_TABLE)
        .chain(MIGRATIONS.iter().flat_map(|(_, s)| s.iter().copied()))
        .collect()
}

/// Creates the database if needed and brings its tables to [`VERSION`].
pub fn migrate(http: &Http, database: &str) -> Result<(), StoreError> {
    http.server()
        .execute(&format!("CREATE DATABASE IF NOT EXISTS {database}"))?;
    http.execute(VERSIONS_TABLE)?;
    let current = http.number("SELECT max(version) FROM schema_version")? as u32;
    if current > VERSION {
        return Err(StoreError::SchemaTooNew {
            found: i64::from(current),
            known: i64::from(VERSION),
        });
    }
    for (version, statements) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        for s in *statements {
            match http.execute(s) {
                Err(StoreError::Backend(e))
                    if s.contains(" ADD COLUMN ")
                        && DUPLICATE_COLUMN.iter().any(|c| e.contains(c)) => {}
                other => other?,
            }
        }
        http.execute(&format!(
            "INSERT INTO schema_version (version) VALUES ({version})"
        ))?;
    }
    Ok(())
}
