//! Detectors: turn flow records and DNS events into alerts.
//!
//! A [`Detector`] is a plugin behind one small trait: it sees each
//! [`FlowRecord`] (and [`DnsEvent`]) routed to its worker's shard, keeps its
//! own per-host state, and raises alerts into a [`DetectCx`]. It does no I/O.
//! A [`Worker`] owns one set of detectors; the pipeline runs N workers and
//! routes each record to the shard of the inside host it is about
//! ([`route_flow`], [`shard_for`]), so per-host state needs no lock and every
//! host's records arrive in the same order whatever N is.
//!
//! Every detector is one line of the [`registry`]: its name (and
//! `[detect.NAME]` section), config and detector types, alert [category]
//! and the [`Perspective`] it judges records from; the worker hands a
//! detector only the records its perspective admits. Adding a detector is
//! that line, its module, its section in `sensor.toml.example` and its
//! section in `docs/detections.md` ("Adding a detector" there).
//!
//! [category]: tapsentry_types::Category
//!
//! ```
//! use std::net::IpAddr;
//! use std::sync::Arc;
//! use tapsentry_detect::{HomeNet, Worker, DetectConfig};
//! use tapsentry_intel::IntelSnapshot;
//!
//! let home = Arc::new(HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap());
//! let worker = Worker::new(&DetectConfig::default(), home.clone(), Arc::new(IntelSnapshot::empty()));
//! assert!(home.contains("10.1.2.3".parse::<IpAddr>().unwrap()));
//! assert!(worker.detector_names().contains(&"tor"));
//! ```
//!
//! This crate does not read packets, own threads or write files: the sensor
//! crate feeds workers over channels and writes what they raise.

mod common;
mod data_collection;
mod dns_tunnel;
mod exfiltration;
mod external_login;
mod flood;
mod home;
mod lateral_movement;
pub mod port_scan;
pub mod registry;
mod response;
mod spambot;
mod state;
#[cfg(test)]
mod testutil;
mod tor;
mod unusual_protocol;
mod volume;
mod worker;

use std::net::IpAddr;

use tapsentry_intel::IntelSnapshot;
use tapsentry_types::{AdminEvent, Alert, DnsEvent, FlowRecord, Timestamp};

pub use common::{accepted, record_community_id, Finding, HostTable, Learning, LogEwma};
pub use data_collection::{DataCollectionConfig, DataCollectionDetector};
pub use dns_tunnel::{DnsTunnelConfig, DnsTunnelDetector};
pub use exfiltration::{ExfiltrationConfig, ExfiltrationDetector};
pub use external_login::{ExternalLoginConfig, ExternalLoginDetector};
pub use flood::{FloodConfig, FloodDetector, FLOOD};
pub use home::{HomeNet, HomeNetError};
pub use lateral_movement::{LateralMovementConfig, LateralMovementDetector};
pub use port_scan::{PortScanConfig, PortScanDetector};
pub use registry::{
    categories, DetectConfig, DetectorEntry, Perspective, StateIntervalSecs, View, DETECTORS,
};
pub use response::{block_response, isolate_response};
pub use spambot::{SpambotConfig, SpambotDetector};
pub use state::StateError;
pub use tor::{TorConfig, TorDetector};
pub use unusual_protocol::{UnusualProtocolConfig, UnusualProtocolDetector};
pub use worker::{route_flow, shard_for, Batch, Worker};

/// What a detector sees besides its input: the home network, the current
/// intel snapshot, and the buffer alerts go into.
pub struct DetectCx<'a> {
    /// Which addresses are inside.
    pub home: &'a HomeNet,
    /// Tor exits and GeoIP, as of the last reload.
    pub intel: &'a IntelSnapshot,
    /// Capture time of the batch being processed.
    pub now: Timestamp,
    /// Capture time the capture started (the same in every shard, so
    /// learning periods end at the same moment whatever the worker count).
    pub capture_start: Timestamp,
    /// Seconds of learning already done before this capture started (by
    /// an earlier run whose baselines were loaded from the state file), so
    /// a restart resumes the learning period instead of running it again.
    pub prior_learning_secs: u64,
    alerts: &'a mut Vec<Alert>,
}

impl<'a> DetectCx<'a> {
    /// A context writing into `alerts`, at capture time zero.
    pub fn new(home: &'a HomeNet, intel: &'a IntelSnapshot, alerts: &'a mut Vec<Alert>) -> Self {
        DetectCx {
            home,
            intel,
            now: Timestamp::ZERO,
            capture_start: Timestamp::ZERO,
            prior_learning_secs: 0,
            alerts,
        }
    }

    /// The same context at capture time `now` of a capture that began at `start`.
    pub fn at(mut self, now: Timestamp, start: Timestamp) -> Self {
        self.now = now;
        self.capture_start = start;
        self
    }

    /// True while fewer than `secs` seconds of learning are done: the time
    /// since the capture start plus [`DetectCx::prior_learning_secs`]. A
    /// baseline learning period, during which baseline detectors only learn.
    pub fn learning(&self, secs: u64) -> bool {
        let done = self
            .prior_learning_secs
            .saturating_mul(1_000_000)
            .saturating_add(self.now.micros_since(self.capture_start));
        done < secs.saturating_mul(1_000_000)
    }

    /// Raises an alert.
    pub fn raise(&mut self, alert: Alert) {
        self.alerts.push(alert);
    }

    /// Alerts in the buffer so far.
    #[cfg(debug_assertions)]
    fn raised(&self) -> usize {
        self.alerts.len()
    }

    /// Debug builds: every alert raised since `since` carries the category
    /// `entry` registers (the registry and the module name it apart).
    #[cfg(debug_assertions)]
    fn check_categories(&self, since: usize, entry: &registry::DetectorEntry) {
        for a in self.alerts.iter().skip(since) {
            debug_assert_eq!(
                a.alert.category, entry.category,
                "{} raised {} under another category than it registered",
                entry.name, a.alert.signature
            );
        }
    }
}

/// One bounded collection of a detector's state and how full it is, as
/// [`Detector::bounds`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// What it holds, e.g. `hosts` or `destinations per host`.
    pub map: &'static str,
    /// The key of the detector's `[detect.NAME]` section that sets the
    /// cap, or `""` for a fixed cap.
    pub key: &'static str,
    /// Entries held now; for a collection kept per entry of another (the
    /// destinations of each host), the most any one of them holds.
    pub len: usize,
    /// The cap in force.
    pub cap: usize,
}

/// One detection. Every hook but [`Detector::on_flow`] defaults to nothing.
pub trait Detector: Send {
    /// A short stable name (also the config section under `[detect]`).
    fn name(&self) -> &'static str;

    /// A flow record routed to this shard because it concerns `host`,
    /// seen from a side this detector judges: the worker calls it only for
    /// the records its registered [`Perspective`] admits
    /// ([`registry::DETECTORS`]), so a detector does not filter on `host`
    /// itself (a flow between two inside hosts, routed to both, reaches an
    /// [`Perspective::InsideClient`] detector once, from its client).
    fn on_flow(&mut self, host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>);

    /// A DNS message whose client belongs to this shard.
    fn on_dns(&mut self, _ev: &DnsEvent, _cx: &mut DetectCx<'_>) {}

    /// An administration event (an SMB2 or DCE-RPC operation) whose client
    /// belongs to this shard.
    fn on_admin(&mut self, _ev: &AdminEvent, _cx: &mut DetectCx<'_>) {}

    /// Capture time advanced to `now` (once per batch, after its records).
    fn on_tick(&mut self, _now: Timestamp, _cx: &mut DetectCx<'_>) {}

    /// The capture ended (end of a replay, or shutdown) at `now`, after the
    /// last batch's tick: a finding still going on is told as it stands
    /// (an `alert_update`, see [`Alert::updates`](tapsentry_types::Alert)).
    fn on_end(&mut self, _now: Timestamp, _cx: &mut DetectCx<'_>) {}

    /// True when this detector learns baselines worth keeping across a
    /// restart. Only such detectors get a section in the state file, and
    /// only they skip the learning already recorded there; a detector that
    /// starts persisting later learns afresh from an older file.
    fn persists_state(&self) -> bool {
        false
    }

    /// Every learned baseline, one entry per host: the host whose shard
    /// owns it (the `host` [`Detector::on_flow`] sees for it) and a small
    /// serde value. Learned habits only, not open windows or counters.
    fn export_state(&self, _out: &mut dyn FnMut(IpAddr, serde_json::Value)) {}

    /// Takes back one entry [`Detector::export_state`] wrote (possibly by
    /// another worker count, possibly damaged). Must respect the
    /// detector's memory caps; an `Err` skips the entry, nothing else.
    fn import_state(&mut self, _host: IpAddr, _entry: serde_json::Value) -> Result<(), StateError> {
        Ok(())
    }

    /// Every bounded collection of its state, with its size and cap: one
    /// [`Bound`] per `max_*` key of its section at least, and one per fixed
    /// cap. A detector that keeps no state per host reports none.
    fn bounds(&self, _out: &mut dyn FnMut(Bound)) {}
}
