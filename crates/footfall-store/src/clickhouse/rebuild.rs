//! Rebuilding a site's rollups in ClickHouse, one log partition at a time, by that
//! partition's applier between chunks (so nothing of the partition is written meanwhile).
//!
//! A partition's rollups go stale when the site's zone changes (its days are other days)
//! or when its rows predate rollups (an upgrade from schema version 1). Until rebuilt, the
//! site's reports read raw rows. The rebuild:
//! 1. fills a scratch table with the rows [`footfall_core::rollup::rebuild`] computes —
//!    the embedded rebuild's statements in the ClickHouse dialect — from the partition's
//!    raw rows and those copied from an embedded store, and a second one from the copied
//!    rows alone: a partition counts the visitors the copy does not (as its keeper does,
//!    seeding days from both), and |P ∪ M| − |M| per key is exactly that;
//! 2. stages, in a table of its own, the partition's other sites' rows plus the
//!    difference, summed per key, and swaps it in as a fold does (`fold.rs`: same checks,
//!    same atomicity);
//! 3. marks the site complete in the new zone at the applied position (having marked it
//!    incomplete in the new zone before step 1, with rev ordering rows at one position).
//!
//! A rebuild that dies anywhere is redone whole: the next attempt drops the work tables
//! left behind, and the rows swapped in are recomputed from raw rows, not added to.
//! The copied rows' own rollups (partition [`MIGRATED_ROLLUPS`]) are rebuilt by the
//! applier of partition 0 from the copied rows alone.

use super::fold::{self, SUMS};
use super::http::{quote, render, Http};
use super::import::{MIGRATED_EVENTS, MIGRATED_ROLLUPS, MIGRATED_SOURCE, MIGRATED_VISITS};
use super::FlushStage;
use crate::StoreError;
use chrono_tz::Tz;
use footfall_core::query::plan::ClickHouse;
use footfall_core::rollup::rebuild::{fill, Target};
use footfall_core::rollup::LocalClock;
use footfall_core::SiteId;
use std::collections::HashMap;

/// The rollup partitions the applier of log partition `part` keeps up to date.
pub(super) fn targets(part: u16) -> Vec<u16> {
    if part == 0 {
        vec![0, MIGRATED_ROLLUPS]
    } else {
        vec![part]
    }
}

/// The raw rows a rollup partition is computed from.
fn sources(target: u16) -> Vec<u16> {
    if target == MIGRATED_ROLLUPS {
        vec![MIGRATED_EVENTS, MIGRATED_VISITS]
    } else {
        vec![target, MIGRATED_EVENTS, MIGRATED_VISITS]
    }
}

/// The (site, rollup partition) pairs of `part`'s applier whose rollups are incomplete or
/// kept in another zone than `zones` gives the site now.
pub(super) fn stale(
    http: &Http,
    part: u16,
    zones: &HashMap<String, Tz>,
) -> Result<Vec<(SiteId, u16)>, StoreError> {
    // The copied rows' rollups only once `footfall migrate` finished: until then it is
    // still writing them (its source marker is at 1 while it runs, 2 when done).
    let copying = part == 0 && fold::applied_of(http, MIGRATED_SOURCE)? == 1;
    let list: Vec<String> = targets(part)
        .iter()
        .filter(|t| !(copying && **t == MIGRATED_ROLLUPS))
        .map(u16::to_string)
        .collect();
    // At one position, rows are ordered by rev (a rebuild's come after the chunk's).
    let rows = http.rows(&format!(
        "SELECT site, log_part, argMax(timezone, (log_pos, rev)) AS zone, \
         argMax(complete, (log_pos, rev)) AS done FROM rollup_sites \
         WHERE log_part IN ({}) GROUP BY site, log_part ORDER BY site, log_part",
        list.join(", ")
    ))?;
    let mut out = Vec::new();
    for row in rows {
        let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let (site, zone, done) = (field(0), field(2), field(3));
        let want = zones.get(&site).copied().unwrap_or(chrono_tz::UTC);
        if done == "1" && zone == want.name() {
            continue;
        }
        let (Ok(site), Ok(target)) = (SiteId::parse(&site), field(1).parse::<u16>()) else {
            return Err(StoreError::Corrupt(format!("rollup_sites row {row:?}")));
        };
        out.push((site, target));
    }
    Ok(out)
}

/// The local days `[first, end)` of `site`'s raw rows in `parts`, None if it has none.
fn day_range(
    http: &Http,
    site: &SiteId,
    parts: &str,
    clock: LocalClock,
) -> Result<Option<(i64, i64)>, StoreError> {
    let s = quote(site.as_str());
    let bounds = http.rows(&format!(
        "SELECT count(), min(t), max(t) FROM (SELECT ts AS t FROM events WHERE site = {s} AND log_part IN ({parts}) \
         UNION ALL SELECT start_ts FROM sessions WHERE site = {s} AND log_part IN ({parts}))"
    ))?;
    let at = |i: usize| -> Result<i64, StoreError> {
        bounds
            .first()
            .and_then(|r| r.get(i).cloned().flatten())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("day range of {site}: {bounds:?}")))
    };
    if at(0)? == 0 {
        return Ok(None);
    }
    Ok(Some((clock.day(at(1)?), clock.day(at(2)?) + 1)))
}

/// The statements that fill scratch table `table` (created anew) with `site`'s rollup
/// rows computed from the raw rows of `parts`, for local days `days`.
fn fill_scratch(
    table: &str,
    site: &SiteId,
    tz: Tz,
    parts: &[u16],
    days: Option<(i64, i64)>,
) -> Result<Vec<String>, StoreError> {
    let cols: Vec<String> = SUMS.iter().map(|c| format!("{c} Int64")).collect();
    let mut out = vec![
        format!("DROP TABLE IF EXISTS {table}"),
        format!(
            "CREATE TABLE {table} (site String, grain Int8, bucket Int64, dim UInt8, value String, {}) ENGINE = Memory",
            cols.join(", ")
        ),
    ];
    if let Some((from, to)) = days {
        let target = Target {
            table,
            parts: Some(parts),
        };
        for (sql, params) in fill(site.as_str(), tz, from, to, &target, &ClickHouse) {
            out.push(render(&sql, &params)?);
        }
    }
    Ok(out)
}

/// The names of one rebuild's work tables: the rows from the partition's sources, from
/// the copied rows alone, and the staging table swapped in.
pub struct Tables {
    pub all: String,
    pub copied: String,
    pub staging: String,
}

impl Tables {
    /// Names of this attempt's own for partition `target`.
    pub fn fresh(target: u16) -> Tables {
        Tables {
            all: fold::scratch_name(target, "all"),
            copied: fold::scratch_name(target, "copied"),
            staging: fold::scratch_name(target, "stage"),
        }
    }
}

/// The statements that stage, in `tables.staging`, partition `target`'s rollup rows with
/// `site`'s rebuilt in zone `tz` for local days `days` (those of the partition's own raw
/// rows, None if it has none), at applied position `applied`. Run in order.
pub fn statements(
    site: &SiteId,
    tz: Tz,
    target: u16,
    applied: u64,
    days: Option<(i64, i64)>,
    tables: &Tables,
) -> Result<Vec<String>, StoreError> {
    let Tables {
        all,
        copied,
        staging,
    } = tables;
    let mut out = fill_scratch(all, site, tz, &sources(target), days)?;
    // The copied rows' share, to take away: none when they are what is rebuilt.
    let subtract = target != MIGRATED_ROLLUPS;
    out.extend(fill_scratch(
        copied,
        site,
        tz,
        &[MIGRATED_EVENTS, MIGRATED_VISITS],
        days.filter(|_| subtract),
    )?);
    let s = quote(site.as_str());
    let plain: Vec<String> = SUMS.iter().map(|c| c.to_string()).collect();
    let negated: Vec<String> = SUMS.iter().map(|c| format!("-{c}")).collect();
    let summed: Vec<String> = SUMS.iter().map(|c| format!("sum({c})")).collect();
    let nonzero: Vec<String> = SUMS.iter().map(|c| format!("sum({c}) <> 0")).collect();
    let key = "site, grain, bucket, dim, value";
    out.push(fold::statements(target, applied, staging).create);
    out.push(format!(
        "INSERT INTO {staging} SELECT {key}, {}, {target}, {applied} FROM (\
         SELECT {key}, {plain} FROM rollups WHERE log_part = {target} AND log_pos <= {applied} AND site <> {s} \
         UNION ALL SELECT {key}, {plain} FROM {all} UNION ALL SELECT {key}, {negated} FROM {copied}) \
         GROUP BY {key} HAVING site <> {s} OR {}",
        summed.join(", "),
        nonzero.join(" OR "),
        plain = plain.join(", "),
        negated = negated.join(", "),
    ));
    Ok(out)
}

/// Rebuilds `site`'s rows of rollup partition `target` in zone `tz`; `applied` is the
/// partition's applied position (every raw row it reads is at or below it). Returns
/// whether the rows were swapped in (not if another applier applied the partition since,
/// or this one's hold on it, `until`, is about to end).
#[allow(clippy::too_many_arguments)]
pub(super) fn rebuild(
    http: &Http,
    target: u16,
    site: &SiteId,
    tz: Tz,
    applied: u64,
    until: Option<std::time::Instant>,
    stop: &mut dyn FnMut(FlushStage) -> Result<(), StoreError>,
) -> Result<bool, StoreError> {
    let clock = LocalClock::new(tz);
    let own: Vec<u16> = if target == MIGRATED_ROLLUPS {
        vec![MIGRATED_EVENTS, MIGRATED_VISITS]
    } else {
        vec![target]
    };
    let own_list: Vec<String> = own.iter().map(u16::to_string).collect();
    let days = day_range(http, site, &own_list.join(", "), clock)?;
    fold::drop_leftovers(http, target)?;
    // First marked incomplete in the new zone: should this rebuild die after its swap, the
    // rows are then not read as the old zone's (were the zone changed back meanwhile).
    let rev = http.number(&format!(
        "SELECT max(rev) FROM rollup_sites WHERE site = {} AND log_part = {target}",
        quote(site.as_str())
    ))?;
    let mark = |complete: u8, rev: u64| {
        format!(
            "INSERT INTO rollup_sites (site, log_part, timezone, complete, log_pos, rev) VALUES ({}, {target}, {}, {complete}, {applied}, {rev})",
            quote(site.as_str()),
            quote(tz.name())
        )
    };
    http.execute(&mark(0, rev + 1))?;
    let tables = Tables::fresh(target);
    for sql in statements(site, tz, target, applied, days, &tables)? {
        http.execute(&sql)?;
    }
    // After an error below, the work tables stay, as a dead applier's would: the next
    // attempt drops them first.
    stop(FlushStage::RebuildStaged)?;
    let sql = fold::statements(target, applied, &tables.staging);
    let swapped = fold::swap_if_current(http, target, applied, &sql, until)?;
    if swapped {
        stop(FlushStage::RebuildSwapped)?;
        http.execute(&mark(1, rev + 2))?;
    }
    for table in [&tables.all, &tables.copied, &tables.staging] {
        http.execute(&format!("DROP TABLE IF EXISTS {table}"))?;
    }
    Ok(swapped)
}
