//! Prometheus metrics, rendered in the text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

#[derive(Default)]
pub struct Metrics {
    pub ingested: AtomicU64,
    dropped: Mutex<BTreeMap<&'static str, u64>>,
    pub buffer_depth: AtomicI64,
    pub flushes: AtomicU64,
    pub flush_seconds_sum_us: AtomicU64,
    pub flush_failures: AtomicU64,
    pub sse_subscribers: AtomicI64,
}

impl Metrics {
    pub fn dropped(&self, reason: &'static str) {
        if let Ok(mut m) = self.dropped.lock() {
            *m.entry(reason).or_default() += 1;
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
        let _ = writeln!(s, "# HELP footfall_events_ingested_total Events committed to storage.\n# TYPE footfall_events_ingested_total counter");
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
        let _ = writeln!(s, "# HELP footfall_buffer_depth Events waiting for the writer.\n# TYPE footfall_buffer_depth gauge");
        let _ = writeln!(
            s,
            "footfall_buffer_depth {}",
            self.buffer_depth.load(Relaxed)
        );
        let _ = writeln!(s, "# HELP footfall_flush_seconds Time to commit a batch.\n# TYPE footfall_flush_seconds summary");
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
        let _ = writeln!(s, "# HELP footfall_sse_subscribers Open live streams.\n# TYPE footfall_sse_subscribers gauge");
        let _ = writeln!(
            s,
            "footfall_sse_subscribers {}",
            self.sse_subscribers.load(Relaxed)
        );
        s
    }
}
