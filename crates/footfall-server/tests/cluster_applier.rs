//! The partition applier against real Redis and ClickHouse: a chunk whose applier dies
//! after the events, after the visit rows, or after the marker (before the log is
//! trimmed) is redone exactly once by the applier that takes the partition over, and the
//! log is trimmed only behind what ClickHouse confirmed and the owner's snapshot.
//!
//! Needs FOOTFALL_TEST_REDIS and FOOTFALL_TEST_CLICKHOUSE (set by `scripts/test`).

use footfall_core::identify::Config as IdentifyConfig;
use footfall_core::record::{CommitRecord, Disposition};
use footfall_core::sequence::Sequencer;
use footfall_core::{EnrichedEvent, EventKind, SiteId, Timestamp, VisitorId};
use footfall_server::cluster::applier::{ApplierStats, PartitionApplier};
use footfall_server::cluster::partition_id_base;
use footfall_store::clickhouse::FlushStage;
use footfall_store::redis::{
    partition_tag, Conn, Lease, RedisLog, RedisLogOptions, RedisSnapshot, Role,
};
use footfall_store::{ChStore, Log, LogPosition};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PART: u32 = 2;
const RECORDS: u64 = 40;
const SNAPSHOT_AT: u64 = 30;

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the tests through scripts/test"))
}

fn conn() -> Arc<Conn> {
    Arc::new(Conn::open(&env("FOOTFALL_TEST_REDIS")).unwrap())
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes RECORDS commit records (3 page views each, 25 visitors) into the partition's
/// log and a sequencer snapshot position; returns the records.
fn fill_log(prefix: &str) -> Vec<CommitRecord> {
    let c = conn();
    let writer = RedisLog::open(
        c.clone(),
        prefix,
        PART,
        RedisLogOptions {
            role: Role::Writer { fence: None },
            ..Default::default()
        },
    )
    .unwrap();
    let cfg = IdentifyConfig {
        visit_gap_ms: 30 * 60_000,
        dedup_window_ms: 60_000,
    };
    let mut seq = Sequencer::new(cfg, partition_id_base(PART));
    let site = SiteId::parse("a.com").unwrap();
    let t0 = 1_780_000_000_000i64;
    let mut out = Vec::new();
    for pos in 1..=RECORDS {
        let events: Vec<EnrichedEvent> = (0..3)
            .map(|i| {
                let n = pos * 3 + i;
                EnrichedEvent::bare(
                    site.clone(),
                    EventKind::Pageview,
                    Timestamp(t0 + n as i64 * 1_000),
                    &format!("/p{}", n % 7),
                    VisitorId(n % 25 + 1),
                )
            })
            .collect();
        let rec = seq.sequence(pos, Timestamp(t0 + pos as i64 * 3_000), events);
        writer.append(&[&rec.encode().unwrap()]).unwrap();
        out.push(rec);
    }
    RedisSnapshot::new(c.clone(), prefix, PART, "sequencer")
        .write(None, SNAPSHOT_AT, b"state")
        .unwrap();
    // The live snapshot is newer: the log is kept behind the older of the two.
    RedisSnapshot::new(c, prefix, PART, "live")
        .write(None, SNAPSHOT_AT + 5, b"state")
        .unwrap();
    out
}

struct Ch {
    db: String,
}

impl Ch {
    fn query(&self, sql: &str) -> String {
        let resp = reqwest::blocking::Client::new()
            .post(format!(
                "{}/?database={}",
                env("FOOTFALL_TEST_CLICKHOUSE"),
                self.db
            ))
            .body(format!("{sql} FORMAT TabSeparated"))
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "{sql}");
        resp.text().unwrap().trim().to_string()
    }
}

impl Drop for Ch {
    fn drop(&mut self) {
        let _ = reqwest::blocking::Client::new()
            .post(env("FOOTFALL_TEST_CLICKHOUSE"))
            .body(format!("DROP DATABASE IF EXISTS {}", self.db))
            .send();
    }
}

fn applier(
    prefix: &str,
    db: &str,
    node: &str,
    poll: Duration,
) -> (PartitionApplier, Arc<ApplierStats>) {
    let c = conn();
    let stats = Arc::new(ApplierStats::default());
    let key = format!("{}:apply-lease", partition_tag(prefix, PART));
    let a = PartitionApplier {
        part: PART,
        lease: Lease::new(c.clone(), key, node, Duration::from_millis(500)),
        log: RedisLog::open(c.clone(), prefix, PART, RedisLogOptions::default()).unwrap(),
        store: Box::new(ChStore::open(&env("FOOTFALL_TEST_CLICKHOUSE"), db, PART as u16).unwrap()),
        snapshots: vec![
            RedisSnapshot::new(c.clone(), prefix, PART, "sequencer"),
            RedisSnapshot::new(c, prefix, PART, "live"),
        ],
        chunk_records: 8,
        chunk_bytes: 1 << 20,
        poll,
        stats: stats.clone(),
        halt_on_failure: false,
    };
    (a, stats)
}

fn with_failing_store(
    prefix: &str,
    db: &str,
    stage: FlushStage,
) -> (PartitionApplier, Arc<ApplierStats>) {
    let (mut a, stats) = applier(prefix, db, "node-a", Duration::from_millis(20));
    let mut store = ChStore::open(&env("FOOTFALL_TEST_CLICKHOUSE"), db, PART as u16).unwrap();
    store.fail_at(Some(stage));
    a.store = Box::new(store);
    a.halt_on_failure = true;
    (a, stats)
}

#[test]
fn a_chunk_killed_at_any_point_is_redone_exactly_once_by_the_next_applier() {
    for (i, stage) in [
        FlushStage::AfterEvents,
        FlushStage::AfterSessions,
        FlushStage::AfterMarker,
    ]
    .into_iter()
    .enumerate()
    {
        let prefix = format!("t{:016x}", rand::random::<u64>());
        let ch = Ch {
            db: format!("footfall_test_applier_{}_{i}", std::process::id()),
        };
        let records = fill_log(&prefix);
        let log = RedisLog::open(conn(), &prefix, PART, RedisLogOptions::default()).unwrap();

        // A dies in its first chunk at `stage`, keeping its lease (as in a crash).
        let (a, a_stats) = with_failing_store(&prefix, &ch.db, stage);
        a.run(Arc::new(AtomicBool::new(false)), || false);
        assert_eq!(a_stats.failures.load(SeqCst), 1, "{stage:?}");
        assert_eq!(a_stats.chunks.load(SeqCst), 0, "{stage:?}");
        assert_eq!(
            log.first(),
            LogPosition(1),
            "{stage:?}: trimmed before ClickHouse confirmed"
        );

        // B takes the partition over once A's lease lapses, and applies everything.
        let (b, b_stats) = applier(&prefix, &ch.db, "node-b", Duration::from_millis(20));
        let stop_b = Arc::new(AtomicBool::new(false));
        let stop = stop_b.clone();
        let b_thread = std::thread::spawn(move || b.run(stop, || true));
        wait_until("B to apply the log", || {
            b_stats.applied.load(SeqCst) == RECORDS
        });
        wait_until("B to trim", || log.first() == LogPosition(SNAPSHOT_AT + 1));
        stop_b.store(true, SeqCst);
        b_thread.join().unwrap();
        assert_eq!(b_stats.failures.load(SeqCst), 0, "{stage:?}");

        // Exactly once: the stored events and visits are the records', no more, no less.
        let stored: Vec<u64> = records
            .iter()
            .flat_map(|r| r.entries.iter())
            .filter(|e| e.disposition == Disposition::Stored)
            .map(|e| e.id.0)
            .collect();
        let (rows, distinct) = {
            let t = ch.query("SELECT count(), uniqExact(event_id) FROM events");
            let mut it = t.split('\t').map(|x| x.parse::<usize>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        };
        assert_eq!((rows, distinct), (stored.len(), stored.len()), "{stage:?}");
        let ids: HashSet<u64> = ch
            .query("SELECT event_id FROM events")
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(
            ids,
            stored.iter().copied().collect::<HashSet<u64>>(),
            "{stage:?}"
        );
        let sessions: HashSet<u64> = records
            .iter()
            .flat_map(|r| r.entries.iter())
            .filter_map(|e| e.session.map(|s| s.0))
            .collect();
        let live_sessions = ch.query(
            "SELECT count() FROM (SELECT session_id FROM sessions GROUP BY session_id HAVING sum(sign) > 0)",
        );
        assert_eq!(live_sessions, sessions.len().to_string(), "{stage:?}");
        let doubled = ch.query(
            "SELECT count() FROM (SELECT session_id, version FROM sessions WHERE sign = 1 GROUP BY session_id, version HAVING count() > 1)",
        );
        assert_eq!(doubled, "0", "{stage:?}: a visit version stored twice");
    }
}
