//! The sequencer thread: the only writer of the log.
//!
//! Requests queue their events; the thread takes everything queued (up to a batch limit),
//! decides visitor, visit, dedup and durations for the whole group in arrival order (one
//! thread, so dedup is exact however many requests race), writes ONE commit record and
//! fdatasyncs it, applies it to the live state, and only then answers every request in the
//! group. While one group is being synced the next one gathers, so there is no timer.
//!
//! A failed log write answers 503 to the whole group, acknowledges nothing, and brings the
//! sequencer's state back to what the log holds (snapshot + replay, as at start), so
//! nothing that was refused is ever counted.

use super::live::LiveState;
use super::recovery::{self, Retention};
use super::snapshot::SnapshotFile;
use crate::clock::Clock;
use crate::metrics::Metrics;
use footfall_core::identify::Config as IdentifyConfig;
use footfall_core::record::Disposition;
use footfall_core::sequence::{Sequencer, MAX_RECORD_EVENTS};
use footfall_core::EnrichedEvent;
use footfall_store::{Log, LogPosition};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub type Reply = Result<Vec<Disposition>, String>;

enum Job {
    Write {
        events: Vec<EnrichedEvent>,
        reply: oneshot::Sender<Reply>,
    },
    Shutdown(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct SequencerHandle {
    tx: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

/// Tracks queued events in the buffer-depth gauge, whatever becomes of the request (a
/// client that disconnects drops its future while queued).
struct Queued<'a>(&'a Metrics, i64);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.buffer_depth.fetch_sub(self.1, Relaxed);
    }
}

impl SequencerHandle {
    /// Queues events and waits until their record is durable (or refused).
    pub async fn write(&self, events: Vec<EnrichedEvent>) -> Reply {
        let n = events.len() as i64;
        let (reply, rx) = oneshot::channel();
        self.metrics.buffer_depth.fetch_add(n, Relaxed);
        let _queued = Queued(&self.metrics, n);
        if self.tx.send(Job::Write { events, reply }).await.is_err() {
            return Err("the sequencer has stopped".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("the sequencer has stopped".into()))
    }

    /// Answers everything queued, snapshots the state, and stops the thread.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

pub struct SequencerThread {
    pub sequencer: Sequencer,
    pub identify: IdentifyConfig,
    pub id_base: u64,
    pub log: Arc<dyn Log>,
    pub live: Arc<dyn LiveState>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub max_batch: usize,
    pub snapshots: SnapshotFiles,
    pub snapshot_every: Duration,
    /// Also snapshot once this many bytes of records were written since the last one, so
    /// a restart never replays more than that and the log can be trimmed behind it.
    pub snapshot_bytes: u64,
    pub retention: Arc<Retention>,
    /// Set when the state could not be brought back in line with the log after a failed
    /// write: from then on every write is refused rather than risk wrong counts.
    pub failed: Option<String>,
}

/// Where the sequencer and live snapshots go.
#[derive(Clone)]
pub struct SnapshotFiles {
    pub sequencer: SnapshotFile,
    pub live: SnapshotFile,
}

impl SequencerThread {
    pub fn spawn(self) -> std::io::Result<(SequencerHandle, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(16_384);
        let handle = SequencerHandle {
            tx,
            metrics: self.metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("footfall-sequencer".into())
            .spawn(move || self.run(rx))?;
        Ok((handle, thread))
    }

    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let max = self.max_batch.clamp(1, MAX_RECORD_EVENTS / 2);
        let mut last_snapshot = Instant::now();
        let mut bytes_at_snapshot = 0u64;
        while let Some(first) = rx.blocking_recv() {
            let mut jobs = Vec::new();
            let mut stop = None;
            let mut n = 0;
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Write { events, reply } => {
                        n += events.len();
                        jobs.push((events, reply));
                    }
                    Job::Shutdown(done) => {
                        stop = Some(done);
                        break;
                    }
                }
                if n < max {
                    next = rx.try_recv().ok();
                }
            }
            if !jobs.is_empty() {
                self.commit(jobs);
            }
            if let Some(done) = stop {
                // Whatever is still queued arrived after shutdown began: answer it too.
                rx.close();
                let mut rest = Vec::new();
                while let Ok(j) = rx.try_recv() {
                    if let Job::Write { events, reply } = j {
                        rest.push((events, reply));
                    }
                }
                if !rest.is_empty() {
                    self.commit(rest);
                }
                let _ = self.final_snapshot();
                let _ = done.send(());
                return;
            }
            let written = self.metrics.log_bytes_written.load(Relaxed);
            let due = last_snapshot.elapsed() >= self.snapshot_every
                || written - bytes_at_snapshot >= self.snapshot_bytes;
            if due && self.snapshot() {
                // A failed snapshot is tried again after the next group.
                last_snapshot = Instant::now();
                bytes_at_snapshot = written;
            }
        }
        let _ = self.final_snapshot();
    }

    fn commit(&mut self, jobs: Vec<(Vec<EnrichedEvent>, oneshot::Sender<Reply>)>) {
        if let Some(reason) = &self.failed {
            for (_, reply) in jobs {
                let _ = reply.send(Err(reason.clone()));
            }
            return;
        }
        let started = Instant::now();
        let mut sizes = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        let mut events = Vec::new();
        for (evs, reply) in jobs {
            sizes.push(evs.len());
            replies.push(reply);
            events.extend(evs);
        }
        let position = LogPosition(self.log.end().0 + 1);
        let record = self
            .sequencer
            .sequence(position.0, self.clock.now(), events);
        let encoded = record.encode().map_err(|e| (e.to_string(), false));
        let appending = Instant::now();
        let written = encoded.and_then(|bytes| {
            let at = self.log.append(&[&bytes]).map_err(|e| {
                let poisoned = matches!(e, footfall_store::LogError::Poisoned(_));
                (e.to_string(), poisoned)
            })?;
            self.metrics
                .log_bytes_written
                .fetch_add(bytes.len() as u64, Relaxed);
            Ok(at)
        });
        self.metrics
            .log_append_seconds_sum_us
            .fetch_add(appending.elapsed().as_micros() as u64, Relaxed);
        match written {
            Ok(at) => {
                debug_assert_eq!(at, position);
                self.live.apply(0, &record);
                let stored = record.stored().count();
                self.metrics.ingested.fetch_add(stored as u64, Relaxed);
                self.metrics.flushes.fetch_add(1, Relaxed);
                self.metrics
                    .flush_seconds_sum_us
                    .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
                let mut entries = record.entries.iter();
                for (reply, size) in replies.into_iter().zip(sizes) {
                    let d = entries.by_ref().take(size).map(|e| e.disposition).collect();
                    let _ = reply.send(Ok(d));
                }
            }
            Err((e, poisoned)) => {
                self.metrics.flush_failures.fetch_add(1, Relaxed);
                tracing::error!(error = %e, events = record.entries.len(), "log write failed; refusing the group");
                let answer = format!("could not make the events durable: {e}");
                for reply in replies {
                    let _ = reply.send(Err(answer.clone()));
                }
                if poisoned {
                    // The log can't tell what of the group is on disk: only a restart's
                    // recovery can. Refuse everything until then; /readyz says so.
                    self.refuse(format!("the log is unusable ({e}); restart footfall"));
                } else {
                    self.recover();
                }
            }
        }
    }

    /// After a refused group the state has seen events the log doesn't hold: rebuild it
    /// from the log, exactly as a restart would.
    fn recover(&mut self) {
        match recovery::load_sequencer(
            &self.snapshots.sequencer,
            self.log.as_ref(),
            self.identify,
            self.id_base,
        ) {
            Ok(s) => self.sequencer = s,
            Err(e) => {
                tracing::error!(error = %e, "could not rebuild visit state from the log; refusing writes until restart");
                self.refuse(format!(
                    "the log failed and visit state could not be rebuilt ({e}); restart footfall"
                ));
            }
        }
    }

    fn refuse(&mut self, reason: String) {
        self.metrics.refusing_writes.store(true, Relaxed);
        self.failed = Some(reason);
    }

    /// Snapshots the sequencer and the live state at the log's end (both are exactly there:
    /// this thread applies every record it writes), then lets the log drop what neither the
    /// snapshots nor storage need any more.
    /// Returns whether a snapshot was written.
    fn snapshot(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        self.snapshot_state()
    }

    /// The snapshot at shutdown. Visits that can no longer grow stay in memory until the
    /// next group otherwise — after a burst (a back-fill) millions of them — and the next
    /// start would load them all. Evicting is safe only here: no decision follows it (an
    /// eviction the log doesn't show, followed by decisions, would make a replay from an
    /// older snapshot decide differently).
    fn final_snapshot(&mut self) -> bool {
        if self.failed.is_some() {
            return false;
        }
        self.sequencer.evict(self.clock.now());
        self.snapshot_state()
    }

    fn snapshot_state(&mut self) -> bool {
        let at = self.log.end();
        let started = Instant::now();
        let seq = self.sequencer.snapshot().map_err(|e| e.to_string());
        let live = postcard::to_stdvec(&self.live.to_snapshot()).map_err(|e| e.to_string());
        let written = seq.and_then(|seq| {
            let live = live?;
            self.snapshots
                .sequencer
                .write(at, &seq)
                .and_then(|_| self.snapshots.live.write(at, &live))
                .map_err(|e| e.to_string())
        });
        match written {
            Ok(()) => {
                tracing::debug!(
                    position = at.0,
                    ms = started.elapsed().as_millis() as u64,
                    "snapshot written"
                );
                self.retention.snapshot_at(at);
                recovery::trim(self.log.as_ref(), &self.retention);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "snapshot failed; the log is kept until one succeeds");
                false
            }
        }
    }
}
