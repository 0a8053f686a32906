//! `data_collection`: an inside host pulling far more data from other inside
//! hosts than it ever does: staging before exfiltration
//! (`data_collection.internal_transfer`).
//!
//! The bytes a host receives from inside peers within the last
//! `window_secs` (sliding, see [`crate::volume`]) are held against the same
//! three bars as an exfiltration burst: an absolute floor, the host's own
//! log-volume baseline, and a multiple of its largest window. A backup
//! server that pulls every night, or a build agent that fetches artefacts,
//! learns its own peak and stays quiet at its usual volume.
//!
//! A flow between two inside hosts reaches this detector once from each
//! side; only the receiving side counts it, so the same bytes are never
//! counted twice.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{proto_name, Category, FlowRecord, Mitre, Problem, SectionProblems};

use crate::common::{Finding, HostTable};
use crate::state::{entry_value, parse_entry};
use crate::volume::{
    app_protocol, dominant, human, versus_typical, Service, VolumeBaseline, VolumeParams,
    WindowedVolume,
};
use crate::Bound;
use crate::{DetectCx, Detector, StateError};

/// The `[detect.data_collection]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DataCollectionConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// Seconds of capture time from the start during which baselines only
    /// learn. Default 1800.
    pub learning_secs: u64,
    /// Length of the sliding window. Default 600.
    pub window_secs: u64,
    /// Bytes received from inside hosts within one window below which
    /// nothing alerts. Default 50000000.
    pub min_bytes: u64,
    /// Standard deviations of log volume above the host's mean that make a
    /// window unusual. Default 3.0.
    pub z_threshold: f64,
    /// Floor of the log-volume standard deviation. Default 0.5.
    pub min_sd: f64,
    /// Cap of the log-volume standard deviation. Default 1.5.
    pub max_sd: f64,
    /// Weight of each new window in the baseline after learning. Default 0.02.
    pub alpha: f64,
    /// The volume must also exceed this many times the host's largest
    /// window so far. Default 2.0.
    pub peak_factor: f64,
    /// The remembered largest window halves every this many seconds.
    /// Default 604800 (a week).
    pub peak_half_life_secs: u64,
    /// Inside hosts tracked per worker (memory bound; least recently seen
    /// dropped). Default 50000.
    pub max_hosts: usize,
}

impl Default for DataCollectionConfig {
    fn default() -> Self {
        DataCollectionConfig {
            enabled: true,
            learning_secs: 1800,
            window_secs: 600,
            min_bytes: 50_000_000,
            z_threshold: 3.0,
            min_sd: 0.5,
            max_sd: 1.5,
            alpha: 0.02,
            peak_factor: 2.0,
            peak_half_life_secs: 604_800,
            max_hosts: 50_000,
        }
    }
}

impl DataCollectionConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        self.params().problems(&mut p);
        p.at_least("max_hosts", self.max_hosts, 1);
        p.into_vec()
    }

    fn params(&self) -> VolumeParams {
        VolumeParams {
            window_secs: self.window_secs,
            min_bytes: self.min_bytes,
            z_threshold: self.z_threshold,
            min_sd: self.min_sd,
            max_sd: self.max_sd,
            alpha: self.alpha,
            peak_factor: self.peak_factor,
            peak_half_life_secs: self.peak_half_life_secs,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct HostState {
    base: VolumeBaseline,
    win: WindowedVolume,
    quiet_until: tapsentry_types::Timestamp,
}

/// One host's learned volume baseline in the state file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    last_seen_us: i64,
    baseline: VolumeBaseline,
}

/// See the module documentation.
pub struct DataCollectionDetector {
    cfg: DataCollectionConfig,
    params: VolumeParams,
    hosts: HostTable<IpAddr, HostState>,
}

impl DataCollectionDetector {
    /// A detector with the given settings.
    pub fn new(cfg: DataCollectionConfig) -> Self {
        let hosts = HostTable::new(cfg.max_hosts);
        DataCollectionDetector {
            params: cfg.params(),
            cfg,
            hosts,
        }
    }

    /// Hosts dropped at the memory bound.
    pub fn evicted(&self) -> u64 {
        self.hosts.evicted()
    }
}

/// ATT&CK: pulling from file shares is Data from Network Shared Drive;
/// anything else is staging data in one place.
fn mitre_for(app: &str) -> Mitre {
    Mitre {
        tactic: "TA0009",
        technique: if matches!(app, "SMB" | "NFS") {
            "T1039"
        } else {
            "T1074.002"
        },
    }
}

impl Detector for DataCollectionDetector {
    fn name(&self) -> &'static str {
        "data_collection"
    }

    fn bounds(&self, out: &mut dyn FnMut(Bound)) {
        out(self.hosts.bound("hosts", "max_hosts"));
    }

    fn persists_state(&self) -> bool {
        true
    }

    fn export_state(&self, out: &mut dyn FnMut(IpAddr, serde_json::Value)) {
        for (host, seen, st) in self.hosts.iter_seen() {
            let e = HostEntry {
                last_seen_us: seen.micros(),
                baseline: st.base,
            };
            out(*host, entry_value(&e));
        }
    }

    fn import_state(&mut self, host: IpAddr, entry: serde_json::Value) -> Result<(), StateError> {
        let e: HostEntry = parse_entry(entry)?;
        if !e.baseline.is_sane() {
            return Err(StateError::Invalid("volume baseline out of range".into()));
        }
        let st = HostState {
            base: e.baseline,
            ..HostState::default()
        };
        self.hosts.restore(
            host,
            tapsentry_types::Timestamp::from_micros(e.last_seen_us),
            st,
        );
        Ok(())
    }

    /// Registered [`crate::Perspective::InsideHost`]: `host` is inside,
    /// either end; only flows with an inside peer are internal transfers.
    fn on_flow(&mut self, host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        let peer = if host == rec.client {
            rec.server
        } else {
            rec.client
        };
        if peer == host || !cx.home.contains(peer) {
            return;
        }
        let (received, sent) = if host == rec.client {
            (rec.new_bytes_to_client(), rec.new_bytes_to_server())
        } else {
            (rec.new_bytes_to_server(), rec.new_bytes_to_client())
        };
        if received == 0 {
            return;
        }
        let now = rec.last_seen;
        let learning = cx.learning(self.cfg.learning_secs);
        let p = self.params;
        let st = self.hosts.touch(host, now, HostState::default);
        if let Some(closed) = st.win.advance(now, &p) {
            st.base.learn(closed, now, &p, learning);
        }
        st.win.add(peer, Service::of(rec), received, sent);
        if learning || now < st.quiet_until {
            return;
        }
        let observed = st.win.sliding(now, &p);
        let j = st.base.judge(observed, now, &p);
        if !j.exceeded {
            return;
        }
        let top = st.win.top_peers(now, &p);
        let dominant = dominant(&top, observed);
        let app = top.first().map_or("other", |t| {
            let svc = Service {
                port: t.port,
                proto: t.proto,
                app: t.app,
            };
            app_protocol(svc, false)
        });
        let mut evidence = j.evidence(&p, "bytes_received_inside", "top_sources", None, &top);
        evidence.insert("app_protocol", json!(app));
        let from = match dominant {
            Some(d) => format!(
                "from {} ({app}, {}/{})",
                d.peer,
                d.port,
                proto_name(d.proto)
            ),
            None => format!(
                "from {} inside hosts (largest {}: {})",
                top.len(),
                top.first().map_or_else(String::new, |t| t.peer.to_string()),
                human(top.first().map_or(0.0, |t| t.bytes as f64)),
            ),
        };
        let description = format!(
            "{host} pulled {} {from} within {} s: {} (threshold {})",
            human(j.observed as f64),
            self.cfg.window_secs,
            versus_typical(j.observed as f64, &j),
            human(j.threshold),
        );
        let finding = Finding {
            ts: now,
            category: Category::DATA_COLLECTION,
            signature: "data_collection.internal_transfer",
            severity: j.severity(),
            description,
            mitre: mitre_for(app),
            src: host,
            dest: dominant.map(|d| d.peer),
            ports: None,
            proto: None,
            evidence,
            community_id: None,
            app_proto: None,
            // Both parties are inside: nothing to block at the border.
            outside: None,
        };
        let mut alert = finding.into_alert(cx);
        if let Some(d) = dominant {
            alert.dest_port = Some(d.port);
            alert.proto = Some(proto_name(d.proto).into_owned());
        }
        cx.raise(alert);
        st.base.absorb_alert(observed, now, &p);
        st.quiet_until = now.plus_secs(self.cfg.window_secs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::run_at;
    use tapsentry_testkit::FlowRecordBuilder;

    /// `c` fetched `down` bytes from `s:sp`, the flow ending at `at`.
    fn pull(c: &str, s: &str, sp: u16, down: u64, at: i64) -> FlowRecord {
        FlowRecordBuilder::tcp(c, 40_000 + (at % 20_000) as u16, s, sp)
            .at(at)
            .bytes(20_000, down)
            .build()
    }

    /// Ordinary file-share use: a 1 MB document every 5 minutes.
    fn office_day(d: &mut DataCollectionDetector, host: &str, from: i64, minutes: i64) -> usize {
        let mut n = 0;
        for m in (0..minutes).step_by(5) {
            let at = from + m * 60;
            let r = pull(
                host,
                "10.0.1.30",
                445,
                500_000 + (m as u64 % 3) * 400_000,
                at,
            );
            n += run_at(d, host, &r, at).len();
            n += run_at(d, "10.0.1.30", &r, at).len();
        }
        n
    }

    #[test]
    fn staging_from_several_servers_alerts_without_a_dominant_source() {
        let mut d = DataCollectionDetector::new(DataCollectionConfig::default());
        assert_eq!(office_day(&mut d, "10.0.0.5", 0, 120), 0);
        let mut alerts = Vec::new();
        for (i, src) in ["10.0.1.30", "10.0.1.50", "10.0.1.70"].iter().enumerate() {
            let at = 7300 + i as i64 * 5;
            let r = pull("10.0.0.5", src, 445, 30_000_000, at);
            alerts.extend(run_at(&mut d, "10.0.0.5", &r, at));
            // The serving side sees the flow too and must not count it.
            alerts.extend(run_at(&mut d, src, &r, at));
        }
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.alert.signature, "data_collection.internal_transfer");
        assert_eq!(a.src_ip.to_string(), "10.0.0.5");
        assert_eq!(a.dest_ip, None);
        assert_eq!(a.alert.mitre.technique, "T1039");
        assert!(a.response.is_none() && a.geo.is_none());
        assert!(a.evidence["bytes_received_inside"].as_u64().unwrap() >= 50_000_000);
        assert_eq!(a.evidence["top_sources"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn one_source_dominates() {
        let mut d = DataCollectionDetector::new(DataCollectionConfig::default());
        assert_eq!(office_day(&mut d, "10.0.0.5", 0, 120), 0);
        let r = pull("10.0.0.5", "10.0.1.50", 22, 80_000_000, 7300);
        let a = run_at(&mut d, "10.0.0.5", &r, 7300);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].dest_ip.unwrap().to_string(), "10.0.1.50");
        assert_eq!(a[0].dest_port, Some(22));
        assert_eq!(a[0].alert.mitre.technique, "T1074.002");
    }

    #[test]
    fn quiet_while_learning_at_usual_volume_and_below_the_floor() {
        let mut d = DataCollectionDetector::new(DataCollectionConfig::default());
        let r = pull("10.0.0.9", "10.0.1.30", 445, 400_000_000, 100);
        assert!(run_at(&mut d, "10.0.0.9", &r, 100).is_empty(), "learning");
        // A nightly pull of the same size afterwards is this host's normal.
        for h in 1..6 {
            let at = h * 3600;
            let r = pull("10.0.0.9", "10.0.1.30", 445, 350_000_000, at);
            assert!(run_at(&mut d, "10.0.0.9", &r, at).is_empty(), "hour {h}");
        }
        let mut d = DataCollectionDetector::new(DataCollectionConfig::default());
        assert_eq!(office_day(&mut d, "10.0.0.5", 0, 120), 0);
        let r = pull("10.0.0.5", "10.0.1.50", 445, 45_000_000, 7300);
        assert!(run_at(&mut d, "10.0.0.5", &r, 7300).is_empty(), "floor");
    }

    #[test]
    fn outside_peers_are_not_internal_transfers() {
        let mut d = DataCollectionDetector::new(DataCollectionConfig::default());
        assert_eq!(office_day(&mut d, "10.0.0.5", 0, 120), 0);
        let r = pull("10.0.0.5", "203.0.113.80", 443, 500_000_000, 7300);
        assert!(run_at(&mut d, "10.0.0.5", &r, 7300).is_empty());
    }

    #[test]
    fn hosts_stay_within_the_cap() {
        let mut d = DataCollectionDetector::new(DataCollectionConfig {
            max_hosts: 8,
            ..DataCollectionConfig::default()
        });
        for i in 0..500i64 {
            let h = format!("10.1.{}.{}", i / 200, i % 200);
            run_at(&mut d, &h, &pull(&h, "10.0.1.30", 445, 1000, i), i);
        }
        assert!(d.hosts.len() <= 8);
        assert_eq!(d.evicted(), 492);
    }
}
