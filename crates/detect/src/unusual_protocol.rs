//! `unusual_protocol`: an IP protocol other than TCP, UDP, ICMP and ICMPv6
//! between an inside client and a server, never seen for that pair while
//! learning.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::json;
use tapsentry_types::{Category, FlowRecord, Mitre};

use crate::common::{record_community_id, Finding, HostTable};
use crate::{DetectCx, Detector};

/// The `[detect.unusual_protocol]` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
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

    fn on_flow(&mut self, host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        if matches!(rec.proto, 1 | 6 | 17 | 58)
            || host != rec.client
            || !cx.home.contains(rec.client)
        {
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
        evidence.insert("pairs_known", json!(self.seen.len()));
        let finding = Finding {
            ts: rec.first_seen,
            category: Category::UnusualProtocol,
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::testutil::{flow, run_at};

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
        // Seen from the server's shard: not its finding.
        let mut d2 = UnusualProtocolDetector::new(UnusualProtocolConfig::default());
        assert!(run_at(&mut d2, "10.0.0.9", &odd, 4000).is_empty());
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
