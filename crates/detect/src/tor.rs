use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{
    community_id_v1, proto_name, Alert, AlertBody, Category, FlowRecord, FlowState, Mitre, Problem,
};

use crate::{block_response, DetectCx, Detector};

/// The `[detect.tor]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TorConfig {
    /// Alert on flows with a listed Tor exit on either side. Default true.
    /// (The list itself is `intel.tor_exit_list`.)
    pub enabled: bool,
}

impl Default for TorConfig {
    fn default() -> Self {
        TorConfig { enabled: true }
    }
}

impl TorConfig {
    /// Every problem with the values, each under `section`: none, as the
    /// section holds only `enabled` (the list is `intel.tor_exit_list`,
    /// checked by the sensor when it loads it).
    pub fn problems(&self, _section: &str) -> Vec<Problem> {
        Vec::new()
    }
}

/// Tor exits are the last hop of a multi-hop proxy (ATT&CK T1090.003).
const MITRE_TOR: Mitre = Mitre {
    tactic: "TA0011",
    technique: "T1090.003",
};

/// Alerts on any flow with a listed Tor exit node on either side.
///
/// Outbound (an inside host opens a connection to an exit) is
/// `tor.exit_outbound`; inbound (an exit connects to an inside service) is
/// `tor.exit_inbound`. Severity: inbound with data exchanged is high (someone
/// used a service through Tor); an inbound handshake without data, and
/// outbound with data, are medium; outbound handshakes without data and
/// attempts that were refused or never answered are low. One alert per
/// flow, on its first record.
pub struct TorDetector {
    _cfg: TorConfig,
}

impl TorDetector {
    /// A detector with the given settings.
    pub fn new(cfg: TorConfig) -> Self {
        TorDetector { _cfg: cfg }
    }
}

/// True when either side sent more than bare headers: an average packet
/// above 80 bytes from the IP header up (TCP/IPv6 headers with options stay
/// under it; a handshake, a RST or an empty ACK never exceed it).
fn carried_data(rec: &FlowRecord) -> bool {
    [rec.to_server, rec.to_client]
        .iter()
        .any(|d| d.packets > 0 && d.bytes > d.packets.saturating_mul(80))
}

impl Detector for TorDetector {
    fn name(&self) -> &'static str {
        "tor"
    }

    /// Registered [`crate::Perspective::EveryHostFirstRecord`]: the first
    /// record from each host it is routed for. Each host is judged by its
    /// counterpart: a host talking to a listed exit (and not one itself).
    fn on_flow(&mut self, host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        if cx.intel.tor.is_empty() {
            return;
        }
        let (exit, inbound) = if host == rec.client && cx.intel.tor.contains(rec.server) {
            (rec.server, false)
        } else if host == rec.server && cx.intel.tor.contains(rec.client) {
            (rec.client, true)
        } else {
            return;
        };
        // A flow between two listed exits would be seen twice; the host's own
        // view is only about a non-listed host.
        if cx.intel.tor.contains(host) {
            return;
        }
        let answered = rec.responder_answered
            && !matches!(rec.state, FlowState::Rejected | FlowState::Attempt);
        let data = answered && carried_data(rec);
        // Someone reaching a service through Tor is worse than an inside host
        // browsing through it; a session that moved data is worse than a
        // handshake (a port check, a refused login banner), which is worse
        // than nothing at all.
        let severity = match (inbound, answered, data) {
            (true, true, true) => 1,
            (true, true, false) | (false, true, true) => 2,
            _ => 3,
        };
        let (signature, description) = if inbound {
            (
                "tor.exit_inbound",
                format!(
                    "Tor exit node {} connected to inside host {} on {}/{} ({}; {} packets, {} bytes in, {} bytes out)",
                    rec.client, rec.server, proto_name(rec.proto), rec.server_port,
                    if answered { "answered" } else { "not answered" },
                    rec.to_server.packets + rec.to_client.packets,
                    rec.to_server.bytes, rec.to_client.bytes,
                ),
            )
        } else {
            (
                "tor.exit_outbound",
                format!(
                    "{} connected to Tor exit node {} on {}/{} ({}; {} bytes sent, {} bytes received)",
                    rec.client, rec.server, proto_name(rec.proto), rec.server_port,
                    if answered { "established" } else { "not answered" },
                    rec.to_server.bytes, rec.to_client.bytes,
                ),
            )
        };
        let mut evidence = BTreeMap::new();
        evidence.insert("tor_exit", json!(exit.to_string()));
        evidence.insert(
            "direction",
            json!(if inbound { "inbound" } else { "outbound" }),
        );
        evidence.insert("flow_state", json!(rec.state));
        evidence.insert("carried_data", json!(data));
        evidence.insert("packets_to_server", json!(rec.to_server.packets));
        evidence.insert("packets_to_client", json!(rec.to_client.packets));
        evidence.insert("bytes_to_server", json!(rec.to_server.bytes));
        evidence.insert("bytes_to_client", json!(rec.to_client.bytes));
        evidence.insert("first_seen", json!(rec.first_seen));
        evidence.insert("last_seen", json!(rec.last_seen));
        evidence.insert("tor_list_size", json!(cx.intel.tor.len()));
        let (src_port, dest_port) = match rec.proto {
            6 | 17 | 132 => (Some(rec.client_port), Some(rec.server_port)),
            _ => (None, None),
        };
        cx.raise(Alert {
            // The first packet with the exit on it completes the evidence.
            timestamp: rec.first_seen,
            event_type: "alert",
            src_ip: rec.client,
            dest_ip: Some(rec.server),
            src_port,
            dest_port,
            proto: Some(proto_name(rec.proto).into_owned()),
            alert: AlertBody {
                category: Category::TOR,
                signature,
                severity,
                description,
                mitre: MITRE_TOR,
            },
            evidence,
            community_id: Some(community_id_v1(
                rec.client,
                rec.client_port,
                rec.server,
                rec.server_port,
                rec.proto,
                0,
            )),
            flow_id: Some(rec.flow_id()),
            app_proto: Some(rec.app_proto),
            geo: cx.intel.geo.lookup(exit),
            response: Some(block_response(exit)),
            updates: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HomeNet;
    use tapsentry_intel::{IntelSnapshot, TorExitList};
    use tapsentry_testkit::FlowRecordBuilder;
    use tapsentry_types::{DirCounts, Timestamp};

    fn rec(client: &str, server: &str, state: FlowState, answered: bool) -> FlowRecord {
        FlowRecordBuilder::tcp(client, 50000, server, 443)
            .seen(
                Timestamp::from_micros(5_000_000),
                Timestamp::from_micros(9_000_000),
            )
            .bytes(2000, 9000)
            .state(state)
            .answered(answered)
            .build()
    }

    fn run(host: &str, r: &FlowRecord, list: &str) -> Vec<Alert> {
        let home = HomeNet::parse(&["10.0.0.0/8".into()]).unwrap();
        let intel = IntelSnapshot {
            tor: TorExitList::parse(list, "t").0,
            ..IntelSnapshot::default()
        };
        let mut out = Vec::new();
        let mut cx = DetectCx::new(&home, &intel, &mut out);
        TorDetector::new(TorConfig::default()).on_flow(host.parse().unwrap(), r, &mut cx);
        out
    }

    #[test]
    fn outbound_established_is_medium() {
        let a = run(
            "10.0.0.5",
            &rec("10.0.0.5", "203.0.113.50", FlowState::ClosedFin, true),
            "203.0.113.50",
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "tor.exit_outbound");
        assert_eq!(a[0].alert.severity, 2);
        assert_eq!(a[0].src_ip.to_string(), "10.0.0.5");
        assert_eq!(a[0].dest_ip.unwrap().to_string(), "203.0.113.50");
        assert_eq!(a[0].timestamp, Timestamp::from_micros(5_000_000));
        assert_eq!(a[0].evidence["bytes_to_client"], 9000);
        assert!(a[0].response.as_ref().unwrap().block["nftables"].contains("203.0.113.50"));
    }

    #[test]
    fn inbound_answered_is_high_and_refused_is_low() {
        let a = run(
            "10.0.0.9",
            &rec("198.51.100.7", "10.0.0.9", FlowState::Established, true),
            "198.51.100.7",
        );
        assert_eq!(
            (a[0].alert.signature, a[0].alert.severity),
            ("tor.exit_inbound", 1)
        );
        assert_eq!(a[0].src_ip.to_string(), "198.51.100.7");
        let a = run(
            "10.0.0.9",
            &rec("198.51.100.7", "10.0.0.9", FlowState::Rejected, true),
            "198.51.100.7",
        );
        assert_eq!(a[0].alert.severity, 3);
        let a = run(
            "10.0.0.5",
            &rec("10.0.0.5", "203.0.113.50", FlowState::Attempt, false),
            "203.0.113.50",
        );
        assert_eq!(a[0].alert.severity, 3);
    }

    #[test]
    fn handshakes_without_data_rank_below_sessions_with_data() {
        // A port check: SYN, SYN-ACK, ACK, RST: bare headers only.
        let mut r = rec("198.51.100.7", "10.0.0.9", FlowState::ClosedRst, true);
        r.to_server = DirCounts {
            packets: 3,
            bytes: 3 * 52,
        };
        r.to_client = DirCounts {
            packets: 1,
            bytes: 60,
        };
        let a = run("10.0.0.9", &r, "198.51.100.7");
        assert_eq!(
            (a[0].alert.severity, &a[0].evidence["carried_data"]),
            (2, &json!(false))
        );
        // 81 bytes a packet on average is data; 80 is not.
        r.to_client = DirCounts {
            packets: 1,
            bytes: 81,
        };
        assert_eq!(run("10.0.0.9", &r, "198.51.100.7")[0].alert.severity, 1);
        let mut out = rec("10.0.0.5", "203.0.113.50", FlowState::ClosedFin, true);
        out.to_server = DirCounts {
            packets: 4,
            bytes: 320,
        };
        out.to_client = DirCounts {
            packets: 2,
            bytes: 160,
        };
        assert_eq!(run("10.0.0.5", &out, "203.0.113.50")[0].alert.severity, 3);
    }

    #[test]
    fn quiet_without_a_listed_party_or_on_later_records() {
        let r = rec("10.0.0.5", "203.0.113.50", FlowState::Established, true);
        assert!(run("10.0.0.5", &r, "203.0.113.51").is_empty());
        assert!(run("10.0.0.5", &r, "").is_empty());
        // Later records never reach it: one alert per flow.
        let mut later = r;
        later.reported_to_server = DirCounts {
            packets: 3,
            bytes: 100,
        };
        let home = HomeNet::parse(&["10.0.0.0/8".into()]).unwrap();
        let tor = crate::registry::entry("tor").unwrap().perspective;
        assert!(tor.admits(crate::View::of(r.client, &r, &home)));
        assert!(!tor.admits(crate::View::of(later.client, &later, &home)));
        // Seen from the exit's own side (both inside by misconfiguration): no duplicate.
        assert!(run("203.0.113.50", &r, "203.0.113.50").is_empty());
    }
}
