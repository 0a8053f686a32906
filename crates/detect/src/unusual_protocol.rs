//! `unusual_protocol`: an IP protocol other than TCP, UDP, ICMP and ICMPv6
//! between an inside client and a server, never seen for that pair while
//! learning; and, between two inside hosts, a well-known application
//! protocol spoken on a port that is not its own (SSH on 443, SMB on 8080),
//! never seen for that pair, protocol and port while learning.
//!
//! The second judgement uses the classifier's verdict ([`own_ports`] lists
//! the protocols it covers and their ports). It is limited to inside
//! servers: an inside client reaching an outside SSH server on 443 is
//! ordinary (cloud consoles, git over 443), a tunnel or a relay set up on
//! an inside host is what lateral movement looks like. HTTP and TLS are left
//! out: they are served on any port by design.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{
    proto_name, AppProto, Category, FlowRecord, Mitre, Problem, SectionProblems, Timestamp,
};

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
    /// (client, server, protocol) seen, and every well-known protocol seen
    /// on another port between inside hosts, is learned as normal.
    /// Default 1800.
    pub learning_secs: u64,
    /// (client, server, protocol) triples and (client, server, protocol,
    /// port) entries of protocols on other ports, remembered per worker
    /// together (memory bound, ~100 bytes each; least recently seen
    /// dropped). Default 100000.
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
    /// The IP protocol; for a protocol on another port, its transport.
    proto: u8,
    /// For a well-known protocol on another port: the protocol...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app_proto: Option<AppProto>,
    /// ...and the server port it was spoken on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    /// Seen while learning (rather than first seen after, and alerted).
    learned: bool,
    /// Capture time (µs since the epoch) last seen: the eviction order.
    last_seen_us: i64,
}

/// What a client did with a server: an IP protocol, or a well-known
/// application protocol on a port not its own (transport, protocol, port).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Usage {
    Ip(u8),
    OffPort(u8, AppProto, u16),
}

/// See the module documentation.
pub struct UnusualProtocolDetector {
    cfg: UnusualProtocolConfig,
    /// (client, server, usage) -> learned during the learning period. One
    /// table for both judgements, so `max_pairs` bounds them together.
    seen: HostTable<(IpAddr, IpAddr, Usage), bool>,
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

    /// A TCP or UDP record: a well-known protocol on a port not its own,
    /// between two inside hosts, new for the pair after learning.
    fn off_port(&mut self, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        let Some(own) = own_ports(rec.app_proto) else {
            return;
        };
        let is_own = |p: u16| own.iter().any(|r| r.contains(&p));
        // On its own port, or seen from the wrong end (a capture that
        // started mid-flow names the server the client): nothing odd.
        if is_own(rec.server_port) || is_own(rec.client_port) || !cx.home.contains(rec.server) {
            return;
        }
        let learning = cx.learning(self.cfg.learning_secs);
        let usage = Usage::OffPort(rec.proto, rec.app_proto, rec.server_port);
        let key = (rec.client, rec.server, usage);
        let known = self.seen.get(&key).is_some();
        let _ = self.seen.touch(key, rec.last_seen, || learning);
        if known || learning {
            return;
        }
        let usual: Vec<String> = own
            .iter()
            .map(|r| {
                if r.start() == r.end() {
                    r.start().to_string()
                } else {
                    format!("{}-{}", r.start(), r.end())
                }
            })
            .collect();
        let mut evidence = BTreeMap::new();
        evidence.insert("protocol", json!(rec.proto));
        evidence.insert("app_proto", json!(rec.app_proto));
        evidence.insert("server_port", json!(rec.server_port));
        evidence.insert("usual_ports", json!(usual));
        evidence.insert("server_inside", json!(true));
        evidence.insert("packets_to_server", json!(rec.to_server.packets));
        evidence.insert("packets_to_client", json!(rec.to_client.packets));
        evidence.insert("bytes_to_server", json!(rec.to_server.bytes));
        evidence.insert("bytes_to_client", json!(rec.to_client.bytes));
        evidence.insert("learning_secs", json!(self.cfg.learning_secs));
        let finding = Finding {
            ts: rec.first_seen,
            category: Category::UNUSUAL_PROTOCOL,
            signature: "unusual_protocol.unusual_port",
            severity: 2,
            description: format!(
                "{} spoke {} to inside host {} on {}/{}, not a port of {} (usual: {}), never seen between them while learning",
                rec.client,
                rec.app_proto,
                rec.server,
                rec.server_port,
                proto_name(rec.proto),
                rec.app_proto,
                usual.join(", "),
            ),
            // Non-Standard Port.
            mitre: Mitre {
                tactic: "TA0011",
                technique: "T1571",
            },
            src: rec.client,
            dest: Some(rec.server),
            ports: Some((rec.client_port, rec.server_port)),
            proto: Some(rec.proto),
            evidence,
            community_id: Some(record_community_id(rec)),
            app_proto: Some(rec.app_proto),
            outside: None,
        };
        let mut alert = finding.into_alert(cx);
        alert.flow_id = Some(rec.flow_id());
        cx.raise(alert);
    }
}

/// The ports a well-known protocol is served on, for the protocols whose
/// move to another port between inside hosts is worth a look: remote
/// access, file sharing, directory, databases, mail, DNS. `None` for the
/// rest (HTTP and TLS run on any port by design; DCE-RPC's endpoints are
/// dynamic; FTP data, NTP and SNMP are left out). DNS's own ports include
/// mDNS (5353), LLMNR (5355) and NetBIOS name service (137), which share
/// its format. VNC's are its display range (5900 + display, 5800 + display
/// for the Java viewer).
fn own_ports(app: AppProto) -> Option<&'static [std::ops::RangeInclusive<u16>]> {
    Some(match app {
        AppProto::Ssh => &[22..=22],
        AppProto::Telnet => &[23..=23],
        AppProto::Rdp => &[3389..=3389],
        AppProto::Vnc => &[5800..=5899, 5900..=5999],
        AppProto::Smb => &[139..=139, 445..=445],
        AppProto::Winrm => &[80..=80, 443..=443, 5985..=5986],
        AppProto::Ldap => &[389..=389, 636..=636, 3268..=3269],
        AppProto::Kerberos => &[88..=88, 464..=464],
        AppProto::Mssql => &[1433..=1434],
        AppProto::Mysql => &[3306..=3306],
        AppProto::Postgresql => &[5432..=5432],
        AppProto::Redis => &[6379..=6379],
        AppProto::Dns => &[53..=53, 137..=137, 5353..=5353, 5355..=5355],
        AppProto::Smtp => &[25..=25, 465..=465, 587..=587, 2525..=2525],
        AppProto::Imap => &[143..=143, 993..=993],
        AppProto::Pop3 => &[110..=110, 995..=995],
        AppProto::Ftp => &[21..=21, 990..=990],
        _ => return None,
    })
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
        for (&(client, server, usage), seen, &learned) in self.seen.iter_seen() {
            let (proto, app_proto, port) = match usage {
                Usage::Ip(p) => (p, None, None),
                Usage::OffPort(t, a, port) => (t, Some(a), Some(port)),
            };
            by_client.entry(client).or_default().push(KnownPair {
                server,
                proto,
                app_proto,
                port,
                learned,
                last_seen_us: seen.micros(),
            });
        }
        for (client, mut known) in by_client {
            known.sort_by_key(|k| (k.server, k.proto, k.app_proto, k.port));
            out(client, entry_value(&ClientEntry { known }));
        }
    }

    fn import_state(&mut self, host: IpAddr, entry: serde_json::Value) -> Result<(), StateError> {
        let e: ClientEntry = parse_entry(entry)?;
        // Through the bounded table: at max_pairs the most recent stay.
        for k in e.known {
            let seen = Timestamp::from_micros(k.last_seen_us);
            let usage = match (k.app_proto, k.port) {
                (None, None) => Usage::Ip(k.proto),
                (Some(a), Some(port)) => Usage::OffPort(k.proto, a, port),
                // One without the other is no entry this version wrote.
                _ => return Err(StateError::Invalid("app_proto and port go together".into())),
            };
            self.seen.restore((host, k.server, usage), seen, k.learned);
        }
        Ok(())
    }

    /// Registered [`crate::Perspective::InsideClient`]: `host` is the
    /// record's client, inside.
    fn on_flow(&mut self, _host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        if matches!(rec.proto, 6 | 17) {
            self.off_port(rec, cx);
            return;
        }
        if matches!(rec.proto, 1 | 58) {
            return;
        }
        // Multicast and broadcast "servers" (OSPF hellos, VRRP, PIM) are
        // routing chatter, not a conversation with a server.
        if is_group_address(rec.server) {
            return;
        }
        let learning = cx.learning(self.cfg.learning_secs);
        let key = (rec.client, rec.server, Usage::Ip(rec.proto));
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
        let mut alert = finding.into_alert(cx);
        alert.flow_id = Some(rec.flow_id());
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

    /// A TCP record of `app` from `c` to `s:port`.
    fn spoken(app: AppProto, c: &str, s: &str, port: u16, at: i64) -> FlowRecord {
        tapsentry_testkit::FlowRecordBuilder::tcp(c, 50_000, s, port)
            .at(at)
            .app_proto(app)
            .build()
    }

    #[test]
    fn a_well_known_protocol_on_another_port_between_inside_hosts() {
        let mut d = UnusualProtocolDetector::new(UnusualProtocolConfig::default());
        // Learned: an admin's SSH on 2222 to one server.
        let learned = spoken(AppProto::Ssh, "10.0.0.1", "10.0.0.2", 2222, 100);
        assert!(run_at(&mut d, "10.0.0.1", &learned, 100).is_empty());
        let again = spoken(AppProto::Ssh, "10.0.0.1", "10.0.0.2", 2222, 4000);
        assert!(run_at(&mut d, "10.0.0.1", &again, 4000).is_empty());
        // Own ports, HTTP anywhere, outside servers, unnamed flows: quiet.
        for r in [
            spoken(AppProto::Ssh, "10.0.0.1", "10.0.0.3", 22, 4000),
            spoken(AppProto::Vnc, "10.0.0.1", "10.0.0.3", 5901, 4000),
            spoken(AppProto::Dns, "10.0.0.1", "10.0.0.3", 5353, 4000),
            spoken(AppProto::Http, "10.0.0.1", "10.0.0.3", 8081, 4000),
            spoken(AppProto::Tls, "10.0.0.1", "10.0.0.3", 8443, 4000),
            spoken(AppProto::Ssh, "10.0.0.1", "198.51.100.1", 443, 4000),
            spoken(AppProto::Unknown, "10.0.0.1", "10.0.0.3", 443, 4000),
        ] {
            assert!(run_at(&mut d, "10.0.0.1", &r, 4000).is_empty(), "{r:?}");
        }
        // A reply seen as the opener (client port 22): not a new service.
        let mut rev = spoken(AppProto::Ssh, "10.0.0.1", "10.0.0.3", 50_000, 4000);
        rev.client_port = 22;
        assert!(run_at(&mut d, "10.0.0.1", &rev, 4000).is_empty());
        // SSH on 443 between inside hosts, never seen while learning.
        let odd = spoken(AppProto::Ssh, "10.0.0.1", "10.0.0.2", 443, 4100);
        let a = run_at(&mut d, "10.0.0.1", &odd, 4100);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].alert.signature, "unusual_protocol.unusual_port");
        assert_eq!(a[0].alert.mitre.technique, "T1571");
        assert_eq!(a[0].src_ip.to_string(), "10.0.0.1");
        assert_eq!(a[0].dest_ip.unwrap().to_string(), "10.0.0.2");
        assert_eq!(a[0].dest_port, Some(443));
        assert_eq!(a[0].evidence["app_proto"], "ssh");
        assert_eq!(a[0].evidence["usual_ports"], json!(["22"]));
        assert_eq!(a[0].app_proto, Some(AppProto::Ssh));
        // Once per pair, protocol and port; across a restart too.
        assert!(run_at(&mut d, "10.0.0.1", &odd, 4200).is_empty());
        let saved = export(&d);
        assert_eq!(saved[0].1["known"][0]["app_proto"], "ssh");
        let mut d2 = UnusualProtocolDetector::new(UnusualProtocolConfig::default());
        transfer(&d, &mut d2);
        assert!(run_at(&mut d2, "10.0.0.1", &odd, 9000).is_empty());
        assert!(run_at(&mut d2, "10.0.0.1", &learned, 9000).is_empty());
        let smb = spoken(AppProto::Smb, "10.0.0.1", "10.0.0.2", 8080, 9000);
        assert_eq!(run_at(&mut d2, "10.0.0.1", &smb, 9000).len(), 1);
        // An entry with a protocol but no port is refused.
        let host: IpAddr = "10.0.0.1".parse().unwrap();
        let bad = json!({"known": [{"server": "10.0.0.2", "proto": 6, "app_proto": "ssh", "learned": true, "last_seen_us": 1}]});
        assert!(d2.import_state(host, bad).is_err());
    }
}
