//! The registry: every detector, in one table.
//!
//! One line of `detectors!` registers a detector: its name (which is also
//! its config section, `[detect.NAME]`), its config type, its detector
//! type, its alert [`Category`] and the [`Perspective`] it judges records
//! from. The macro generates the `[detect]` section ([`DetectConfig`], one
//! field per line, so unknown keys stay errors naming their full path) and
//! [`DETECTORS`], from which the worker builds its detectors, the sensor
//! validates the file, and the stats log lists the categories.
//!
//! A line relies on three conventions of the detector's module, each a
//! compile error when missing: the config type has `pub enabled: bool` and
//! `fn problems(&self, section: &str) -> Vec<Problem>`, and the detector
//! type has `fn new(cfg) -> Self`.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tapsentry_types::{Category, FlowRecord, Problem};

use crate::{
    DataCollectionConfig, DataCollectionDetector, Detector, DnsTunnelConfig, DnsTunnelDetector,
    ExfiltrationConfig, ExfiltrationDetector, ExternalLoginConfig, ExternalLoginDetector,
    FloodConfig, FloodDetector, HomeNet, LateralMovementConfig, LateralMovementDetector,
    PortScanConfig, PortScanDetector, SpambotConfig, SpambotDetector, TorConfig, TorDetector,
    UnusualProtocolConfig, UnusualProtocolDetector,
};

/// How a routed flow record relates to the host it was routed for
/// ([`crate::route_flow`]): whether that host is the record's client, its
/// server, inside, and whether the record is the flow's first. Computed
/// once per record and batch, tested per detector by [`Perspective::admits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View(u8);

impl View {
    const CLIENT: u8 = 1;
    const SERVER: u8 = 2;
    const INSIDE: u8 = 4;
    const FIRST: u8 = 8;

    /// The view of `rec` from `host`, with `home` saying what is inside.
    pub fn of(host: IpAddr, rec: &FlowRecord, home: &HomeNet) -> View {
        let mut v = 0;
        if host == rec.client {
            v |= View::CLIENT;
        }
        if host == rec.server {
            v |= View::SERVER;
        }
        if home.contains(host) {
            v |= View::INSIDE;
        }
        if rec.is_first_report() {
            v |= View::FIRST;
        }
        View(v)
    }

    fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }
}

/// Which routed records a detector judges: the worker calls
/// [`Detector::on_flow`] only for records whose [`View`] its perspective
/// admits, so a detector never filters on `host` itself and a record is
/// never counted from a side the detector does not judge.
///
/// [`crate::route_flow`] routes each record to every inside endpoint (a
/// flow between two inside hosts twice), to the client when neither is
/// inside, and a flow's first record opened from outside to the outside
/// client as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perspective {
    /// The first record of every flow, from every host it is routed for,
    /// inside or not. For a detector judging each host's relation to its
    /// counterpart (`tor`: the host talking to a listed exit).
    EveryHostFirstRecord,
    /// The first record of every flow, once, from its client, inside or
    /// outside (every first record reaches its client's shard). For a
    /// detector judging clients wherever they are (`port_scan`).
    ClientFirstRecord,
    /// Every record, from its client when the client is inside.
    InsideClient,
    /// The first record of every flow, from its client when the client is
    /// inside.
    InsideClientFirstRecord,
    /// Every record, from its server when the server is inside.
    InsideServer,
    /// Every record, from each inside endpoint: a flow between two inside
    /// hosts once from each side (the detector tells sent from received).
    InsideHost,
}

impl Perspective {
    /// True when a detector with this perspective judges a record seen as
    /// `view`. A match and a mask: this runs per record and detector.
    #[inline]
    pub fn admits(self, view: View) -> bool {
        view.has(match self {
            Perspective::EveryHostFirstRecord => View::FIRST,
            Perspective::ClientFirstRecord => View::CLIENT | View::FIRST,
            Perspective::InsideClient => View::CLIENT | View::INSIDE,
            Perspective::InsideClientFirstRecord => View::CLIENT | View::INSIDE | View::FIRST,
            Perspective::InsideServer => View::SERVER | View::INSIDE,
            Perspective::InsideHost => View::INSIDE,
        })
    }
}

/// One registered detector (a line of `detectors!`); see [`DETECTORS`].
pub struct DetectorEntry {
    /// The detector's name: its `[detect.NAME]` section, its state-file
    /// section, and what [`Detector::name`] returns.
    pub name: &'static str,
    /// The category of every alert it raises.
    pub category: Category,
    /// The records it judges.
    pub perspective: Perspective,
    enabled: fn(&DetectConfig) -> bool,
    build: fn(&DetectConfig) -> Box<dyn Detector>,
    problems: fn(&DetectConfig, &str) -> Vec<Problem>,
    default_section: fn() -> serde_json::Value,
}

impl DetectorEntry {
    /// True when `cfg` turns the detector on.
    pub fn enabled(&self, cfg: &DetectConfig) -> bool {
        (self.enabled)(cfg)
    }

    /// A detector built from its section of `cfg` (enabled or not).
    pub fn build(&self, cfg: &DetectConfig) -> Box<dyn Detector> {
        (self.build)(cfg)
    }

    /// Problems with its section of `cfg`, each under `detect_path.NAME`
    /// (`detect_path` is where the `[detect]` table lives: `detect`).
    pub fn problems(&self, cfg: &DetectConfig, detect_path: &str) -> Vec<Problem> {
        (self.problems)(cfg, &format!("{detect_path}.{}", self.name))
    }

    /// Its section at the defaults, as JSON: every key of its config type.
    /// Tests hold `sensor.toml.example` (the embedded default) against it.
    pub fn default_section(&self) -> serde_json::Value {
        (self.default_section)()
    }
}

impl std::fmt::Debug for DetectorEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectorEntry")
            .field("name", &self.name)
            .field("category", &self.category)
            .field("perspective", &self.perspective)
            .finish_non_exhaustive()
    }
}

/// Registers detectors: generates [`DetectConfig`] and [`DETECTORS`].
macro_rules! detectors {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident: $cfg:ty => $det:ty, $category:expr, $perspective:expr;
    )*) => {
        /// The `[detect]` configuration section: where learned baselines
        /// are kept, and one sub-section per registered detector.
        #[derive(Debug, Clone, Default, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        pub struct DetectConfig {
            /// File the learned baselines are saved to (periodically and at
            /// exit) and loaded from at start; empty for none. Default "".
            pub state_file: PathBuf,
            /// Capture-time seconds between periodic saves of `state_file`.
            /// Default 300.
            pub state_interval_secs: StateIntervalSecs,
            $(
                $(#[doc = $doc])*
                pub $name: $cfg,
            )*
        }

        /// Every detector, in the order workers run them and the stats log
        /// lists their categories.
        pub static DETECTORS: &[DetectorEntry] = &[$(
            DetectorEntry {
                name: stringify!($name),
                category: $category,
                perspective: $perspective,
                enabled: |c| c.$name.enabled,
                build: |c| Box::new(<$det>::new(c.$name.clone())) as Box<dyn Detector>,
                problems: |c, section| c.$name.problems(section),
                default_section: || {
                    serde_json::to_value(<$cfg>::default()).unwrap_or(serde_json::Value::Null)
                },
            },
        )*];
    };
}

// The order is the stats log's `alerts.by_category` order (first use of
// each category) and the order workers run detectors in.
detectors! {
    /// Outbound volume far above a host's own baseline, in a burst or
    /// trickled to one destination.
    exfiltration: ExfiltrationConfig => ExfiltrationDetector,
        Category::EXFILTRATION, Perspective::InsideHost;
    /// Data carried in DNS query names (judged on DNS events; flow records
    /// only teach it the inside resolvers).
    dns_tunnel: DnsTunnelConfig => DnsTunnelDetector,
        Category::EXFILTRATION, Perspective::InsideServer;
    /// Internal volume pulled towards one host far above its baseline.
    data_collection: DataCollectionConfig => DataCollectionDetector,
        Category::DATA_COLLECTION, Perspective::InsideHost;
    /// Traffic to or from listed Tor exit nodes.
    tor: TorConfig => TorDetector,
        Category::TOR, Perspective::EveryHostFirstRecord;
    /// Port scans and sweeps.
    port_scan: PortScanConfig => PortScanDetector,
        Category::PORT_SCAN, Perspective::ClientFirstRecord;
    /// Outbound SMTP from hosts with no mail history.
    spambot: SpambotConfig => SpambotDetector,
        Category::SPAMBOT, Perspective::InsideClientFirstRecord;
    /// New IP protocols between an inside client and a server.
    unusual_protocol: UnusualProtocolConfig => UnusualProtocolDetector,
        Category::UNUSUAL_PROTOCOL, Perspective::InsideClient;
    /// Logins to remote-access services from outside.
    external_login: ExternalLoginConfig => ExternalLoginDetector,
        Category::EXTERNAL_LOGIN, Perspective::InsideServer;
    /// An inside host swamped by new flows from many (often spoofed)
    /// sources: one aggregated alert a flood.
    flood: FloodConfig => FloodDetector,
        crate::FLOOD, Perspective::InsideServer;
    /// Remote execution, tool transfer and exploitation between inside
    /// hosts (judged on administration events; flow records only end the
    /// wait for an answer).
    lateral_movement: LateralMovementConfig => LateralMovementDetector,
        Category::LATERAL_MOVEMENT, Perspective::InsideClient;
}

/// The registered detector called `name`.
pub fn entry(name: &str) -> Option<&'static DetectorEntry> {
    DETECTORS.iter().find(|e| e.name == name)
}

/// Every alert category, once each, in registry order (the stats log's
/// `alerts.by_category`).
pub fn categories() -> impl Iterator<Item = Category> {
    DETECTORS
        .iter()
        .enumerate()
        .filter(|(i, e)| !DETECTORS[..*i].iter().any(|o| o.category == e.category))
        .map(|(_, e)| e.category)
}

impl DetectConfig {
    /// Every problem with the values of `[detect]` (found at `section`,
    /// i.e. `detect`): its own keys and every registered detector's section.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = tapsentry_types::SectionProblems::new(section);
        p.at_least("state_interval_secs", self.state_interval_secs.0, 1);
        for e in DETECTORS {
            p.extend(e.problems(self, section));
        }
        p.into_vec()
    }
}

/// `detect.state_interval_secs`: a number of seconds whose default is 300
/// (a newtype so [`DetectConfig`] keeps its derived `Default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct StateIntervalSecs(pub u64);

impl Default for StateIntervalSecs {
    fn default() -> Self {
        StateIntervalSecs(300)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{route_flow, testutil::flow};

    #[test]
    fn names_are_unique_and_match_the_detectors() {
        let cfg = DetectConfig::default();
        for (i, e) in DETECTORS.iter().enumerate() {
            assert!(DETECTORS[..i].iter().all(|o| o.name != e.name), "{e:?}");
            assert_eq!(e.build(&cfg).name(), e.name, "{e:?}");
            assert!(e.enabled(&cfg), "{e:?} is on by default");
            assert!(e.problems(&cfg, "detect").is_empty(), "{e:?}");
            assert!(e.default_section().get("enabled").is_some(), "{e:?}");
        }
        assert_eq!(entry("port_scan").unwrap().name, "port_scan");
        assert!(entry("nope").is_none());
    }

    #[test]
    fn categories_are_the_contracts_in_its_order() {
        let all: Vec<&str> = categories().map(Category::as_str).collect();
        assert_eq!(
            all,
            [
                "exfiltration",
                "data_collection",
                "tor",
                "port_scan",
                "spambot",
                "unusual_protocol",
                "external_login",
                // The contract's second round.
                "flood",
                "lateral_movement"
            ]
        );
    }

    #[test]
    fn problems_name_the_detect_path() {
        let cfg = DetectConfig {
            state_interval_secs: StateIntervalSecs(0),
            ..DetectConfig::default()
        };
        let p = cfg.problems("detect");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].path, "detect.state_interval_secs");
    }

    #[test]
    fn every_section_bounds_its_values() {
        let cfg = DetectConfig {
            dns_tunnel: DnsTunnelConfig {
                window_secs: 0,
                min_unique_names: 0,
                min_mean_subdomain_len: -1.0,
                min_entropy: f64::NAN,
                allow: vec![" . ".into()],
                max_tracked: 0,
                ..DnsTunnelConfig::default()
            },
            external_login: ExternalLoginConfig {
                ports: vec![22, 0],
                brute_force_sessions: 1,
                many_sources: 0,
                window_secs: 0,
                max_tracked: 0,
                ..ExternalLoginConfig::default()
            },
            unusual_protocol: UnusualProtocolConfig {
                max_pairs: 0,
                learning_secs: 0,
                ..UnusualProtocolConfig::default()
            },
            spambot: SpambotConfig {
                smtp_ports: Vec::new(),
                min_connections: 0,
                max_hosts: 0,
                learning_secs: 0,
                ..SpambotConfig::default()
            },
            exfiltration: ExfiltrationConfig {
                max_hosts: 0,
                peak_half_life_secs: 0,
                ..ExfiltrationConfig::default()
            },
            data_collection: DataCollectionConfig {
                max_hosts: 0,
                alpha: f64::INFINITY,
                ..DataCollectionConfig::default()
            },
            ..DetectConfig::default()
        };
        let got: Vec<String> = cfg.problems("detect").into_iter().map(|p| p.path).collect();
        let want = [
            "detect.exfiltration.peak_half_life_secs",
            "detect.exfiltration.max_hosts",
            "detect.dns_tunnel.window_secs",
            "detect.dns_tunnel.min_unique_names",
            "detect.dns_tunnel.min_mean_subdomain_len",
            "detect.dns_tunnel.min_entropy",
            "detect.dns_tunnel.allow",
            "detect.dns_tunnel.max_tracked",
            "detect.data_collection.alpha",
            "detect.data_collection.max_hosts",
            "detect.spambot.smtp_ports",
            "detect.spambot.min_connections",
            "detect.spambot.max_hosts",
            "detect.unusual_protocol.max_pairs",
            "detect.external_login.ports",
            "detect.external_login.brute_force_sessions",
            "detect.external_login.many_sources",
            "detect.external_login.window_secs",
            "detect.external_login.max_tracked",
        ];
        // A zero learning period is allowed: no learning at all.
        assert_eq!(got, want);
    }

    /// The views a record is routed for, and which of them `p` admits.
    fn admitted(p: Perspective, rec: &FlowRecord, home: &HomeNet) -> Vec<String> {
        route_flow(rec, home)
            .into_iter()
            .flatten()
            .filter(|h| p.admits(View::of(*h, rec, home)))
            .map(|h| h.to_string())
            .collect()
    }

    #[test]
    fn perspectives_admit_each_side_once() {
        use Perspective::*;
        let home = HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap();
        let inbound = flow("198.51.100.9", 40000, "10.0.0.7", 22, 6, 0);
        let outbound = flow("10.0.0.5", 40000, "198.51.100.9", 443, 6, 0);
        let internal = flow("10.0.0.5", 40000, "10.0.0.7", 445, 6, 0);
        let transit = flow("198.51.100.9", 40000, "203.0.113.1", 80, 6, 0);
        let mut later = inbound;
        later.reported_to_server.packets = 3;
        let cases: [(Perspective, [&[&str]; 5]); 6] = [
            (
                EveryHostFirstRecord,
                [
                    &["10.0.0.7", "198.51.100.9"],
                    &["10.0.0.5"],
                    &["10.0.0.5", "10.0.0.7"],
                    &["198.51.100.9"],
                    &[],
                ],
            ),
            (
                ClientFirstRecord,
                [
                    &["198.51.100.9"],
                    &["10.0.0.5"],
                    &["10.0.0.5"],
                    &["198.51.100.9"],
                    &[],
                ],
            ),
            (InsideClient, [&[], &["10.0.0.5"], &["10.0.0.5"], &[], &[]]),
            (
                InsideClientFirstRecord,
                [&[], &["10.0.0.5"], &["10.0.0.5"], &[], &[]],
            ),
            (
                InsideServer,
                [&["10.0.0.7"], &[], &["10.0.0.7"], &[], &["10.0.0.7"]],
            ),
            (
                InsideHost,
                [
                    &["10.0.0.7"],
                    &["10.0.0.5"],
                    &["10.0.0.5", "10.0.0.7"],
                    &[],
                    &["10.0.0.7"],
                ],
            ),
        ];
        for (p, want) in cases {
            for (rec, want) in [&inbound, &outbound, &internal, &transit, &later]
                .into_iter()
                .zip(want)
            {
                assert_eq!(admitted(p, rec, &home), want, "{p:?} {rec:?}");
            }
        }
        // Later records of an inside client: judged by InsideClient only.
        let mut later_out = outbound;
        later_out.reported_to_client.packets = 1;
        assert_eq!(admitted(InsideClient, &later_out, &home), ["10.0.0.5"]);
        assert!(admitted(InsideClientFirstRecord, &later_out, &home).is_empty());
        assert!(admitted(ClientFirstRecord, &later_out, &home).is_empty());
    }
}
