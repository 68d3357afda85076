//! Versioned schema migrations. Each migration runs once, in order, in a transaction, and
//! is recorded in `schema_migrations`; a database written by a newer footfall is refused
//! rather than misread.

use crate::StoreError;
use ::duckdb::Connection;

/// (version, SQL). Append only: never edit a released migration.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE sites (
    domain      VARCHAR PRIMARY KEY,
    public      BOOLEAN NOT NULL DEFAULT false,
    created_at  BIGINT  NOT NULL
);
CREATE TABLE salts (
    day   BIGINT PRIMARY KEY,   -- days since the epoch, UTC
    salt  VARCHAR NOT NULL      -- hex
);
-- Append-only. No secondary indexes: zone maps on (site, ts) do the work.
CREATE TABLE events (
    event_id        UBIGINT NOT NULL,
    site            VARCHAR NOT NULL,
    ts              BIGINT  NOT NULL,  -- unix milliseconds, UTC
    name            VARCHAR NOT NULL,
    visitor_id      UBIGINT NOT NULL,
    session_id      UBIGINT NOT NULL,
    hostname        VARCHAR NOT NULL,
    pathname        VARCHAR NOT NULL,
    title           VARCHAR,
    page_type       VARCHAR,
    referrer        VARCHAR NOT NULL,
    referrer_source VARCHAR NOT NULL,
    utm_source      VARCHAR NOT NULL,
    utm_medium      VARCHAR NOT NULL,
    utm_campaign    VARCHAR NOT NULL,
    utm_content     VARCHAR NOT NULL,
    utm_term        VARCHAR NOT NULL,
    country         VARCHAR NOT NULL,
    region          VARCHAR NOT NULL,
    city            VARCHAR NOT NULL,
    latitude        DOUBLE,
    longitude       DOUBLE,
    browser         VARCHAR NOT NULL,
    browser_version VARCHAR NOT NULL,
    os              VARCHAR NOT NULL,
    os_version      VARCHAR NOT NULL,
    device          VARCHAR NOT NULL,
    props           VARCHAR NOT NULL,  -- JSON object of string values
    scroll_depth    UTINYINT,
    engaged_ms      UBIGINT,
    interactive     BOOLEAN NOT NULL
);
-- Collapsing: a visit's current state is the version whose signs sum to +1.
CREATE TABLE sessions (
    site            VARCHAR  NOT NULL,
    session_id      UBIGINT  NOT NULL,
    visitor_id      UBIGINT  NOT NULL,
    sign            TINYINT  NOT NULL,
    version         UBIGINT  NOT NULL,
    start_ts        BIGINT   NOT NULL,
    end_ts          BIGINT   NOT NULL,
    duration_ms     BIGINT   NOT NULL,
    entry_page      VARCHAR  NOT NULL,
    exit_page       VARCHAR  NOT NULL,
    pageviews       UINTEGER NOT NULL,
    events          UINTEGER NOT NULL,
    is_bounce       BOOLEAN  NOT NULL,
    hostname        VARCHAR  NOT NULL,
    referrer        VARCHAR  NOT NULL,
    referrer_source VARCHAR  NOT NULL,
    utm_source      VARCHAR  NOT NULL,
    utm_medium      VARCHAR  NOT NULL,
    utm_campaign    VARCHAR  NOT NULL,
    utm_content     VARCHAR  NOT NULL,
    utm_term        VARCHAR  NOT NULL,
    country         VARCHAR  NOT NULL,
    region          VARCHAR  NOT NULL,
    city            VARCHAR  NOT NULL,
    browser         VARCHAR  NOT NULL,
    browser_version VARCHAR  NOT NULL,
    os              VARCHAR  NOT NULL,
    os_version      VARCHAR  NOT NULL,
    device          VARCHAR  NOT NULL
);
"#,
    ),
    (
        2,
        r#"
-- Progress of an interrupted counter rebuild: page views up to `done` are in `counters`
-- (JSON) and their visitors in rebuild_visitors. Cleared when a rebuild completes.
CREATE TABLE rebuild_checkpoint (
    done        UBIGINT NOT NULL,
    chunk_size  UBIGINT NOT NULL,
    counters    VARCHAR NOT NULL
);
CREATE TABLE rebuild_visitors (
    site        VARCHAR NOT NULL,
    visitor_id  UBIGINT NOT NULL
);
"#,
    ),
    (
        3,
        r#"
-- Event properties as parallel lists (the layout ClickHouse's Array(String) pairs use), so
-- breakdowns by a property need no JSON functions.
ALTER TABLE events ADD COLUMN prop_keys VARCHAR[] DEFAULT [];
ALTER TABLE events ADD COLUMN prop_values VARCHAR[] DEFAULT [];
-- Reports bucket days and hours in the site's own time zone (IANA name).
ALTER TABLE sites ADD COLUMN timezone VARCHAR NOT NULL DEFAULT 'UTC';
CREATE TABLE api_keys (
    id          VARCHAR PRIMARY KEY,      -- public prefix, shown in listings
    hash        VARCHAR NOT NULL,         -- SHA-256 of the whole key, hex
    sites       VARCHAR NOT NULL,         -- comma-separated domains the key may read
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);
"#,
    ),
    (
        4,
        r#"
-- Dashboard logins. Passwords as argon2id PHC strings; sessions by the SHA-256 of their
-- cookie, so a copy of the database can't be used to log in.
CREATE TABLE users (
    username       VARCHAR PRIMARY KEY,
    password_hash  VARCHAR NOT NULL,
    created_at     BIGINT  NOT NULL
);
CREATE TABLE dashboard_sessions (
    token_hash  VARCHAR PRIMARY KEY,
    username    VARCHAR NOT NULL,
    csrf        VARCHAR NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
-- Read-only public link; kept in clear because owners copy it again from the dashboard.
ALTER TABLE sites ADD COLUMN share_token VARCHAR;
"#,
    ),
    (
        5,
        r#"
-- The last log position whose record is in the tables above, written in the same
-- transaction as the rows: a crash anywhere replays exactly the records after it.
-- id_base: event ids made from log positions start above the ids written before the log.
CREATE TABLE log_applied (
    id        INTEGER PRIMARY KEY,
    position  UBIGINT NOT NULL,
    id_base   UBIGINT NOT NULL
);
INSERT INTO log_applied SELECT 1, 0, coalesce(max(event_id), 0) FROM events;
"#,
    ),
    (
        6,
        r#"
-- Rollups, kept by the storage applier in the transaction that stores the raw rows (see
-- footfall_core::rollup for what each column counts and the visitor rule).
-- grain 0: local hours since the epoch (totals only); 1: local days since 1970-01-01.
-- dim 0: totals; 1 page; 2 event name; 3 hostname; 10 + i: the i-th visit:* dimension.
CREATE TABLE rollups (
    site            VARCHAR  NOT NULL,
    grain           TINYINT  NOT NULL,
    bucket          BIGINT   NOT NULL,
    dim             UTINYINT NOT NULL,
    value           VARCHAR  NOT NULL,
    visitors        BIGINT   NOT NULL,
    pageviews       BIGINT   NOT NULL,
    events          BIGINT   NOT NULL,
    visits          BIGINT   NOT NULL,
    bounces         BIGINT   NOT NULL,
    duration_ms     BIGINT   NOT NULL,
    visit_pageviews BIGINT   NOT NULL,
    PRIMARY KEY (site, grain, bucket, dim, value)
);
-- The zone each site's rollups are kept in. pending_from: a rebuild is under way and the
-- local days from it on are not done (reports read raw rows meanwhile). A site without a
-- row, or whose zone changed, is rebuilt.
CREATE TABLE rollup_sites (
    site          VARCHAR PRIMARY KEY,
    timezone      VARCHAR NOT NULL,
    pending_from  BIGINT
);
"#,
    ),
    (
        7,
        r#"
-- Raw rows in two tiers, read through views of the old names (see duckdb/compact.rs).
-- The applier appends to the hot tables in arrival order; closed days move to the archive
-- tables sorted by (site, time), so zone maps let a site's range skip other sites and days.
-- sessions_archive holds only the current version of each moved visit.
-- A later migration that adds a column must add it to both tables and recreate the view.
ALTER TABLE events RENAME TO events_hot;
ALTER TABLE sessions RENAME TO sessions_hot;
CREATE TABLE events_archive AS SELECT * FROM events_hot LIMIT 0;
CREATE TABLE sessions_archive AS SELECT * FROM sessions_hot LIMIT 0;
CREATE VIEW events AS SELECT * FROM events_hot UNION ALL SELECT * FROM events_archive;
CREATE VIEW sessions AS SELECT * FROM sessions_hot UNION ALL SELECT * FROM sessions_archive;
-- Rollups gain scroll depth (sum of each visit's deepest scroll per local day and value,
-- and the number of such visits). Recreated rather than altered (it has a primary key);
-- every site's rollups are rebuilt at the next start.
DROP TABLE rollups;
CREATE TABLE rollups (
    site            VARCHAR  NOT NULL,
    grain           TINYINT  NOT NULL,
    bucket          BIGINT   NOT NULL,
    dim             UTINYINT NOT NULL,
    value           VARCHAR  NOT NULL,
    visitors        BIGINT   NOT NULL,
    pageviews       BIGINT   NOT NULL,
    events          BIGINT   NOT NULL,
    visits          BIGINT   NOT NULL,
    bounces         BIGINT   NOT NULL,
    duration_ms     BIGINT   NOT NULL,
    visit_pageviews BIGINT   NOT NULL,
    scroll_sum      BIGINT   NOT NULL,
    scroll_visits   BIGINT   NOT NULL,
    PRIMARY KEY (site, grain, bucket, dim, value)
);
DELETE FROM rollup_sites;
-- Rows of `rollups` when it was last rewritten in key order (compact.rs).
CREATE TABLE rollups_clustered (
    id         INTEGER PRIMARY KEY,
    row_count  BIGINT NOT NULL
);
"#,
    ),
    (
        8,
        r#"
-- Rollups gain time on page (page rows: the sum of measured page-view durations per local
-- day, and the (visit, day) pairs with a measured view). Recreated as in 7; every site's
-- rollups are rebuilt at the next start.
DROP TABLE rollups;
CREATE TABLE rollups (
    site             VARCHAR  NOT NULL,
    grain            TINYINT  NOT NULL,
    bucket           BIGINT   NOT NULL,
    dim              UTINYINT NOT NULL,
    value            VARCHAR  NOT NULL,
    visitors         BIGINT   NOT NULL,
    pageviews        BIGINT   NOT NULL,
    events           BIGINT   NOT NULL,
    visits           BIGINT   NOT NULL,
    bounces          BIGINT   NOT NULL,
    duration_ms      BIGINT   NOT NULL,
    visit_pageviews  BIGINT   NOT NULL,
    scroll_sum       BIGINT   NOT NULL,
    scroll_visits    BIGINT   NOT NULL,
    page_time_ms     BIGINT   NOT NULL,
    page_time_visits BIGINT   NOT NULL,
    PRIMARY KEY (site, grain, bucket, dim, value)
);
DELETE FROM rollup_sites;
DELETE FROM rollups_clustered;
"#,
    ),
    (
        9,
        r#"
-- The client id OpenPanel's SDKs send for a site, when the operator gives it one (unique
-- across sites, checked by the registry; the site's domain works without one).
ALTER TABLE sites ADD COLUMN openpanel_client_id VARCHAR;
"#,
    ),
    (
        10,
        r#"
-- Goals: a lens on stored events (footfall_core::goal), kept as their JSON.
CREATE SEQUENCE goal_positions;
CREATE TABLE goals (
    site       VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    spec       VARCHAR NOT NULL,
    created_at BIGINT  NOT NULL,
    -- Order of addition (created_at can tie).
    position   BIGINT  NOT NULL DEFAULT nextval('goal_positions'),
    PRIMARY KEY (site, name)
);
"#,
    ),
    (
        11,
        r#"
-- Saved funnels: ordered goal names per site, kept as their JSON.
CREATE SEQUENCE funnel_positions;
CREATE TABLE funnels (
    site       VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    spec       VARCHAR NOT NULL,
    created_at BIGINT  NOT NULL,
    position   BIGINT  NOT NULL DEFAULT nextval('funnel_positions'),
    PRIMARY KEY (site, name)
);
"#,
    ),
    (
        12,
        r#"
-- Revenue of custom events (footfall_core::money): thousandths of a unit, exact, and the
-- ISO 4217 code; NULL for events without revenue. Added to both tiers in the same order,
-- and the view recreated, as migration 7 asks.
DROP VIEW events;
ALTER TABLE events_hot ADD COLUMN revenue_amount BIGINT;
ALTER TABLE events_hot ADD COLUMN revenue_currency VARCHAR;
ALTER TABLE events_archive ADD COLUMN revenue_amount BIGINT;
ALTER TABLE events_archive ADD COLUMN revenue_currency VARCHAR;
CREATE VIEW events AS SELECT * FROM events_hot UNION ALL SELECT * FROM events_archive;
"#,
    ),
    (
        13,
        r#"
-- Saved segments: named filter sets per site, kept as their JSON (with their owner and
-- whether they are shared).
CREATE SEQUENCE segment_positions;
CREATE TABLE segments (
    site       VARCHAR NOT NULL,
    name       VARCHAR NOT NULL,
    spec       VARCHAR NOT NULL,
    created_at BIGINT  NOT NULL,
    position   BIGINT  NOT NULL DEFAULT nextval('segment_positions'),
    PRIMARY KEY (site, name)
);
"#,
    ),
    (
        14,
        r#"
-- Content catalogues: each site's known pages as one JSON list, replaced whole; the
-- revision counts the changes (the live stats' version grows with it).
CREATE TABLE catalogues (
    site        VARCHAR PRIMARY KEY,
    spec        VARCHAR NOT NULL,
    revision    BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
"#,
    ),
    (
        15,
        r#"
-- What a key may do besides reading stats (comma-separated; `content:write`).
ALTER TABLE api_keys ADD COLUMN scopes VARCHAR NOT NULL DEFAULT '';
"#,
    ),
];

pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

pub fn current_version(conn: &Connection) -> Result<i64, StoreError> {
    let v: Option<i64> = conn.query_row("SELECT max(version) FROM schema_migrations", [], |r| {
        r.get(0)
    })?;
    Ok(v.unwrap_or(0))
}

pub fn migrate(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")?;
    let current = current_version(conn)?;
    if current > latest() {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: latest(),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        conn.execute_batch(&format!("BEGIN TRANSACTION; {sql}; INSERT INTO schema_migrations (version) VALUES ({version}); COMMIT;"))?;
        tracing::info!(version, "applied schema migration");
    }
    Ok(())
}
