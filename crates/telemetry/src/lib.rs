//! Cheap counting and latency measurement for the pipeline.
//!
//! * [`LatencyHist`]: an `hdrhistogram` of nanoseconds with the summary the
//!   stats log prints (p50, p99, p99.9, max). Each thread owns one and
//!   publishes it by merging into a shared one once per batch, never per packet.
//! * [`ReasonCounts`]: plain `u64` counters indexed by a reason's stable
//!   index (decode errors, DNS errors), owned by one thread and copied out.
//! * [`Drops`]: atomic counters of records dropped between stages, by
//!   [`DropReason`], shared by every thread.
//!
//! ```
//! use tapsentry_telemetry::LatencyHist;
//! let mut h = LatencyHist::new();
//! for ns in [100, 200, 300, 10_000] { h.record_ns(ns); }
//! let s = h.summary();
//! assert_eq!(s.count, 4);
//! assert!(s.max_ns >= 10_000);
//! ```
//!
//! This crate does not write files: the stats thread serialises [`serde`]
//! snapshots. It reads the wall clock only in [`wall`], the sensor's one
//! allowance for it (latency, pacing, stats timestamps).

pub mod wall;

use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;

/// A latency histogram in nanoseconds, 1 ns to 1 hour at 3 significant digits.
#[derive(Debug, Clone)]
pub struct LatencyHist {
    h: Option<Histogram<u64>>,
}

/// Percentiles of a [`LatencyHist`], in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    /// Samples recorded.
    pub count: u64,
    /// Median.
    pub p50_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest sample.
    pub max_ns: u64,
}

impl Default for LatencyHist {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHist {
    /// An empty histogram.
    pub fn new() -> LatencyHist {
        // Bounds are constants known to be valid; `None` only if hdrhistogram
        // ever rejected them, in which case recording is a no-op.
        LatencyHist {
            h: Histogram::new_with_bounds(1, 3_600_000_000_000, 3).ok(),
        }
    }

    /// Records one sample; values beyond the range are clamped to it.
    pub fn record_ns(&mut self, ns: u64) {
        if let Some(h) = self.h.as_mut() {
            h.saturating_record(ns.max(1));
        }
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &LatencyHist) {
        if let (Some(h), Some(o)) = (self.h.as_mut(), other.h.as_ref()) {
            // Same bounds on both sides, so `add` cannot fail on range.
            let _ = h.add(o);
        }
    }

    /// Forgets every sample (keeps the allocation).
    pub fn reset(&mut self) {
        if let Some(h) = self.h.as_mut() {
            h.reset();
        }
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.h.as_ref().map_or(0, |h| h.len())
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The summary the stats log prints.
    pub fn summary(&self) -> LatencySummary {
        match self.h.as_ref() {
            Some(h) if !h.is_empty() => LatencySummary {
                count: h.len(),
                p50_ns: h.value_at_quantile(0.5),
                p99_ns: h.value_at_quantile(0.99),
                p999_ns: h.value_at_quantile(0.999),
                max_ns: h.max(),
            },
            _ => LatencySummary::default(),
        }
    }
}

/// Counters by reason, indexed by a reason's stable index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonCounts {
    names: &'static [&'static str],
    counts: Vec<u64>,
}

impl ReasonCounts {
    /// Zeroed counters, one per name.
    pub fn new(names: &'static [&'static str]) -> ReasonCounts {
        ReasonCounts {
            names,
            counts: vec![0; names.len()],
        }
    }

    /// Adds one to the counter at `index` (ignored when out of range).
    #[inline]
    pub fn bump(&mut self, index: usize) {
        if let Some(c) = self.counts.get_mut(index) {
            *c += 1;
        }
    }

    /// Sum of every counter.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Copies `other`'s values into `self` (same names).
    pub fn copy_from(&mut self, other: &ReasonCounts) {
        self.counts.clone_from(&other.counts);
    }

    /// Non-zero counters as `(name, count)` pairs, in index order.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.names
            .iter()
            .zip(self.counts.iter())
            .filter(|(_, c)| **c > 0)
            .map(|(n, c)| (*n, *c))
    }
}

impl Serialize for ReasonCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.nonzero())
    }
}

/// Why a record was dropped between pipeline stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Live: a detector worker's queue was full; the flow records were dropped.
    DetectorQueueFull,
    /// Live: the DNS event buffer was full; the DNS events were dropped.
    DnsBufferFull,
    /// Live: the alert writer's queue was full; the alerts were dropped.
    AlertQueueFull,
    /// Live: the flow log queue was full; the flow records were not logged.
    FlowLogQueueFull,
    /// Live: first-message metadata (TLS SNI, banners) waiting for a sweep
    /// hit its bound; the flow log lacks it for those flows.
    FlowMetaBufferFull,
    /// The sweeper's table of first-message metadata of live flows was
    /// full; the flow log lacks it for those flows.
    FlowMetaTableFull,
    /// Live: administration events (SMB2/DCE-RPC operations) waiting for a
    /// sweep hit their bound (`pipeline.max_pending_dns`); dropped.
    AdminBufferFull,
    /// An SMB or DCE-RPC flow was not followed: the inspector's table
    /// (`pipeline.max_admin_flows`) was full.
    AdminTableFull,
}

impl DropReason {
    /// Every reason, in index order.
    pub const ALL: [DropReason; 8] = [
        DropReason::DetectorQueueFull,
        DropReason::DnsBufferFull,
        DropReason::AlertQueueFull,
        DropReason::FlowLogQueueFull,
        DropReason::FlowMetaBufferFull,
        DropReason::FlowMetaTableFull,
        DropReason::AdminBufferFull,
        DropReason::AdminTableFull,
    ];

    /// The stats key.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::DetectorQueueFull => "detector_queue_full",
            DropReason::DnsBufferFull => "dns_buffer_full",
            DropReason::AlertQueueFull => "alert_queue_full",
            DropReason::FlowLogQueueFull => "flow_log_queue_full",
            DropReason::FlowMetaBufferFull => "flow_meta_buffer_full",
            DropReason::FlowMetaTableFull => "flow_meta_table_full",
            DropReason::AdminBufferFull => "admin_event_buffer_full",
            DropReason::AdminTableFull => "admin_table_full",
        }
    }
}

/// Shared atomic drop counters, by reason.
#[derive(Debug, Default)]
pub struct Drops {
    counts: [AtomicU64; DropReason::ALL.len()],
}

impl Drops {
    /// Counts `n` items dropped for `reason`.
    pub fn add(&self, reason: DropReason, n: u64) {
        self.counts[reason as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// The current count for `reason`.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.counts[reason as usize].load(Ordering::Relaxed)
    }
}

impl Serialize for Drops {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(DropReason::ALL.iter().map(|r| (r.as_str(), self.get(*r))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_and_merge() {
        let mut a = LatencyHist::new();
        let mut b = LatencyHist::new();
        for i in 1..=1000u64 {
            a.record_ns(i * 1000);
        }
        b.record_ns(5_000_000);
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 1001);
        assert!((495_000..=505_000).contains(&s.p50_ns), "{s:?}");
        assert!(s.max_ns >= 4_990_000);
        a.reset();
        assert!(a.is_empty());
        assert_eq!(a.summary(), LatencySummary::default());
    }

    #[test]
    fn huge_samples_clamp() {
        let mut h = LatencyHist::new();
        h.record_ns(u64::MAX);
        h.record_ns(0);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn reason_counts_serialise_nonzero() {
        static NAMES: [&str; 3] = ["a", "b", "c"];
        let mut r = ReasonCounts::new(&NAMES);
        r.bump(1);
        r.bump(1);
        r.bump(7);
        assert_eq!(r.total(), 2);
        assert_eq!(
            serde_json::to_string(&r).ok().as_deref(),
            Some(r#"{"b":2}"#)
        );
    }

    #[test]
    fn drops_by_reason() {
        let d = Drops::default();
        d.add(DropReason::AlertQueueFull, 3);
        assert_eq!(d.get(DropReason::AlertQueueFull), 3);
        let j = serde_json::to_value(&d).ok().unwrap_or_default();
        assert_eq!(j["alert_queue_full"], 3);
        assert_eq!(j["detector_queue_full"], 0);
    }
}
