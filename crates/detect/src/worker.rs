use std::net::IpAddr;
use std::sync::Arc;

use tapsentry_intel::IntelSnapshot;
use tapsentry_types::{AdminEvent, Alert, DnsEvent, FlowRecord, Timestamp};

use crate::registry::{DetectorEntry, View, DETECTORS};
use crate::{Bound, DetectConfig, DetectCx, Detector, HomeNet, StateError};

/// The shard (worker index) that owns `ip`, out of `shards`.
///
/// FNV-1a over the address bytes: stable across runs and machines, so a
/// host's state always lives on the same worker for a given worker count.
pub fn shard_for(ip: IpAddr, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    match ip {
        IpAddr::V4(v4) => v4.octets().into_iter().for_each(&mut eat),
        IpAddr::V6(v6) => v6.octets().into_iter().for_each(&mut eat),
    }
    (h % shards as u64) as usize
}

/// The hosts a flow record is about, from whose point of view detectors see
/// it: each inside endpoint (a flow between two inside hosts is seen from
/// both), or the client when neither endpoint is inside (transit traffic).
///
/// The first record of a flow opened from outside is also routed to the
/// outside client's shard: an outside scanner's probes of many inside hosts
/// must meet in one place, or each worker would see only its share of the
/// targets and the verdict would depend on the worker count. Each detector
/// sees only the routed records its [`crate::Perspective`] admits.
pub fn route_flow(rec: &FlowRecord, home: &HomeNet) -> [Option<IpAddr>; 2] {
    let client_in = home.contains(rec.client);
    let server_in = home.contains(rec.server);
    match (client_in, server_in) {
        (true, true) if rec.client != rec.server => [Some(rec.client), Some(rec.server)],
        (true, _) => [Some(rec.client), None],
        (false, true) if rec.is_first_report() => [Some(rec.server), Some(rec.client)],
        (false, true) => [Some(rec.server), None],
        (false, false) => [Some(rec.client), None],
    }
}

/// One capture-time step of work for a worker: the DNS events and the flow
/// records of its shard produced up to `now`, in a deterministic order.
#[derive(Debug, Default)]
pub struct Batch {
    /// Sequence number of the step (the same across workers).
    pub epoch: u64,
    /// Capture time of the step.
    pub now: Timestamp,
    /// Capture time of the first step of the capture.
    pub capture_start: Timestamp,
    /// DNS messages whose client belongs to this shard, in capture order.
    pub dns: Vec<DnsEvent>,
    /// Administration events (SMB2/DCE-RPC operations) whose client
    /// belongs to this shard, in capture order.
    pub admin: Vec<AdminEvent>,
    /// Flow records with the host they are routed for, sorted by last seen.
    pub flows: Vec<(IpAddr, FlowRecord)>,
    /// The capture's final batch: detectors' [`Detector::on_end`] runs
    /// after its tick.
    pub last: bool,
}

impl Batch {
    /// Empties the batch, keeping its allocations for reuse.
    pub fn clear(&mut self) {
        self.dns.clear();
        self.admin.clear();
        self.flows.clear();
    }

    /// True when there is nothing to process.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.admin.is_empty() && self.flows.is_empty()
    }
}

/// One detector worker: the detectors of one shard and the context they share.
pub struct Worker {
    detectors: Vec<Running>,
    home: Arc<HomeNet>,
    intel: Arc<IntelSnapshot>,
    /// (detector, seconds learned by earlier runs), from the state file.
    prior_learning: Vec<(&'static str, u64)>,
    /// The view of each flow record of the batch being processed (reused).
    views: Vec<View>,
}

/// A detector and the registry entry it was built from.
struct Running {
    entry: &'static DetectorEntry,
    detector: Box<dyn Detector>,
}

impl Worker {
    /// A worker running every registered detector enabled in `cfg`, in
    /// registry order.
    pub fn new(cfg: &DetectConfig, home: Arc<HomeNet>, intel: Arc<IntelSnapshot>) -> Worker {
        let detectors = DETECTORS
            .iter()
            .filter(|e| e.enabled(cfg))
            .map(|entry| Running {
                entry,
                detector: entry.build(cfg),
            })
            .collect();
        Worker {
            detectors,
            home,
            intel,
            prior_learning: Vec::new(),
            views: Vec::new(),
        }
    }

    /// Names of the detectors this worker runs.
    pub fn detector_names(&self) -> Vec<&'static str> {
        self.detectors.iter().map(|r| r.entry.name).collect()
    }

    /// Replaces the intel snapshot (after a SIGHUP reload).
    pub fn set_intel(&mut self, intel: Arc<IntelSnapshot>) {
        self.intel = intel;
    }

    /// Names of the detectors whose baselines go into the state file.
    pub fn persisted_detectors(&self) -> Vec<&'static str> {
        self.detectors
            .iter()
            .filter(|r| r.detector.persists_state())
            .map(|r| r.entry.name)
            .collect()
    }

    /// Every learned baseline of this shard: (detector, host, entry).
    pub fn export_state(&self, out: &mut dyn FnMut(&'static str, IpAddr, serde_json::Value)) {
        for r in self
            .detectors
            .iter()
            .filter(|r| r.detector.persists_state())
        {
            let name = r.entry.name;
            r.detector.export_state(&mut |host, v| out(name, host, v));
        }
    }

    /// Every bounded collection of every detector this worker runs (see
    /// [`Detector::bounds`](crate::Detector::bounds)), with the detector's name.
    pub fn bounds(&self, out: &mut dyn FnMut(&'static str, Bound)) {
        for r in &self.detectors {
            let name = r.entry.name;
            r.detector.bounds(&mut |b| out(name, b));
        }
    }

    /// Hands one saved entry to the named detector (the caller routes it to
    /// the worker [`shard_for`] names for `host`).
    pub fn import_state(
        &mut self,
        detector: &str,
        host: IpAddr,
        entry: serde_json::Value,
    ) -> Result<(), StateError> {
        match self
            .detectors
            .iter_mut()
            .find(|r| r.detector.persists_state() && r.entry.name == detector)
        {
            Some(r) => r.detector.import_state(host, entry),
            None => Err(StateError::UnknownDetector(detector.to_string())),
        }
    }

    /// Records that `detector` already learned for `secs` seconds in earlier
    /// runs: its learning period resumes rather than restarts.
    pub fn set_prior_learning(&mut self, detector: &str, secs: u64) {
        if let Some(r) = self.detectors.iter().find(|r| r.entry.name == detector) {
            let name = r.entry.name;
            self.prior_learning.retain(|(n, _)| *n != name);
            self.prior_learning.push((name, secs));
        }
    }

    /// Runs every detector over the batch: DNS events first, then the
    /// administration events, then the flow
    /// records its perspective admits, then one tick. Alerts are appended
    /// to `out`.
    pub fn process(&mut self, batch: &Batch, out: &mut Vec<Alert>) {
        // One view per record, shared by every detector: the per-detector
        // test is then a mask on a byte.
        self.views.clear();
        self.views.extend(
            batch
                .flows
                .iter()
                .map(|(host, rec)| View::of(*host, rec, &self.home)),
        );
        let mut cx = DetectCx::new(&self.home, &self.intel, out).at(batch.now, batch.capture_start);
        for r in self.detectors.iter_mut() {
            let name = r.entry.name;
            let perspective = r.entry.perspective;
            let d = &mut r.detector;
            cx.prior_learning_secs = self
                .prior_learning
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(0, |(_, s)| *s);
            #[cfg(debug_assertions)]
            let raised_before = cx.raised();
            for ev in &batch.dns {
                d.on_dns(ev, &mut cx);
            }
            for ev in &batch.admin {
                d.on_admin(ev, &mut cx);
            }
            for ((host, rec), view) in batch.flows.iter().zip(&self.views) {
                if perspective.admits(*view) {
                    d.on_flow(*host, rec, &mut cx);
                }
            }
            d.on_tick(batch.now, &mut cx);
            if batch.last {
                d.on_end(batch.now, &mut cx);
            }
            #[cfg(debug_assertions)]
            cx.check_categories(raised_before, r.entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_period_is_measured_from_the_capture_start() {
        let home = HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap();
        let intel = IntelSnapshot::empty();
        let mut out = Vec::new();
        let start = Timestamp::from_micros(1_000_000_000);
        let cx = DetectCx::new(&home, &intel, &mut out).at(start.plus_secs(1799), start);
        assert!(cx.learning(1800));
        let cx = cx.at(start.plus_secs(1800), start);
        assert!(!cx.learning(1800));
    }

    fn smtp_batch(host: &str, servers: &[&str], at: u64, start: Timestamp) -> Batch {
        let host: IpAddr = host.parse().unwrap();
        let flows = servers
            .iter()
            .map(|s| {
                let f = tapsentry_testkit::FlowRecordBuilder::tcp(host, 40000, *s, 25)
                    .seen(start.plus_secs(at), start.plus_secs(at + 1))
                    .build();
                (host, f)
            })
            .collect();
        Batch {
            epoch: 1,
            now: start.plus_secs(at + 1),
            capture_start: start,
            dns: Vec::new(),
            admin: Vec::new(),
            flows,
            last: false,
        }
    }

    #[test]
    fn prior_learning_resumes_the_learning_period_per_detector() {
        let home = Arc::new(HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap());
        let intel = Arc::new(IntelSnapshot::empty());
        let start = Timestamp::from_micros(1_000_000_000);
        let servers = ["192.0.2.1", "192.0.2.2", "192.0.2.3"];
        let batch = smtp_batch("10.0.0.66", &servers, 10, start);
        // A fresh start learns for 30 minutes: a new sender is a mail host.
        let mut fresh = Worker::new(&DetectConfig::default(), home.clone(), intel.clone());
        let mut out = Vec::new();
        fresh.process(&batch, &mut out);
        assert!(out.is_empty());
        // Earlier runs learned 1790 s: ten seconds in, learning is over.
        let mut resumed = Worker::new(&DetectConfig::default(), home.clone(), intel.clone());
        resumed.set_prior_learning("spambot", 1790);
        resumed.process(&batch, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        // Prior learning of another detector does not end spambot's.
        let mut other = Worker::new(&DetectConfig::default(), home, intel);
        other.set_prior_learning("unusual_protocol", 100_000);
        let mut out = Vec::new();
        other.process(&batch, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn state_moves_between_worker_counts() {
        let home = Arc::new(HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap());
        let intel = Arc::new(IntelSnapshot::empty());
        let start = Timestamp::from_micros(1_000_000_000);
        let cfg = DetectConfig::default();
        let mut three: Vec<Worker> = (0..3)
            .map(|_| Worker::new(&cfg, home.clone(), intel.clone()))
            .collect();
        for i in 0..40u8 {
            let host = format!("10.0.0.{i}");
            let b = smtp_batch(&host, &["192.0.2.1"], 10, start);
            let mut out = Vec::new();
            three[shard_for(host.parse().unwrap(), 3)].process(&b, &mut out);
        }
        let mut saved = Vec::new();
        for w in &three {
            w.export_state(&mut |d, h, v| saved.push((d, h, v)));
        }
        saved.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        assert_eq!(saved.iter().filter(|(d, _, _)| *d == "spambot").count(), 40);
        let mut one = Worker::new(&cfg, home, intel);
        for (d, h, v) in saved.clone() {
            one.import_state(d, h, v).unwrap();
        }
        let mut again = Vec::new();
        one.export_state(&mut |d, h, v| again.push((d, h, v)));
        again.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        assert_eq!(again, saved);
        let persisted = one.persisted_detectors();
        for d in ["spambot", "unusual_protocol", "external_login"] {
            assert!(persisted.contains(&d), "{persisted:?}");
        }
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(matches!(
            one.import_state("tor", ip, serde_json::json!({})),
            Err(StateError::UnknownDetector(_))
        ));
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(shard_for(a, 1), 0);
        assert_eq!(shard_for(a, 4), shard_for(a, 4));
        let mut seen = [0usize; 4];
        for i in 0..=255u8 {
            seen[shard_for(IpAddr::from([10, 0, 0, i]), 4)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 30), "{seen:?}");
    }
}
