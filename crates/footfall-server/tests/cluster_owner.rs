//! Partition owners over a real Redis: events acknowledged by the inbox writer are
//! sequenced into the partition logs exactly once while owners crash and hand over, and
//! every decision equals what one uninterrupted sequencer would have made (visits are not
//! split, dedup is not lost across a takeover).
//!
//! Needs FOOTFALL_TEST_REDIS (set by `scripts/test`); fails loudly without it.

use footfall_core::identify::partition::{route, Sender};
use footfall_core::identify::Config as IdentifyConfig;
use footfall_core::live::{ActiveVisitors, LiveModel};
use footfall_core::record::{CommitRecord, Disposition};
use footfall_core::sequence::Sequencer;
use footfall_core::{EnrichedEvent, EventKind, SiteId, Timestamp, VisitorId};
use footfall_server::cluster::inbox_writer::{encode_entry, InboxWriter};
use footfall_server::cluster::live::{follow, ClusterLive, FollowedPartition};
use footfall_server::cluster::owner::{Exit, Owner, OwnerStats};
use footfall_server::cluster::partition_id_base;
use footfall_server::cluster::snapshot::PartitionSnapshot;
use footfall_server::pipeline::live::LiveState;
use footfall_server::{ManualClock, SystemClock};
use footfall_store::redis::{
    partition_tag, Conn, Inbox, Lease, RedisLog, RedisLogOptions, RedisSnapshot, Role,
};
use footfall_store::{Log, LogPosition};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTS: u32 = 3;
const IDENTIFY: IdentifyConfig = IdentifyConfig {
    visit_gap_ms: 30 * 60_000,
    dedup_window_ms: 60_000,
};

fn conn() -> Arc<Conn> {
    let url = std::env::var("FOOTFALL_TEST_REDIS")
        .expect("FOOTFALL_TEST_REDIS is not set: run the tests through scripts/test");
    Arc::new(Conn::open(&url).unwrap())
}

/// A node's live state, following every partition's log on its own thread.
struct Follower {
    live: Arc<ClusterLive>,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

fn start_follower(prefix: &str) -> Follower {
    let live = Arc::new(ClusterLive::new(PARTS, 5 * 60_000));
    let parts = (0..PARTS)
        .map(|p| FollowedPartition {
            log: RedisLog::open(conn(), prefix, p, RedisLogOptions::default()).unwrap(),
            live_snapshot: RedisSnapshot::new(conn(), prefix, p, "live"),
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (l, s) = (live.clone(), stop.clone());
    let thread = std::thread::spawn(move || follow(l, parts, s, None));
    Follower { live, stop, thread }
}

impl Follower {
    fn stop(self) {
        self.stop.store(true, SeqCst);
        self.thread.join().unwrap();
    }
}

/// One node's owners, one thread per partition.
struct Node {
    stop: Arc<AtomicBool>,
    exit: Arc<Mutex<Exit>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stats: Vec<Arc<OwnerStats>>,
}

fn start_node(prefix: &str, name: &str) -> Node {
    start_node_with_clock(prefix, name, Arc::new(SystemClock))
}

fn start_node_with_clock(prefix: &str, name: &str, clock: Arc<dyn footfall_server::Clock>) -> Node {
    let stop = Arc::new(AtomicBool::new(false));
    let exit = Arc::new(Mutex::new(Exit::Graceful));
    let mut threads = Vec::new();
    let mut stats = Vec::new();
    for part in 0..PARTS {
        let c = conn();
        let key = format!("{}:seq-lease", partition_tag(prefix, part));
        let log = RedisLog::open(
            c.clone(),
            prefix,
            part,
            RedisLogOptions {
                role: Role::Writer { fence: None },
                ..Default::default()
            },
        )
        .unwrap();
        let s = Arc::new(OwnerStats::default());
        let owner = Owner {
            part,
            lease: Lease::new(c.clone(), key, name, Duration::from_millis(1500)),
            log,
            // On this owner's connection, not the writer's: it blocks in XREAD there.
            inbox: Arc::new(Inbox::new(c.clone(), prefix, PARTS, 1_000_000)),
            snapshot: PartitionSnapshot::new(RedisSnapshot::new(
                c.clone(),
                prefix,
                part,
                "sequencer",
            )),
            live_snapshot: PartitionSnapshot::new(RedisSnapshot::new(c, prefix, part, "live")),
            active_timeout_ms: 5 * 60_000,
            identify: IDENTIFY,
            clock: clock.clone(),
            max_batch: 64,
            snapshot_every: Duration::from_millis(150),
            poll: Duration::from_millis(50),
            stats: s.clone(),
        };
        let (stop, exit) = (stop.clone(), exit.clone());
        threads.push(std::thread::spawn(move || {
            owner.run(stop, move || *exit.lock().unwrap())
        }));
        stats.push(s);
    }
    Node {
        stop,
        exit,
        threads,
        stats,
    }
}

impl Node {
    fn stop(self, exit: Exit) -> Vec<Arc<OwnerStats>> {
        *self.exit.lock().unwrap() = exit;
        self.stop.store(true, SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        self.stats
    }
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Request `r` of client `c`: 1–3 page views of one of 40 visitors, each with a unique
/// path; every 7th request repeats its first page view (a duplicate for dedup to catch).
fn request(c: usize, r: usize) -> Vec<(u64, EnrichedEvent)> {
    let site = SiteId::parse("a.com").unwrap();
    let who = (c * 31 + r * 7) % 40;
    let ip = format!("10.0.0.{who}");
    let rt = route(
        &site,
        Sender::Request {
            ip: &ip,
            user_agent: "UA",
        },
    );
    let now = Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    let mut out: Vec<(u64, EnrichedEvent)> = (0..1 + (c + r) % 3)
        .map(|i| {
            let path = format!("/c{c}/r{r}/{i}");
            let ev = EnrichedEvent::bare(
                site.clone(),
                EventKind::Pageview,
                now,
                &path,
                VisitorId(who as u64 + 1),
            );
            (rt, ev)
        })
        .collect();
    if r.is_multiple_of(7) {
        let dup = out[0].clone();
        out.push(dup);
    }
    out
}

#[test]
fn owners_sequence_every_acknowledged_event_once_across_crashes_and_handovers() {
    let prefix = format!("t{:016x}", rand::random::<u64>());
    let inbox = Arc::new(Inbox::new(conn(), &prefix, PARTS, 1_000_000));
    // Three writer threads, each on a connection of its own, as a node runs them.
    let writers = (0..3)
        .map(|_| Arc::new(Inbox::new(conn(), &prefix, PARTS, 1_000_000)))
        .collect();
    let writer = InboxWriter::spawn(writers, 256).unwrap();
    // A node whose live state follows the logs from the start.
    let early = start_follower(&prefix);
    // A owns every partition before B starts, so A's crash must be taken over by B.
    let a = start_node(&prefix, "node-a");
    wait_until("A to own every partition", || {
        a.stats
            .iter()
            .map(|s| s.takeovers.load(SeqCst))
            .sum::<u64>()
            == PARTS as u64
    });
    let b = start_node(&prefix, "node-b");

    const CLIENTS: usize = 6;
    const REQUESTS: usize = 120;
    const PHASE: usize = REQUESTS / 3;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let requests_done = Arc::new(AtomicUsize::new(0));
    // Clients send in three phases; between them the test brings a fault.
    let (phase_tx, phase_rx) = tokio::sync::watch::channel(0usize);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (writer, acked, done) = (writer.clone(), acked.clone(), requests_done.clone());
            let mut phase = phase_rx.clone();
            rt.spawn(async move {
                for r in 0..REQUESTS {
                    phase.wait_for(|p| *p >= r / PHASE).await.unwrap();
                    let events = request(c, r);
                    let paths: Vec<String> =
                        events.iter().map(|(_, e)| e.pathname.clone()).collect();
                    writer.write(events).await.expect("inbox write");
                    acked.lock().unwrap().extend(paths);
                    done.fetch_add(1, SeqCst);
                }
            })
        })
        .collect();
    let drained = || (0..PARTS).all(|p| inbox.read(p, "0-0", 1, 1).unwrap().is_empty());
    let takeovers = |n: &Node| {
        n.stats
            .iter()
            .map(|s| s.takeovers.load(SeqCst))
            .sum::<u64>()
    };

    // Phase 1 under A; then A dies as in a crash (its leases lapse, nothing released).
    wait_until("phase 1", || requests_done.load(SeqCst) == CLIENTS * PHASE);
    wait_until("A to sequence phase 1", drained);
    let a_stats = a.stop(Exit::Abandon);
    // Phase 2 is acknowledged with no live owner; B takes over after the TTL.
    phase_tx.send(1).unwrap();
    wait_until("phase 2", || {
        requests_done.load(SeqCst) == 2 * CLIENTS * PHASE
    });
    wait_until("B to take over", || takeovers(&b) >= PARTS as u64);
    wait_until("B to sequence phase 2", drained);
    // Phase 3: C starts, and B leaves gracefully while requests arrive.
    let c = start_node(&prefix, "node-c");
    phase_tx.send(2).unwrap();
    wait_until("some of phase 3", || {
        requests_done.load(SeqCst) >= 2 * CLIENTS * PHASE + CLIENTS * PHASE / 2
    });
    let b_stats = b.stop(Exit::Graceful);
    for client in clients {
        rt.block_on(client).unwrap();
    }
    wait_until("the inboxes to drain", drained);
    let c_stats = c.stop(Exit::Graceful);

    // Every acknowledged event is in exactly one log record entry.
    let acked = acked.lock().unwrap().clone();
    let mut want: HashMap<String, usize> = HashMap::new();
    for p in &acked {
        *want.entry(p.clone()).or_default() += 1;
    }
    let mut got: HashMap<String, usize> = HashMap::new();
    let mut skipped = 0;
    // The live state one model makes of every record (all within two days, so the order
    // of partitions does not matter to day closing).
    let mut expected_live = LiveModel::new(Default::default(), ActiveVisitors::new(5 * 60_000));
    for part in 0..PARTS {
        let log = RedisLog::open(conn(), &prefix, part, RedisLogOptions::default()).unwrap();
        let mut seq = Sequencer::new(IDENTIFY, partition_id_base(part));
        let mut at = LogPosition(0);
        loop {
            let batch = log.read_after(at, 100, usize::MAX).unwrap();
            let Some(last) = batch.last().map(|(p, _)| *p) else {
                break;
            };
            for (pos, bytes) in batch {
                let rec = CommitRecord::decode(&bytes).unwrap();
                // The same decisions as one sequencer that saw every record in order.
                expected_live.apply(&rec);
                assert!(
                    seq.replay(pos.0, &rec),
                    "partition {part} record {pos} decided differently"
                );
                for e in &rec.entries {
                    *got.entry(e.event.pathname.clone()).or_default() += 1;
                    if matches!(e.disposition, Disposition::Skipped(_)) {
                        skipped += 1;
                    }
                }
            }
            at = last;
        }
    }
    assert_eq!(got, want, "acknowledged events vs the logs");

    // Live state: the node that followed from the start, and one that starts now from the
    // owners' live snapshots and the logs after them, both show what one model shows.
    let site = SiteId::parse("a.com").unwrap();
    let clock = ManualClock::new(Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    ));
    let want_live = |live: &dyn LiveState| {
        let mut want = expected_live.stats(&site, None);
        let got = live.snapshot(&site, &clock, None);
        want.version = got.version;
        (got, want)
    };
    let late = start_follower(&prefix);
    for (name, f) in [("early", &early), ("late", &late)] {
        wait_until("the follower to catch up", || {
            f.live.total_pageviews(&site)
                == expected_live.counters.site(&site).unwrap().total_pageviews
        });
        let (got, want) = want_live(f.live.as_ref());
        assert_eq!(got, want, "{name} follower");
        assert!(want.total_page_views > 0 && want.visits > 0);
    }
    early.stop();
    late.stop();
    let duplicates = (0..CLIENTS)
        .map(|_| (0..REQUESTS).filter(|r| r.is_multiple_of(7)).count())
        .sum::<usize>();
    assert_eq!(skipped, duplicates, "every repeated page view deduplicated");

    // The handovers happened: B took every partition from the crashed A, and C every one
    // from B. (A renewal stalled on a loaded machine only adds takeovers, so these are
    // lower bounds.)
    let sum =
        |s: &[Arc<OwnerStats>], f: fn(&OwnerStats) -> u64| -> u64 { s.iter().map(|x| f(x)).sum() };
    assert!(sum(&b_stats, |s| s.takeovers.load(SeqCst)) >= PARTS as u64);
    assert!(sum(&c_stats, |s| s.takeovers.load(SeqCst)) >= PARTS as u64);
    assert!(
        sum(&a_stats, |s| s.records.load(SeqCst)) > 0,
        "A sequenced before it died"
    );
    assert!(sum(&b_stats, |s| s.records.load(SeqCst)) > 0);
    let bad = sum(&a_stats, |s| s.bad_entries.load(SeqCst))
        + sum(&b_stats, |s| s.bad_entries.load(SeqCst))
        + sum(&c_stats, |s| s.bad_entries.load(SeqCst));
    assert_eq!(bad, 0);
}

#[test]
fn an_undecodable_inbox_entry_is_dropped_and_counted_not_retried_forever() {
    let prefix = format!("t{:016x}", rand::random::<u64>());
    let inbox = Arc::new(Inbox::new(conn(), &prefix, PARTS, 1_000_000));
    let events = request(0, 1);
    let part = footfall_core::identify::partition::partition(events[0].0, PARTS);
    let good = encode_entry(&events.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>()).unwrap();
    // Format 1 (this node's), but not a valid encoding.
    inbox
        .push(&[(part, b"\x01\xff\xff not postcard"), (part, &good)])
        .unwrap();
    let node = start_node(&prefix, "node-a");
    wait_until("the inbox to drain", || {
        inbox.read(part, "0-0", 1, 1).unwrap().is_empty()
    });
    let stats = node.stop(Exit::Graceful);
    let bad: u64 = stats.iter().map(|s| s.bad_entries.load(SeqCst)).sum();
    assert_eq!(bad, 1);
    let log = RedisLog::open(conn(), &prefix, part, RedisLogOptions::default()).unwrap();
    let records = log.read_after(LogPosition(0), 10, usize::MAX).unwrap();
    assert_eq!(records.len(), 1, "one record, of the good entry only");
    let rec = CommitRecord::decode(&records[0].1).unwrap();
    let paths: Vec<&str> = rec
        .entries
        .iter()
        .map(|e| e.event.pathname.as_str())
        .collect();
    let want: Vec<&str> = events.iter().map(|(_, e)| e.pathname.as_str()).collect();
    assert_eq!(paths, want);
}

#[test]
fn an_entry_of_a_newer_format_is_left_for_a_newer_node() {
    let prefix = format!("t{:016x}", rand::random::<u64>());
    let inbox = Arc::new(Inbox::new(conn(), &prefix, PARTS, 1_000_000));
    let mut newer = vec![footfall_server::cluster::inbox_writer::ENTRY_FORMAT + 1];
    newer.extend_from_slice(b"from a newer footfall");
    inbox.push(&[(1, newer.as_slice())]).unwrap();
    let node = start_node(&prefix, "node-old");
    wait_until("the old node to see it", || {
        node.stats
            .iter()
            .map(|s| s.newer_entries.load(SeqCst))
            .sum::<u64>()
            >= 1
    });
    let stats = node.stop(Exit::Graceful);
    assert_eq!(
        stats
            .iter()
            .map(|s| s.bad_entries.load(SeqCst))
            .sum::<u64>(),
        0
    );
    // Still there, and nothing was written for it.
    assert_eq!(inbox.read(1, "0-0", 10, 1).unwrap().len(), 1);
    let log = RedisLog::open(conn(), &prefix, 1, RedisLogOptions::default()).unwrap();
    assert_eq!(log.end(), LogPosition(0));
}

/// An owner that gets to a backlog long after it arrived (it was down, or behind) decides
/// as it would have on time: a visit's second page view, ten minutes after the first but
/// sequenced hours later, continues the visit instead of starting a new one.
#[test]
fn a_backlog_sequenced_hours_late_keeps_visits_whole() {
    let prefix = format!("t{:016x}", rand::random::<u64>());
    let inbox = Arc::new(Inbox::new(conn(), &prefix, PARTS, 1_000_000));
    let site = SiteId::parse("a.com").unwrap();
    let rt = route(
        &site,
        Sender::Request {
            ip: "10.9.9.9",
            user_agent: "UA",
        },
    );
    let part = footfall_core::identify::partition::partition(rt, PARTS);
    let t0 = 1_773_144_000_000;
    let view = |ts: i64, path: &str| {
        let ev = EnrichedEvent::bare(
            site.clone(),
            EventKind::Pageview,
            Timestamp(ts),
            path,
            VisitorId(7),
        );
        encode_entry(&[ev]).unwrap()
    };
    // The owner's clock: three hours after the traffic.
    let clock = ManualClock::new(Timestamp(t0 + 3 * 3_600_000));
    let log = RedisLog::open(conn(), &prefix, part, RedisLogOptions::default()).unwrap();
    inbox.push(&[(part, &view(t0, "/first"))]).unwrap();
    let node = start_node_with_clock(&prefix, "node-late", Arc::new(clock.clone()));
    wait_until("the first view to be sequenced", || {
        log.end() == LogPosition(1)
    });
    // Past the sequencer's eviction interval, so the next batch evicts first.
    clock.advance_ms(2 * 60_000);
    inbox
        .push(&[(part, &view(t0 + 10 * 60_000, "/second"))])
        .unwrap();
    wait_until("the second view to be sequenced", || {
        log.end() == LogPosition(2)
    });
    node.stop(Exit::Graceful);
    let sessions: Vec<_> = log
        .read_after(LogPosition(0), 10, usize::MAX)
        .unwrap()
        .iter()
        .map(|(_, bytes)| CommitRecord::decode(bytes).unwrap().entries[0].session)
        .collect();
    assert_eq!(sessions.len(), 2);
    assert!(sessions[0].is_some());
    assert_eq!(
        sessions[0], sessions[1],
        "one visit, not split by the delay"
    );
}
