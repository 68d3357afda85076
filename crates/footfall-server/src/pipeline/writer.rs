//! The single writer: group commit into DuckDB, then live state, then acknowledgements.
//!
//! Requests queue jobs; the writer takes everything queued (up to a batch limit), runs
//! identify over it in arrival order — one thread, so dedup is exact however many requests
//! race — commits the batch in one transaction, applies it to the live state, and only
//! then answers every request in it. A batch is never older than one commit time: while a
//! commit runs, the next batch gathers.

use super::live::Live;
use crate::clock::Clock;
use crate::metrics::Metrics;
use footfall_core::identify::{Identifier, Outcome, SessionRow};
use footfall_core::{EnrichedEvent, EventId, EventKind, SessionId, Timestamp};
use footfall_store::{DuckStore, EventRow, SessionChange};
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    Stored,
    /// Valid but not recorded as an event, with the reason (`duplicate`, `no_visit`).
    Skipped(&'static str),
    /// A heartbeat: recorded in the live state and the visit, never as an event.
    Heartbeat,
}

pub type Reply = Result<Vec<Disposition>, String>;

enum Job {
    Write {
        events: Vec<EnrichedEvent>,
        reply: oneshot::Sender<Reply>,
    },
    Shutdown(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
}

impl WriterHandle {
    /// Queues events and waits until they are durable (or failed).
    pub async fn write(&self, events: Vec<EnrichedEvent>) -> Reply {
        let n = events.len() as i64;
        let (reply, rx) = oneshot::channel();
        self.metrics.buffer_depth.fetch_add(n, Relaxed);
        if self.tx.send(Job::Write { events, reply }).await.is_err() {
            self.metrics.buffer_depth.fetch_sub(n, Relaxed);
            return Err("writer stopped".into());
        }
        rx.await.unwrap_or_else(|_| Err("writer stopped".into()))
    }

    /// Drains everything queued, checkpoints, and stops the writer.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Job::Shutdown(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The visits a batch touched, in first-touch order, each with its state before the batch
/// and its last state in it: one −1/+1 pair per visit per batch, however many events.
#[derive(Default)]
struct VisitChanges {
    index: HashMap<SessionId, usize>,
    list: Vec<(Option<SessionRow>, SessionRow)>,
}

impl VisitChanges {
    fn record(&mut self, out: &Outcome) {
        let Some(after) = &out.session_after else {
            return;
        };
        match self.index.get(&after.session) {
            Some(&i) => self.list[i].1 = after.clone(),
            None => {
                self.index.insert(after.session, self.list.len());
                self.list.push((out.session_before.clone(), after.clone()));
            }
        }
    }

    fn rows(&self) -> Vec<SessionChange<'_>> {
        self.list
            .iter()
            .flat_map(|(before, after)| {
                before
                    .iter()
                    .map(|row| SessionChange { sign: -1, row })
                    .chain(std::iter::once(SessionChange {
                        sign: 1,
                        row: after,
                    }))
            })
            .collect()
    }
}

pub struct Writer {
    pub store: DuckStore,
    pub identify: Identifier,
    pub live: Arc<Live>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub max_batch: usize,
    pub next_id: u64,
    /// Set when identify's state could not be brought back in line with storage after a
    /// failed commit: from then on every write is refused rather than risk wrong counts.
    pub failed: Option<String>,
}

impl Writer {
    pub fn spawn(self) -> (WriterHandle, std::thread::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(16_384);
        let handle = WriterHandle {
            tx,
            metrics: self.metrics.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("footfall-writer".into())
            .spawn(move || self.run(rx));
        match thread {
            Ok(t) => (handle, t),
            Err(e) => panic!("cannot start the writer thread: {e}"),
        }
    }

    fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        let mut last_evict = self.clock.now();
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
                        // Drain whatever is still queued, then stop.
                        while let Ok(j) = rx.try_recv() {
                            if let Job::Write { events, reply } = j {
                                jobs.push((events, reply));
                            }
                        }
                        break;
                    }
                }
                if n < self.max_batch {
                    next = rx.try_recv().ok();
                }
            }
            if !jobs.is_empty() {
                self.commit(jobs);
            }
            let now = self.clock.now();
            if now.0 - last_evict.0 > 60_000 {
                self.identify.evict(now);
                last_evict = now;
            }
            if let Some(done) = stop {
                if let Err(e) = self.store.checkpoint() {
                    tracing::warn!(error = %e, "checkpoint at shutdown failed");
                }
                let _ = done.send(());
                return;
            }
        }
    }

    fn commit(&mut self, jobs: Vec<(Vec<EnrichedEvent>, oneshot::Sender<Reply>)>) {
        if let Some(reason) = &self.failed {
            let total: usize = jobs.iter().map(|j| j.0.len()).sum();
            self.metrics.buffer_depth.fetch_sub(total as i64, Relaxed);
            for (_, reply) in jobs {
                let _ = reply.send(Err(reason.clone()));
            }
            return;
        }
        let started = Instant::now();
        let total: usize = jobs.iter().map(|j| j.0.len()).sum();
        let mut outcomes: Vec<Vec<(EnrichedEvent, Outcome, EventId)>> =
            Vec::with_capacity(jobs.len());
        let mut visits = VisitChanges::default();
        let first_id = self.next_id;
        let mut replies = Vec::with_capacity(jobs.len());
        for (events, reply) in jobs {
            replies.push(reply);
            let mut per_job = Vec::with_capacity(events.len());
            for ev in events {
                let id = EventId(self.next_id);
                let out = self.identify.process(&ev, id);
                if out.stored {
                    self.next_id += 1;
                }
                visits.record(&out);
                per_job.push((ev, out, id));
            }
            outcomes.push(per_job);
        }
        let changes = visits.rows();
        let rows: Vec<EventRow<'_>> = outcomes
            .iter()
            .flatten()
            .filter(|(_, out, _)| out.stored)
            .filter_map(|(ev, out, id)| {
                Some(EventRow {
                    id: *id,
                    visitor: out.visitor,
                    session: out.session?,
                    event: ev,
                    visit: out.attrs.as_deref()?,
                })
            })
            .collect();
        let t_identify = started.elapsed();
        let result = self.store.commit(&rows, &changes);
        tracing::debug!(
            events = total,
            rows = rows.len(),
            session_rows = changes.len(),
            identify_us = t_identify.as_micros() as u64,
            commit_us = (started.elapsed() - t_identify).as_micros() as u64,
            "batch"
        );
        self.metrics.buffer_depth.fetch_sub(total as i64, Relaxed);
        if let Err(e) = result {
            self.metrics.flush_failures.fetch_add(1, Relaxed);
            tracing::error!(error = %e, events = total, "commit failed; rejecting the batch");
            self.recover(first_id);
            for reply in replies {
                let _ = reply.send(Err(e.to_string()));
            }
            return;
        }
        self.metrics.flushes.fetch_add(1, Relaxed);
        self.metrics
            .flush_seconds_sum_us
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        self.metrics.ingested.fetch_add(rows.len() as u64, Relaxed);

        let version = {
            let mut st = self.live.lock();
            let st = &mut *st;
            for per_job in &outcomes {
                for (ev, out, id) in per_job {
                    let c = st.counters.site_mut(&ev.site);
                    if out.stored && ev.kind == EventKind::Pageview {
                        c.apply_pageview(
                            *id,
                            ev.ts,
                            &ev.pathname,
                            ev.title.as_deref(),
                            ev.page_type.as_deref(),
                            out.visitor,
                        );
                    }
                    for d in &out.durations {
                        c.apply_duration(d);
                    }
                    st.active
                        .touch(&ev.site, out.visitor, ev.ts, &ev.pathname, &ev.geo);
                }
            }
            for (before, after) in &visits.list {
                st.counters
                    .site_mut(&after.site)
                    .apply_session(before.as_ref(), Some(after));
            }
            st.version += 1;
            st.version
        };
        self.live.publish(version);

        drop(rows);
        for (reply, per_job) in replies.into_iter().zip(outcomes) {
            let dispositions = per_job
                .iter()
                .map(|(ev, out, _)| match (out.stored, out.skipped, ev.kind) {
                    (true, _, _) => Disposition::Stored,
                    (false, Some(reason), _) => Disposition::Skipped(reason),
                    (false, None, _) => Disposition::Heartbeat,
                })
                .collect();
            let _ = reply.send(Ok(dispositions));
        }
    }

    /// After a failed commit identify has seen events that were not stored: rebuild its
    /// state from what is durable.
    fn recover(&mut self, first_id: u64) {
        let cfg = self.identify.config();
        let mut fresh = Identifier::new(cfg);
        let now = self.clock.now();
        match self.store.restore_identify(
            &mut fresh,
            Timestamp(now.0 - 2 * cfg.visit_gap_ms),
            Timestamp(now.0 - cfg.dedup_window_ms),
        ) {
            Ok(_) => self.identify = fresh,
            Err(e) => {
                tracing::error!(error = %e, "could not restore visit state after a failed commit; refusing writes until restart");
                self.failed = Some(format!(
                    "storage failed and visit state could not be restored ({e}); restart footfall"
                ));
            }
        }
        self.next_id = first_id;
    }
}
