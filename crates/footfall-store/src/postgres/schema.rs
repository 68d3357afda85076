//! The metadata tables in PostgreSQL, by versioned migrations. Nodes starting at once are
//! serialised by a transaction-scoped advisory lock, so each migration runs once.

use super::err;
use crate::StoreError;
use ::postgres::Client;

const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        "CREATE TABLE sites (
    domain              TEXT PRIMARY KEY,
    public              BOOLEAN NOT NULL DEFAULT false,
    created_at          BIGINT  NOT NULL,
    timezone            TEXT    NOT NULL DEFAULT 'UTC',
    share_token         TEXT,
    openpanel_client_id TEXT
);
CREATE TABLE salts (
    day   BIGINT PRIMARY KEY,   -- days since the epoch, UTC
    salt  TEXT NOT NULL         -- hex
);
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    hash        TEXT   NOT NULL,
    sites       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE TABLE users (
    username       TEXT PRIMARY KEY,
    password_hash  TEXT   NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE TABLE dashboard_sessions (
    token_hash  TEXT PRIMARY KEY,
    username    TEXT   NOT NULL,
    csrf        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);",
    ),
    (
        2,
        // Goals: a lens on stored events (footfall_core::goal), kept as their JSON.
        "CREATE TABLE goals (
    site        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    spec        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    -- Order of addition (created_at can tie).
    position    BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (site, name)
);",
    ),
    (
        3,
        // Saved funnels: ordered goal names per site, kept as their JSON.
        "CREATE TABLE funnels (
    site        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    spec        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    position    BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (site, name)
);",
    ),
    (
        4,
        // Saved segments: named filter sets per site, kept as their JSON (with their
        // owner and whether they are shared).
        "CREATE TABLE segments (
    site        TEXT   NOT NULL,
    name        TEXT   NOT NULL,
    spec        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    position    BIGINT GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (site, name)
);",
    ),
    (
        5,
        // Content catalogues: each site's known pages as one JSON list, replaced whole;
        // the revision counts the changes (the live stats' version grows with it).
        "CREATE TABLE catalogues (
    site        TEXT   PRIMARY KEY,
    spec        TEXT   NOT NULL,
    revision    BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);",
    ),
    (
        6,
        // What a key may do besides reading stats (comma-separated; `content:write`).
        "ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT ''",
    ),
];

pub const VERSION: i32 = 6;

/// A fixed key for the advisory lock that serialises migrations ("footfall" in ASCII).
const MIGRATION_LOCK: i64 = 0x666f_6f74_6661_6c6c;

pub fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let mut tx = client.transaction().map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .map_err(err)?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .and_then(|r| r.try_get(0))
        .map_err(err)?;
    if current > VERSION {
        return Err(StoreError::SchemaTooNew {
            found: i64::from(current),
            known: i64::from(VERSION),
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[version],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}
