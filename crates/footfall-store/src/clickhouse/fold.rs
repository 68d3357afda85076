//! Folding a partition's rollup rows: each applied chunk adds one row per key it changed,
//! so under a steady trickle of small chunks a partition's rows would outgrow its events
//! and every dashboard would sum more rows each day. Its applier (the only writer of the
//! partition) now and then replaces them with one row per key.
//!
//! ClickHouse has no transactions, and a summing engine would merge a half-written chunk's
//! rows (which recovery removes by position) into committed ones. So the fold is built on
//! the one atomic swap 18.16 has — a whole table partition; `rollups` is partitioned by log
//! partition:
//! 1. drop the staging tables an earlier fold or rebuild of P left (they die with their
//!    applier; a deposed applier still at work loses its own, and its swap fails);
//! 2. create a staging table of this attempt's own, shaped like `rollups`, and fill it
//!    with P's rows summed per key, tagged with the applied position;
//! 3. check nobody applied P since, and that this applier's lease still holds with a
//!    margin (a deposed applier must not swap away a newer chunk);
//! 4. `REPLACE PARTITION P` of `rollups` by it, atomically for readers;
//! 5. drop the staging table.
//!
//! A fold that dies before step 4 changed nothing readers see; after it, it is done. The
//! folded rows carry a position no later than the marker, so recovery never removes them.
//! When: once the partition holds twice the rows its last fold left (and at least
//! `min_rows`), so each row is rewritten a bounded number of times on average.

use super::http::Http;
use super::FlushStage;
use crate::StoreError;
use std::time::Instant;

/// The rollup columns summed per key (all but the key and the position tags).
pub(super) const SUMS: &[&str] = &[
    "visitors",
    "pageviews",
    "events",
    "visits",
    "bounces",
    "duration_ms",
    "visit_pageviews",
    "scroll_sum",
    "scroll_visits",
    "page_time_ms",
    "page_time_visits",
];

/// The statements of a fold of partition `part` at applied position `applied` through
/// staging table `staging`: create it, fill it, swap its partition in, drop it.
pub struct Statements {
    pub create: String,
    pub stage: String,
    pub swap: String,
    pub drop: String,
}

pub fn statements(part: u16, applied: u64, staging: &str) -> Statements {
    let sums: Vec<String> = SUMS.iter().map(|c| format!("sum({c})")).collect();
    Statements {
        create: format!("CREATE TABLE {staging} AS rollups"),
        stage: format!(
            "INSERT INTO {staging} SELECT site, grain, bucket, dim, value, {}, {part}, {applied} \
             FROM rollups WHERE log_part = {part} AND log_pos <= {applied} \
             GROUP BY site, grain, bucket, dim, value",
            sums.join(", ")
        ),
        swap: format!("ALTER TABLE rollups REPLACE PARTITION {part} FROM {staging}"),
        drop: format!("DROP TABLE IF EXISTS {staging}"),
    }
}

/// The applied position of partition `part` as its markers say (for the copied rows'
/// partitions, the copy's chunks).
pub(super) fn applied_of(http: &Http, part: u16) -> Result<u64, StoreError> {
    http.number(&format!(
        "SELECT max(position) FROM log_applied WHERE log_part = {part}"
    ))
}

/// The prefix of partition `part`'s scratch and staging tables.
pub(super) fn scratch_prefix(part: u16) -> String {
    format!("rollups_work_{part}_")
}

/// A name of this attempt's own for a scratch or staging table of partition `part`.
pub(super) fn scratch_name(part: u16, what: &str) -> String {
    format!(
        "{}{what}_{:08x}",
        scratch_prefix(part),
        rand::random::<u32>()
    )
}

/// Drops every scratch and staging table of partition `part`: what earlier attempts that
/// died left, and those of a deposed applier still at work (whose swap then fails).
pub(super) fn drop_leftovers(http: &Http, part: u16) -> Result<(), StoreError> {
    let prefix = scratch_prefix(part);
    for row in http.rows("SELECT name FROM system.tables WHERE database = currentDatabase()")? {
        if let Some(Some(name)) = row.first() {
            if name.starts_with(&prefix) {
                tracing::info!(part, table = %name, "dropping a leftover rollup work table");
                http.execute(&format!("DROP TABLE IF EXISTS {name}"))?;
            }
        }
    }
    Ok(())
}

/// Swaps partition `part` in from `staging` if nobody applied it since position `applied`
/// and the caller's hold on the partition lasts (`until`). Returns whether it swapped.
pub(super) fn swap_if_current(
    http: &Http,
    part: u16,
    applied: u64,
    sql: &Statements,
    until: Option<Instant>,
) -> Result<bool, StoreError> {
    let marker = applied_of(http, part)?;
    let newest = http.number(&format!(
        "SELECT max(log_pos) FROM rollups WHERE log_part = {part}"
    ))?;
    let lapsing = until.is_some_and(|u| Instant::now() >= u);
    if marker != applied || newest > applied || lapsing {
        tracing::warn!(
            part,
            applied,
            marker,
            lapsing,
            "not swapping rollup rows: the partition was applied meanwhile, or this applier's lease is about to lapse"
        );
        return Ok(false);
    }
    http.execute(&sql.swap)?;
    Ok(true)
}

/// What an applier knows of its partition's rollup rows.
pub(super) struct Folding {
    /// Fold once the partition has this many rows at least (and twice its last fold).
    pub min_rows: u64,
    /// (rows now, rows the last fold left), read from storage when None.
    counts: Option<(u64, u64)>,
}

/// How a fold ended when it did not fail.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Folded {
    /// Not yet worth it.
    NotDue,
    /// The partition's rows went from the first number to the second.
    Done(u64, u64),
    /// Someone applied the partition meanwhile; nothing was swapped.
    Superseded,
}

impl Folding {
    pub fn new(min_rows: u64) -> Folding {
        Folding {
            min_rows,
            counts: None,
        }
    }

    /// Forgets the counts: another applier may have written since.
    pub fn clear(&mut self) {
        self.counts = None;
    }

    /// A chunk added `rows` rollup rows.
    pub fn added(&mut self, rows: usize) {
        if let Some((now, _)) = &mut self.counts {
            *now += rows as u64;
        }
    }

    fn counts(&mut self, http: &Http, part: u16) -> Result<(u64, u64), StoreError> {
        if let Some(c) = self.counts {
            return Ok(c);
        }
        // A fold tags every row it leaves with one position, below any chunk's after it;
        // before the first fold the oldest position is one chunk's, a small count.
        let rows = http.rows(&format!(
            "SELECT count(), min(log_pos) FROM rollups WHERE log_part = {part}"
        ))?;
        let get = |i: usize| -> u64 {
            rows.first()
                .and_then(|r| r.get(i).cloned().flatten())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (now, oldest) = (get(0), get(1));
        let folded = if now == 0 {
            0
        } else {
            http.number(&format!(
                "SELECT count() FROM rollups WHERE log_part = {part} AND log_pos = {oldest}"
            ))?
        };
        self.counts = Some((now, folded));
        Ok((now, folded))
    }

    /// Folds partition `part`'s rows if due (or `now`); `applied` is its applied position,
    /// which every row of it is at or below. `stop` is the test hook of a dying applier.
    #[allow(clippy::too_many_arguments)]
    pub fn fold_if_due(
        &mut self,
        http: &Http,
        part: u16,
        applied: u64,
        now: bool,
        until: Option<Instant>,
        stop: &mut dyn FnMut(FlushStage) -> Result<(), StoreError>,
    ) -> Result<Folded, StoreError> {
        let (rows, folded) = self.counts(http, part)?;
        if !now && (rows < self.min_rows.max(1) || rows < folded.saturating_mul(2)) {
            return Ok(Folded::NotDue);
        }
        self.counts = None;
        drop_leftovers(http, part)?;
        let staging = scratch_name(part, "fold");
        let sql = statements(part, applied, &staging);
        let result = (|| -> Result<Option<u64>, StoreError> {
            http.execute(&sql.create)?;
            http.execute(&sql.stage)?;
            stop(FlushStage::FoldStaged)?;
            let after = http.number(&format!("SELECT count() FROM {staging}"))?;
            if !swap_if_current(http, part, applied, &sql, until)? {
                return Ok(None);
            }
            self.counts = Some((after, after));
            stop(FlushStage::FoldReplaced)?;
            Ok(Some(after))
        })();
        // After an error the staging table stays, as a dead applier's would: the next
        // attempt drops it first.
        let swapped = result?;
        http.execute(&sql.drop)?;
        let Some(after) = swapped else {
            return Ok(Folded::Superseded);
        };
        Ok(Folded::Done(rows, after))
    }
}
