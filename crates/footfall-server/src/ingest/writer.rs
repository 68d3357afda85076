//! Where prepared events go: the embedded sequencer (decides at once, answers with each
//! event's disposition) or, in cluster mode, the partitions' inboxes in Redis (durable at
//! once, decided moments later by the partition's owner — so the answer is "queued").

use crate::cluster::inbox_writer::InboxWriter;
use crate::metrics::Metrics;
use crate::pipeline::sequencer::SequencerHandle;
use footfall_core::record::Disposition;
use footfall_core::EnrichedEvent;
use footfall_store::redis::InboxError;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// An event and its partition route (see `identify::partition`).
pub type Routed = (u64, EnrichedEvent);

/// Why events were not made durable; every variant is answered 503.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    NotDurable(String),
    /// The cluster's backlog is at its limit (storage is behind): try again later.
    #[error("backlog full: {0}")]
    BacklogFull(String),
}

#[derive(Clone)]
pub enum EventWriter {
    Embedded(SequencerHandle),
    /// With the metrics, to count what it acknowledged.
    Cluster(InboxWriter, Arc<Metrics>),
}

impl EventWriter {
    /// Makes `events` durable. Per event: its disposition if it was decided now (embedded),
    /// None if it was queued for its partition's owner (cluster).
    pub async fn write(&self, events: Vec<Routed>) -> Result<Vec<Option<Disposition>>, WriteError> {
        match self {
            EventWriter::Embedded(s) => {
                let events = events.into_iter().map(|(_, e)| e).collect();
                let d = s.write(events).await.map_err(WriteError::NotDurable)?;
                Ok(d.into_iter().map(Some).collect())
            }
            EventWriter::Cluster(w, metrics) => {
                let n = events.len();
                match w.write(events).await {
                    Ok(()) => {
                        metrics.ingested.fetch_add(n as u64, Relaxed);
                        Ok(vec![None; n])
                    }
                    Err(e @ InboxError::Full { .. }) => Err(WriteError::BacklogFull(e.to_string())),
                    Err(e) => Err(WriteError::NotDurable(e.to_string())),
                }
            }
        }
    }

    /// Answers everything queued and stops (embedded: snapshots the sequencer).
    pub async fn shutdown(&self) {
        if let EventWriter::Embedded(s) = self {
            s.shutdown().await;
        }
    }
}
