//! The cluster's event store (ClickHouse) against the embedded one (DuckDB): the same
//! records go into both, and every query of a random set, planned for each store's dialect,
//! must give the same answer. And a flush stopped at each point where a crash can stop it
//! leaves, once the next applier has run, every record stored exactly once.
//!
//! Needs a ClickHouse server: `FOOTFALL_TEST_CLICKHOUSE=http://127.0.0.1:18123`
//! (scripts/test starts Debian's 18.16 on that port). Without it these tests fail.

mod common;

use common::traffic::*;
use footfall_core::query::parse;
use footfall_core::query::plan::{Part, SqlQuery};
use footfall_store::clickhouse::FlushStage;
use footfall_store::{ChStore, DuckStore, EventStore, LogPosition};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

fn server() -> String {
    std::env::var("FOOTFALL_TEST_CLICKHOUSE").expect(
        "FOOTFALL_TEST_CLICKHOUSE must name a ClickHouse server's HTTP address \
         (scripts/test starts one; see scripts/services)",
    )
}

/// A database of its own for each test case, dropped when the case ends.
struct TestDb {
    name: String,
}

impl TestDb {
    fn new(tag: &str) -> TestDb {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        TestDb {
            name: format!(
                "footfall_test_{tag}_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// Partition `part`'s applier, keeping rollups in the test sites' zones.
    fn open(&self, part: u16) -> ChStore {
        let mut ch = ChStore::open(&server(), &self.name, part).expect("open the ClickHouse store");
        ch.keep_rollups(std::sync::Arc::new(|| {
            Ok(SITES
                .iter()
                .map(|(d, tz)| (d.to_string(), tz.parse().unwrap()))
                .collect())
        }));
        ch
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = reqwest::blocking::Client::new()
            .post(server())
            .body(format!("DROP DATABASE IF EXISTS {}", self.name))
            .send();
    }
}

fn duck(dir: &std::path::Path) -> DuckStore {
    let store = DuckStore::open(dir).unwrap();
    for (domain, tz) in SITES {
        let site = footfall_core::SiteId::parse(domain).unwrap();
        store.add_site(&site, false, 0).unwrap();
        store.set_site_timezone(&site, tz).unwrap();
    }
    store
}

/// Every stored event and the current state of every visit, as comparable text. The SQL
/// differs per engine; what it lists must not.
fn stored(store: &dyn EventStore, clickhouse: bool) -> Vec<String> {
    let (events, visits) = if clickhouse {
        (
            "SELECT concat('e|', toString(event_id), '|', site, '|', toString(ts), '|', name, '|', toString(session_id), '|', pathname), 0 FROM events",
            "SELECT concat('s|', site, '|', toString(session_id), '|', toString(version), '|', toString(start_ts), '|', toString(end_ts), '|', toString(pageviews), '|', exit_page), 0 \
             FROM sessions GROUP BY site, session_id, version, start_ts, end_ts, pageviews, exit_page HAVING sum(sign) <> 0",
        )
    } else {
        (
            "SELECT 'e|' || event_id || '|' || site || '|' || ts || '|' || name || '|' || session_id || '|' || pathname, 0 FROM events",
            "SELECT 's|' || site || '|' || session_id || '|' || version || '|' || start_ts || '|' || end_ts || '|' || pageviews || '|' || exit_page, 0 \
             FROM sessions GROUP BY ALL HAVING sum(sign) <> 0",
        )
    };
    let mut out = Vec::new();
    for sql in [events, visits] {
        let q = SqlQuery {
            sql: sql.into(),
            params: vec![],
            part: Part::Total,
            dimensions: 1,
        };
        out.extend(
            store
                .run_query(&q)
                .unwrap()
                .into_iter()
                .map(|(d, _)| d[0].clone()),
        );
    }
    out.sort();
    out
}

/// Every shape answered by ClickHouse from raw rows and, where its rollups are complete,
/// from rollups, as DuckDB answers it from raw rows. Returns how many used rollups.
fn check_same_answers(duck: &DuckStore, ch: &ChStore, shapes: &[(usize, Shape)]) -> usize {
    check_same_answers_in(duck, ch, shapes, &|site| SITES[site].1.parse().unwrap())
}

/// As [`check_same_answers`], asking in zone `zone(site)`.
fn check_same_answers_in(
    duck: &DuckStore,
    ch: &ChStore,
    shapes: &[(usize, Shape)],
    zone: &dyn Fn(usize) -> chrono_tz::Tz,
) -> usize {
    let mut from_rollups = 0;
    for (site, shape) in shapes {
        let (body, _) = query(*site, *shape);
        let tz = zone(*site);
        let q = parse::parse_v2(&body, tz).unwrap();
        let (want, _) = answer(duck, &q, SITES[*site].0, false);
        let (got, used) = answer(ch, &q, SITES[*site].0, false);
        assert!(!used);
        assert_eq!(
            comparable(&got),
            comparable(&want),
            "query {body} on ClickHouse (left) and DuckDB (right)"
        );
        let site_id = footfall_core::SiteId::parse(SITES[*site].0).unwrap();
        if ch.rollup_zone(&site_id).unwrap().as_deref() == Some(tz.name()) {
            let (got, used) = answer(ch, &q, SITES[*site].0, true);
            from_rollups += usize::from(used);
            assert_eq!(
                comparable(&got),
                comparable(&want),
                "query {body} on ClickHouse's rollups (left) and DuckDB's raw rows (right)"
            );
        }
    }
    from_rollups
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn clickhouse_answers_what_duckdb_answers(
        events in proptest::collection::vec(ev_strategy(), 1..400),
        batch in 1usize..60,
        shapes in proptest::collection::vec((0usize..4, (0u8..3, 0u8..10, 0u8..5, 0u8..4, 0u8..4)), 40),
    ) {
        let recs = records(&events, batch);
        let dir = tempfile::tempdir().unwrap();
        let mut d = duck(dir.path());
        EventStore::apply(&mut d, &recs).unwrap();
        let db = TestDb::new("answers");
        let mut ch = db.open(0);
        // In chunks, as an applier moves a log.
        for chunk in recs.chunks(7) {
            ch.apply(chunk).unwrap();
        }
        prop_assert_eq!(ch.applied().unwrap().0, LogPosition(recs.len() as u64));
        prop_assert_eq!(stored(&ch, true), stored(&d, false));
        check_same_answers(&d, &ch, &shapes);
    }
}

/// `n` generated events, the same on every run.
fn fixed_events(n: usize) -> Vec<Ev> {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    proptest::collection::vec(ev_strategy(), n)
        .new_tree(&mut runner)
        .unwrap()
        .current()
}

/// Every shape of query, on one fixed set of traffic: each metric, dimension, filter kind,
/// time bucket and range the generator makes.
#[test]
fn every_query_shape_agrees() {
    let events = fixed_events(600);
    let recs = records(&events, 25);
    let dir = tempfile::tempdir().unwrap();
    let mut d = duck(dir.path());
    EventStore::apply(&mut d, &recs).unwrap();
    let db = TestDb::new("shapes");
    let mut ch = db.open(0);
    ch.apply(&recs).unwrap();
    let shapes = all_shapes();
    let used = check_same_answers(&d, &ch, &shapes);
    assert!(
        used * 3 > shapes.len(),
        "{used} of {} shapes read rollups",
        shapes.len()
    );
}

/// A flush stopped after the events, after the visit rows, after the rollup rows or after
/// the marker, then redone by a new connection (a new applier): every record is stored
/// once, in the raw rows and in the rollups.
#[test]
fn a_flush_stopped_anywhere_is_redone_exactly_once() {
    let events = fixed_events(300);
    let recs = records(&events, 10);
    let dir = tempfile::tempdir().unwrap();
    let mut d = duck(dir.path());
    EventStore::apply(&mut d, &recs).unwrap();

    let db = TestDb::new("stops");
    let stages = [
        FlushStage::AfterEvents,
        FlushStage::AfterSessions,
        FlushStage::AfterRollups,
        FlushStage::AfterMarker,
    ];
    let mut applier = db.open(3);
    for (i, chunk) in recs.chunks(5).enumerate() {
        let stage = stages[i % stages.len()];
        applier.fail_at(Some(stage));
        assert!(applier.apply(chunk).is_err(), "the hook stops the flush");
        // The dead applier's connection is gone; a new one resumes from what is stored.
        applier = db.open(3);
        let resumed = applier.applied().unwrap().0;
        let expected_before = chunk[0].0 .0 - 1;
        if stage == FlushStage::AfterMarker {
            assert_eq!(resumed, chunk[chunk.len() - 1].0, "the marker was written");
        } else {
            assert_eq!(
                resumed.0, expected_before,
                "the chunk was not marked applied"
            );
        }
        // Everything up to the chunk's end again: earlier records are skipped, the
        // stopped chunk is written once.
        let end = (i + 1) * 5;
        applier.apply(&recs[..end.min(recs.len())]).unwrap();
    }
    assert_eq!(applier.applied().unwrap().0, recs.last().unwrap().0);
    assert_eq!(stored(&applier, true), stored(&d, false));
    // The rollups too hold every chunk once.
    let shapes: Vec<_> = all_shapes().into_iter().step_by(7).collect();
    assert!(check_same_answers(&d, &applier, &shapes) > 10);

    // Another partition's rows survive this one's cleanup: partition 4 stops after its
    // events; partition 3, reopened, checks for leftovers of its own only.
    let mut other = db.open(4);
    other.fail_at(Some(FlushStage::AfterEvents));
    assert!(other.apply(&recs[..5]).is_err());
    let mut again = db.open(3);
    again.apply(&recs).unwrap();
    let with_other = stored(&again, true);
    assert!(with_other.len() > stored(&d, false).len());
    // …and partition 4's next applier removes its half-written chunk before writing it.
    let mut other = db.open(4);
    other.apply(&recs[..5]).unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let mut first = duck(dir2.path());
    EventStore::apply(&mut first, &recs[..5]).unwrap();
    // Events only: two partitions holding the same visits is no state a cluster makes.
    let events = |rows: Vec<String>| -> Vec<String> {
        rows.into_iter().filter(|r| r.starts_with("e|")).collect()
    };
    let mut expected = events(stored(&d, false));
    expected.extend(events(stored(&first, false)));
    expected.sort();
    assert_eq!(events(stored(&other, true)), expected);
}

/// Records already applied are skipped; a gap is refused and changes nothing.
#[test]
fn applying_is_idempotent_and_refuses_gaps() {
    let events = fixed_events(100);
    let recs = records(&events, 10);
    let db = TestDb::new("idem");
    let mut ch = db.open(0);
    ch.apply(&recs[..4]).unwrap();
    let before = stored(&ch, true);
    ch.apply(&recs[..4]).unwrap();
    assert_eq!(stored(&ch, true), before);
    let err = ch.apply(&recs[5..7]).unwrap_err();
    assert!(err.to_string().contains("without gaps"), "{err}");
    assert_eq!(stored(&ch, true), before);
    ch.apply(&recs[2..]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut d = duck(dir.path());
    EventStore::apply(&mut d, &recs).unwrap();
    assert_eq!(stored(&ch, true), stored(&d, false));
}

/// A server that is not there is a clear, retryable error.
#[test]
fn an_unreachable_server_is_unavailable() {
    let err = ChStore::open("http://127.0.0.1:9/", "footfall", 0)
        .err()
        .expect("nothing listens on port 9");
    assert!(
        matches!(err, footfall_store::StoreError::Unavailable(_)),
        "{err}"
    );
    assert!(ChStore::open("ftp://x", "footfall", 0).is_err());
    assert!(ChStore::open(&server(), "bad name; DROP", 0).is_err());
}

/// One number a statement on the test's database answers.
fn sql_number(db: &TestDb, sql: &str) -> u64 {
    sql_text(db, sql).trim().parse().unwrap()
}

fn sql_text(db: &TestDb, sql: &str) -> String {
    let resp = reqwest::blocking::Client::new()
        .post(format!(
            "{}/?database={}",
            server().trim_end_matches('/'),
            db.name
        ))
        .body(format!("{sql} FORMAT TabSeparated"))
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{sql}");
    resp.text().unwrap()
}

/// Every rollup key's sums, summed over its rows: what reads see.
fn rollup_sums(db: &TestDb) -> String {
    sql_text(
        db,
        "SELECT site, grain, bucket, dim, value, sum(visitors), sum(pageviews), sum(events), sum(visits), \
         sum(bounces), sum(duration_ms), sum(visit_pageviews), sum(scroll_sum), sum(scroll_visits), \
         sum(page_time_ms), sum(page_time_visits) FROM rollups \
         GROUP BY site, grain, bucket, dim, value ORDER BY site, grain, bucket, dim, value",
    )
}

/// Folding a partition's rollup rows leaves every key's sums as they were, with far fewer
/// rows; a fold that dies after staging or after the swap changes no sum either, and the
/// next applier folds again. The sums to compare with come from a twin database whose
/// rows are never folded.
#[test]
fn rollup_rows_fold_without_changing_a_sum() {
    let events = fixed_events(600);
    let recs = records(&events, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut d = duck(dir.path());
    EventStore::apply(&mut d, &recs).unwrap();

    let plain = TestDb::new("unfolded");
    let mut unfolded = plain.open(2);
    unfolded.fold_rollups_at(u64::MAX);
    let db = TestDb::new("fold");
    let open = || {
        let mut ch = db.open(2);
        ch.fold_rollups_at(1);
        ch
    };
    let mut ch = open();
    let stops = [FlushStage::FoldStaged, FlushStage::FoldReplaced];
    let mut stopped = 0;
    ch.fail_at(Some(stops[0]));
    for chunk in recs.chunks(3) {
        unfolded.apply(chunk).unwrap();
        ch.apply(chunk).unwrap();
        // Readers see the same sums whatever state the fold is in.
        assert_eq!(rollup_sums(&db), rollup_sums(&plain));
        let leftovers = "SELECT count() FROM system.tables WHERE database = currentDatabase() \
                         AND startsWith(name, 'rollups_work_')";
        if stopped < stops.len() && sql_number(&db, leftovers) > 0 {
            // The hook stopped a fold (its staging table is still there): the applier
            // dies and the next one takes over, dropping it first.
            stopped += 1;
            ch = open();
            if let Some(stage) = stops.get(stopped) {
                ch.fail_at(Some(*stage));
            }
        }
    }
    assert_eq!(stopped, stops.len(), "a fold stopped at each stage");
    let rows = |db: &TestDb| sql_number(db, "SELECT count() FROM rollups");
    let keys = sql_number(
        &db,
        "SELECT count() FROM (SELECT 1 FROM rollups GROUP BY site, grain, bucket, dim, value)",
    );
    assert!(
        rows(&db) * 3 < rows(&plain),
        "folded {} rows, unfolded {}",
        rows(&db),
        rows(&plain)
    );
    assert!(rows(&db) < keys * 3, "{} rows for {keys} keys", rows(&db));
    assert_eq!(stored(&ch, true), stored(&d, false));
    let shapes: Vec<_> = all_shapes().into_iter().step_by(5).collect();
    assert!(check_same_answers(&d, &ch, &shapes) > 10);

    // A fold by an applier that lost the partition swaps nothing: another applied since.
    let mut deposed = open();
    assert!(
        deposed.fold_rollups().unwrap(),
        "a fold when nobody else applies swaps"
    );
    assert_eq!(rollup_sums(&db), rollup_sums(&plain));
    let more = records(&fixed_events(640), 5);
    let tail: Vec<_> = more
        .into_iter()
        .filter(|(p, _)| p.0 > recs.last().unwrap().0 .0)
        .collect();
    assert!(!tail.is_empty());
    let mut newer = open();
    newer.apply(&tail[..1]).unwrap();
    unfolded.apply(&tail[..1]).unwrap();
    assert!(
        !deposed.fold_rollups().unwrap(),
        "the deposed applier's fold is refused"
    );
    assert_eq!(rollup_sums(&db), rollup_sums(&plain));
}

/// The planned statements of every query shape for `site`, as literal SQL.
fn every_statement(store: &dyn EventStore) -> Vec<String> {
    use footfall_core::query::plan::{self, BucketKey, Context};
    use footfall_core::query::{time, Dimension};
    let mut out = Vec::new();
    for (site, shape) in all_shapes() {
        let (body, _) = query(site, shape);
        let tz: chrono_tz::Tz = SITES[site].1.parse().unwrap();
        let q = parse::parse_v2(&body, tz).unwrap();
        let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 10).unwrap();
        let range = time::resolve(&q.date_range, q.timezone, today, Some(T0));
        let buckets = q.time_dimension().map(|d| {
            let Dimension::Time(b) = d else {
                unreachable!()
            };
            let unit = b.unwrap_or_else(|| time::auto_bucket(&range));
            let bs = time::buckets(&range, unit, q.timezone, 10_000);
            BucketKey::new(unit, &bs, q.timezone)
        });
        for rollups in [false, true] {
            let cx = Context {
                site: SITES[site].0,
                start: range.start,
                end: range.end,
                buckets: buckets.as_ref(),
                tz: q.timezone,
                rollups,
                goals: &[],
                by_goal: None,
            };
            for s in plan::plan(&q, &cx, store.dialect()) {
                if rollups && !s.from_rollups() {
                    continue;
                }
                out.push(footfall_store::clickhouse::literal_sql(&s).unwrap());
            }
        }
    }
    out
}

fn all_shapes() -> Vec<(usize, Shape)> {
    let mut shapes = Vec::new();
    for m in 0..3u8 {
        for dim in 0..10u8 {
            for t in 0..5u8 {
                for f in 0..4u8 {
                    // Ranges and sites rotate, so each shape runs once.
                    let r = (m + dim + t + f) % 4;
                    shapes.push(((dim as usize + t as usize) % 4, (m, dim, t, f, r)));
                }
            }
        }
    }
    shapes
}

/// Rows of a TabSeparated answer, sorted, numbers rounded to 9 significant digits (the
/// two releases may sum floats in another order).
fn normalised(tsv: &str) -> Vec<String> {
    let mut rows: Vec<String> = tsv
        .lines()
        .map(|line| {
            line.split('\t')
                .map(|f| match f.parse::<f64>() {
                    Ok(v) if f.contains('.') || f.contains('e') => format!("{v:.9e}"),
                    _ => f.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect();
    rows.sort();
    rows
}

/// The same schema, data and statements on current ClickHouse (chdb, in process) give the
/// same answers as on Debian's 18.16: the dialect stays inside what both run.
#[test]
fn current_clickhouse_runs_every_statement_alike() {
    let python = std::env::var("FOOTFALL_TEST_CHDB_PYTHON").expect(
        "FOOTFALL_TEST_CHDB_PYTHON must name a Python with chdb-core installed \
         (scripts/test makes one)",
    );
    let events = fixed_events(600);
    let recs = records(&events, 25);
    let db = TestDb::new("chdb");
    let mut ch = db.open(0);
    // In chunks, so the rollups hold many rows per key for current ClickHouse to fold.
    for chunk in recs.chunks(4) {
        ch.apply(chunk).unwrap();
    }
    let last = recs.last().unwrap().0 .0;
    assert!(
        sql_number(&db, "SELECT count() FROM rollups")
            > sql_number(
                &db,
                "SELECT count() FROM (SELECT 1 FROM rollups GROUP BY site, grain, bucket, dim, value)"
            ),
        "18.16 holds unfolded rollups"
    );

    let http = reqwest::blocking::Client::new();
    let run = |sql: &str| -> String {
        let resp = http
            .post(format!(
                "{}/?join_default_strictness=ALL&database={}",
                server().trim_end_matches('/'),
                db.name
            ))
            .body(format!("{sql} FORMAT TabSeparated"))
            .send()
            .unwrap();
        let ok = resp.status().is_success();
        let text = resp.text().unwrap();
        assert!(ok, "18.16 refused {sql}: {text}");
        text
    };
    let statements = every_statement(&ch);
    let old: Vec<String> = statements.iter().map(|s| run(s)).collect();
    let dump = |table: &str| -> String {
        let resp = http
            .post(format!(
                "{}/?database={}",
                server().trim_end_matches('/'),
                db.name
            ))
            .body(format!("SELECT * FROM {table} FORMAT JSONEachRow"))
            .send()
            .unwrap();
        resp.text().unwrap()
    };
    let fold = footfall_store::clickhouse::fold_statements(0, last, "fold_check");
    let folded_check = format!(
        "SELECT count() = countIf(log_pos = {last}), count() = uniqExact(site, grain, bucket, dim, value) FROM rollups"
    );
    // A rebuild of site 1's rollups in another zone (with the copied rows' share taken
    // away, none here), run on both: the scratch rows and the staged partition compared.
    let moved: chrono_tz::Tz = "Asia/Kolkata".parse().unwrap();
    let day0 = footfall_core::rollup::LocalClock::new(moved).day(T0);
    let site1 = footfall_core::SiteId::parse(SITES[1].0).unwrap();
    let tables = footfall_store::clickhouse::RebuildTables {
        all: "rebuild_all".into(),
        copied: "rebuild_copied".into(),
        staging: "rebuild_stage".into(),
    };
    let rebuild = footfall_store::clickhouse::rebuild_statements(
        &site1,
        moved,
        0,
        last,
        Some((day0 - 1, day0 + 7)),
        &tables,
    )
    .unwrap();
    for sql in &rebuild {
        let resp = http
            .post(format!(
                "{}/?join_default_strictness=ALL&database={}",
                server().trim_end_matches('/'),
                db.name
            ))
            .body(sql.clone())
            .send()
            .unwrap();
        let ok = resp.status().is_success();
        assert!(ok, "18.16 refused {sql}: {}", resp.text().unwrap());
    }
    let rebuilt_checks = [
        "SELECT * FROM rebuild_all ORDER BY site, grain, bucket, dim, value",
        "SELECT * FROM rebuild_stage ORDER BY site, grain, bucket, dim, value",
    ];
    let rebuilt_old: Vec<String> = rebuilt_checks.iter().map(|q| run(q)).collect();
    assert!(rebuilt_old[0].lines().count() > 50, "{}", rebuilt_old[0]);
    let after_inserts: Vec<String> = [fold.create, fold.stage, fold.swap, fold.drop]
        .into_iter()
        .chain(rebuild)
        .collect();
    let queries: Vec<String> = statements
        .iter()
        .cloned()
        .chain(std::iter::once(folded_check))
        .chain(rebuilt_checks.iter().map(|q| q.to_string()))
        .collect();
    let job = serde_json::json!({
        "setup": footfall_store::clickhouse::schema_statements(),
        "inserts": [["events", dump("events")], ["sessions", dump("sessions")], ["log_applied", dump("log_applied")],
                    ["rollups", dump("rollups")], ["rollup_sites", dump("rollup_sites")]],
        // Current ClickHouse folds its copy first: the answers must not change.
        "after_inserts": after_inserts,
        "queries": queries,
    });
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/chdb/run.py");
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {python}: {e}"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(job.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), statements.len() + 3);
    for (i, old) in rebuilt_old.iter().enumerate() {
        let new = &results[statements.len() + 1 + i];
        let rows = new["rows"].as_str().unwrap_or_else(|| {
            panic!(
                "current ClickHouse refused {}: {}",
                rebuilt_checks[i], new["error"]
            )
        });
        assert_eq!(normalised(rows), normalised(old), "{}", rebuilt_checks[i]);
    }
    assert_eq!(
        results[statements.len()]["rows"].as_str().map(str::trim),
        Some("1\t1"),
        "current ClickHouse folded its rollups to one row per key: {}",
        results[statements.len()]
    );
    let mut non_empty = 0;
    for ((sql, old), new) in statements.iter().zip(&old).zip(results) {
        let rows = new["rows"]
            .as_str()
            .unwrap_or_else(|| panic!("current ClickHouse refused {sql}: {}", new["error"]));
        assert_eq!(normalised(rows), normalised(old), "{sql}");
        non_empty += usize::from(!old.trim().is_empty());
    }
    // The comparison means something only if most statements found rows.
    assert!(
        non_empty * 2 > statements.len(),
        "{non_empty} of {}",
        statements.len()
    );
}

/// An applier that lost its partition and got it back must not trust what it cached:
/// another node may have died mid-chunk meanwhile, or written past it.
#[test]
fn a_connection_that_retakes_its_partition_checks_storage_again() {
    let events = fixed_events(200);
    let recs = records(&events, 10);
    let dir = tempfile::tempdir().unwrap();
    let mut d = duck(dir.path());
    EventStore::apply(&mut d, &recs).unwrap();
    let db = TestDb::new("retake");

    // A applies the first chunk; B (another node) the second, then dies in the third
    // after its events; A takes the partition back.
    let mut a = db.open(5);
    a.apply(&recs[..5]).unwrap();
    let mut b = db.open(5);
    b.apply(&recs[..10]).unwrap();
    b.fail_at(Some(FlushStage::AfterEvents));
    assert!(b.apply(&recs[..15]).is_err());
    a.forget_applied();
    // A resumes after B's marker and removes B's half-written chunk first.
    assert_eq!(a.applied().unwrap().0, recs[9].0);
    a.apply(&recs).unwrap();
    assert_eq!(stored(&a, true), stored(&d, false));
}

/// Copies an embedded store's rows and rollups into the copied rows' partitions, as
/// `footfall migrate` does.
fn import(db: &TestDb, source: &DuckStore) {
    for (part, table, id) in [
        (
            footfall_store::clickhouse::MIGRATED_EVENTS,
            "events",
            "event_id",
        ),
        (
            footfall_store::clickhouse::MIGRATED_VISITS,
            "sessions",
            "session_id",
        ),
    ] {
        let mut ch = ChStore::open(&server(), &db.name, part).unwrap();
        let mut each = |rows: Vec<serde_json::Map<String, serde_json::Value>>| {
            let last = rows.last().and_then(|r| r[id].as_u64()).unwrap();
            let (done, _) = ch.import_progress()?;
            ch.import_chunk(done + 1, last, vec![(table, rows)])
        };
        if table == "events" {
            source.export_events(0, 100, &mut each).unwrap();
        } else {
            source.export_visits(0, 100, &mut each).unwrap();
        }
    }
    let mut ch = ChStore::open(
        &server(),
        &db.name,
        footfall_store::clickhouse::MIGRATED_ROLLUPS,
    )
    .unwrap();
    for (i, (domain, tz)) in SITES.iter().enumerate() {
        let site = footfall_core::SiteId::parse(domain).unwrap();
        assert_eq!(source.rollup_zone(&site).unwrap().as_deref(), Some(*tz));
        let mark = serde_json::json!({"site": domain, "timezone": tz, "complete": 1});
        let serde_json::Value::Object(mark) = mark else {
            unreachable!()
        };
        ch.import_chunk(
            i as u64 + 1,
            i as u64 + 1,
            vec![
                ("rollups", source.export_rollups(&site).unwrap()),
                ("rollup_sites", vec![mark]),
            ],
        )
        .unwrap();
    }
}

/// A site's zone changes: its rollups go stale in every partition that has its rows, and
/// each partition's applier rebuilds its own — partition 0's also the copied rows' — from
/// raw rows, counting in a partition only the visitors the copied rows do not have on the
/// same day. Rebuilds stopped after staging and after the swap change nothing reports see
/// and are redone; afterwards rollups answer what DuckDB's raw rows answer in the new
/// zone, also after more records were kept on write.
#[test]
fn a_zone_change_rebuilds_each_partitions_rollups() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let events = fixed_events(700);
    // Copied history before the cut, the cluster's own traffic after (no visit spans the
    // gap); the same client-held visitor ids on both sides of it on the cut's day.
    let cut = 2 * 24 * 60 + 13 * 60;
    let (old, new): (Vec<Ev>, Vec<Ev>) = events
        .into_iter()
        .filter(|e| e.minute < cut || e.minute >= cut + 45)
        .partition(|e| e.minute < cut);
    let copied = records(&old, 10);
    // Numbered from the same base as the copied rows, as partition 0's are: event ids
    // repeat between the two.
    let own = records_with_base(&new, 10, 0);
    let (first, second) = own.split_at(own.len() / 2);

    let dir = tempfile::tempdir().unwrap();
    let mut whole = duck(dir.path());
    EventStore::apply(&mut whole, &copied).unwrap();
    let shift = copied.len() as u64;
    let renumbered: Vec<_> = own
        .iter()
        .map(|(p, r)| (LogPosition(p.0 + shift), r.clone()))
        .collect();
    EventStore::apply(&mut whole, &renumbered).unwrap();
    let dir3 = tempfile::tempdir().unwrap();
    let mut half = duck(dir3.path());
    EventStore::apply(&mut half, &copied).unwrap();
    EventStore::apply(&mut half, &renumbered[..first.len()]).unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let mut source = duck(dir2.path());
    EventStore::apply(&mut source, &copied).unwrap();

    let db = TestDb::new("rezone");
    import(&db, &source);
    let zones: Arc<Mutex<HashMap<String, chrono_tz::Tz>>> = Arc::new(Mutex::new(
        SITES
            .iter()
            .map(|(d, tz)| (d.to_string(), tz.parse().unwrap()))
            .collect(),
    ));
    let open = |part: u16| {
        let mut ch = ChStore::open(&server(), &db.name, part).unwrap();
        let z = zones.clone();
        ch.keep_rollups(Arc::new(move || Ok(z.lock().unwrap().clone())));
        ch
    };
    let mut p3 = open(3);
    for chunk in first.chunks(5) {
        p3.apply(chunk).unwrap();
    }
    let shapes: Vec<_> = all_shapes().into_iter().step_by(3).collect();
    let site0 = footfall_core::SiteId::parse(SITES[0].0).unwrap();
    assert!(p3.stale_rollups().unwrap().is_empty());
    assert_eq!(p3.rollup_zone(&site0).unwrap().as_deref(), Some(SITES[0].1));

    // The site moves to a zone 13 hours away from its old one.
    let moved: chrono_tz::Tz = "Pacific/Auckland".parse().unwrap();
    assert_ne!(SITES[0].1, moved.name());
    zones.lock().unwrap().insert(SITES[0].0.to_string(), moved);
    let zone = |site: usize| -> chrono_tz::Tz {
        if site == 0 {
            moved
        } else {
            SITES[site].1.parse().unwrap()
        }
    };
    let mut p0 = open(0);
    assert_eq!(p3.stale_rollups().unwrap(), vec![site0.clone()]);
    assert_eq!(
        p0.stale_rollups().unwrap(),
        vec![site0.clone()],
        "the copied rows' rollups"
    );
    // Still complete in the old zone only: reports in the new one read raw rows.
    assert_eq!(p3.rollup_zone(&site0).unwrap().as_deref(), Some(SITES[0].1));

    // Partition 3's rebuild dies after staging, then after the swap: reports still read
    // raw rows, and a new applier redoes it.
    for stage in [FlushStage::RebuildStaged, FlushStage::RebuildSwapped] {
        p3.fail_at(Some(stage));
        assert!(p3.rebuild_rollups(&site0, &mut |_| true).is_err());
        p3 = open(3);
        assert_eq!(p3.stale_rollups().unwrap(), vec![site0.clone()]);
        assert_ne!(
            p3.rollup_zone(&site0).unwrap().as_deref(),
            Some(moved.name())
        );
        check_same_answers_in(&half, &p3, &shapes, &zone);
    }
    p3.rebuild_rollups(&site0, &mut |_| true).unwrap();
    assert!(p3.stale_rollups().unwrap().is_empty());
    assert_eq!(
        p3.rollup_zone(&site0).unwrap(),
        None,
        "the copied rows' still stale"
    );
    p0.rebuild_rollups(&site0, &mut |_| true).unwrap();
    assert!(p0.stale_rollups().unwrap().is_empty());
    assert_eq!(
        p3.rollup_zone(&site0).unwrap().as_deref(),
        Some(moved.name())
    );

    // The second half is kept on write in the new zone, on top of the rebuilt rows.
    for chunk in second.chunks(5) {
        p3.apply(chunk).unwrap();
    }
    // Compared with the whole history in one embedded store, asked in the new zone.
    let site0_shapes: Vec<_> = all_shapes()
        .into_iter()
        .filter(|(site, _)| *site == 0)
        .collect();
    let used = check_same_answers_in(&whole, &p3, &site0_shapes, &zone);
    assert!(
        used * 3 > site0_shapes.len(),
        "{used} of {} of the moved site's queries read rollups",
        site0_shapes.len()
    );
    check_same_answers_in(&whole, &p3, &shapes, &zone);

    // Merges change nothing about which row of rollup_sites is current.
    sql_text(&db, "OPTIMIZE TABLE rollup_sites FINAL");
    assert!(p3.stale_rollups().unwrap().is_empty());
    assert!(p0.stale_rollups().unwrap().is_empty());
    // Back to the old zone, with no chunk in between: stale again (the rows are the new
    // zone's), rebuilt again, and right in the old zone.
    zones
        .lock()
        .unwrap()
        .insert(SITES[0].0.to_string(), SITES[0].1.parse().unwrap());
    assert_eq!(p3.stale_rollups().unwrap(), vec![site0.clone()]);
    p3.rebuild_rollups(&site0, &mut |_| true).unwrap();
    p0.rebuild_rollups(&site0, &mut |_| true).unwrap();
    assert_eq!(p3.rollup_zone(&site0).unwrap().as_deref(), Some(SITES[0].1));
    let used = check_same_answers(&whole, &p3, &site0_shapes);
    assert!(used * 3 > site0_shapes.len(), "{used}");
}

/// A rebuild in ClickHouse gives, row for row, the rollups that keeping on write gives in
/// the same zone: the same records kept in the new zone from the start in one database,
/// rebuilt after the zone changed in another.
#[test]
fn a_rebuild_equals_keeping_on_write() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let own = records(&fixed_events(300), 10);
    let moved: chrono_tz::Tz = "Pacific/Auckland".parse().unwrap();
    let site0 = footfall_core::SiteId::parse(SITES[0].0).unwrap();
    let open = |db: &TestDb, zones: Arc<Mutex<HashMap<String, chrono_tz::Tz>>>| {
        let mut ch = ChStore::open(&server(), &db.name, 3).unwrap();
        ch.keep_rollups(Arc::new(move || Ok(zones.lock().unwrap().clone())));
        ch
    };
    let configured: HashMap<String, chrono_tz::Tz> = SITES
        .iter()
        .map(|(d, tz)| (d.to_string(), tz.parse().unwrap()))
        .collect();
    let kept_zones = Arc::new(Mutex::new(configured.clone()));
    kept_zones.lock().unwrap().insert(SITES[0].0.into(), moved);
    let kept = TestDb::new("kept");
    open(&kept, kept_zones).apply(&own).unwrap();
    let zones = Arc::new(Mutex::new(configured));
    let rebuilt = TestDb::new("rebuilt");
    let mut ch = open(&rebuilt, zones.clone());
    ch.apply(&own).unwrap();
    zones.lock().unwrap().insert(SITES[0].0.into(), moved);
    ch.rebuild_rollups(&site0, &mut |_| true).unwrap();
    let rows = |db: &TestDb| {
        sql_text(
            db,
            "SELECT grain, bucket, dim, value, sum(visitors), sum(pageviews), sum(events), sum(visits), \
             sum(bounces), sum(duration_ms), sum(visit_pageviews), sum(scroll_sum), sum(scroll_visits), \
             sum(page_time_ms), sum(page_time_visits) FROM rollups WHERE site = 'a.com' \
             GROUP BY grain, bucket, dim, value ORDER BY grain, bucket, dim, value",
        )
    };
    let want = rows(&kept);
    assert!(want.lines().count() > 100, "{want}");
    assert_eq!(rows(&rebuilt), want);
    // Complete in the new zone, also once merges ran.
    sql_text(&rebuilt, "OPTIMIZE TABLE rollup_sites FINAL");
    assert!(ch.stale_rollups().unwrap().is_empty());
    assert_eq!(
        ch.rollup_zone(&site0).unwrap().as_deref(),
        Some(moved.name())
    );
    assert_eq!(
        rollup_sums(&rebuilt),
        rollup_sums(&kept),
        "the other sites' rows"
    );
}
