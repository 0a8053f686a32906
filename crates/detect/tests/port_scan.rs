//! Port-scan detector, fed flow records built by hand and routed the way the
//! worker routes them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test panics to report its failure, its helpers included"
)]

use std::net::IpAddr;

use proptest::prelude::*;
use tapsentry_detect::port_scan::PortScanStats;
use tapsentry_detect::{
    registry, route_flow, DetectCx, Detector, HomeNet, PortScanConfig, PortScanDetector, View,
};
use tapsentry_intel::IntelSnapshot;
use tapsentry_testkit::FlowRecordBuilder;
use tapsentry_types::{Alert, DirCounts, FlowRecord, FlowState, TcpFlags};

const SYN: u8 = 0x02;
const SYN_ACK_DATA: u8 = 0x1b; // SYN ACK PSH FIN: a normal session
const SCANNER_OUT: &str = "203.0.113.5";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// First-report flow records from `client` to `server:port` at `t`
/// seconds, as a scan's probes look: one 60-byte packet from the client,
/// one back unless the state is an attempt; a TCP client sent a normal
/// session's flags when answered and not rejected, else a bare SYN. The
/// server's flags are left empty: the detector judges the client's.
mod rec {
    use super::{SYN, SYN_ACK_DATA};
    use tapsentry_testkit::FlowRecordBuilder;
    use tapsentry_types::FlowState;

    fn probe(b: FlowRecordBuilder, state: FlowState, t: i64) -> FlowRecordBuilder {
        let back = u64::from(state != FlowState::Attempt);
        b.at(t)
            .packets(1, back)
            .bytes(60, 60 * back)
            .state(state)
            .answered(back == 1)
    }

    pub fn tcp(
        client: &str,
        server: &str,
        port: u16,
        state: FlowState,
        t: i64,
    ) -> FlowRecordBuilder {
        let flags = if state == FlowState::Attempt || state == FlowState::Rejected {
            SYN
        } else {
            SYN_ACK_DATA
        };
        probe(
            FlowRecordBuilder::tcp(client, 40000, server, port),
            state,
            t,
        )
        .flags(flags, 0)
    }

    pub fn udp(
        client: &str,
        server: &str,
        port: u16,
        state: FlowState,
        t: i64,
    ) -> FlowRecordBuilder {
        probe(
            FlowRecordBuilder::udp(client, 40000, server, port),
            state,
            t,
        )
    }

    /// An echo request (ICMP type 8 in the client port).
    pub fn ping(client: &str, server: &str, answered: bool, t: i64) -> FlowRecordBuilder {
        let state = if answered {
            FlowState::Established
        } else {
            FlowState::Attempt
        };
        probe(FlowRecordBuilder::new(client, 8, server, 0, 1), state, t)
    }
}

struct Harness {
    det: PortScanDetector,
    home: HomeNet,
    intel: IntelSnapshot,
    alerts: Vec<Alert>,
}

impl Harness {
    fn new(cfg: PortScanConfig) -> Harness {
        Harness {
            det: PortScanDetector::new(cfg),
            home: HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap(),
            intel: IntelSnapshot::empty(),
            alerts: Vec::new(),
        }
    }

    fn default() -> Harness {
        Harness::new(PortScanConfig::default())
    }

    /// Delivers the record to every host the worker would route it for,
    /// then ticks at its time. Returns the alerts it raised.
    fn feed(&mut self, r: FlowRecordBuilder) -> usize {
        let rec = r.build();
        let before = self.alerts.len();
        for host in route_flow(&rec, &self.home).into_iter().flatten() {
            self.deliver(host, &rec);
        }
        let mut cx = DetectCx::new(&self.home, &self.intel, &mut self.alerts);
        self.det.on_tick(rec.last_seen, &mut cx);
        self.alerts.len() - before
    }

    /// Hands the record to the detector as routed for `host`, when the
    /// worker would: only if port_scan's registered perspective admits it.
    fn deliver(&mut self, host: IpAddr, rec: &FlowRecord) {
        let perspective = registry::entry("port_scan").unwrap().perspective;
        if perspective.admits(View::of(host, rec, &self.home)) {
            let mut cx = DetectCx::new(&self.home, &self.intel, &mut self.alerts);
            self.det.on_flow(host, rec, &mut cx);
        }
    }

    fn one(&self) -> &Alert {
        assert_eq!(self.alerts.len(), 1, "alerts: {:#?}", self.alerts);
        &self.alerts[0]
    }

    fn quiet(&self) {
        assert!(self.alerts.is_empty(), "unexpected: {:#?}", self.alerts);
    }
}

fn rejected_or(open: bool) -> FlowState {
    if open {
        FlowState::ClosedRst
    } else {
        FlowState::Rejected
    }
}

#[test]
fn fast_syn_vertical_scan_alerts_within_ten_probes() {
    let mut h = Harness::default();
    let mut probes_to_alert = None;
    for (i, port) in (1..=200u16).enumerate() {
        let st = rejected_or(port == 2 || port == 80);
        let r = rec::tcp(SCANNER_OUT, "10.0.0.7", port, st, i as i64 / 100).flags(
            if port == 2 || port == 80 {
                0x06 // SYN scanner's RST to an open port: no ACK
            } else {
                SYN
            },
            0,
        );
        if h.feed(r) > 0 && probes_to_alert.is_none() {
            probes_to_alert = Some(i + 1);
        }
    }
    let a = h.one();
    assert!(probes_to_alert.unwrap() <= 10, "{probes_to_alert:?}");
    assert_eq!(a.alert.signature, "port_scan.vertical");
    assert_eq!(a.src_ip, ip(SCANNER_OUT));
    assert_eq!(a.dest_ip, Some(ip("10.0.0.7")));
    assert_eq!(a.proto.as_deref(), Some("TCP"));
    assert_eq!(a.evidence["scan_type"], "syn");
    assert_eq!(a.evidence["direction"], "inbound");
    assert_eq!(a.evidence["one_way_tap"], false);
    assert_eq!(a.alert.mitre.tactic, "TA0007");
    assert_eq!(a.alert.mitre.technique, "T1046");
    // Port 2 answered before the alert: something is open, so high.
    assert_eq!(a.alert.severity, 1);
    assert!(a.response.is_some());
    assert!(a.evidence["trw_log_likelihood"].as_f64().unwrap() >= h.det.threshold());
    let s = serde_json::to_string(a).unwrap();
    assert!(s.contains("\"examples\""), "{s}");
}

#[test]
fn a_browsing_host_that_scans_one_server_is_vertical() {
    let mut h = Harness::default();
    for i in 0..200u16 {
        let site = format!("198.51.100.{}", i % 250 + 1);
        h.feed(rec::tcp(
            "10.0.0.50",
            &site,
            443,
            FlowState::ClosedFin,
            i64::from(i),
        ));
    }
    for port in 1..=40u16 {
        let st = rejected_or(port == 22);
        h.feed(rec::tcp("10.0.0.50", "10.0.0.60", port, st, 300));
    }
    let a = h.one();
    assert_eq!(a.alert.signature, "port_scan.vertical");
    assert_eq!(a.dest_ip, Some(ip("10.0.0.60")));
    assert_eq!(a.evidence["direction"], "internal");
    assert_eq!(a.evidence["distinct_targets"], 1);
}

#[test]
fn inbound_scan_with_nothing_open_is_medium() {
    let mut h = Harness::default();
    for port in 1..=10u16 {
        h.feed(rec::tcp(
            SCANNER_OUT,
            "10.0.0.7",
            port,
            FlowState::Rejected,
            0,
        ));
    }
    assert_eq!(h.one().alert.severity, 2);
}

#[test]
fn horizontal_scan_of_thirty_hosts_on_445() {
    let mut h = Harness::default();
    for i in 1..=30u16 {
        let st = if i % 2 == 0 {
            FlowState::Rejected
        } else {
            FlowState::Attempt
        };
        h.feed(rec::tcp(
            "10.0.0.66",
            &format!("10.0.1.{i}"),
            445,
            st,
            i64::from(i),
        ));
    }
    let a = h.one();
    assert_eq!(a.alert.signature, "port_scan.horizontal");
    assert_eq!(a.src_ip, ip("10.0.0.66"));
    assert_eq!(a.dest_ip, None);
    assert_eq!(a.dest_port, Some(445));
    assert_eq!(a.evidence["direction"], "internal");
    assert_eq!(a.alert.severity, 1);
    assert!(a.response.is_none(), "no block rule for an inside host");
    assert!(a.geo.is_none());
}

#[test]
fn slow_scan_one_probe_a_minute_still_alerts() {
    let mut h = Harness::default();
    let mut at = None;
    for i in 0..40u16 {
        if h.feed(rec::tcp(
            SCANNER_OUT,
            "10.0.0.8",
            1000 + i,
            FlowState::Rejected,
            i64::from(i) * 60,
        )) > 0
        {
            at = Some(i);
        }
    }
    assert_eq!(h.one().alert.signature, "port_scan.vertical");
    assert!(at.unwrap() >= 4, "needs min_distinct pairs");
}

#[test]
fn udp_scan_refused_by_icmp_unreachable() {
    let mut h = Harness::default();
    for port in [53u16, 67, 69, 123, 137, 161, 500, 514, 1900, 5353] {
        h.feed(rec::udp(
            "10.0.0.20",
            "198.51.100.9",
            port,
            FlowState::Rejected,
            0,
        ));
    }
    let a = h.one();
    assert_eq!(a.alert.signature, "port_scan.vertical");
    assert_eq!(a.evidence["scan_type"], "udp");
    assert_eq!(a.proto.as_deref(), Some("UDP"));
    assert_eq!(a.evidence["direction"], "outbound");
    assert_eq!(a.dest_ip, Some(ip("198.51.100.9")));
    assert_eq!(a.alert.severity, 1);
}

#[test]
fn fin_null_xmas_classification() {
    for (flags, name) in [(0x01u8, "fin"), (0x00, "null"), (0x29, "xmas")] {
        let mut h = Harness::default();
        for port in 1..=12u16 {
            // Closed ports answer RST, open ones stay silent.
            let st = if port % 4 == 0 {
                FlowState::Attempt
            } else {
                FlowState::Rejected
            };
            h.feed(rec::tcp(SCANNER_OUT, "10.0.0.9", port, st, 0).flags(flags, 0));
        }
        let a = h.one();
        assert_eq!(a.evidence["scan_type"], name, "flags {flags:#x}");
        assert_eq!(a.alert.signature, "port_scan.vertical");
    }
}

#[test]
fn connect_scan_is_told_from_syn_scan() {
    let mut h = Harness::default();
    for port in 1..=12u16 {
        let r = if port == 3 {
            // Handshake completed and reset at once by the scanner.
            rec::tcp("10.0.0.30", "10.0.0.31", port, FlowState::ClosedRst, 0).flags(0x16, 0)
        } else {
            rec::tcp("10.0.0.30", "10.0.0.31", port, FlowState::Rejected, 0)
        };
        h.feed(r);
    }
    assert_eq!(h.one().evidence["scan_type"], "connect");
}

#[test]
fn icmp_sweep() {
    let mut h = Harness::default();
    for i in 1..=40u16 {
        h.feed(rec::ping(
            SCANNER_OUT,
            &format!("10.0.2.{i}"),
            i % 8 == 0,
            i64::from(i),
        ));
    }
    let a = h.one();
    assert_eq!(a.alert.signature, "port_scan.icmp_sweep");
    assert_eq!(a.alert.mitre.technique, "T1018");
    assert_eq!(a.dest_ip, None);
    assert_eq!(a.proto.as_deref(), Some("ICMP"));
    assert_eq!(a.evidence["scan_type"], "icmp");
}

#[test]
fn one_way_tap_uses_counts() {
    let mut h = Harness::default();
    let mut at = None;
    for port in 1..=30u16 {
        if h.feed(rec::tcp(
            "10.0.0.40",
            "10.0.5.5",
            port,
            FlowState::Attempt,
            i64::from(port),
        )) > 0
        {
            at = Some(port);
        }
    }
    let a = h.one();
    assert_eq!(at, Some(20), "the vertical count threshold");
    assert_eq!(a.alert.signature, "port_scan.vertical");
    assert_eq!(a.dest_ip, Some(ip("10.0.5.5")));
    assert_eq!(a.evidence["one_way_tap"], true);
    assert_eq!(a.evidence["method"], "count");
    assert_eq!(a.evidence["window_secs"], 600);

    let mut h = Harness::default();
    for i in 1..=25u16 {
        h.feed(rec::tcp(
            SCANNER_OUT,
            &format!("10.0.6.{i}"),
            22,
            FlowState::Attempt,
            i64::from(i),
        ));
    }
    let a = h.one();
    assert_eq!(a.alert.signature, "port_scan.horizontal");
    assert_eq!(a.dest_port, Some(22));
    assert_eq!(a.evidence["one_way_tap"], true);
}

#[test]
fn one_way_slow_scan_uses_the_long_window() {
    let mut h = Harness::default();
    // One probe every 90 s: never 20 within 600 s, but 25 within the hour.
    for port in 1..=25u16 {
        h.feed(rec::tcp(
            "10.0.0.41",
            "10.0.5.6",
            port,
            FlowState::Attempt,
            i64::from(port) * 90,
        ));
    }
    let a = h.one();
    assert_eq!(a.evidence["window_secs"], 3600);
}

#[test]
fn one_way_browsing_is_quiet() {
    // A one-way tap sees only the client; a client that ACKs after its SYN
    // has heard the SYN-ACK.
    let mut h = Harness::default();
    for i in 0..200u16 {
        let server = format!("198.51.{}.{}", i / 200, i % 200 + 1);
        h.feed(
            rec::tcp("10.0.0.42", &server, 443, FlowState::Attempt, i64::from(i))
                .flags(SYN_ACK_DATA, 0),
        );
        let quic = rec::udp("10.0.0.42", &server, 443, FlowState::Attempt, i64::from(i));
        h.feed(quic.packets(30, 0).bytes(60 * 30, 0));
    }
    h.quiet();
}

#[test]
fn quiet_busy_public_server() {
    let mut h = Harness::default();
    for i in 0..300u32 {
        let client = format!("198.51.{}.{}", i / 250, i % 250 + 1);
        h.feed(rec::tcp(
            &client,
            "10.0.0.80",
            443,
            FlowState::ClosedFin,
            i64::from(i),
        ));
    }
    h.quiet();
}

#[test]
fn quiet_resolver_talking_to_many_servers() {
    let mut h = Harness::default();
    for i in 0..500u32 {
        let server = format!("192.0.{}.{}", i / 250, i % 250 + 1);
        h.feed(rec::udp(
            "10.0.0.53",
            &server,
            53,
            FlowState::Established,
            i64::from(i),
        ));
    }
    h.quiet();
}

#[test]
fn quiet_monitoring_pings() {
    let mut h = Harness::default();
    for minute in 0..60i64 {
        for i in 1..=30u16 {
            h.feed(rec::ping(
                "10.0.0.9",
                &format!("10.0.3.{i}"),
                true,
                minute * 60 + i64::from(i),
            ));
        }
    }
    h.quiet();
}

#[test]
fn quiet_p2p_host_mostly_answered() {
    let mut h = Harness::default();
    // A fixed pattern, and a pseudo-random one, of 20% failed contacts.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..400u32 {
        let peer = format!("198.51.{}.{}", i / 200, i % 200 + 1);
        let fails = i % 5 == 4;
        let st = if fails {
            FlowState::Attempt
        } else {
            FlowState::ClosedFin
        };
        h.feed(rec::tcp("10.0.0.44", &peer, 6881, st, i64::from(i)));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let fails = seed.is_multiple_of(5);
        let st = if fails {
            FlowState::Rejected
        } else {
            FlowState::Established
        };
        let port = 1024 + (seed % 60000) as u16;
        h.feed(rec::udp(
            "10.0.0.45",
            &format!("203.0.{}.{}", i / 200, i % 200 + 1),
            port,
            st,
            i64::from(i),
        ));
    }
    h.quiet();
}

#[test]
fn quiet_allow_listed_scanner() {
    let mut h = Harness::new(PortScanConfig {
        allow: vec!["203.0.113.0/24".into(), "10.0.0.99".into()],
        ..PortScanConfig::default()
    });
    for port in 1..=100u16 {
        h.feed(rec::tcp(
            SCANNER_OUT,
            "10.0.0.7",
            port,
            FlowState::Rejected,
            0,
        ));
        h.feed(rec::tcp(
            "10.0.0.99",
            "10.0.0.7",
            port,
            FlowState::Rejected,
            0,
        ));
    }
    h.quiet();
}

#[test]
fn mid_stream_pickups_and_backscatter_are_not_probes() {
    let mut h = Harness::default();
    for port in 1..=40u16 {
        // Picked up mid-stream: the client's first packet carried ACK.
        h.feed(rec::tcp(SCANNER_OUT, "10.0.0.7", port, FlowState::Rejected, 0).flags(0x11, 0));
        // Backscatter: the flow starts with a SYN-ACK, the "client" sent nothing.
        let r = rec::tcp(
            "10.0.0.8",
            &format!("198.51.100.{port}"),
            80,
            FlowState::Attempt,
            0,
        )
        .flags(0, 0)
        .packets(0, 0)
        .bytes(0, 0)
        .build();
        h.deliver(ip("10.0.0.8"), &r);
    }
    h.quiet();
    assert_eq!(h.det.stats().tracked_scanners, 0);
}

#[test]
fn later_records_of_a_flow_are_not_counted_again() {
    let mut h = Harness::default();
    for port in 1..=20u16 {
        let rec = rec::tcp(SCANNER_OUT, "10.0.0.7", port, FlowState::Rejected, 0)
            .reported(
                DirCounts {
                    packets: 1,
                    bytes: 60,
                },
                DirCounts::default(),
            )
            .build();
        h.deliver(ip("10.0.0.7"), &rec);
        h.deliver(ip(SCANNER_OUT), &rec);
    }
    h.quiet();
}

#[test]
fn one_failure_fewer_than_needed_is_quiet() {
    // Default: four failures cross ln(99) but min_distinct wants five pairs.
    let mut h = Harness::default();
    for port in 1..=4u16 {
        h.feed(rec::tcp(
            SCANNER_OUT,
            "10.0.0.7",
            port,
            FlowState::Rejected,
            0,
        ));
    }
    h.quiet();
    assert_eq!(
        h.feed(rec::tcp(SCANNER_OUT, "10.0.0.7", 5, FlowState::Rejected, 0)),
        1
    );

    // With min_distinct 1 the walk alone decides: three failures (4.16) are
    // below ln(99) = 4.60, the fourth (5.55) crosses.
    let mut h = Harness::new(PortScanConfig {
        min_distinct: 1,
        ..PortScanConfig::default()
    });
    for port in 1..=3u16 {
        h.feed(rec::tcp(
            SCANNER_OUT,
            "10.0.0.7",
            port,
            FlowState::Rejected,
            0,
        ));
    }
    h.quiet();
    assert_eq!(
        h.feed(rec::tcp(SCANNER_OUT, "10.0.0.7", 4, FlowState::Rejected, 0)),
        1
    );

    // One-way counts: 19 ports is one short of vertical_ports.
    let mut h = Harness::default();
    for port in 1..=19u16 {
        h.feed(rec::tcp(
            "10.0.0.40",
            "10.0.5.5",
            port,
            FlowState::Attempt,
            0,
        ));
    }
    h.quiet();
}

#[test]
fn raises_once_per_classification() {
    let mut h = Harness::default();
    // Vertical on one host, then many ports on many hosts: one vertical,
    // then one mixed, never repeated.
    for t in 1..=5u16 {
        for port in 1..=30u16 {
            h.feed(rec::tcp(
                SCANNER_OUT,
                &format!("10.0.7.{t}"),
                port,
                FlowState::Rejected,
                0,
            ));
        }
    }
    let sigs: Vec<_> = h.alerts.iter().map(|a| a.alert.signature).collect();
    assert_eq!(sigs, ["port_scan.vertical", "port_scan.mixed"]);
}

#[test]
fn config_problems_and_safe_construction() {
    assert!(PortScanConfig::default()
        .problems("detect.port_scan")
        .is_empty());
    let bad = PortScanConfig {
        alpha: f64::NAN,
        beta: 1.5,
        theta0: 0.2,
        theta1: 0.8,
        min_distinct: 0,
        window_secs: 0,
        allow: vec!["not-a-net".into()],
        ..PortScanConfig::default()
    };
    let keys: Vec<_> = bad
        .problems("detect.port_scan")
        .into_iter()
        .map(|p| p.path)
        .collect();
    for k in [
        "detect.port_scan.alpha",
        "detect.port_scan.beta",
        "detect.port_scan.theta1",
        "detect.port_scan.min_distinct",
        "detect.port_scan.window_secs",
        "detect.port_scan.allow",
    ] {
        assert!(keys.iter().any(|p| p == k), "{k} missing from {keys:?}");
    }
    let mut h = Harness::new(bad);
    assert!(h.det.threshold().is_finite() && h.det.threshold() > 0.0);
    for port in 1..=10u16 {
        h.feed(rec::tcp(
            SCANNER_OUT,
            "10.0.0.7",
            port,
            FlowState::Rejected,
            0,
        ));
    }
    assert!(h.det.log_likelihood(ip(SCANNER_OUT)).unwrap().is_finite());
    assert_eq!(h.alerts.len(), 1);
}

#[test]
fn config_from_toml_like_json_rejects_unknown_keys() {
    let ok: PortScanConfig =
        serde_json::from_str(r#"{"min_distinct": 7, "allow": ["192.0.2.0/24"]}"#).unwrap();
    assert_eq!(ok.min_distinct, 7);
    assert_eq!(ok.vertical_ports, 20);
    assert!(serde_json::from_str::<PortScanConfig>(r#"{"treshold": 3}"#).is_err());
}

#[test]
fn bounded_scanners_and_pairs() {
    let mut h = Harness::new(PortScanConfig {
        max_tracked_scanners: 3,
        max_pairs_per_scanner: 8,
        ..PortScanConfig::default()
    });
    for s in 1..=10u16 {
        for port in 1..=20u16 {
            h.feed(rec::tcp(
                &format!("10.0.9.{s}"),
                "10.0.0.7",
                port,
                FlowState::Established,
                0,
            ));
        }
    }
    let st: PortScanStats = h.det.stats();
    assert!(st.tracked_scanners <= 3);
    assert_eq!(st.evicted_scanners, 7);
    assert!(st.pairs <= 3 * 8);
    assert!(st.pairs_dropped > 0);
}

#[test]
fn idle_scanners_are_forgotten() {
    let mut h = Harness::default();
    for port in 1..=3u16 {
        h.feed(rec::tcp(
            SCANNER_OUT,
            "10.0.0.7",
            port,
            FlowState::Rejected,
            0,
        ));
    }
    assert!(h.det.log_likelihood(ip(SCANNER_OUT)).is_some());
    h.feed(rec::tcp(
        "10.0.0.1",
        "10.0.0.2",
        80,
        FlowState::ClosedFin,
        3700,
    ));
    assert!(h.det.log_likelihood(ip(SCANNER_OUT)).is_none());
    assert_eq!(h.det.stats().tracked_scanners, 1);
}

proptest! {
    #[test]
    fn state_stays_bounded_and_finite(
        contacts in proptest::collection::vec((0u8..6, 0u8..12, 0u16..40, 0u8..5, 0u8..4, 0i64..5000), 1..300),
    ) {
        let mut h = Harness::new(PortScanConfig {
            max_tracked_scanners: 4,
            max_pairs_per_scanner: 16,
            ..PortScanConfig::default()
        });
        let states = [
            FlowState::Attempt,
            FlowState::Rejected,
            FlowState::Established,
            FlowState::ClosedFin,
            FlowState::ClosedRst,
        ];
        let mut t = 0i64;
        for (c, s, port, st, proto, dt) in contacts {
            t += dt;
            let client = format!("10.0.8.{c}");
            let server = format!("10.0.{}.{s}", if s % 2 == 0 { 4 } else { 10 });
            let st = states[usize::from(st)];
            let r = match proto {
                0 => rec::tcp(&client, &server, port, st, t),
                1 => rec::udp(&client, &server, port, st, t),
                2 => rec::ping(&client, &server, st != FlowState::Attempt, t),
                _ => rec::tcp(&client, &server, port, st, t).flags(port as u8, 0),
            };
            h.feed(r);
            let stats = h.det.stats();
            prop_assert!(stats.tracked_scanners <= 4);
            prop_assert!(stats.pairs <= 4 * 16);
            for i in 0..6u8 {
                if let Some(l) = h.det.log_likelihood(ip(&format!("10.0.8.{i}"))) {
                    prop_assert!(l.is_finite());
                    prop_assert!(l.abs() < 100.0);
                }
            }
        }
        // One alert per (scanner, classification) at most.
        prop_assert!(h.alerts.len() <= 6 * 4);
    }
}

#[test]
fn an_ack_ping_sweep_answered_by_resets_is_a_sweep() {
    let mut h = Harness::default();
    for i in 1..=30u8 {
        // One bare ACK to port 80; live hosts answer with a lone RST.
        let r = rec::tcp(
            "10.0.0.50",
            &format!("10.0.1.{i}"),
            80,
            FlowState::ClosedRst,
            0,
        )
        .flags(0x10, TcpFlags::RST)
        .packets(1, 1)
        .bytes(40, 40)
        .build();

        h.deliver(r.client, &r);
    }
    let a = h.one();
    assert_eq!(a.alert.signature, "port_scan.horizontal");
    assert_eq!(a.evidence["scan_type"], "ack");
    assert_eq!(a.evidence["successes"], 0);
}

#[test]
fn bare_acks_of_live_sessions_are_not_probes() {
    let mut h = Harness::default();
    for i in 1..=60u8 {
        // Sessions picked up mid-stream: a pure ACK answered by data, a
        // pure ACK followed by more from the client, an ACK carrying data.
        let ack = |server: String| {
            rec::tcp("10.0.0.60", &server, 443, FlowState::Established, 0).flags(0x10, 0x18)
        };
        let answered = ack(format!("10.0.2.{i}")).packets(1, 3).bytes(52, 4_000);
        let more = ack(format!("10.0.3.{i}")).packets(2, 0).bytes(104, 0);
        let data = ack(format!("10.0.4.{i}")).packets(1, 0).bytes(600, 0);
        for r in [answered, more, data].map(FlowRecordBuilder::build) {
            h.deliver(r.client, &r);
        }
    }
    h.quiet();
}
