//! Prometheus metrics, rendered in the text exposition format at `/metrics`.

use footfall_core::DropReason;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::cluster::applier::ApplierStats;
use crate::cluster::owner::OwnerStats;

#[derive(Default)]
pub struct Metrics {
    pub ingested: AtomicU64,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    pub buffer_depth: AtomicI64,
    pub flushes: AtomicU64,
    pub flush_seconds_sum_us: AtomicU64,
    pub flush_failures: AtomicU64,
    pub sse_subscribers: AtomicI64,
    /// The log's last durable position, storage's applied position, and the log's size.
    pub log_end: AtomicU64,
    pub applied: AtomicU64,
    pub log_bytes: AtomicU64,
    pub applies: AtomicU64,
    /// Query parts answered from rollups / from raw rows.
    pub parts_rollup: AtomicU64,
    pub parts_raw: AtomicU64,
    pub apply_seconds_sum_us: AtomicU64,
    pub apply_failures: AtomicU64,
    /// Raw events moved to the archive tier (sorted by site and time).
    pub compacted_events: AtomicU64,
    /// Time in the log's append (write + fdatasync), summed; counted by `flushes`.
    pub log_append_seconds_sum_us: AtomicU64,
    /// Bytes of records appended to the log since start.
    pub log_bytes_written: AtomicU64,
    /// Set when the sequencer refuses all writes until a restart (the log is unusable).
    pub refusing_writes: std::sync::atomic::AtomicBool,
    /// Cluster mode: entries waiting in Redis across all partitions (inboxes plus logs
    /// not yet trimmed), sampled every few seconds; -1 in embedded mode (not shown).
    pub cluster_backlog: AtomicI64,
    /// Cluster mode: this node's partition owners and storage appliers, one per partition.
    pub cluster: std::sync::OnceLock<ClusterStats>,
}

/// The counters of a cluster node's per-partition workers, summed when rendered.
pub struct ClusterStats {
    pub owners: Vec<Arc<OwnerStats>>,
    pub appliers: Vec<Arc<ApplierStats>>,
}

impl ClusterStats {
    fn render(&self, s: &mut String) {
        let owners = |f: &dyn Fn(&OwnerStats) -> u64| self.owners.iter().map(|o| f(o)).sum::<u64>();
        let appliers =
            |f: &dyn Fn(&ApplierStats) -> u64| self.appliers.iter().map(|a| f(a)).sum::<u64>();
        let held = |b: &std::sync::atomic::AtomicBool| u64::from(b.load(Relaxed));
        let _ = writeln!(s, "# HELP footfall_cluster_partitions_held Partitions this node sequences (role=sequencer) or applies to ClickHouse (role=applier) now.\n# TYPE footfall_cluster_partitions_held gauge");
        let _ = writeln!(
            s,
            "footfall_cluster_partitions_held{{role=\"sequencer\"}} {}",
            owners(&|o| held(&o.holding))
        );
        let _ = writeln!(
            s,
            "footfall_cluster_partitions_held{{role=\"applier\"}} {}",
            appliers(&|a| held(&a.holding))
        );
        let _ = writeln!(s, "# HELP footfall_cluster_takeovers_total Times this node took a partition (a start counts).\n# TYPE footfall_cluster_takeovers_total counter");
        let _ = writeln!(
            s,
            "footfall_cluster_takeovers_total{{role=\"sequencer\"}} {}",
            owners(&|o| o.takeovers.load(Relaxed))
        );
        let _ = writeln!(
            s,
            "footfall_cluster_takeovers_total{{role=\"applier\"}} {}",
            appliers(&|a| a.takeovers.load(Relaxed))
        );
        let _ = writeln!(s, "# HELP footfall_cluster_deposed_total Times this node found its sequencing lease gone or its append fenced.\n# TYPE footfall_cluster_deposed_total counter\nfootfall_cluster_deposed_total {}", owners(&|o| o.deposed.load(Relaxed)));
        let _ = writeln!(s, "# HELP footfall_cluster_sequenced_events_total Events this node's owners sequenced from the inboxes into the partition logs.\n# TYPE footfall_cluster_sequenced_events_total counter\nfootfall_cluster_sequenced_events_total {}", owners(&|o| o.events.load(Relaxed)));
        let _ = writeln!(s, "# HELP footfall_cluster_sequenced_records_total Log records this node's owners appended.\n# TYPE footfall_cluster_sequenced_records_total counter\nfootfall_cluster_sequenced_records_total {}", owners(&|o| o.records.load(Relaxed)));
        let _ = writeln!(s, "# HELP footfall_cluster_bad_inbox_entries_total Inbox entries that did not decode (dropped, counted).\n# TYPE footfall_cluster_bad_inbox_entries_total counter\nfootfall_cluster_bad_inbox_entries_total {}", owners(&|o| o.bad_entries.load(Relaxed)));
        let _ = writeln!(s, "# HELP footfall_cluster_applied_records_total Log records this node's appliers stored in ClickHouse.\n# TYPE footfall_cluster_applied_records_total counter\nfootfall_cluster_applied_records_total {}", appliers(&|a| a.records.load(Relaxed)));
        let _ = writeln!(s, "# HELP footfall_cluster_apply_failures_total Storage chunks that failed (retried).\n# TYPE footfall_cluster_apply_failures_total counter\nfootfall_cluster_apply_failures_total {}", appliers(&|a| a.failures.load(Relaxed)));
        let _ = writeln!(s, "# HELP footfall_cluster_trimmed_bytes_total Bytes of log records trimmed from Redis once in ClickHouse.\n# TYPE footfall_cluster_trimmed_bytes_total counter\nfootfall_cluster_trimmed_bytes_total {}", appliers(&|a| a.trimmed_bytes.load(Relaxed)));
        let _ = writeln!(s, "# HELP footfall_cluster_rollup_rebuilds_total Sites whose rollups this node's appliers rebuilt from raw rows (a zone change).\n# TYPE footfall_cluster_rollup_rebuilds_total counter\nfootfall_cluster_rollup_rebuilds_total {}", appliers(&|a| a.rollup_rebuilds.load(Relaxed)));
    }
}

impl Metrics {
    pub fn dropped(&self, reason: DropReason) {
        if let Ok(mut m) = self.dropped.lock() {
            *m.entry(reason.as_str()).or_default() += 1;
        }
    }

    pub fn dropped_count(&self, reason: &str) -> u64 {
        self.dropped
            .lock()
            .map(|m| m.get(reason).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# HELP footfall_events_ingested_total Events recorded (durable in the log; in cluster mode, events this node acknowledged, durable in Redis).\n# TYPE footfall_events_ingested_total counter");
        let _ = writeln!(
            s,
            "footfall_events_ingested_total {}",
            self.ingested.load(Relaxed)
        );
        let _ = writeln!(s, "# HELP footfall_events_dropped_total Valid events not recorded, by reason.\n# TYPE footfall_events_dropped_total counter");
        if let Ok(m) = self.dropped.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    s,
                    "footfall_events_dropped_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(s, "# HELP footfall_buffer_depth Events waiting for the sequencer.\n# TYPE footfall_buffer_depth gauge");
        let _ = writeln!(
            s,
            "footfall_buffer_depth {}",
            self.buffer_depth.load(Relaxed)
        );
        let (end, applied) = (self.log_end.load(Relaxed), self.applied.load(Relaxed));
        let _ = writeln!(s, "# HELP footfall_log_position Last durable log position.\n# TYPE footfall_log_position gauge\nfootfall_log_position {end}");
        let _ = writeln!(s, "# HELP footfall_applied_position Last log position in storage.\n# TYPE footfall_applied_position gauge\nfootfall_applied_position {applied}");
        let _ = writeln!(s, "# HELP footfall_applier_lag_records Log records not yet in storage.\n# TYPE footfall_applier_lag_records gauge\nfootfall_applier_lag_records {}", end.saturating_sub(applied));
        let _ = writeln!(s, "# HELP footfall_log_bytes Bytes held by the log's segment files.\n# TYPE footfall_log_bytes gauge\nfootfall_log_bytes {}", self.log_bytes.load(Relaxed));
        let _ = writeln!(s, "# HELP footfall_apply_seconds Time to write a batch of records to storage.\n# TYPE footfall_apply_seconds summary\nfootfall_apply_seconds_sum {}\nfootfall_apply_seconds_count {}", self.apply_seconds_sum_us.load(Relaxed) as f64 / 1e6, self.applies.load(Relaxed));
        let _ = writeln!(
            s,
            "# TYPE footfall_apply_failures_total counter\nfootfall_apply_failures_total {}",
            self.apply_failures.load(Relaxed)
        );
        let _ = writeln!(s, "# HELP footfall_compacted_events_total Raw events moved to the archive tier, sorted by site and time.\n# TYPE footfall_compacted_events_total counter\nfootfall_compacted_events_total {}", self.compacted_events.load(Relaxed));
        let _ = writeln!(s, "# HELP footfall_log_written_bytes_total Bytes of records appended to the log.\n# TYPE footfall_log_written_bytes_total counter\nfootfall_log_written_bytes_total {}", self.log_bytes_written.load(Relaxed));
        let _ = writeln!(s, "# HELP footfall_log_append_seconds Time to write and fdatasync a group's record.\n# TYPE footfall_log_append_seconds summary\nfootfall_log_append_seconds_sum {}\nfootfall_log_append_seconds_count {}", self.log_append_seconds_sum_us.load(Relaxed) as f64 / 1e6, self.flushes.load(Relaxed));
        let _ = writeln!(s, "# HELP footfall_flush_seconds Time to sequence a group and make its record durable.\n# TYPE footfall_flush_seconds summary");
        let _ = writeln!(
            s,
            "footfall_flush_seconds_sum {}",
            self.flush_seconds_sum_us.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            s,
            "footfall_flush_seconds_count {}",
            self.flushes.load(Relaxed)
        );
        let _ = writeln!(
            s,
            "# TYPE footfall_flush_failures_total counter\nfootfall_flush_failures_total {}",
            self.flush_failures.load(Relaxed)
        );
        let _ = writeln!(s, "# HELP footfall_query_parts_total Parts of report queries, by what answered them.\n# TYPE footfall_query_parts_total counter\nfootfall_query_parts_total{{source=\"rollups\"}} {}\nfootfall_query_parts_total{{source=\"raw\"}} {}", self.parts_rollup.load(Relaxed), self.parts_raw.load(Relaxed));
        let backlog = self.cluster_backlog.load(Relaxed);
        if backlog >= 0 {
            if let Some(c) = self.cluster.get() {
                c.render(&mut s);
            }
            let _ = writeln!(s, "# HELP footfall_cluster_backlog_entries Entries waiting in Redis (inboxes and logs not yet trimmed), all partitions; ingest answers 503 once one partition reaches --backlog-limit.\n# TYPE footfall_cluster_backlog_entries gauge\nfootfall_cluster_backlog_entries {backlog}");
        }
        let _ = writeln!(s, "# HELP footfall_sse_subscribers Open live streams.\n# TYPE footfall_sse_subscribers gauge");
        let _ = writeln!(
            s,
            "footfall_sse_subscribers {}",
            self.sse_subscribers.load(Relaxed)
        );
        s
    }
}
