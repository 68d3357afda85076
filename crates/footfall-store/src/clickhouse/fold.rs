//! Folding a partition's rollup rows: each applied chunk adds one row per key it changed,
//! so under a steady trickle of small chunks a partition's rows would outgrow its events
//! and every dashboard would sum more rows each day. Its applier (the only writer of the
//! partition) now and then replaces them with one row per key.
//!
//! ClickHouse has no transactions, and a summing engine would merge a half-written chunk's
//! rows (which recovery removes by position) into committed ones. So the fold is built on
//! the one atomic swap 18.16 has — a whole table partition; `rollups` is partitioned by log
//! partition:
//! 1. drop partition P of `rollups_fold` (what an earlier fold that died left there);
//! 2. fill it with P's rows of `rollups` summed per key, tagged with the applied position;
//! 3. check nobody applied P since (a deposed applier must not swap away a newer chunk);
//! 4. `REPLACE PARTITION P` of `rollups` by it, atomically for readers;
//! 5. drop partition P of `rollups_fold`.
//!
//! A fold that dies before step 4 changed nothing readers see; after it, it is done. The
//! folded rows carry a position no later than the marker, so recovery never removes them.
//! When: once the partition holds twice the rows its last fold left (and at least
//! `min_rows`), so each row is rewritten a bounded number of times on average.

use super::http::Http;
use super::FlushStage;
use crate::StoreError;

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

/// The statements of a fold of partition `part` at applied position `applied`: clear the
/// staging partition, fill it, swap it in (then clear it again).
pub struct Statements {
    pub clear: String,
    pub stage: String,
    pub swap: String,
}

pub fn statements(part: u16, applied: u64) -> Statements {
    let sums: Vec<String> = SUMS.iter().map(|c| format!("sum({c})")).collect();
    Statements {
        clear: format!("ALTER TABLE rollups_fold DROP PARTITION {part}"),
        stage: format!(
            "INSERT INTO rollups_fold SELECT site, grain, bucket, dim, value, {}, {part}, {applied} \
             FROM rollups WHERE log_part = {part} AND log_pos <= {applied} \
             GROUP BY site, grain, bucket, dim, value",
            sums.join(", ")
        ),
        swap: format!("ALTER TABLE rollups REPLACE PARTITION {part} FROM rollups_fold"),
    }
}

/// Swaps staged partition `part` in if nobody applied it since position `applied` (a
/// deposed applier must not swap a newer chunk away); otherwise clears the staging.
/// Returns whether it swapped.
pub(super) fn swap_if_current(
    http: &Http,
    part: u16,
    applied: u64,
    sql: &Statements,
) -> Result<bool, StoreError> {
    let marker = http.number(&format!(
        "SELECT max(position) FROM log_applied WHERE log_part = {part}"
    ))?;
    let newest = http.number(&format!(
        "SELECT max(log_pos) FROM rollups WHERE log_part = {part}"
    ))?;
    if marker != applied || newest > applied {
        tracing::warn!(
            part,
            applied,
            marker,
            "partition applied by another applier meanwhile; not swapping its rollup rows"
        );
        http.execute(&sql.clear)?;
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
    pub fn fold_if_due(
        &mut self,
        http: &Http,
        part: u16,
        applied: u64,
        now: bool,
        stop: &mut dyn FnMut(FlushStage) -> Result<(), StoreError>,
    ) -> Result<Folded, StoreError> {
        let (rows, folded) = self.counts(http, part)?;
        if !now && (rows < self.min_rows.max(1) || rows < folded.saturating_mul(2)) {
            return Ok(Folded::NotDue);
        }
        self.counts = None;
        let sql = statements(part, applied);
        http.execute(&sql.clear)?;
        http.execute(&sql.stage)?;
        stop(FlushStage::FoldStaged)?;
        let after = http.number(&format!(
            "SELECT count() FROM rollups_fold WHERE log_part = {part}"
        ))?;
        if !swap_if_current(http, part, applied, &sql)? {
            return Ok(Folded::Superseded);
        }
        self.counts = Some((after, after));
        stop(FlushStage::FoldReplaced)?;
        http.execute(&sql.clear)?;
        Ok(Folded::Done(rows, after))
    }
}
