//! Building blocks shared by detectors: a bounded per-key table, a rolling
//! baseline, and the learning-period clock.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use tapsentry_types::Timestamp;

use crate::Bound;

/// A map from a key (a host, a host pair, ...) to detector state, bounded
/// to `cap` entries. At the cap, the entry seen least recently (capture
/// time) is dropped to make room; drops are counted, so an operator can see
/// when the bound is too small for the network.
///
/// Memory: `cap` × (key + value + ~64 bytes of index overhead).
#[derive(Debug, Clone)]
pub struct HostTable<K: Eq + Hash + Ord + Copy, V> {
    cap: usize,
    entries: HashMap<K, (Timestamp, V)>,
    /// (last seen, key), oldest first: the eviction order.
    order: BTreeSet<(Timestamp, K)>,
    evicted: u64,
}

impl<K: Eq + Hash + Ord + Copy, V> HostTable<K, V> {
    /// An empty table holding at most `cap` entries (at least 1).
    pub fn new(cap: usize) -> Self {
        HostTable {
            cap: cap.max(1),
            entries: HashMap::new(),
            order: BTreeSet::new(),
            evicted: 0,
        }
    }

    /// The entry for `key`, created with `init` if missing, marked as seen
    /// at `now`. Time never moves an entry backwards.
    pub fn touch(&mut self, key: K, now: Timestamp, init: impl FnOnce() -> V) -> &mut V {
        let is_new = !self.entries.contains_key(&key);
        if is_new && self.entries.len() >= self.cap {
            if let Some((_, oldest)) = self.order.pop_first() {
                self.entries.remove(&oldest);
                self.evicted += 1;
            }
        }
        let slot = self.entries.entry(key).or_insert_with(|| (now, init()));
        if is_new {
            self.order.insert((now, key));
        } else if now > slot.0 {
            self.order.remove(&(slot.0, key));
            self.order.insert((now, key));
            slot.0 = now;
        }
        &mut slot.1
    }

    /// Puts back a saved entry last seen at `seen` (loading baselines),
    /// replacing any entry of that key. At the cap it takes the place of the
    /// least recently seen entry only if it is more recent itself, so
    /// restoring more than `cap` entries keeps the most recent ones whatever
    /// order they come in. False when the entry was dropped (counted).
    pub fn restore(&mut self, key: K, seen: Timestamp, value: V) -> bool {
        if let Some(slot) = self.entries.get_mut(&key) {
            if seen > slot.0 {
                self.order.remove(&(slot.0, key));
                self.order.insert((seen, key));
                slot.0 = seen;
            }
            slot.1 = value;
            return true;
        }
        if self.entries.len() >= self.cap {
            match self.order.first() {
                Some(&(oldest_seen, oldest)) if oldest_seen < seen => {
                    self.order.pop_first();
                    self.entries.remove(&oldest);
                }
                _ => {
                    self.evicted += 1;
                    return false;
                }
            }
            self.evicted += 1;
        }
        self.entries.insert(key, (seen, value));
        self.order.insert((seen, key));
        true
    }

    /// The entry for `key`, if tracked.
    pub fn get(&self, key: &K) -> Option<&V> {
        self.entries.get(key).map(|(_, v)| v)
    }

    /// The entry for `key`, if tracked, to change without marking it seen.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries.get_mut(key).map(|(_, v)| v)
    }

    /// Entries tracked now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The most entries it holds.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// This table as a [`Bound`] of what it holds, capped by `key`.
    pub fn bound(&self, map: &'static str, key: &'static str) -> Bound {
        Bound {
            map,
            key,
            len: self.len(),
            cap: self.cap,
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries dropped at the cap so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, (_, v))| (k, v))
    }

    /// Every entry with the capture time it was last seen, in no particular
    /// order (for saving baselines: the time keeps the eviction order).
    pub fn iter_seen(&self) -> impl Iterator<Item = (&K, Timestamp, &V)> {
        self.entries.iter().map(|(k, (t, v))| (k, *t, v))
    }

    /// Every entry, mutably, in no particular order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, (_, v))| (k, v))
    }

    /// Drops entries not seen since `before` (idle state is not evidence).
    pub fn forget_idle(&mut self, before: Timestamp) {
        while let Some(&(seen, key)) = self.order.first() {
            if seen >= before {
                break;
            }
            self.order.pop_first();
            self.entries.remove(&key);
        }
    }
}

/// A rolling baseline of a positive quantity (bytes per window, ...):
/// exponentially weighted mean and variance of `ln(1 + x)`.
///
/// Logs because volumes are heavy-tailed: a host that sends 1 MB one hour
/// and 3 MB the next is steady; one that jumps to 300 MB is not. The weight
/// `alpha` sets how fast a real change of habit is absorbed (0.05 per hourly
/// window: about a day). Values are clamped so the state is always finite.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogEwma {
    mean: f64,
    var: f64,
    samples: u64,
}

impl Default for LogEwma {
    fn default() -> Self {
        LogEwma {
            mean: 0.0,
            var: 0.0,
            samples: 0,
        }
    }
}

impl LogEwma {
    fn ln1p(x: f64) -> f64 {
        if x.is_finite() && x > 0.0 {
            x.ln_1p()
        } else {
            0.0
        }
    }

    /// Adds one observation with weight `alpha` (clamped to (0, 1]).
    pub fn update(&mut self, x: f64, alpha: f64) {
        let a = if alpha.is_finite() {
            alpha.clamp(1e-6, 1.0)
        } else {
            0.05
        };
        let v = Self::ln1p(x);
        if self.samples == 0 {
            self.mean = v;
            self.var = 0.0;
        } else {
            let d = v - self.mean;
            self.mean += a * d;
            self.var = (1.0 - a) * (self.var + a * d * d);
        }
        self.samples = self.samples.saturating_add(1);
        if !self.mean.is_finite() || !self.var.is_finite() {
            *self = LogEwma::default();
        }
    }

    /// Observations so far.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// The baseline's typical value, back in the original unit.
    pub fn typical(&self) -> f64 {
        self.mean.exp_m1().max(0.0)
    }

    /// How many standard deviations (in log space) `x` is above the mean;
    /// the deviation is floored at `min_sd` so a perfectly steady host does
    /// not turn every wobble into an infinite score.
    pub fn z(&self, x: f64, min_sd: f64) -> f64 {
        let sd = self.var.max(0.0).sqrt().max(min_sd.max(1e-3));
        let z = (Self::ln1p(x) - self.mean) / sd;
        if z.is_finite() {
            z
        } else {
            0.0
        }
    }

    /// The standard deviation of `ln(1 + x)` (0 before two observations).
    pub fn sd(&self) -> f64 {
        let sd = self.var.max(0.0).sqrt();
        if sd.is_finite() {
            sd
        } else {
            0.0
        }
    }

    /// The value that would score `z` standard deviations above the mean.
    pub fn threshold(&self, z: f64, min_sd: f64) -> f64 {
        let sd = self.var.max(0.0).sqrt().max(min_sd.max(1e-3));
        let t = (self.mean + z * sd).min(700.0).exp_m1();
        if t.is_finite() {
            t.max(0.0)
        } else {
            f64::MAX
        }
    }
}

/// When baselines may alert: not before `learning_secs` of capture time
/// have passed since the capture started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learning {
    start: Option<Timestamp>,
    secs: u64,
}

impl Learning {
    /// A clock with the given learning period.
    pub fn new(secs: u64) -> Self {
        Learning { start: None, secs }
    }

    /// Notes capture time; the first call fixes the start.
    pub fn observe(&mut self, now: Timestamp) {
        if self.start.is_none() {
            self.start = Some(now);
        }
    }

    /// True while baselines are still learning at `now`.
    pub fn is_learning(&self, now: Timestamp) -> bool {
        match self.start {
            None => true,
            Some(s) => now.micros_since(s) < self.secs.saturating_mul(1_000_000),
        }
    }
}

/// The parts of an alert a detector decides; [`Finding::into_alert`] adds
/// what every alert carries (GeoIP and a block command for the outside
/// party, the record's fixed fields).
pub struct Finding {
    /// Capture time of the packet that completed the evidence.
    pub ts: Timestamp,
    /// Category.
    pub category: tapsentry_types::Category,
    /// Stable dotted signature.
    pub signature: &'static str,
    /// 1 high, 2 medium, 3 low.
    pub severity: u8,
    /// One human sentence with the key numbers.
    pub description: String,
    /// ATT&CK ids.
    pub mitre: tapsentry_types::Mitre,
    /// The host the alert is about.
    pub src: std::net::IpAddr,
    /// The counterpart, where there is one.
    pub dest: Option<std::net::IpAddr>,
    /// Ports and protocol, where they apply.
    pub ports: Option<(u16, u16)>,
    /// IP protocol, where it applies.
    pub proto: Option<u8>,
    /// The numbers that justify the alert.
    pub evidence: std::collections::BTreeMap<&'static str, serde_json::Value>,
    /// Community ID, when the alert is about one flow.
    pub community_id: Option<String>,
    /// The flow's application protocol, when the alert is about one flow.
    pub app_proto: Option<tapsentry_types::AppProto>,
    /// The outside party: GeoIP is looked up for it and the suggested
    /// response blocks it.
    pub outside: Option<std::net::IpAddr>,
}

impl Finding {
    /// The contract's alert record.
    pub fn into_alert(self, cx: &crate::DetectCx<'_>) -> tapsentry_types::Alert {
        tapsentry_types::Alert {
            timestamp: self.ts,
            event_type: "alert",
            src_ip: self.src,
            dest_ip: self.dest,
            src_port: self.ports.map(|p| p.0),
            dest_port: self.ports.map(|p| p.1),
            proto: self
                .proto
                .map(|p| tapsentry_types::proto_name(p).into_owned()),
            alert: tapsentry_types::AlertBody {
                category: self.category,
                signature: self.signature,
                severity: self.severity,
                description: self.description,
                mitre: self.mitre,
            },
            evidence: self.evidence,
            community_id: self.community_id,
            // A detector whose finding is about one flow sets it with
            // `about_flow` on the alert; a Finding holds no flow record.
            flow_id: None,
            app_proto: self.app_proto,
            geo: self.outside.and_then(|ip| cx.intel.geo.lookup(ip)),
            // An inside host acting outwards (leaking, tunnelling) is
            // isolated; the outside party it reached is no attacker of
            // ours. An outside actor (a login source) is blocked.
            response: self.outside.map(|ip| {
                if cx.home.contains(self.src) {
                    crate::isolate_response(self.src)
                } else {
                    crate::block_response(ip)
                }
            }),
            updates: None,
        }
    }
}

/// The Community ID of a flow record, client first.
pub fn record_community_id(rec: &tapsentry_types::FlowRecord) -> String {
    tapsentry_types::community_id_v1(
        rec.client,
        rec.client_port,
        rec.server,
        rec.server_port,
        rec.proto,
        0,
    )
}

/// True when the responder accepted the conversation: answered with
/// something other than a refusal.
pub fn accepted(rec: &tapsentry_types::FlowRecord) -> bool {
    use tapsentry_types::FlowState::*;
    rec.responder_answered && matches!(rec.state, Established | ClosedFin | ClosedRst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    #[test]
    fn host_table_evicts_least_recently_seen() {
        let mut h: HostTable<u32, u32> = HostTable::new(3);
        *h.touch(1, t(1), || 0) += 1;
        *h.touch(2, t(2), || 0) += 1;
        *h.touch(3, t(3), || 0) += 1;
        *h.touch(1, t(4), || 0) += 1; // 1 is fresh again
        *h.touch(4, t(5), || 0) += 1; // evicts 2
        assert_eq!(h.len(), 3);
        assert!(h.get(&2).is_none());
        assert_eq!(h.get(&1), Some(&2));
        assert_eq!(h.evicted(), 1);
        h.forget_idle(t(5));
        assert_eq!(h.len(), 1);
        assert!(h.get(&4).is_some());
    }

    #[test]
    fn host_table_stays_within_cap() {
        let mut h: HostTable<u64, ()> = HostTable::new(100);
        for i in 0..10_000u64 {
            h.touch(i, t(i as i64 % 50), || ());
            assert!(h.len() <= 100);
        }
        assert_eq!(h.evicted(), 9_900);
    }

    #[test]
    fn restore_keeps_the_most_recent_whatever_the_order() {
        let mut h: HostTable<u32, u32> = HostTable::new(3);
        for (k, seen) in [(1, 10), (2, 5), (3, 1), (4, 7), (5, 0), (6, 8)] {
            h.restore(k, t(seen), k * 10);
            assert!(h.len() <= 3);
        }
        let mut kept: Vec<u32> = h.iter().map(|(k, _)| *k).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![1, 4, 6]);
        assert_eq!(h.evicted(), 3);
        // Restoring a key again replaces its value and keeps the later time.
        assert!(h.restore(4, t(2), 99));
        assert_eq!(h.get(&4), Some(&99));
        let seen: Vec<_> = h.iter_seen().filter(|(k, _, _)| **k == 4).collect();
        assert_eq!(seen[0].1, t(7));
    }

    #[test]
    fn ewma_learns_and_scores() {
        let mut b = LogEwma::default();
        for i in 0..50 {
            b.update(1_000_000.0 + f64::from(i % 5) * 100_000.0, 0.1);
        }
        assert!((b.typical() - 1.2e6).abs() < 3e5, "{}", b.typical());
        assert!(b.z(1.1e6, 0.1) < 2.0);
        assert!(b.z(300e6, 0.1) > 10.0);
        assert!(b.threshold(5.0, 0.1) > 1.5e6);
    }

    #[test]
    fn ewma_never_goes_non_finite() {
        let mut b = LogEwma::default();
        for x in [
            f64::NAN,
            f64::INFINITY,
            -5.0,
            0.0,
            f64::MAX,
            1e308,
            f64::MIN_POSITIVE,
        ] {
            b.update(x, 0.5);
            assert!(b.typical().is_finite());
            assert!(b.z(x, 0.0).is_finite());
            assert!(b.threshold(1e9, 0.0).is_finite());
        }
        b.update(1.0, f64::NAN);
        assert!(b.typical().is_finite());
    }

    #[test]
    fn learning_period_counts_capture_time() {
        let mut l = Learning::new(1800);
        assert!(l.is_learning(t(0)));
        l.observe(t(100));
        l.observe(t(50)); // start is fixed by the first observation
        assert!(l.is_learning(t(1899)));
        assert!(!l.is_learning(t(1900)));
    }
}
