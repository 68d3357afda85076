//! Ingest's side of cluster mode: put a request's enriched events into their partitions'
//! inboxes and answer once Redis has them on disk.
//!
//! A writer thread takes everything queued meanwhile and pushes it as ONE transaction, so a
//! burst of requests costs one round trip and one fsync in Redis (group commit, as the
//! embedded sequencer does with its log). Several such threads, each on its own
//! connection, take turns: while one waits for Redis, the next takes the next group. If a partition is over its backlog limit the
//! group is retried request by request, so only the requests that touch a full partition
//! are refused.

use footfall_core::identify::partition::partition;
use footfall_core::EnrichedEvent;
use footfall_store::redis::{Inbox, InboxError};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub type Reply = Result<(), InboxError>;

struct Job {
    entries: Vec<(u32, Vec<u8>)>,
    reply: oneshot::Sender<Reply>,
}

#[derive(Clone)]
pub struct InboxWriter {
    tx: mpsc::Sender<Job>,
    parts: u32,
}

impl InboxWriter {
    /// Starts one writer thread per inbox handle given (each should have a connection of
    /// its own): whichever is free takes everything queued as its group, so while one
    /// waits for Redis's fsync the next group is already on its way. They stop when every
    /// handle is dropped.
    pub fn spawn(inboxes: Vec<Arc<Inbox>>, max_group: usize) -> std::io::Result<InboxWriter> {
        let (tx, rx) = mpsc::channel(16_384);
        let parts = inboxes.first().map_or(1, |i| i.parts());
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for inbox in inboxes {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name("footfall-inbox".into())
                .spawn(move || run(inbox, rx, max_group.max(1)))?;
        }
        Ok(InboxWriter { tx, parts })
    }

    /// Queues `events` (each with its partition route) and waits until Redis has them.
    pub async fn write(&self, events: Vec<(u64, EnrichedEvent)>) -> Reply {
        let entries = encode(events, self.parts)?;
        let (reply, rx) = oneshot::channel();
        let stopped = || InboxError::Unavailable("the inbox writer has stopped".into());
        self.tx
            .send(Job { entries, reply })
            .await
            .map_err(|_| stopped())?;
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// The first byte of an inbox entry: the encoding of the events after it. A node meeting
/// a newer format (a rolling upgrade) leaves the entry alone instead of dropping it.
/// Format 1 (events before revenue) is still read.
pub const ENTRY_FORMAT: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("entry format {0} is newer than this node understands")]
    NewerFormat(u8),
    #[error("entry does not decode: {0}")]
    Corrupt(String),
}

/// The events of an inbox entry.
pub fn decode_entry(bytes: &[u8]) -> Result<Vec<EnrichedEvent>, EntryError> {
    match bytes.split_first() {
        Some((&ENTRY_FORMAT, rest)) => {
            postcard::from_bytes(rest).map_err(|e| EntryError::Corrupt(e.to_string()))
        }
        Some((1, rest)) => footfall_core::record::legacy::events_v2(rest)
            .map_err(|e| EntryError::Corrupt(e.to_string())),
        Some((&f, _)) if f > ENTRY_FORMAT => Err(EntryError::NewerFormat(f)),
        Some((f, _)) => Err(EntryError::Corrupt(format!("unknown format {f}"))),
        None => Err(EntryError::Corrupt("empty entry".into())),
    }
}

/// An inbox entry holding `events`.
pub fn encode_entry(events: &[EnrichedEvent]) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_extend(events, vec![ENTRY_FORMAT])
}

/// One inbox entry per partition the request touches, holding its events in order.
fn encode(
    events: Vec<(u64, EnrichedEvent)>,
    parts: u32,
) -> Result<Vec<(u32, Vec<u8>)>, InboxError> {
    let mut by_part: Vec<(u32, Vec<EnrichedEvent>)> = Vec::new();
    for (route, ev) in events {
        let p = partition(route, parts);
        match by_part.iter_mut().find(|(q, _)| *q == p) {
            Some((_, evs)) => evs.push(ev),
            None => by_part.push((p, vec![ev])),
        }
    }
    by_part
        .into_iter()
        .map(|(p, evs)| {
            encode_entry(&evs)
                .map(|bytes| (p, bytes))
                .map_err(|e| InboxError::Unavailable(format!("cannot encode events: {e}")))
        })
        .collect()
}

/// Takes the next group: the first job queued (waiting for one), then whatever else is
/// queued, up to `max_group` entries. None once every handle is dropped.
fn next_group(rx: &std::sync::Mutex<mpsc::Receiver<Job>>, max_group: usize) -> Option<Vec<Job>> {
    let mut rx = rx.lock().unwrap_or_else(|p| p.into_inner());
    let first = rx.blocking_recv()?;
    let mut n = first.entries.len();
    let mut jobs = vec![first];
    while n < max_group {
        match rx.try_recv() {
            Ok(job) => {
                n += job.entries.len();
                jobs.push(job);
            }
            Err(_) => break,
        }
    }
    Some(jobs)
}

fn run(inbox: Arc<Inbox>, rx: Arc<std::sync::Mutex<mpsc::Receiver<Job>>>, max_group: usize) {
    while let Some(mut jobs) = next_group(&rx, max_group) {
        let all: Vec<(u32, &[u8])> = jobs
            .iter()
            .flat_map(|j| j.entries.iter().map(|(p, b)| (*p, b.as_slice())))
            .collect();
        let result = inbox.push(&all);
        drop(all);
        if jobs.len() == 1 {
            if let Some(job) = jobs.pop() {
                let _ = job.reply.send(result);
            }
            continue;
        }
        match result {
            Err(InboxError::Full { .. }) => {
                for job in jobs {
                    let one: Vec<(u32, &[u8])> = job
                        .entries
                        .iter()
                        .map(|(p, b)| (*p, b.as_slice()))
                        .collect();
                    let _ = job.reply.send(inbox.push(&one));
                }
            }
            Ok(()) => {
                for job in jobs {
                    let _ = job.reply.send(Ok(()));
                }
            }
            Err(e) => {
                let reason = e.to_string();
                for job in jobs {
                    let _ = job.reply.send(Err(InboxError::Unavailable(reason.clone())));
                }
            }
        }
    }
}
