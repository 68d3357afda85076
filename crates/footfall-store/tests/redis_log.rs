//! The Redis log against a real Redis: the `Log` contract (positions, limits, trim,
//! subscribe), fencing by lease, lost replies, and durability across a SIGKILL of Redis.
//!
//! Needs FOOTFALL_TEST_REDIS (set by `scripts/test`); fails loudly without it.

use footfall_store::redis::{Conn, Lease, RedisLog, RedisLogOptions, Role, Token};
use footfall_store::{Log, LogError, LogPosition};
use proptest::prelude::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn redis_url() -> String {
    std::env::var("FOOTFALL_TEST_REDIS")
        .expect("FOOTFALL_TEST_REDIS is not set: run the tests through scripts/test")
}

fn conn(url: &str) -> Arc<Conn> {
    Arc::new(Conn::open(url).expect("redis url"))
}

/// A prefix no other test (or earlier run) uses.
fn prefix() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

fn writer(c: &Arc<Conn>, prefix: &str, fence: Option<(String, Token)>) -> RedisLog {
    let opts = RedisLogOptions {
        role: Role::Writer { fence },
        ..Default::default()
    };
    RedisLog::open(c.clone(), prefix, 0, opts).expect("open writer")
}

fn reader(c: &Arc<Conn>, prefix: &str) -> RedisLog {
    RedisLog::open(c.clone(), prefix, 0, RedisLogOptions::default()).expect("open reader")
}

fn payload(pos: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (pos as usize * 31 + i) as u8).collect()
}

fn append(log: &dyn Log, group: &[Vec<u8>]) -> Result<LogPosition, LogError> {
    let refs: Vec<&[u8]> = group.iter().map(|r| r.as_slice()).collect();
    log.append(&refs)
}

fn read_all(log: &dyn Log, after: u64) -> Vec<(LogPosition, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = LogPosition(after);
    loop {
        let got = log.read_after(at, 7, usize::MAX).expect("read");
        let Some(last) = got.last() else { break };
        at = last.0;
        out.extend(got);
    }
    out
}

#[test]
fn redis_log_round_trip_limits_and_reopen() {
    let c = conn(&redis_url());
    let p = prefix();
    let log = writer(&c, &p, None);
    assert_eq!(log.end(), LogPosition(0));
    assert_eq!(log.first(), LogPosition(1));
    assert!(log.read_after(LogPosition(0), 10, 100).unwrap().is_empty());

    let mut expected = Vec::new();
    for (g, size) in [1usize, 5, 2, 9].into_iter().enumerate() {
        let group: Vec<Vec<u8>> = (0..size)
            .map(|i| payload(expected.len() as u64 + i as u64 + 1, 10 + g * 100 + i))
            .collect();
        let end = append(&log, &group).unwrap();
        expected.extend(group);
        assert_eq!(end, LogPosition(expected.len() as u64));
    }
    let want: Vec<(LogPosition, Vec<u8>)> = expected
        .iter()
        .enumerate()
        .map(|(i, r)| (LogPosition(i as u64 + 1), r.clone()))
        .collect();
    assert_eq!(read_all(&log, 0), want);
    assert_eq!(read_all(&log, 4), want[4..].to_vec());
    // Limits: at most max_records; max_bytes stops before the record that passes it, but
    // the first record always comes back.
    assert_eq!(
        log.read_after(LogPosition(0), 3, usize::MAX).unwrap(),
        want[..3]
    );
    let first_two: usize = want[..2].iter().map(|r| r.1.len()).sum();
    assert_eq!(
        log.read_after(LogPosition(0), 100, first_two).unwrap(),
        want[..2]
    );
    assert_eq!(log.read_after(LogPosition(0), 100, 1).unwrap(), want[..1]);
    assert!(log.read_after(log.end(), 10, 100).unwrap().is_empty());
    let total: u64 = expected.iter().map(|r| r.len() as u64).sum();
    assert_eq!(log.size_bytes(), total);

    // Another handle (another node) sees the same log.
    let other = reader(&conn(&redis_url()), &p);
    assert_eq!(other.end(), LogPosition(expected.len() as u64));
    assert_eq!(other.first(), LogPosition(1));
    assert_eq!(read_all(&other, 0), want);
}

#[test]
fn redis_log_hostile_input_changes_nothing() {
    let c = conn(&redis_url());
    let p = prefix();
    let opts = RedisLogOptions {
        role: Role::Writer { fence: None },
        max_record_bytes: 1000,
        ..Default::default()
    };
    let log = RedisLog::open(c.clone(), &p, 0, opts).unwrap();
    append(&log, &[payload(1, 10)]).unwrap();
    let err = append(&log, &[payload(2, 10), payload(3, 1001)]).unwrap_err();
    assert!(matches!(err, LogError::TooLarge(1001)), "{err}");
    // Binary payloads with every byte value, including what Lua or RESP might mangle.
    let all: Vec<u8> = (0..=255u8).chain([b'\r', b'\n', 0, b'-', b'+']).collect();
    append(&log, std::slice::from_ref(&all)).unwrap();
    assert_eq!(log.end(), LogPosition(2));
    assert_eq!(read_all(&log, 0)[1], (LogPosition(2), all));
    // Empty group: no change.
    assert_eq!(log.append(&[]).unwrap(), LogPosition(2));
    assert_eq!(reader(&c, &p).end(), LogPosition(2));
}

#[test]
fn redis_log_trim_is_exact_and_remembers_the_end() {
    let c = conn(&redis_url());
    let p = prefix();
    let log = writer(&c, &p, None);
    let records: Vec<Vec<u8>> = (1..=5000u64).map(|i| payload(i, 20)).collect();
    for chunk in records.chunks(500) {
        append(&log, chunk).unwrap();
    }
    // More than one trim script's step, so the loop is exercised.
    let freed = log.trim(LogPosition(4321)).unwrap();
    assert_eq!(freed, 4321 * 20);
    assert_eq!(log.first(), LogPosition(4322));
    assert_eq!(log.size_bytes(), (5000 - 4321) * 20);
    assert!(matches!(
        log.read_after(LogPosition(10), 5, usize::MAX),
        Err(LogError::Trimmed(11))
    ));
    let rest = read_all(&log, 4321);
    assert_eq!(rest.len(), 5000 - 4321);
    assert_eq!(rest[0], (LogPosition(4322), records[4321].clone()));
    // Trimming again below what is gone frees nothing.
    assert_eq!(log.trim(LogPosition(100)).unwrap(), 0);

    // Trim everything: the end survives, and the next append continues after it.
    log.trim(LogPosition(5000)).unwrap();
    assert_eq!(log.first(), LogPosition(5001));
    assert_eq!(log.size_bytes(), 0);
    assert!(matches!(
        log.read_after(LogPosition(4999), 5, usize::MAX),
        Err(LogError::Trimmed(5000))
    ));
    let reopened = writer(&c, &p, None);
    assert_eq!(reopened.end(), LogPosition(5000));
    assert_eq!(
        append(&reopened, &[payload(5001, 3)]).unwrap(),
        LogPosition(5001)
    );
    assert_eq!(read_all(&reopened, 5000).len(), 1);
}

#[test]
fn redis_log_first_position_continues_existing_storage() {
    let c = conn(&redis_url());
    let p = prefix();
    let opts = RedisLogOptions {
        role: Role::Writer { fence: None },
        first_position: 77,
        ..Default::default()
    };
    let log = RedisLog::open(c.clone(), &p, 0, opts).unwrap();
    assert_eq!(log.end(), LogPosition(76));
    assert_eq!(log.first(), LogPosition(77));
    assert_eq!(append(&log, &[payload(77, 4)]).unwrap(), LogPosition(77));
    assert_eq!(read_all(&log, 76), vec![(LogPosition(77), payload(77, 4))]);
}

#[test]
fn redis_log_second_writer_conflicts_and_changes_nothing() {
    let c = conn(&redis_url());
    let p = prefix();
    let a = writer(&c, &p, None);
    let b = writer(&conn(&redis_url()), &p, None);
    append(&a, &[payload(1, 5)]).unwrap();
    // b still believes the end is 0.
    let err = append(&b, &[payload(9, 5)]).unwrap_err();
    assert!(matches!(err, LogError::Conflict(_)), "{err}");
    assert_eq!(read_all(&a, 0), vec![(LogPosition(1), payload(1, 5))]);
    // Having seen the conflict, b learns the real end and can go on.
    assert_eq!(b.end(), LogPosition(1));
    assert_eq!(append(&b, &[payload(2, 5)]).unwrap(), LogPosition(2));
}

/// Waits (bounded) until the lease key is gone, as it is after its TTL.
fn wait_expired(lease: &Lease) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while lease.holder().unwrap().is_some() {
        assert!(Instant::now() < deadline, "lease did not expire");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn redis_lease_fences_a_writer_whose_lease_passed_on() {
    let url = redis_url();
    let p = prefix();
    let key = format!("{}:seq-lease", footfall_store::redis::partition_tag(&p, 0));
    // Long enough that a stall between taking the lease and appending (a loaded
    // machine) does not let it lapse early.
    let ttl = Duration::from_millis(1500);
    let lease_a = Lease::new(conn(&url), key.clone(), "node-a", ttl);
    let lease_b = Lease::new(conn(&url), key.clone(), "node-b", ttl);

    let token_a = lease_a.acquire_or_renew(None).unwrap().expect("free lease");
    assert_eq!(lease_b.acquire_or_renew(None).unwrap(), None, "held by a");
    assert_eq!(
        lease_a.acquire_or_renew(Some(&token_a)).unwrap(),
        Some(token_a.clone()),
        "renewal keeps the token"
    );
    let log_a = writer(&conn(&url), &p, Some((key.clone(), token_a.clone())));
    append(&log_a, &[payload(1, 8)]).unwrap();

    // a stalls past its TTL; b takes over with a larger epoch.
    wait_expired(&lease_a);
    let token_b = lease_b
        .acquire_or_renew(None)
        .unwrap()
        .expect("expired lease");
    assert!(token_b.epoch() > token_a.epoch());
    let log_b = writer(&conn(&url), &p, Some((key.clone(), token_b.clone())));
    assert_eq!(log_b.end(), LogPosition(1));

    // a wakes up: its append is refused inside Redis, and it cannot renew.
    let err = append(&log_a, &[payload(2, 8)]).unwrap_err();
    assert!(matches!(err, LogError::Fenced), "{err}");
    assert_eq!(lease_a.acquire_or_renew(Some(&token_a)).unwrap(), None);
    assert_eq!(append(&log_b, &[payload(2, 9)]).unwrap(), LogPosition(2));
    assert_eq!(
        read_all(&log_b, 0),
        vec![
            (LogPosition(1), payload(1, 8)),
            (LogPosition(2), payload(2, 9))
        ]
    );

    // Release only by the holder; afterwards the lease is free at once.
    assert!(!lease_a.release(&token_a).unwrap());
    assert!(lease_b.release(&token_b).unwrap());
    let token_c = lease_a.acquire_or_renew(None).unwrap().expect("released");
    assert!(token_c.epoch() > token_b.epoch());
}

#[test]
fn redis_log_subscribe_sees_another_nodes_appends() {
    let url = redis_url();
    let p = prefix();
    let w = writer(&conn(&url), &p, None);
    let r = reader(&conn(&url), &p);
    let mut rx = r.subscribe();
    assert_eq!(*rx.borrow_and_update(), LogPosition(0));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    for n in 1..=3u64 {
        append(&w, &[payload(n, 4)]).unwrap();
        rt.block_on(async {
            // The bound only turns a hang into a failure.
            while *rx.borrow_and_update() < LogPosition(n) {
                tokio::time::timeout(Duration::from_secs(10), rx.changed())
                    .await
                    .expect("no change seen within 10 s")
                    .expect("watch closed");
            }
        });
    }
    assert_eq!(r.end(), LogPosition(3));
}

/// A TCP proxy in front of Redis that, when armed, lets the next request through but
/// throws its reply away and cuts the connection: the write happened, the writer cannot
/// know.
struct LossyProxy {
    addr: String,
    drop_next_reply: Arc<AtomicBool>,
}

fn lossy_proxy(upstream: &str) -> LossyProxy {
    let upstream = upstream
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("redis://{}", listener.local_addr().unwrap());
    let drop_next_reply = Arc::new(AtomicBool::new(false));
    let armed = drop_next_reply.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while let Ok(n) = c_in.read(&mut buf) {
                    if n == 0 || s_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
            let armed = armed.clone();
            std::thread::spawn(move || {
                let (mut s_in, mut c_out) = (server, client);
                let mut buf = [0u8; 65536];
                while let Ok(n) = s_in.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if armed.swap(false, Ordering::SeqCst) {
                        let _ = c_out.shutdown(std::net::Shutdown::Both);
                        let _ = s_in.shutdown(std::net::Shutdown::Both);
                        break;
                    }
                    if c_out.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    LossyProxy {
        addr,
        drop_next_reply,
    }
}

#[test]
fn redis_log_lost_reply_is_resolved_not_guessed() {
    let url = redis_url();
    let proxy = lossy_proxy(&url);
    let p = prefix();
    let w = writer(&conn(&proxy.addr), &p, None);
    append(&w, &[payload(1, 4)]).unwrap();
    // The group goes in but its reply is lost: the writer asks Redis and finds it.
    proxy.drop_next_reply.store(true, Ordering::SeqCst);
    assert_eq!(
        append(&w, &[payload(2, 4), payload(3, 4)]).unwrap(),
        LogPosition(3)
    );
    assert!(
        !proxy.drop_next_reply.load(Ordering::SeqCst),
        "the proxy did not drop a reply"
    );
    assert_eq!(read_all(&reader(&conn(&url), &p), 0).len(), 3);
    assert_eq!(append(&w, &[payload(4, 4)]).unwrap(), LogPosition(4));
}

#[test]
fn redis_log_append_given_up_can_never_land_later() {
    // Redis paused: the append times out. The writer voids it before answering, so if the
    // request was still queued in Redis it is refused when Redis resumes.
    let url = redis_url();
    let p = prefix();
    let mut slow = Conn::open(&url).unwrap();
    slow.set_timeout(Duration::from_millis(300));
    let w = writer(&Arc::new(slow), &p, None);
    append(&w, &[payload(1, 4)]).unwrap();
    let admin = conn(&url);
    let _: () = admin
        .with(|c| {
            redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(700)
                .arg("WRITE")
                .query(c)
        })
        .unwrap();
    let err = append(&w, &[payload(2, 4)]).unwrap_err();
    assert!(matches!(err, LogError::Unavailable(_)), "{err}");
    let r = reader(&conn(&url), &p);
    assert_eq!(r.end(), LogPosition(1));
    assert_eq!(read_all(&r, 0).len(), 1);
    // The writer goes on from the true end.
    assert_eq!(append(&w, &[payload(2, 5)]).unwrap(), LogPosition(2));
    assert_eq!(read_all(&r, 0)[1], (LogPosition(2), payload(2, 5)));
}

/// A private Redis persisting as production must (AOF, fsync before every reply), so the
/// test may SIGKILL it.
struct PrivateRedis {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivateRedis {
    fn start(dir: tempfile::TempDir, port: u16) -> PrivateRedis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", dir.path().to_str().unwrap()])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run the tests through scripts/test");
        let url = format!("redis://127.0.0.1:{port}");
        let c = Conn::open(&url).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let pong: Result<String, _> = c.with(|c| redis::cmd("PING").query(c));
            if pong.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "private redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        PrivateRedis {
            child,
            url,
            dir,
            port,
        }
    }

    fn kill(mut self) -> (tempfile::TempDir, u16) {
        // SIGKILL: no chance to flush anything on the way out.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        (self.dir, self.port)
    }
}

#[test]
fn redis_log_acknowledged_groups_survive_sigkill_of_redis() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let redis = PrivateRedis::start(tempfile::tempdir().unwrap(), port);
    let p = prefix();
    let w = writer(&conn(&redis.url), &p, None);
    let mut acked = Vec::new();
    for g in 0..200u64 {
        let group: Vec<Vec<u8>> = (0..3).map(|i| payload(g * 3 + i + 1, 50)).collect();
        append(&w, &group).unwrap();
        acked.extend(group);
    }
    w.trim(LogPosition(30)).unwrap();
    drop(w);
    let (dir, port) = redis.kill();
    let redis = PrivateRedis::start(dir, port);
    let r = reader(&conn(&redis.url), &p);
    assert_eq!(r.end(), LogPosition(600));
    assert_eq!(r.first(), LogPosition(31));
    let got = read_all(&r, 30);
    let want: Vec<(LogPosition, Vec<u8>)> = acked
        .into_iter()
        .enumerate()
        .skip(30)
        .map(|(i, r)| (LogPosition(i as u64 + 1), r))
        .collect();
    assert_eq!(got, want);
    assert_eq!(r.size_bytes(), 570 * 50);
    redis.kill();
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<usize>),
    Trim(u64),
    Read {
        after: u64,
        max_records: usize,
        max_bytes: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec(0usize..300, 1..6).prop_map(Op::Append),
        1 => (0u64..40).prop_map(Op::Trim),
        3 => (0u64..40, 1usize..8, 1usize..900)
            .prop_map(|(after, max_records, max_bytes)| Op::Read { after, max_records, max_bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// Any sequence of appends, trims and reads answers as a plain vector would.
    #[test]
    fn redis_log_behaves_like_a_vector(ops in prop::collection::vec(op(), 1..25)) {
        let c = conn(&redis_url());
        let p = prefix();
        let log = writer(&c, &p, None);
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut first = 1u64;
        for op in ops {
            match op {
                Op::Append(sizes) => {
                    let base = model.len() as u64;
                    let group: Vec<Vec<u8>> = sizes.iter().enumerate()
                        .map(|(i, &n)| payload(base + i as u64 + 1, n)).collect();
                    let end = append(&log, &group).unwrap();
                    model.extend(group);
                    prop_assert_eq!(end, LogPosition(model.len() as u64));
                }
                Op::Trim(upto) => {
                    let upto = upto.min(model.len() as u64);
                    let expect_freed: u64 = if upto >= first {
                        model[(first - 1) as usize..upto as usize].iter().map(|r| r.len() as u64).sum()
                    } else { 0 };
                    prop_assert_eq!(log.trim(LogPosition(upto)).unwrap(), expect_freed);
                    first = first.max(upto + 1);
                }
                Op::Read { after, max_records, max_bytes } => {
                    let got = log.read_after(LogPosition(after), max_records, max_bytes);
                    let end = model.len() as u64;
                    if after + 1 < first && after < end {
                        prop_assert!(matches!(got, Err(LogError::Trimmed(n)) if n == after + 1));
                    } else {
                        let mut want = Vec::new();
                        let mut bytes = 0;
                        for pos in (after + 1)..=end {
                            let r = &model[(pos - 1) as usize];
                            if want.len() == max_records || (!want.is_empty() && bytes + r.len() > max_bytes) {
                                break;
                            }
                            bytes += r.len();
                            want.push((LogPosition(pos), r.clone()));
                        }
                        prop_assert_eq!(got.unwrap(), want);
                    }
                }
            }
            prop_assert_eq!(log.end(), LogPosition(model.len() as u64));
            prop_assert_eq!(log.first(), LogPosition(first));
            let held: u64 = model[(first - 1) as usize..].iter().map(|r| r.len() as u64).sum();
            prop_assert_eq!(log.size_bytes(), held);
        }
    }
}
