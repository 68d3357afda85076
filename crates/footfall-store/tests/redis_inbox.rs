//! The inbox against a real Redis: batches land whole or not at all, the backlog limit
//! refuses without adding anything, and the owner's append consumes exactly what it
//! sequenced, atomically with the append (and not at all when it is fenced).
//!
//! Needs FOOTFALL_TEST_REDIS (set by `scripts/test`); fails loudly without it.

use footfall_store::redis::{Conn, Inbox, InboxError, Lease, RedisLog, RedisLogOptions, Role};
use footfall_store::{Log, LogError, LogPosition};
use std::sync::Arc;
use std::time::Duration;

fn conn() -> Arc<Conn> {
    let url = std::env::var("FOOTFALL_TEST_REDIS")
        .expect("FOOTFALL_TEST_REDIS is not set: run the tests through scripts/test");
    Arc::new(Conn::open(&url).unwrap())
}

fn prefix() -> String {
    format!("t{:016x}", rand::random::<u64>())
}

fn all(inbox: &Inbox, part: u32) -> Vec<(String, Vec<u8>)> {
    inbox.read(part, "0-0", 10_000, 1).unwrap()
}

#[test]
fn inbox_batches_are_whole_and_ordered() {
    let p = prefix();
    let inbox = Inbox::new(conn(), &p, 4, 1_000);
    let batch: Vec<(u32, Vec<u8>)> = (0..40u32).map(|i| (i % 4, vec![i as u8; 3])).collect();
    let refs: Vec<(u32, &[u8])> = batch.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    inbox.push(&refs).unwrap();
    inbox.push(&[(2, b"late")]).unwrap();
    for part in 0..4 {
        let got: Vec<Vec<u8>> = all(&inbox, part).into_iter().map(|(_, b)| b).collect();
        let mut want: Vec<Vec<u8>> = batch
            .iter()
            .filter(|(q, _)| *q == part)
            .map(|(_, b)| b.clone())
            .collect();
        if part == 2 {
            want.push(b"late".to_vec());
        }
        assert_eq!(got, want, "partition {part}");
        assert_eq!(inbox.backlog(part).unwrap(), want.len() as u64);
    }
    // Reading after an id gives only what came later.
    let first = all(&inbox, 2);
    let after = inbox.read(2, &first[0].0, 100, 1).unwrap();
    assert_eq!(after, first[1..].to_vec());
}

#[test]
fn inbox_full_partition_refuses_the_whole_batch() {
    let p = prefix();
    let inbox = Inbox::new(conn(), &p, 2, 3);
    inbox.push(&[(1, b"a"), (1, b"b"), (1, b"c")]).unwrap();
    let err = inbox.push(&[(0, b"fits"), (1, b"over")]).unwrap_err();
    assert!(
        matches!(
            err,
            InboxError::Full {
                part: 1,
                backlog: 3,
                limit: 3
            }
        ),
        "{err}"
    );
    // Nothing of the refused batch went in, not even the part that had room.
    assert!(all(&inbox, 0).is_empty());
    assert_eq!(all(&inbox, 1).len(), 3);
}

#[test]
fn append_consuming_moves_entries_from_inbox_to_log_atomically() {
    let c = conn();
    let p = prefix();
    let inbox = Inbox::new(c.clone(), &p, 1, 1_000);
    inbox.push(&[(0, b"e1"), (0, b"e2"), (0, b"e3")]).unwrap();
    let entries = all(&inbox, 0);
    let key = format!("{}:seq-lease", footfall_store::redis::partition_tag(&p, 0));
    let lease = Lease::new(c.clone(), key.clone(), "n1", Duration::from_secs(30));
    let token = lease.acquire_or_renew(None).unwrap().unwrap();
    let opts = RedisLogOptions {
        role: Role::Writer {
            fence: Some((key.clone(), token.clone())),
        },
        ..Default::default()
    };
    let log = RedisLog::open(c.clone(), &p, 0, opts).unwrap();
    // The owner sequenced the first two entries into one record.
    assert_eq!(
        log.append_consuming(&[b"record-1"], &entries[1].0).unwrap(),
        LogPosition(1)
    );
    assert_eq!(all(&inbox, 0), entries[2..].to_vec());
    assert_eq!(
        inbox.backlog(0).unwrap(),
        2,
        "one inbox entry and one log record"
    );

    // A deposed owner consumes nothing and appends nothing.
    lease.release(&token).unwrap();
    let other = Lease::new(c.clone(), key, "n2", Duration::from_secs(30));
    other.acquire_or_renew(None).unwrap().unwrap();
    let err = log
        .append_consuming(&[b"record-2"], &entries[2].0)
        .unwrap_err();
    assert!(matches!(err, LogError::Fenced), "{err}");
    assert_eq!(all(&inbox, 0), entries[2..].to_vec());
    assert_eq!(
        log.read_after(LogPosition(0), 10, 1 << 20).unwrap().len(),
        1
    );
}
