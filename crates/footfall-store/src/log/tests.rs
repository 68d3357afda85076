//! Tests of the segment log. Every test name starts with `log_` so that
//! `cargo test -p footfall-store log` selects them.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use proptest::prelude::*;

use super::frame::HEADER_LEN;
use super::segment::segment_file_name;
use super::*;

/// Segments that grow as written (no preallocation), so a file's length is what was
/// written: the tests below cut and flip bytes at exact offsets from its end. Preallocated
/// segments have tests of their own at the end of this file.
fn plain() -> LogOptions {
    LogOptions {
        preallocate: false,
        ..LogOptions::default()
    }
}

fn opts(segment_bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes,
        ..plain()
    }
}

/// Deterministic content for the record at `pos`, so readers can check what they got.
fn payload(pos: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (pos.wrapping_mul(31).wrapping_add(i as u64)) as u8)
        .collect()
}

fn seg_paths(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    paths.sort();
    paths
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn read_all(log: &dyn Log) -> Vec<(LogPosition, Vec<u8>)> {
    log.read_after(LogPosition(log.first().0 - 1), usize::MAX, usize::MAX)
        .unwrap()
}

/// Appends groups of records of the given sizes; returns every record with its position.
fn append_groups(log: &dyn Log, groups: &[Vec<usize>]) -> Vec<(LogPosition, Vec<u8>)> {
    let mut all = Vec::new();
    for sizes in groups {
        let first = log.end().0 + 1;
        let recs: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| payload(first + i as u64, n))
            .collect();
        let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
        let last = log.append(&refs).unwrap();
        assert_eq!(last.0, first + sizes.len() as u64 - 1);
        assert_eq!(log.end(), last);
        for (i, r) in recs.into_iter().enumerate() {
            all.push((LogPosition(first + i as u64), r));
        }
    }
    all
}

fn modify(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    f(&mut bytes);
    fs::write(path, bytes).unwrap();
}

fn truncate_by(path: &Path, k: u64) {
    let len = file_len(path);
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len - k)
        .unwrap();
}

fn expect_corrupt(dir: &Path, file: &Path, offset: u64) -> String {
    let err = SegmentLog::open(dir, opts(200)).unwrap_err();
    match &err {
        LogError::Corrupt {
            file: f, offset: o, ..
        } => {
            assert_eq!(f, file);
            assert_eq!(*o, offset);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let msg = err.to_string();
    let name = file.file_name().unwrap().to_str().unwrap();
    assert!(msg.contains(name), "{msg}");
    assert!(msg.contains(&format!("at byte {offset}")), "{msg}");
    msg
}

#[test]
fn log_empty_dir_is_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(&dir.path().join("log"), opts(100)).unwrap();
    assert_eq!(log.end(), LogPosition(0));
    assert_eq!(log.first(), LogPosition(1));
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(log.cut_at_open(), 0);
    assert!(log.read_after(LogPosition(0), 10, 10).unwrap().is_empty());
    // Works behind the trait object the server will hold.
    let shared: Arc<dyn Log> = Arc::new(log);
    assert_eq!(shared.append(&[b"x"]).unwrap(), LogPosition(1));
    assert_eq!(read_all(&*shared), vec![(LogPosition(1), b"x".to_vec())]);
}

#[test]
fn log_round_trip_across_segments_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let groups: Vec<Vec<usize>> = (0..25)
        .map(|g| (0..(g % 4 + 1)).map(|i| (g * 7 + i * 13) % 60).collect())
        .collect();
    let (all, segments, end, size) = {
        let log = SegmentLog::open(dir.path(), opts(100)).unwrap();
        let all = append_groups(&log, &groups);
        assert!(log.segments() > 3, "tiny segments must rotate");
        assert_eq!(read_all(&log), all);
        assert_eq!(log.first(), LogPosition(1));
        let on_disk: u64 = seg_paths(dir.path()).iter().map(|p| file_len(p)).sum();
        assert_eq!(log.size_bytes(), on_disk);
        (all, log.segments(), log.end(), log.size_bytes())
    };
    // Each file is named after its first record, and positions run on across files.
    let paths = seg_paths(dir.path());
    assert_eq!(paths.len(), segments);
    assert_eq!(paths[0].file_name().unwrap(), "00000000000000000001.seg");
    for p in &paths {
        let base: u64 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let bytes = fs::read(p).unwrap();
        let pos = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        assert_eq!(pos, base, "{}", p.display());
    }

    let log = SegmentLog::open(dir.path(), opts(100)).unwrap();
    assert_eq!(log.cut_at_open(), 0);
    assert_eq!(log.end(), end);
    assert_eq!(log.segments(), segments);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(read_all(&log), all);
    // And appending continues where it left off.
    assert_eq!(log.append(&[b"next"]).unwrap(), LogPosition(end.0 + 1));
}

#[test]
fn log_groups_never_span_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), opts(50)).unwrap();
    // A 3-record group of 40-byte records (56 bytes each) lands in one file.
    append_groups(&log, &[vec![40, 40, 40], vec![40, 40], vec![1]]);
    let paths = seg_paths(dir.path());
    assert_eq!(paths.len(), 3);
    assert_eq!(file_len(&paths[0]), 3 * 56);
    assert_eq!(file_len(&paths[1]), 2 * 56);
    assert_eq!(
        paths[1].file_name().unwrap().to_str().unwrap(),
        segment_file_name(4)
    );
    assert_eq!(
        paths[2].file_name().unwrap().to_str().unwrap(),
        segment_file_name(6)
    );
}

#[test]
fn log_read_after_limits() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), opts(60)).unwrap();
    // 10 records of 10 bytes (26-byte frames): segments of 3 records.
    let all = append_groups(&log, &vec![vec![10]; 10]);
    assert!(log.segments() >= 3);

    let got = log.read_after(LogPosition(0), 3, usize::MAX).unwrap();
    assert_eq!(got, all[..3]);
    // Byte limit: two records fit in 25 bytes, the third would not.
    let got = log.read_after(LogPosition(0), 100, 25).unwrap();
    assert_eq!(got, all[..2]);
    // Always at least one record, however small max_bytes is.
    let got = log.read_after(LogPosition(4), 100, 0).unwrap();
    assert_eq!(got, all[4..5]);
    // Reads cross segment boundaries.
    let got = log.read_after(LogPosition(2), 5, usize::MAX).unwrap();
    assert_eq!(got, all[2..7]);
    assert_eq!(
        log.read_after(LogPosition(7), 100, usize::MAX).unwrap(),
        all[7..]
    );
    // Nothing after the end.
    assert!(log.read_after(log.end(), 10, 1000).unwrap().is_empty());
    assert!(log
        .read_after(LogPosition(99), 10, 1000)
        .unwrap()
        .is_empty());
    assert!(log.read_after(LogPosition(0), 0, 1000).unwrap().is_empty());

    // After a trim, positions before first() are gone, first()-1 is still fine.
    assert!(log.trim(LogPosition(6)).unwrap() > 0);
    let first = log.first();
    assert!(first.0 > 1 && first.0 <= 7);
    match log.read_after(LogPosition(0), 10, 1000) {
        Err(LogError::Trimmed(p)) => assert_eq!(p, 1),
        other => panic!("expected Trimmed, got {other:?}"),
    }
    match log.read_after(LogPosition(first.0 - 2), 10, 1000) {
        Err(LogError::Trimmed(p)) => assert_eq!(p, first.0 - 1),
        other => panic!("expected Trimmed, got {other:?}"),
    }
    let got = log
        .read_after(LogPosition(first.0 - 1), 100, usize::MAX)
        .unwrap();
    assert_eq!(got, all[first.0 as usize - 1..]);
}

#[test]
fn log_trim_deletes_only_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), opts(60)).unwrap();
    // 26-byte frames, 3 per segment: segments start at 1, 4, 7, 10.
    let all = append_groups(&log, &vec![vec![10]; 10]);
    let paths = seg_paths(dir.path());
    assert_eq!(paths.len(), 4);
    let before = log.size_bytes();

    // Position 5 lies inside segment 4..=6: only segment 1..=3 may go.
    let freed = log.trim(LogPosition(5)).unwrap();
    assert_eq!(freed, 3 * 26);
    assert_eq!(log.size_bytes(), before - freed);
    assert_eq!(log.first(), LogPosition(4));
    assert!(!paths[0].exists());
    assert!(paths[1].exists());
    // Trimming the same point again frees nothing.
    assert_eq!(log.trim(LogPosition(5)).unwrap(), 0);

    // Everything applied: all but the active segment go.
    let freed = log.trim(log.end()).unwrap();
    assert_eq!(freed, 6 * 26);
    assert_eq!(seg_paths(dir.path()), vec![paths[3].clone()]);
    assert_eq!(log.segments(), 1);
    assert_eq!(log.first(), LogPosition(10));
    assert_eq!(log.trim(LogPosition(u64::MAX)).unwrap(), 0);
    assert_eq!(log.segments(), 1, "the active segment is never trimmed");
    assert_eq!(read_all(&log), all[9..]);
    drop(log);

    let log = SegmentLog::open(dir.path(), opts(60)).unwrap();
    assert_eq!(log.first(), LogPosition(10));
    assert_eq!(log.end(), LogPosition(10));
    assert_eq!(read_all(&log), all[9..]);
    assert_eq!(log.append(&[b"eleven"]).unwrap(), LogPosition(11));
}

#[test]
fn log_trim_of_everything_remembers_the_end() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SegmentLog::open(dir.path(), opts(10)).unwrap();
        append_groups(&log, &[vec![10], vec![10]]);
        // Rotates into an empty active segment, then the failed group leaves it empty.
        let fail = Arc::new(AtomicBool::new(true));
        drop(log);
        let log = SegmentLog::open(
            dir.path(),
            LogOptions {
                segment_bytes: 10,
                fail_writes: Some(fail),
                ..plain()
            },
        )
        .unwrap();
        assert!(log.append(&[b"lost"]).is_err());
        assert_eq!(log.segments(), 3);
        assert_eq!(log.trim(LogPosition(2)).unwrap(), 2 * 26);
        assert_eq!(log.segments(), 1);
        assert_eq!(log.first(), LogPosition(3));
        assert_eq!(log.end(), LogPosition(2));
        assert_eq!(log.size_bytes(), 0);
    }
    let log = SegmentLog::open(dir.path(), opts(10)).unwrap();
    assert_eq!(log.end(), LogPosition(2));
    assert_eq!(log.first(), LogPosition(3));
    assert!(log.read_after(LogPosition(2), 10, 10).unwrap().is_empty());
    assert!(matches!(
        log.read_after(LogPosition(1), 10, 10),
        Err(LogError::Trimmed(2))
    ));
    assert_eq!(log.append(&[b"three"]).unwrap(), LogPosition(3));
}

/// The log used by the torn-tail tests: a few segments, the newest holding two groups
/// whose last record is `last_len` bytes. Returns the records and the newest file.
fn torn_fixture(dir: &Path, last_len: usize) -> (Vec<(LogPosition, Vec<u8>)>, PathBuf) {
    let log = SegmentLog::open(dir, opts(200)).unwrap();
    // Groups of 102 bytes: two fill a 200-byte segment, so the files start at 1, 5, 9.
    let mut all = append_groups(&log, &vec![vec![30, 40]; 4]);
    all.extend(append_groups(&log, &[vec![20, 5], vec![7, last_len]]));
    let newest = seg_paths(dir).pop().unwrap();
    assert_eq!(seg_paths(dir).len(), 3);
    assert_eq!(newest, dir.join(segment_file_name(9)));
    assert_eq!(
        file_len(&newest),
        (4 * HEADER_LEN + 20 + 5 + 7 + last_len) as u64
    );
    (all, newest)
}

#[test]
fn log_torn_tail_every_length_is_cut() {
    let last_len = 40;
    let frame = (HEADER_LEN + last_len) as u64;
    for k in 1..frame {
        let dir = tempfile::tempdir().unwrap();
        let (all, newest) = torn_fixture(dir.path(), last_len);
        let full = file_len(&newest);
        truncate_by(&newest, k);

        let log = SegmentLog::open(dir.path(), opts(200)).unwrap();
        // The torn bytes are zeroed in place (zeros read as "not written yet"); the count
        // is up to the last non-zero byte among them.
        let cut = log.cut_at_open();
        assert!((1..=frame - k).contains(&cut), "k={k}: cut {cut}");
        assert_eq!(file_len(&newest), full - k, "k={k}");
        assert!(
            fs::read(&newest).unwrap()[(full - frame) as usize..]
                .iter()
                .all(|&b| b == 0),
            "k={k}: torn bytes zeroed"
        );
        assert_eq!(read_all(&log), all[..all.len() - 1], "k={k}");
        let end = all.last().unwrap().0 .0 - 1;
        assert_eq!(log.end(), LogPosition(end));
        assert_eq!(log.append(&[b"again"]).unwrap(), LogPosition(end + 1));
        drop(log);

        let log = SegmentLog::open(dir.path(), opts(200)).unwrap();
        assert_eq!(log.cut_at_open(), 0);
        let mut expected = all[..all.len() - 1].to_vec();
        expected.push((LogPosition(end + 1), b"again".to_vec()));
        assert_eq!(read_all(&log), expected);
    }
}

#[test]
fn log_torn_tail_whole_last_frame_missing_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let (all, newest) = torn_fixture(dir.path(), 40);
    truncate_by(&newest, (HEADER_LEN + 40) as u64);
    let log = SegmentLog::open(dir.path(), opts(200)).unwrap();
    assert_eq!(log.cut_at_open(), 0);
    assert_eq!(read_all(&log), all[..all.len() - 1]);
}

#[test]
fn log_torn_tail_bad_checksum_on_last_frame_is_cut() {
    // A flipped byte in the payload, in the checksum, and in the position field.
    for at_from_end in [1usize, 20, 40, 40 + 5, 40 + 9] {
        let dir = tempfile::tempdir().unwrap();
        let (all, newest) = torn_fixture(dir.path(), 40);
        let full = file_len(&newest);
        modify(&newest, |b| {
            let i = b.len() - at_from_end;
            b[i] ^= 0x10;
        });
        let log = SegmentLog::open(dir.path(), opts(200)).unwrap();
        let cut = log.cut_at_open();
        assert!(cut > 0 && cut <= 56, "at_from_end={at_from_end}: cut {cut}");
        assert_eq!(file_len(&newest), full, "zeroed in place, not truncated");
        assert_eq!(read_all(&log), all[..all.len() - 1]);
    }
}

#[test]
fn log_torn_tail_trailing_zeros_end_the_log() {
    // Zeros after the last frame are space not written yet (preallocated, or a size
    // extended by a write whose data never landed): the log ends there, nothing to cut.
    for zeros in [1usize, 15, 16, 17, 100, 5000] {
        let dir = tempfile::tempdir().unwrap();
        let (all, newest) = torn_fixture(dir.path(), 40);
        let full = file_len(&newest);
        modify(&newest, |b| b.resize(b.len() + zeros, 0));
        let log = SegmentLog::open(dir.path(), opts(200)).unwrap();
        assert_eq!(log.cut_at_open(), 0, "zeros={zeros}");
        assert_eq!(file_len(&newest), full + zeros as u64);
        assert_eq!(read_all(&log), all);
        let next = all.last().unwrap().0 .0 + 1;
        assert_eq!(log.append(&[b"z"]).unwrap(), LogPosition(next));
    }
}

#[test]
fn log_torn_tail_zeroed_group_is_cut() {
    // The size of the file grew but the last group's data never reached the disk.
    let dir = tempfile::tempdir().unwrap();
    let (all, newest) = torn_fixture(dir.path(), 40);
    let group = (2 * HEADER_LEN + 7 + 40) as u64;
    modify(&newest, |b| {
        let n = b.len();
        b[n - group as usize..].fill(0);
    });
    let log = SegmentLog::open(dir.path(), opts(200)).unwrap();
    assert_eq!(log.cut_at_open(), 0, "zeros end the log");
    assert_eq!(read_all(&log), all[..all.len() - 2]);
    assert_eq!(
        log.append(&[b"after"]).unwrap(),
        LogPosition(all.len() as u64 - 1)
    );
}

#[test]
fn log_corrupt_middle_frame_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_, newest) = torn_fixture(dir.path(), 40);
    let before = fs::read(&newest).unwrap();
    // The frame of 7 bytes is followed by the 40-byte one: damage there is not a tail.
    let offset = (2 * HEADER_LEN + 20 + 5) as u64;
    modify(&newest, |b| b[offset as usize + HEADER_LEN + 3] ^= 1);
    let msg = expect_corrupt(dir.path(), &newest, offset);
    assert!(msg.contains("checksum"), "{msg}");
    // Refusing must not have touched the file.
    assert_eq!(fs::read(&newest).unwrap().len(), before.len());

    // Same for a length that now runs into the next frame.
    let dir = tempfile::tempdir().unwrap();
    let (_, newest) = torn_fixture(dir.path(), 40);
    modify(&newest, |b| b[0] = 21);
    expect_corrupt(dir.path(), &newest, 0);
}

#[test]
fn log_corrupt_older_segment_refuses_to_open() {
    // A torn-looking tail in an older segment is damage, not a torn write.
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = torn_fixture(dir.path(), 40);
    let older = seg_paths(dir.path())[0].clone();
    let len = file_len(&older);
    truncate_by(&older, 3);
    let last_frame = len - (HEADER_LEN + 40) as u64;
    let msg = expect_corrupt(dir.path(), &older, last_frame);
    assert!(msg.contains("runs past end of file"), "{msg}");

    // A flipped byte in an older segment's last frame.
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = torn_fixture(dir.path(), 40);
    let older = seg_paths(dir.path())[1].clone();
    modify(&older, |b| {
        let n = b.len();
        b[n - 1] ^= 0xff;
    });
    let frame_start = file_len(&older) - (HEADER_LEN + 40) as u64;
    expect_corrupt(dir.path(), &older, frame_start);

    // Trailing zeros on an older segment are its unused preallocated space, not damage.
    let dir = tempfile::tempdir().unwrap();
    let (all, _) = torn_fixture(dir.path(), 40);
    let older = seg_paths(dir.path())[0].clone();
    modify(&older, |b| b.resize(b.len() + 16, 0));
    let log = SegmentLog::open(dir.path(), opts(200)).unwrap();
    assert_eq!(read_all(&log), all);
}

#[test]
fn log_missing_segment_or_wrong_position_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = torn_fixture(dir.path(), 40);
    let paths = seg_paths(dir.path());
    assert!(paths.len() >= 3);
    fs::remove_file(&paths[1]).unwrap();
    let msg = expect_corrupt(dir.path(), &paths[2], 0);
    assert!(msg.contains("missing"), "{msg}");

    // An intact frame holding the wrong position (a valid frame from elsewhere).
    let dir = tempfile::tempdir().unwrap();
    let (all, newest) = torn_fixture(dir.path(), 40);
    let mut frame = Vec::new();
    let wrong = all.last().unwrap().0 .0 + 5;
    super::frame::encode(&mut frame, wrong, b"stray");
    modify(&newest, |b| b.extend_from_slice(&frame));
    let at = file_len(&newest) - frame.len() as u64;
    let msg = expect_corrupt(dir.path(), &newest, at);
    assert!(msg.contains("expected"), "{msg}");

    // A file whose first record is not the position its name says.
    let dir = tempfile::tempdir().unwrap();
    let (_, _) = torn_fixture(dir.path(), 40);
    let first = seg_paths(dir.path())[0].clone();
    fs::rename(&first, dir.path().join(segment_file_name(2))).unwrap();
    expect_corrupt(dir.path(), &dir.path().join(segment_file_name(2)), 0);
}

#[test]
fn log_injected_write_failure_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let options = LogOptions {
        segment_bytes: 1 << 20,
        fail_writes: Some(fail.clone()),
        ..plain()
    };
    let log = SegmentLog::open(dir.path(), options.clone()).unwrap();
    let all = append_groups(&log, &[vec![10, 20], vec![30]]);
    let mut rx = log.subscribe();
    assert_eq!(*rx.borrow_and_update(), LogPosition(3));
    let path = seg_paths(dir.path())[0].clone();
    let len = file_len(&path);
    let size = log.size_bytes();

    fail.store(true, Ordering::SeqCst);
    let big = vec![7u8; 300];
    let err = log.append(&[&big, &big, b"x"]).unwrap_err();
    assert!(matches!(err, LogError::Io(_)), "{err:?}");
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(log.end(), LogPosition(3));
    assert!(log
        .read_after(LogPosition(3), 10, 1 << 20)
        .unwrap()
        .is_empty());
    assert_eq!(read_all(&log), all);
    assert_eq!(file_len(&path), len, "the partial group was cut back");
    assert_eq!(log.size_bytes(), size);
    assert!(!rx.has_changed().unwrap(), "subscribers hear nothing");

    fail.store(false, Ordering::SeqCst);
    assert_eq!(log.append(&[b"after"]).unwrap(), LogPosition(4));
    assert_eq!(
        log.read_after(LogPosition(3), 10, 1 << 20).unwrap(),
        vec![(LogPosition(4), b"after".to_vec())]
    );
    drop(log);

    let log = SegmentLog::open(dir.path(), options).unwrap();
    assert_eq!(log.cut_at_open(), 0);
    assert_eq!(log.end(), LogPosition(4));
    let mut expected = all.clone();
    expected.push((LogPosition(4), b"after".to_vec()));
    assert_eq!(read_all(&log), expected);
}

#[test]
fn log_injected_failure_after_rotation_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let options = LogOptions {
        segment_bytes: 30,
        fail_writes: Some(fail.clone()),
        ..plain()
    };
    let log = SegmentLog::open(dir.path(), options.clone()).unwrap();
    let all = append_groups(&log, &[vec![20]]);
    fail.store(true, Ordering::SeqCst);
    assert!(log.append(&[b"lost one", b"lost two"]).is_err());
    assert!(log.append(&[b"lost three"]).is_err());
    assert_eq!(log.end(), LogPosition(1));
    assert_eq!(log.size_bytes(), 36);
    fail.store(false, Ordering::SeqCst);
    assert_eq!(log.append(&[b"two"]).unwrap(), LogPosition(2));
    drop(log);
    let log = SegmentLog::open(dir.path(), options).unwrap();
    assert_eq!(log.segments(), 2);
    let mut expected = all;
    expected.push((LogPosition(2), b"two".to_vec()));
    assert_eq!(read_all(&log), expected);
}

#[test]
fn log_too_large_record_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(
        dir.path(),
        LogOptions {
            max_record_bytes: 10,
            ..plain()
        },
    )
    .unwrap();
    let err = log.append(&[b"ok", &[0u8; 11]]).unwrap_err();
    assert!(matches!(err, LogError::TooLarge(11)), "{err:?}");
    assert_eq!(log.end(), LogPosition(0));
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(log.append(&[&[0u8; 10]]).unwrap(), LogPosition(1));
}

#[test]
fn log_subscribe_sees_new_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SegmentLog::open(dir.path(), opts(100)).unwrap());
    let mut rx = log.subscribe();
    assert_eq!(*rx.borrow_and_update(), LogPosition(0));
    log.append(&[b"a", b"b"]).unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), LogPosition(2));

    // An async consumer wakes up on the next append.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let appender = log.clone();
    let seen = rt.block_on(async move {
        let wait = tokio::spawn(async move {
            rx.changed().await.unwrap();
            *rx.borrow()
        });
        tokio::task::spawn_blocking(move || appender.append(&[b"c"]).unwrap())
            .await
            .unwrap();
        wait.await.unwrap()
    });
    assert_eq!(seen, LogPosition(3));
}

#[test]
fn log_concurrent_reader_sees_consecutive_complete_records() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SegmentLog::open(dir.path(), opts(4096)).unwrap());
    const GROUPS: u64 = 600;
    let len_of = |pos: u64| (pos * 7919 % 301) as usize;

    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for g in 0..GROUPS {
                let first = log.end().0 + 1;
                let n = g % 5 + 1;
                let recs: Vec<Vec<u8>> =
                    (first..first + n).map(|p| payload(p, len_of(p))).collect();
                let refs: Vec<&[u8]> = recs.iter().map(Vec::as_slice).collect();
                assert_eq!(log.append(&refs).unwrap(), LogPosition(first + n - 1));
            }
            log.end()
        })
    };
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut seen = 0u64;
            let mut reads = 0u64;
            let target: u64 = (0..GROUPS).map(|g| g % 5 + 1).sum();
            while seen < target {
                let end = log.end();
                let got = log.read_after(LogPosition(seen), 7, 900).unwrap();
                assert!(got.len() <= 7);
                for (pos, bytes) in got {
                    assert_eq!(pos.0, seen + 1, "positions are consecutive");
                    assert_eq!(bytes, payload(pos.0, len_of(pos.0)), "record {pos} intact");
                    seen = pos.0;
                }
                assert!(log.end() >= end);
                // The reader is the only consumer: trim behind it, as the applier will.
                reads += 1;
                if reads == 10 {
                    reads = 0;
                    log.trim(LogPosition(seen)).unwrap();
                }
            }
            seen
        })
    };
    let end = writer.join().unwrap();
    assert_eq!(reader.join().unwrap(), end.0);
    assert!(log.first().0 > 1, "the reader trimmed behind itself");
}

/// Frame sizes of every record in the newest segment, given all records and its base.
fn newest_frames(all: &[(LogPosition, Vec<u8>)], base: u64) -> Vec<u64> {
    all.iter()
        .filter(|(p, _)| p.0 >= base)
        .map(|(_, r)| (HEADER_LEN + r.len()) as u64)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn log_prop_torn_tail_leaves_exact_prefix(
        groups in prop::collection::vec(prop::collection::vec(0usize..2000, 1..5), 1..12),
        segment_bytes in 1u64..12_000,
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let all = {
            let log = SegmentLog::open(dir.path(), opts(segment_bytes)).unwrap();
            append_groups(&log, &groups)
        };
        let newest = seg_paths(dir.path()).pop().unwrap();
        let base: u64 = newest.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let frames = newest_frames(&all, base);
        let newest_len = file_len(&newest);
        prop_assert_eq!(frames.iter().sum::<u64>(), newest_len);
        let cut = cut.index(newest_len as usize + 1) as u64;
        truncate_by(&newest, cut);
        let kept = newest_len - cut;

        // Expected: every frame that still ends within the file survives.
        let mut survivors = all.len() - frames.len();
        let mut complete_end = 0;
        for f in &frames {
            if complete_end + f > kept {
                break;
            }
            complete_end += f;
            survivors += 1;
        }

        let log = SegmentLog::open(dir.path(), opts(segment_bytes)).unwrap();
        // Torn bytes are zeroed in place; the count runs to the last non-zero one.
        prop_assert!(log.cut_at_open() <= kept - complete_end);
        prop_assert_eq!(log.end(), LogPosition(survivors as u64));
        let got = read_all(&log);
        prop_assert_eq!(&got[..], &all[..survivors]);
        let last_group = groups.last().unwrap().len();
        let last_group_bytes: u64 = frames[frames.len() - last_group..].iter().sum();
        if cut <= last_group_bytes {
            prop_assert!(survivors >= all.len() - last_group, "earlier groups intact");
        }

        let next = log.append(&[b"after the cut"]).unwrap();
        prop_assert_eq!(next, LogPosition(survivors as u64 + 1));
        drop(log);
        let log = SegmentLog::open(dir.path(), opts(segment_bytes)).unwrap();
        prop_assert_eq!(log.cut_at_open(), 0);
        let got = read_all(&log);
        prop_assert_eq!(got.len(), survivors + 1);
        prop_assert_eq!(&got[..survivors], &all[..survivors]);
    }
}

// Preallocated segments (the default): zero-filled to their size before use, so that an
// append's fdatasync need not commit file-system metadata.

fn prealloc(segment_bytes: u64) -> LogOptions {
    LogOptions {
        segment_bytes,
        ..LogOptions::default()
    }
}

/// Where the records of a preallocated segment end (its zero-filled rest follows).
fn logical_end(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    let mut at = 0usize;
    while at + HEADER_LEN <= bytes.len() && bytes[at..at + HEADER_LEN] != [0u8; HEADER_LEN] {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        at += HEADER_LEN + len;
    }
    at as u64
}

#[test]
fn log_preallocated_segments_round_trip_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), prealloc(4096)).unwrap();
    for pos in 1..=60u64 {
        log.append(&[&payload(pos, 200)]).unwrap();
    }
    assert!(log.segments() > 2, "rotated: {}", log.segments());
    for p in seg_paths(dir.path()) {
        assert!(file_len(&p) >= 4096, "{} is preallocated", p.display());
    }
    assert_eq!(log.size_bytes(), 60 * (HEADER_LEN as u64 + 200));
    drop(log);
    let log = SegmentLog::open(dir.path(), prealloc(4096)).unwrap();
    assert_eq!(
        log.cut_at_open(),
        0,
        "zeros after the records are not damage"
    );
    assert_eq!(log.end(), LogPosition(60));
    let got = log.read_after(LogPosition(0), 1000, usize::MAX).unwrap();
    assert_eq!(got.len(), 60);
    for (p, bytes) in got {
        assert_eq!(bytes, payload(p.0, 200));
    }
    assert_eq!(log.append(&[b"next"]).unwrap(), LogPosition(61));
}

#[test]
fn log_preallocated_torn_group_is_zeroed_and_writing_continues() {
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), prealloc(1 << 16)).unwrap();
    for pos in 1..=5u64 {
        log.append(&[&payload(pos, 100)]).unwrap();
    }
    drop(log);
    let seg = seg_paths(dir.path()).pop().unwrap();
    let size = file_len(&seg);
    let end = logical_end(&seg);
    // A group whose write was interrupted: a header promising more than was written.
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[9u8; 40], end).unwrap();
    drop(file);
    let log = SegmentLog::open(dir.path(), prealloc(1 << 16)).unwrap();
    assert_eq!(log.cut_at_open(), 40);
    assert_eq!(log.end(), LogPosition(5));
    assert_eq!(file_len(&seg), size, "still preallocated");
    assert_eq!(logical_end(&seg), end, "the torn bytes are zero again");
    assert_eq!(log.append(&[b"six"]).unwrap(), LogPosition(6));
    drop(log);
    let log = SegmentLog::open(dir.path(), prealloc(1 << 16)).unwrap();
    assert_eq!(log.end(), LogPosition(6));
    assert_eq!(
        log.read_after(LogPosition(5), 10, usize::MAX).unwrap()[0].1,
        b"six"
    );
}

#[test]
fn log_preallocated_failed_write_leaves_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicBool::new(false));
    let options = LogOptions {
        fail_writes: Some(fail.clone()),
        ..prealloc(1 << 16)
    };
    let log = SegmentLog::open(dir.path(), options.clone()).unwrap();
    log.append(&[b"one"]).unwrap();
    let seg = seg_paths(dir.path()).pop().unwrap();
    let (size, end) = (file_len(&seg), logical_end(&seg));
    fail.store(true, Ordering::SeqCst);
    assert!(log.append(&[&[7u8; 500]]).is_err());
    assert_eq!((file_len(&seg), logical_end(&seg)), (size, end));
    fail.store(false, Ordering::SeqCst);
    assert_eq!(log.append(&[b"two"]).unwrap(), LogPosition(2));
    drop(log);
    let log = SegmentLog::open(dir.path(), options).unwrap();
    assert_eq!(log.cut_at_open(), 0);
    let got: Vec<Vec<u8>> = log
        .read_after(LogPosition(0), 10, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn log_preallocated_damaged_length_before_intact_frames_is_corrupt() {
    // A flipped bit in an acknowledged frame's length, so that it points past the written
    // records into the zeros: that is not a torn tail, the records after it are intact.
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), prealloc(1 << 16)).unwrap();
    for pos in 1..=4u64 {
        log.append(&[&payload(pos, 50)]).unwrap();
    }
    drop(log);
    let seg = seg_paths(dir.path()).pop().unwrap();
    let second = (HEADER_LEN + 50) as u64;
    modify(&seg, |b| b[second as usize + 2] ^= 0x01); // length += 65,536
    let err = SegmentLog::open(dir.path(), prealloc(1 << 16)).unwrap_err();
    match err {
        LogError::Corrupt { offset, .. } => assert_eq!(offset, second),
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn log_preallocated_torn_group_with_lost_header_page_is_cut() {
    // A power cut persisted the end of the last group's frame but not its header: zeros,
    // then data. Nothing intact follows, so it is a torn tail.
    let dir = tempfile::tempdir().unwrap();
    let log = SegmentLog::open(dir.path(), prealloc(1 << 16)).unwrap();
    for pos in 1..=3u64 {
        log.append(&[&payload(pos, 50)]).unwrap();
    }
    drop(log);
    let seg = seg_paths(dir.path()).pop().unwrap();
    let end = logical_end(&seg);
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, &[5u8; 30], end + 40).unwrap();
    drop(file);
    let log = SegmentLog::open(dir.path(), prealloc(1 << 16)).unwrap();
    assert_eq!(log.end(), LogPosition(3));
    assert!(log.cut_at_open() > 0);
    assert_eq!(log.append(&[b"four"]).unwrap(), LogPosition(4));
}

#[test]
fn log_new_log_can_start_after_a_given_position() {
    let dir = tempfile::tempdir().unwrap();
    let options = LogOptions {
        first_position: 101,
        ..prealloc(1 << 16)
    };
    let log = SegmentLog::open(dir.path(), options.clone()).unwrap();
    assert_eq!(
        (log.first(), log.end()),
        (LogPosition(101), LogPosition(100))
    );
    assert_eq!(log.append(&[b"x"]).unwrap(), LogPosition(101));
    drop(log);
    // An existing log ignores the option.
    let log = SegmentLog::open(
        dir.path(),
        LogOptions {
            first_position: 7,
            ..options
        },
    )
    .unwrap();
    assert_eq!(log.end(), LogPosition(101));
}
