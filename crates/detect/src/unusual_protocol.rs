//! `unusual_protocol`: an IP protocol other than TCP, UDP, ICMP and ICMPv6
//! between an inside client and a server, never seen for that pair while
//! learning.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{Category, FlowRecord, Mitre, Problem, SectionProblems, Timestamp};

use crate::common::{record_community_id, Finding, HostTable};
use crate::state::{entry_value, parse_entry};
use crate::{Bound, DetectCx, Detector, StateError};

/// The `[detect.unusual_protocol]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct UnusualProtocolConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// Seconds of capture time from the start during which every
    /// (client, server, protocol) seen is learned as normal. Default 1800.
    pub learning_secs: u64,
    /// (client, server, protocol) triples remembered per worker (memory
    /// bound, ~100 bytes each; least recently seen dropped). Default 100000.
    pub max_pairs: usize,
}

impl Default for UnusualProtocolConfig {
    fn default() -> Self {
        UnusualProtocolConfig {
            enabled: true,
            learning_secs: 1800,
            max_pairs: 100_000,
        }
    }
}

impl UnusualProtocolConfig {
    /// Every problem with the values, each under `section`.
    /// (`learning_secs` may be 0: no learning, every new triple alerts.)
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        // No pair remembered: every flow of an odd protocol would alert.
        p.at_least("max_pairs", self.max_pairs, 1);
        p.into_vec()
    }
}

/// A saved client: every (server, protocol) it is known to use. Known
/// pairs are the baseline (learned ones, and new ones already alerted
/// once, which a continuous run would not alert again either).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientEntry {
    known: Vec<KnownPair>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KnownPair {
    server: IpAddr,
    proto: u8,
    /// Seen while learning (rather than first seen after, and alerted).
    learned: bool,
    /// Capture time (µs since the epoch) last seen: the eviction order.
    last_seen_us: i64,
}

/// See the module documentation.
pub struct UnusualProtocolDetector {
    cfg: UnusualProtocolConfig,
    /// (client, server, proto) -> learned during the learning period.
    seen: HostTable<(IpAddr, IpAddr, u8), bool>,
}

impl UnusualProtocolDetector {
    /// A detector with the given settings.
    pub fn new(cfg: UnusualProtocolConfig) -> Self {
        let seen = HostTable::new(cfg.max_pairs);
        UnusualProtocolDetector { cfg, seen }
    }

    /// Triples dropped at the memory bound.
    pub fn evicted(&self) -> u64 {
        self.seen.evicted()
    }
}

/// Protocols that carry other traffic inside them (ATT&CK T1572).
fn is_tunnel(proto: u8) -> bool {
    matches!(proto, 4 | 41 | 47 | 50 | 51 | 97 | 115)
}

fn protocol_label(proto: u8) -> String {
    let name = match proto {
        2 => "IGMP",
        4 => "IP-in-IP",
        41 => "IPv6-in-IPv4",
        47 => "GRE",
        50 => "ESP",
        51 => "AH",
        89 => "OSPF",
        97 => "EtherIP",
        103 => "PIM",
        112 => "VRRP",
        115 => "L2TP",
        132 => "SCTP",
        _ => return format!("IP protocol {proto}"),
    };
    format!("{name} (IP protocol {proto})")
}

impl Detector for UnusualProtocolDetector {
    fn name(&self) -> &'static str {
        "unusual_protocol"
    }

    fn bounds(&self, out: &mut dyn FnMut(Bound)) {
        out(self
            .seen
            .bound("(client, server, protocol) triples", "max_pairs"));
    }

    fn persists_state(&self) -> bool {
        true
    }

    fn export_state(&self, out: &mut dyn FnMut(IpAddr, serde_json::Value)) {
        // The table is keyed by triple; the file by client (the host whose
        // shard owns the triples), pairs sorted so a state writes one way.
        let mut by_client: BTreeMap<IpAddr, Vec<KnownPair>> = BTreeMap::new();
        for (&(client, server, proto), seen, &learned) in self.seen.iter_seen() {
            by_client.entry(client).or_default().push(KnownPair {
                server,
                proto,
                learned,
                last_seen_us: seen.micros(),
            });
        }
        for (client, mut known) in by_client {
            known.sort_by_key(|k| (k.server, k.proto));
            out(client, entry_value(&ClientEntry { known }));
        }
    }

    fn import_state(&mut self, host: IpAddr, entry: serde_json::Value) -> Result<(), StateError> {
        let e: ClientEntry = parse_entry(entry)?;
        // Through the bounded table: at max_pairs the most recent stay.
        for k in e.known {
            let seen = Timestamp::from_micros(k.last_seen_us);
            self.seen
                .restore((host, k.server, k.proto), seen, k.learned);
        }
        Ok(())
    }

    /// Registered [`crate::Perspective::InsideClient`]: `host` is the
    /// record's client, inside.
    fn on_flow(&mut self, _host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        if matches!(rec.proto, 1 | 6 | 17 | 58) {
            return;
        }
        // Multicast and broadcast "servers" (OSPF hellos, VRRP, PIM) are
        // routing chatter, not a conversation with a server.
        if is_group_address(rec.server) {
            return;
        }
        let learning = cx.learning(self.cfg.learning_secs);
        let key = (rec.client, rec.server, rec.proto);
        let known = self.seen.get(&key).is_some();
        let _ = self.seen.touch(key, rec.last_seen, || learning);
        if known || learning {
            return;
        }
        let inside_server = cx.home.contains(rec.server);
        let label = protocol_label(rec.proto);
        let mut evidence = BTreeMap::new();
        evidence.insert("protocol", json!(rec.proto));
        evidence.insert("protocol_name", json!(label));
        evidence.insert("server_inside", json!(inside_server));
        evidence.insert("packets_to_server", json!(rec.to_server.packets));
        evidence.insert("packets_to_client", json!(rec.to_client.packets));
        evidence.insert("bytes_to_server", json!(rec.to_server.bytes));
        evidence.insert("bytes_to_client", json!(rec.to_client.bytes));
        evidence.insert("learning_secs", json!(self.cfg.learning_secs));
        let finding = Finding {
            ts: rec.first_seen,
            category: Category::UNUSUAL_PROTOCOL,
            signature: if inside_server {
                "unusual_protocol.internal"
            } else {
                "unusual_protocol.outbound"
            },
            severity: 2,
            description: format!(
                "{} started {} to {}{}, never seen between them while learning ({} packets, {} bytes sent)",
                rec.client,
                label,
                if inside_server { "inside host " } else { "outside host " },
                rec.server,
                rec.to_server.packets,
                rec.to_server.bytes
            ),
            mitre: Mitre {
                tactic: "TA0011",
                technique: if is_tunnel(rec.proto) { "T1572" } else { "T1095" },
            },
            src: rec.client,
            dest: Some(rec.server),
            ports: None,
            proto: Some(rec.proto),
            evidence,
            community_id: Some(record_community_id(rec)),
            app_proto: Some(rec.app_proto),
            outside: (!inside_server).then_some(rec.server),
        };
        let alert = finding.into_alert(cx);
        cx.raise(alert);
    }
}

fn is_group_address(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
        IpAddr::V6(v6) => v6.is_multicast(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{export, flow, run_at, transfer};
    use serde_json::json;

    #[test]
    fn tunnel_up_while_learning_is_normal_new_one_alerts() {
        let mut d = UnusualProtocolDetector::new(UnusualProtocolConfig::default());
        let gre = flow("10.0.0.1", 0, "10.0.0.2", 0, 47, 100);
        assert!(run_at(&mut d, "10.0.0.1", &gre, 100).is_empty());
        // After learning: the same tunnel is normal.
        let later = flow("10.0.0.1", 0, "10.0.0.2", 0, 47, 4000);
        assert!(run_at(&mut d, "10.0.0.1", &later, 4000).is_empty());
        // A new protocol between two inside hosts alerts once.
        let odd = flow("10.0.0.7", 0, "10.0.0.9", 0, 253, 4000);
        let a = run_at(&mut d, "10.0.0.7", &odd, 4000);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "unusual_protocol.internal");
        assert_eq!(a[0].dest_ip.unwrap().to_string(), "10.0.0.9");
        assert_eq!(a[0].proto.as_deref(), Some("253"));
        assert!(run_at(&mut d, "10.0.0.7", &odd, 4100).is_empty());
        // Seen from the server's shard: not its finding, never delivered.
        let home = crate::HomeNet::parse(&["10.0.0.0/8".into()]).unwrap();
        let p = crate::registry::entry("unusual_protocol")
            .unwrap()
            .perspective;
        assert!(p.admits(crate::View::of(odd.client, &odd, &home)));
        assert!(!p.admits(crate::View::of(odd.server, &odd, &home)));
    }

    #[test]
    fn outbound_gre_is_a_tunnel_and_ordinary_protocols_are_ignored() {
        let mut d = UnusualProtocolDetector::new(UnusualProtocolConfig::default());
        let gre = flow("10.0.0.1", 0, "198.51.100.9", 0, 47, 4000);
        let a = run_at(&mut d, "10.0.0.1", &gre, 4000);
        assert_eq!(a[0].alert.signature, "unusual_protocol.outbound");
        assert_eq!(a[0].alert.mitre.technique, "T1572");
        assert!(a[0].response.is_some());
        for p in [1u8, 6, 17, 58] {
            let f = flow("10.0.0.1", 1, "10.0.0.2", 2, p, 4000);
            assert!(run_at(&mut d, "10.0.0.1", &f, 4000).is_empty());
        }
        let ospf = flow("10.0.0.1", 0, "224.0.0.5", 0, 89, 4000);
        assert!(run_at(&mut d, "10.0.0.1", &ospf, 4000).is_empty());
    }

    #[test]
    fn known_pairs_survive_a_restart() {
        let mut d = UnusualProtocolDetector::new(UnusualProtocolConfig::default());
        // Learned: GRE and ESP from one client; alerted after learning: one more.
        run_at(
            &mut d,
            "10.0.0.1",
            &flow("10.0.0.1", 0, "10.0.0.2", 0, 47, 100),
            100,
        );
        run_at(
            &mut d,
            "10.0.0.1",
            &flow("10.0.0.1", 0, "10.0.0.3", 0, 50, 200),
            200,
        );
        let odd = flow("10.0.0.7", 0, "10.0.0.9", 0, 253, 4000);
        assert_eq!(run_at(&mut d, "10.0.0.7", &odd, 4000).len(), 1);
        let saved = export(&d);
        assert_eq!(saved.len(), 2, "{saved:?}");
        let first = saved
            .iter()
            .find(|(h, _)| h.to_string() == "10.0.0.1")
            .unwrap();
        assert_eq!(first.1["known"].as_array().unwrap().len(), 2);
        assert_eq!(first.1["known"][0]["server"], "10.0.0.2");
        assert_eq!(first.1["known"][0]["proto"], 47);
        assert_eq!(first.1["known"][0]["learned"], true);

        let mut d2 = UnusualProtocolDetector::new(UnusualProtocolConfig::default());
        transfer(&d, &mut d2);
        let mut a = export(&d);
        let mut b = export(&d2);
        a.sort_by_key(|(h, _)| *h);
        b.sort_by_key(|(h, _)| *h);
        assert_eq!(a, b);
        // Known pairs stay quiet after the restart, as in one continuous run.
        let gre = flow("10.0.0.1", 0, "10.0.0.2", 0, 47, 9000);
        assert!(run_at(&mut d2, "10.0.0.1", &gre, 9000).is_empty());
        assert!(run_at(&mut d2, "10.0.0.7", &odd, 9000).is_empty());
        // A new pair still alerts.
        let new = flow("10.0.0.1", 0, "10.0.0.4", 0, 47, 9000);
        assert_eq!(run_at(&mut d2, "10.0.0.1", &new, 9000).len(), 1);
    }

    #[test]
    fn imported_pairs_respect_max_pairs_and_bad_entries_are_refused() {
        let mut d = UnusualProtocolDetector::new(UnusualProtocolConfig {
            max_pairs: 20,
            ..UnusualProtocolConfig::default()
        });
        let known: Vec<_> = (0..200i64)
            .map(|i| json!({"server": format!("10.9.{}.{}", i / 256, i % 256), "proto": 47, "learned": true, "last_seen_us": i}))
            .collect();
        let host: IpAddr = "10.0.0.1".parse().unwrap();
        d.import_state(host, json!({ "known": known })).unwrap();
        assert_eq!(d.seen.len(), 20);
        for bad in [
            json!({"known": [{"server": "not an address", "proto": 47, "learned": true, "last_seen_us": 1}]}),
            json!({"known": [{"server": "10.0.0.2", "proto": 300, "learned": true, "last_seen_us": 1}]}),
            json!({"known": 5}),
            json!("x"),
        ] {
            assert!(d.import_state(host, bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(d.seen.len(), 20);
    }

    #[test]
    fn memory_is_bounded() {
        let mut d = UnusualProtocolDetector::new(UnusualProtocolConfig {
            max_pairs: 50,
            ..UnusualProtocolConfig::default()
        });
        for i in 0..500u32 {
            let server = IpAddr::from((0x0a00_0000u32 + i).to_be_bytes());
            let mut f = flow("10.1.0.1", 0, "10.0.0.2", 0, 47, 10);
            f.server = server;
            run_at(&mut d, "10.1.0.1", &f, 10);
            assert!(d.seen.len() <= 50);
        }
        assert_eq!(d.evicted(), 450);
    }
}
