//! [`SegmentLog`]: the log as a directory of segment files.
//!
//! Records are framed (see `frame.rs`) and appended to the newest ("active") segment;
//! once it reaches [`LogOptions::segment_bytes`] the next group starts a new file, so that
//! applied history can be deleted a file at a time. Each file is named after the position
//! of its first record, which lets `open` order the files and prove none is missing.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::watch;

use super::frame::{self, HEADER_LEN, MAX_PAYLOAD};
use super::{Log, LogError, LogOptions, LogPosition};

/// Encoding buffers larger than this are not kept between appends, so one huge group does
/// not pin its memory for the life of the process.
const KEEP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// The file name of the segment whose first record is at `base`.
pub(crate) fn segment_file_name(base: u64) -> String {
    format!("{base:020}.seg")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Makes creations and deletions of files in `dir` durable: without it a crash can bring
/// back a trimmed segment or lose a new one along with the records fsynced into it.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// One segment as readers see it: only what has been made durable is published here.
struct Segment {
    /// Position of the first record (also the file name).
    base: u64,
    path: Arc<Path>,
    /// A read-only handle shared with readers; they read with `read_at` outside the lock,
    /// and on Unix the handle stays readable even if `trim` unlinks the file meanwhile.
    reader: Arc<File>,
    /// Byte offset of each record's frame: record `base + i` starts at `offsets[i]`.
    offsets: Vec<u64>,
    /// Durable length: the end of the last acknowledged frame.
    len: u64,
}

impl Segment {
    /// Where frame `i` ends (the next frame's start, or the durable end).
    fn frame_end(&self, i: usize) -> u64 {
        self.offsets.get(i + 1).copied().unwrap_or(self.len)
    }

    /// Position after this segment's last record, i.e. the next segment's base.
    fn next_base(&self) -> u64 {
        self.base + self.offsets.len() as u64
    }
}

/// What readers consult. Held only briefly: to publish a group, to plan a read, to trim.
struct State {
    /// Oldest first; never empty. The last one is the active segment.
    segments: VecDeque<Segment>,
    /// Position of the last durable record.
    end: u64,
}

impl State {
    fn first(&self) -> u64 {
        self.segments.front().map_or(self.end + 1, |s| s.base)
    }
}

/// The appender's side, behind its own mutex so that appends never wait for readers'
/// I/O, only for the brief publication under the state lock.
struct Writer {
    /// Write handle of the active segment; written with `write_at` at `len`.
    file: File,
    path: Arc<Path>,
    base: u64,
    /// Length of the active segment as the writer knows it (equal to the published one
    /// between appends).
    len: u64,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// Set when a failed write could not be undone; every later append is refused.
    poisoned: Option<String>,
    /// The next segment, being zero-filled in the background (preallocation).
    spare: Option<std::thread::JoinHandle<io::Result<PathBuf>>>,
}

/// The file-backed [`Log`]: a directory of checksummed segment files with group commit.
///
/// Durability comes from one `fdatasync` per [`append`](Log::append) (a group of records
/// written together); a group is published to readers and subscribers only after that
/// returns, so nothing a reader sees can be lost by a crash. Positions are kept in memory
/// per segment (position → byte offset) so reads never rescan files.
pub struct SegmentLog {
    dir: PathBuf,
    options: LogOptions,
    writer: Mutex<Writer>,
    state: RwLock<State>,
    /// Serialises trims (appends may run alongside; they only add segments at the back).
    trim_lock: Mutex<()>,
    end_tx: watch::Sender<LogPosition>,
    cut_at_open: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere cannot leave our state half-updated (every update is a few plain
    // assignments), so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SegmentLog {
    /// Opens (creating) the log in `dir` (e.g. `<data-dir>/log`).
    ///
    /// Every segment is scanned in full, because a record we cannot read back is a promise
    /// we cannot keep: a torn tail on the newest segment (a group whose fsync never
    /// completed, so never acknowledged) is cut off and reported through
    /// [`cut_at_open`](Self::cut_at_open) and a warning; any other damage, a gap in the
    /// positions or a missing segment is [`LogError::Corrupt`], naming file and byte offset.
    pub fn open(dir: &Path, options: LogOptions) -> Result<SegmentLog, LogError> {
        fs::create_dir_all(dir)?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(base) = name.to_str().and_then(parse_segment_name) else {
                continue;
            };
            if entry.file_type()?.is_file() {
                bases.push(base);
            }
        }
        bases.sort_unstable();

        if bases.is_empty() {
            // An empty log still has an active segment, so that `first()` and `end()` are
            // always derived the same way (from the segments): position `first_position`
            // (1 for a new data directory) and the one before it.
            let base = options.first_position.max(1);
            let (path, file, reader) = create_segment(dir, base, prealloc(&options), None)?;
            let state = State {
                segments: VecDeque::from([Segment {
                    base,
                    path: path.clone(),
                    reader: Arc::new(reader),
                    offsets: Vec::new(),
                    len: 0,
                }]),
                end: base - 1,
            };
            return Ok(Self::assemble(dir, options, file, path, state, 0).with_spare());
        }

        let mut segments = VecDeque::with_capacity(bases.len());
        let mut end: Option<u64> = None;
        let mut cut = 0;
        let count = bases.len();
        for (i, &base) in bases.iter().enumerate() {
            let newest = i + 1 == count;
            let path: Arc<Path> = dir.join(segment_file_name(base)).into();
            let corrupt = |offset: u64, reason: String| LogError::Corrupt {
                file: path.to_path_buf(),
                offset,
                reason,
            };
            if base == 0 {
                return Err(corrupt(
                    0,
                    "segment name says position 0; positions start at 1".into(),
                ));
            }
            if let Some(prev_end) = end {
                if base != prev_end + 1 {
                    return Err(corrupt(
                        0,
                        format!(
                            "segment starts at position {base} but the previous segment ends at \
                             {prev_end}: a segment is missing or misnamed"
                        ),
                    ));
                }
            }
            let reader = File::open(&path)?;
            let scan = frame::scan(&reader, base)?;
            let mut len = scan.valid_len;
            if let Some(damage) = scan.damage {
                // A torn tail is the last group, whose fsync never returned: nothing intact
                // may follow it. Damage with an intact record after it is damage to
                // acknowledged data, whatever it looks like.
                let expected = base + scan.offsets.len() as u64;
                let torn = newest
                    && damage.tail_like
                    && !frame::intact_frame_after(&reader, damage.offset, scan.file_len, expected)?;
                if !torn {
                    return Err(corrupt(damage.offset, damage.reason));
                }
                // Every other segment has been checked by now (this is the last one), so
                // cutting cannot hide damage elsewhere that would have stopped the start.
                // Zeroed rather than truncated: the space stays preallocated, and zeros
                // read as "not written yet" (see `frame::scan`).
                let garbage_end = frame::nonzero_end(&reader, damage.offset, scan.file_len)?;
                let bytes = garbage_end - damage.offset;
                let file = OpenOptions::new().write(true).open(&path)?;
                zero_range(&file, damage.offset, garbage_end)?;
                file.sync_all()?;
                tracing::warn!(
                    file = %path.display(),
                    offset = damage.offset,
                    bytes,
                    reason = %damage.reason,
                    "cut a torn tail from the log: a group whose write was interrupted, \
                     never acknowledged"
                );
                cut = bytes;
                len = damage.offset;
            }
            end = Some(base - 1 + scan.offsets.len() as u64);
            segments.push_back(Segment {
                base,
                path,
                reader: Arc::new(reader),
                offsets: scan.offsets,
                len,
            });
        }
        let Some(active) = segments.back() else {
            unreachable!("bases is not empty");
        };
        let path = active.path.clone();
        let file = OpenOptions::new().write(true).open(&path)?;
        let state = State {
            segments,
            end: end.unwrap_or(0),
        };
        Ok(Self::assemble(dir, options, file, path, state, cut).with_spare())
    }

    fn with_spare(self) -> Self {
        {
            let mut w = lock(&self.writer);
            self.prepare_spare(&mut w);
        }
        self
    }

    fn assemble(
        dir: &Path,
        options: LogOptions,
        file: File,
        path: Arc<Path>,
        state: State,
        cut_at_open: u64,
    ) -> SegmentLog {
        let (base, len) = state
            .segments
            .back()
            .map_or((state.end + 1, 0), |s| (s.base, s.len));
        let (end_tx, _) = watch::channel(LogPosition(state.end));
        SegmentLog {
            dir: dir.to_path_buf(),
            options,
            writer: Mutex::new(Writer {
                file,
                path,
                base,
                len,
                buf: Vec::new(),
                poisoned: None,
                spare: None,
            }),
            state: RwLock::new(state),
            trim_lock: Mutex::new(()),
            end_tx,
            cut_at_open,
        }
    }

    /// How many bytes were cut from a torn tail at open (0 if none), for a log line / tests.
    pub fn cut_at_open(&self) -> u64 {
        self.cut_at_open
    }

    /// Number of segment files, the active one included.
    pub fn segments(&self) -> usize {
        self.read_state().segments.len()
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read_state(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts segment `base` and makes it the active one. The new file is published (empty)
    /// right away; if the group's write then fails it simply stays empty, which `open`
    /// also accepts.
    fn rotate(&self, w: &mut Writer, base: u64) -> Result<(), LogError> {
        let spare = match w.spare.take() {
            Some(job) => match job.join() {
                Ok(Ok(path)) => Some(path),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "preparing the next log segment failed; creating it now");
                    None
                }
                Err(_) => None,
            },
            None => None,
        };
        let (path, file, reader) = create_segment(&self.dir, base, prealloc(&self.options), spare)?;
        self.prepare_spare(w);
        self.write_state().segments.push_back(Segment {
            base,
            path: path.clone(),
            reader: Arc::new(reader),
            offsets: Vec::new(),
            len: 0,
        });
        w.file = file;
        w.path = path;
        w.base = base;
        w.len = 0;
        Ok(())
    }

    /// Starts zero-filling the file the next rotation will use, so the sequencer doesn't
    /// stall on it.
    fn prepare_spare(&self, w: &mut Writer) {
        let Some(size) = prealloc(&self.options) else {
            return;
        };
        let path = self.dir.join(SPARE_NAME);
        w.spare = std::thread::Builder::new()
            .name("footfall-log-spare".into())
            .spawn(move || {
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)?;
                preallocate(&file, size)?;
                file.sync_all()?;
                Ok(path)
            })
            .ok();
    }

    /// Writes the encoded group at `at` and makes it durable: the one fsync of the group.
    fn write_group(&self, file: &File, buf: &[u8], at: u64) -> io::Result<()> {
        // `buf` holds at least one frame header, so `part` is a proper, non-empty prefix.
        if let Some(flag) = &self.options.fail_writes {
            if flag.load(Ordering::SeqCst) {
                let part = (buf.len() / 2).max(1);
                file.write_all_at(&buf[..part], at)?;
                return Err(io::Error::other(
                    "injected write failure (LogOptions::fail_writes)",
                ));
            }
        }
        file.write_all_at(buf, at)?;
        file.sync_data()
    }

    /// Puts the active segment back to `len` bytes after a failed group write, so the next
    /// group lands right after the last acknowledged one instead of after garbage that
    /// recovery would have to treat as corruption.
    fn roll_back(
        &self,
        w: &mut Writer,
        len: u64,
        written: u64,
        physical: u64,
        err: io::Error,
    ) -> LogError {
        // Back to the size it had (dropping any extension), and zeros where the group's
        // bytes may have landed inside it: zeros read as "not written yet".
        let undo = w
            .file
            .set_len(physical.max(len))
            .and_then(|()| zero_range(&w.file, len, (len + written).min(physical.max(len))))
            .and_then(|()| w.file.sync_data());
        match undo {
            Ok(()) => {
                tracing::warn!(
                    file = %w.path.display(),
                    error = %err,
                    "log append failed; the group was discarded and the segment cut back"
                );
                LogError::Io(err)
            }
            Err(undo) => {
                let reason = format!(
                    "writing {} failed ({err}) and cutting it back to {len} bytes failed too \
                     ({undo})",
                    w.path.display()
                );
                tracing::error!("{reason}; refusing further log appends");
                w.poisoned = Some(reason.clone());
                LogError::Poisoned(reason)
            }
        }
    }
}

/// The file a background thread zero-fills for the next segment; not a segment until
/// renamed, so `open` ignores (and replaces) it.
const SPARE_NAME: &str = "next.spare";

fn prealloc(options: &LogOptions) -> Option<u64> {
    options.preallocate.then_some(options.segment_bytes)
}

/// Reserves `size` bytes for a new segment, reading as zeros: `fallocate` where the file
/// system has it (no data written, so it doesn't compete with the log's own fsyncs for the
/// disk), else by writing zeros.
fn preallocate(file: &File, size: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain system call on an open descriptor we own, with no pointers.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    zero_range(file, 0, size)
}

/// Writes zeros over `from..to` (extending the file if needed).
fn zero_range(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(to.saturating_sub(from) as usize)];
    let mut at = from;
    while at < to {
        let n = (to - at).min(CHUNK as u64) as usize;
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Creates (or empties) the segment file for `base` and makes its existence durable.
/// Returns its path, a write handle and a read handle. With `prealloc`, the file is filled
/// with that many zero bytes (taken from `spare` when a background thread prepared it).
///
/// An existing file of that name can only hold an unacknowledged remnant (its name is the
/// position after the durable end), so emptying it loses nothing.
fn create_segment(
    dir: &Path,
    base: u64,
    prealloc: Option<u64>,
    spare: Option<PathBuf>,
) -> io::Result<(Arc<Path>, File, File)> {
    let path: Arc<Path> = dir.join(segment_file_name(base)).into();
    let file = match (prealloc, spare) {
        (Some(_), Some(spare)) => {
            fs::rename(&spare, &path)?;
            OpenOptions::new().write(true).open(&path)?
        }
        (size, _) => {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)?;
            if let Some(size) = size {
                preallocate(&file, size)?;
            }
            file.sync_all()?;
            file
        }
    };
    sync_dir(dir)?;
    let reader = File::open(&path)?;
    Ok((path, file, reader))
}

/// One contiguous run of frames to read from one segment, planned under the state lock
/// and read after it is released.
struct Chunk {
    path: Arc<Path>,
    file: Arc<File>,
    start: u64,
    end: u64,
    first: u64,
    count: usize,
}

impl Log for SegmentLog {
    fn append(&self, records: &[&[u8]]) -> Result<LogPosition, LogError> {
        let limit = self.options.max_record_bytes.min(MAX_PAYLOAD);
        if let Some(big) = records.iter().find(|r| r.len() > limit) {
            return Err(LogError::TooLarge(big.len()));
        }
        let mut guard = lock(&self.writer);
        let w = &mut *guard;
        if let Some(reason) = &w.poisoned {
            return Err(LogError::Poisoned(reason.clone()));
        }
        // Only appends move the end, and they are serialised by the writer lock.
        let end = self.read_state().end;
        if records.is_empty() {
            return Ok(LogPosition(end));
        }
        // A group never spans segments; an empty active segment is reused whatever its
        // size limit, so two segments never share a base.
        if w.len > 0 && w.len >= self.options.segment_bytes {
            self.rotate(w, end + 1)?;
        }

        let start = w.len;
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        let mut offsets = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            offsets.push(start + buf.len() as u64);
            frame::encode(&mut buf, end + 1 + i as u64, record);
        }
        let physical = w.file.metadata().map(|m| m.len()).unwrap_or(start);
        let written = self.write_group(&w.file, &buf, start);
        let new_len = start + buf.len() as u64;
        let group_len = buf.len() as u64;
        if buf.capacity() <= KEEP_BUFFER_BYTES {
            w.buf = buf;
        }
        if let Err(err) = written {
            return Err(self.roll_back(w, start, group_len, physical, err));
        }
        w.len = new_len;

        // Durable: publish. Readers could not see any of the group before this point.
        let last = end + records.len() as u64;
        {
            let mut state = self.write_state();
            if let Some(active) = state.segments.back_mut() {
                debug_assert_eq!(active.base, w.base);
                active.offsets.extend_from_slice(&offsets);
                active.len = new_len;
            }
            state.end = last;
        }
        self.end_tx.send_replace(LogPosition(last));
        Ok(LogPosition(last))
    }

    fn end(&self) -> LogPosition {
        LogPosition(self.read_state().end)
    }

    fn first(&self) -> LogPosition {
        LogPosition(self.read_state().first())
    }

    fn read_after(
        &self,
        after: LogPosition,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<Vec<(LogPosition, Vec<u8>)>, LogError> {
        let mut chunks = Vec::new();
        let mut total = 0usize;
        {
            let state = self.read_state();
            if after.0 >= state.end || max_records == 0 {
                return Ok(Vec::new());
            }
            let from = after.0 + 1;
            if from < state.first() {
                return Err(LogError::Trimmed(from));
            }
            let mut index = state
                .segments
                .partition_point(|s| s.base <= from)
                .saturating_sub(1);
            let mut pos = from;
            let mut bytes = 0usize;
            let mut full = false;
            while !full {
                let Some(seg) = state.segments.get(index) else {
                    break;
                };
                let first_i = pos.saturating_sub(seg.base) as usize;
                let mut i = first_i;
                while i < seg.offsets.len() {
                    let payload = (seg.frame_end(i) - seg.offsets[i]) as usize - HEADER_LEN;
                    if total == max_records
                        || (total > 0 && bytes.saturating_add(payload) > max_bytes)
                    {
                        full = true;
                        break;
                    }
                    bytes += payload;
                    total += 1;
                    i += 1;
                }
                if i > first_i {
                    chunks.push(Chunk {
                        path: seg.path.clone(),
                        file: seg.reader.clone(),
                        start: seg.offsets[first_i],
                        end: seg.frame_end(i - 1),
                        first: seg.base + first_i as u64,
                        count: i - first_i,
                    });
                }
                pos = seg.next_base();
                index += 1;
            }
        }

        // The lock is released: appends and trims proceed while we do the I/O. Everything
        // planned lies below the published lengths, which never shrink under us.
        let mut out = Vec::with_capacity(total);
        for chunk in chunks {
            let mut buf = vec![0u8; (chunk.end - chunk.start) as usize];
            chunk.file.read_exact_at(&mut buf, chunk.start)?;
            let mut at = 0usize;
            for k in 0..chunk.count {
                let expected = chunk.first + k as u64;
                let corrupt = |reason: String| LogError::Corrupt {
                    file: chunk.path.to_path_buf(),
                    offset: chunk.start + at as u64,
                    reason,
                };
                let frame = frame::decode(&buf[at..]).map_err(corrupt)?;
                if frame.position != expected {
                    return Err(corrupt(format!(
                        "record holds position {} where {expected} was expected",
                        frame.position
                    )));
                }
                out.push((LogPosition(expected), frame.payload.to_vec()));
                at += frame.frame_len;
            }
        }
        Ok(out)
    }

    fn trim(&self, upto: LogPosition) -> Result<u64, LogError> {
        let _trimming = lock(&self.trim_lock);
        let mut freed = 0u64;
        let mut deleted = 0usize;
        loop {
            let victim = {
                let mut state = self.write_state();
                // The oldest segment's records all lie below the next segment's base; the
                // active (last) segment is never a candidate.
                match state.segments.get(1) {
                    Some(next) if next.base - 1 <= upto.0 => state.segments.pop_front(),
                    _ => None,
                }
            };
            let Some(segment) = victim else { break };
            // One directory sync per removal: removals reaching the disk out of order would
            // leave a gap that `open` refuses.
            match fs::remove_file(&segment.path).and_then(|()| sync_dir(&self.dir)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Keep the files on disk and in the index contiguous: put it back.
                    self.write_state().segments.push_front(segment);
                    if deleted > 0 {
                        sync_dir(&self.dir)?;
                    }
                    return Err(e.into());
                }
            }
            freed += segment.len;
            deleted += 1;
        }
        if deleted > 0 {
            sync_dir(&self.dir)?;
            tracing::debug!(
                segments = deleted,
                bytes = freed,
                upto = upto.0,
                "trimmed the log"
            );
        }
        Ok(freed)
    }

    fn size_bytes(&self) -> u64 {
        self.read_state().segments.iter().map(|s| s.len).sum()
    }

    fn subscribe(&self) -> watch::Receiver<LogPosition> {
        self.end_tx.subscribe()
    }
}

impl fmt::Debug for SegmentLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read_state();
        f.debug_struct("SegmentLog")
            .field("dir", &self.dir)
            .field("first", &state.first())
            .field("end", &state.end)
            .field("segments", &state.segments.len())
            .finish_non_exhaustive()
    }
}
