//! `spambot`: outbound SMTP from an inside host with no mail history.
//!
//! A connection is SMTP when the classifier named it so, on whatever port
//! (a bot may submit through a relay listening on 2525 or 8025, or through
//! an open proxy), or when it goes to one of `smtp_ports` (refused
//! connections carry no bytes to name, and SMTPS on 465 is TLS).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{
    AppProto, Category, FlowRecord, Mitre, Problem, Response, SectionProblems, Timestamp,
};

use crate::common::{Finding, HostTable};
use crate::home::parse_net;
use crate::state::{entry_value, parse_entry};
use crate::{Bound, DetectCx, Detector, StateError};

/// The `[detect.spambot]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SpambotConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// TCP ports that carry mail submission or relay, counted whatever the
    /// classifier says (refused connections, SMTPS); SMTP recognised by its
    /// bytes counts on any port as well. Default [25, 465, 587].
    pub smtp_ports: Vec<u16>,
    /// Inside mail servers and relays (CIDRs or addresses): never alerted.
    /// Hosts seen sending SMTP during the learning period are added
    /// automatically. Default [].
    pub mail_servers: Vec<String>,
    /// Seconds of capture time from the start during which SMTP senders are
    /// learned as mail hosts. Default 1800.
    pub learning_secs: u64,
    /// Distinct outside mail servers contacted within the window that make a
    /// host without mail history a spambot. Default 3.
    pub min_servers: usize,
    /// SMTP connections within the window that make one too, even to a
    /// single server (bulk submission through one relay). Default 20.
    pub min_connections: u64,
    /// The window, in seconds of capture time. Default 3600.
    pub window_secs: u64,
    /// Hosts tracked per worker (memory bound; least recently seen dropped).
    /// Default 100000.
    pub max_hosts: usize,
}

impl Default for SpambotConfig {
    fn default() -> Self {
        SpambotConfig {
            enabled: true,
            smtp_ports: vec![25, 465, 587],
            mail_servers: Vec::new(),
            learning_secs: 1800,
            min_servers: 3,
            min_connections: 20,
            window_secs: 3600,
            max_hosts: 100_000,
        }
    }
}

impl SpambotConfig {
    /// Every problem with the values, each under `section`.
    /// (`learning_secs` may be 0: no learning, only `mail_servers` are
    /// mail hosts.)
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        p.ports("smtp_ports", &self.smtp_ports);
        for e in &self.mail_servers {
            if parse_net(e).is_none() {
                p.push(
                    "mail_servers",
                    format!("'{e}' is not an address or CIDR network"),
                );
            }
        }
        p.at_least("min_servers", self.min_servers, 1);
        p.at_least("min_connections", self.min_connections, 1);
        p.at_least("window_secs", self.window_secs, 1);
        p.at_least("max_hosts", self.max_hosts, 1);
        p.into_vec()
    }
}

/// Distinct servers remembered per host (beyond it only the count grows).
const MAX_SERVERS_PER_HOST: usize = 256;

/// Server ports outside `smtp_ports` remembered per host (for the block
/// rule and the evidence).
const MAX_OTHER_PORTS_PER_HOST: usize = 16;

#[derive(Debug, Clone, Default)]
struct SmtpActivity {
    /// A mail host: learned, or configured.
    mail_history: bool,
    window_start: Timestamp,
    servers: BTreeSet<IpAddr>,
    connections: u64,
    refused: u64,
    /// Server ports of SMTP recognised outside `smtp_ports`.
    other_ports: BTreeSet<u16>,
    alerted: bool,
}

/// A saved mail host: it sent SMTP while learning. The whole learned
/// baseline of this detector is the set of such hosts; windows of hosts
/// without history are evidence about now and are not saved.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MailHostEntry {
    /// Capture time (µs since the epoch) the host was last seen sending
    /// SMTP, which keeps its place in the least-recently-seen order.
    last_seen_us: i64,
}

/// See the module documentation.
pub struct SpambotDetector {
    cfg: SpambotConfig,
    mail_servers: Vec<IpNet>,
    hosts: HostTable<IpAddr, SmtpActivity>,
}

impl SpambotDetector {
    /// A detector with the given settings (bad `mail_servers` entries are
    /// skipped; `check-config` reports them).
    pub fn new(cfg: SpambotConfig) -> Self {
        let mail_servers = cfg
            .mail_servers
            .iter()
            .filter_map(|s| parse_net(s))
            .collect();
        let hosts = HostTable::new(cfg.max_hosts);
        SpambotDetector {
            cfg,
            mail_servers,
            hosts,
        }
    }
}

impl Detector for SpambotDetector {
    fn name(&self) -> &'static str {
        "spambot"
    }

    fn bounds(&self, out: &mut dyn FnMut(Bound)) {
        out(self.hosts.bound("hosts", "max_hosts"));
        out(Bound {
            map: "SMTP servers per host",
            key: "",
            len: self
                .hosts
                .iter()
                .map(|(_, a)| a.servers.len())
                .max()
                .unwrap_or(0),
            cap: MAX_SERVERS_PER_HOST,
        });
    }

    fn persists_state(&self) -> bool {
        true
    }

    fn export_state(&self, out: &mut dyn FnMut(IpAddr, serde_json::Value)) {
        for (host, seen, a) in self.hosts.iter_seen() {
            // Configured mail servers come from the config at every start;
            // saving them would keep a host the operator has since removed.
            if a.mail_history && !self.mail_servers.iter().any(|n| n.contains(host)) {
                let e = MailHostEntry {
                    last_seen_us: seen.micros(),
                };
                out(*host, entry_value(&e));
            }
        }
    }

    fn import_state(&mut self, host: IpAddr, entry: serde_json::Value) -> Result<(), StateError> {
        let e: MailHostEntry = parse_entry(entry)?;
        let seen = Timestamp::from_micros(e.last_seen_us);
        // Through the bounded table: at max_hosts the most recent stay.
        let a = SmtpActivity {
            mail_history: true,
            ..SmtpActivity::default()
        };
        self.hosts.restore(host, seen, a);
        Ok(())
    }

    /// Registered [`crate::Perspective::InsideClientFirstRecord`]: `host`
    /// is the client, inside, and this is the flow's first record.
    fn on_flow(&mut self, _host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        let listed = self.cfg.smtp_ports.contains(&rec.server_port);
        if rec.proto != 6
            || !(listed || rec.app_proto == AppProto::Smtp)
            || cx.home.contains(rec.server)
        {
            return;
        }
        let learning = cx.learning(self.cfg.learning_secs);
        let configured = self.mail_servers.iter().any(|n| n.contains(&rec.client));
        let window_us = self.cfg.window_secs.saturating_mul(1_000_000);
        let a = self
            .hosts
            .touch(rec.client, rec.first_seen, SmtpActivity::default);
        if learning || configured {
            a.mail_history = true;
        }
        if a.mail_history {
            return;
        }
        if rec.first_seen.micros_since(a.window_start) >= window_us {
            *a = SmtpActivity {
                window_start: rec.first_seen,
                ..SmtpActivity::default()
            };
        }
        a.connections += 1;
        if !rec.responder_answered || rec.state == tapsentry_types::FlowState::Rejected {
            a.refused += 1;
        }
        if a.servers.len() < MAX_SERVERS_PER_HOST {
            a.servers.insert(rec.server);
        }
        if !listed && a.other_ports.len() < MAX_OTHER_PORTS_PER_HOST {
            a.other_ports.insert(rec.server_port);
        }
        let servers = a.servers.len();
        if a.alerted || (servers < self.cfg.min_servers && a.connections < self.cfg.min_connections)
        {
            return;
        }
        a.alerted = true;
        let single = (servers == 1).then_some(rec.server);
        let mut evidence = BTreeMap::new();
        evidence.insert("distinct_mail_servers", json!(servers));
        evidence.insert("smtp_connections", json!(a.connections));
        evidence.insert("refused_connections", json!(a.refused));
        evidence.insert("window_secs", json!(self.cfg.window_secs));
        evidence.insert("window_start", json!(a.window_start));
        evidence.insert("min_servers", json!(self.cfg.min_servers));
        evidence.insert("min_connections", json!(self.cfg.min_connections));
        evidence.insert(
            "mail_servers_contacted",
            json!(a
                .servers
                .iter()
                .take(10)
                .map(ToString::to_string)
                .collect::<Vec<_>>()),
        );
        evidence.insert("mail_history", json!(false));
        // SMTP found by its bytes on ports outside the list: where the
        // block rule must reach too.
        evidence.insert(
            "smtp_on_other_ports",
            json!(a.other_ports.iter().collect::<Vec<_>>()),
        );
        let description = format!(
            "{} has no mail history but opened {} SMTP connections to {} outside mail server{} within {} s",
            rec.client,
            a.connections,
            servers,
            if servers == 1 { "" } else { "s" },
            self.cfg.window_secs
        );
        let severity = if servers >= 10 || a.connections >= 100 {
            1
        } else {
            2
        };
        let mut ports: Vec<u16> = self.cfg.smtp_ports.clone();
        ports.extend(
            a.other_ports
                .iter()
                .filter(|p| !ports.contains(p))
                .collect::<Vec<_>>(),
        );
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let mut block = BTreeMap::new();
        let (fam, tool) = if rec.client.is_ipv4() {
            ("ip", "iptables")
        } else {
            ("ip6", "ip6tables")
        };
        block.insert(
            "nftables",
            format!(
                "nft insert rule inet filter forward {fam} saddr {} tcp dport {{ {} }} drop",
                rec.client,
                ports.join(", ")
            ),
        );
        block.insert(
            "iptables",
            format!(
                "{tool} -I FORWARD -s {} -p tcp -m multiport --dports {} -j DROP",
                rec.client,
                ports.join(",")
            ),
        );
        let mut alert = Finding {
            ts: rec.first_seen,
            category: Category::SPAMBOT,
            signature: "spambot.outbound_smtp",
            severity,
            description,
            // A bot sending mail spends the host's resources for someone else.
            mitre: Mitre {
                tactic: "TA0040",
                technique: "T1496",
            },
            src: rec.client,
            dest: single,
            ports: None,
            proto: Some(6),
            evidence,
            community_id: None,
            app_proto: None,
            outside: single,
        }
        .into_alert(cx);
        // The response is about the inside host's mail, not the servers.
        alert.response = Some(Response {
            action: "isolate",
            ip: rec.client,
            block: std::collections::BTreeMap::new(),
            isolate: block,
        });
        cx.raise(alert);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{export, flow, run_at, transfer};
    use tapsentry_testkit::FlowRecordBuilder;

    fn smtp(host: &str, server: &str, at: i64) -> FlowRecord {
        FlowRecordBuilder::tcp(host, 40000, server, 25)
            .at(at)
            .build()
    }

    #[test]
    fn mail_server_learned_while_learning_never_alerts() {
        let mut d = SpambotDetector::new(SpambotConfig::default());
        assert!(run_at(&mut d, "10.0.0.25", &smtp("10.0.0.25", "192.0.2.1", 60), 60).is_empty());
        for i in 0..50 {
            let server = format!("198.51.100.{i}");
            assert!(run_at(
                &mut d,
                "10.0.0.25",
                &smtp("10.0.0.25", &server, 4000 + i),
                4000 + i
            )
            .is_empty());
        }
    }

    #[test]
    fn new_sender_to_several_servers_alerts_once_at_the_threshold() {
        let mut d = SpambotDetector::new(SpambotConfig::default());
        assert!(run_at(
            &mut d,
            "10.0.0.66",
            &smtp("10.0.0.66", "192.0.2.1", 4000),
            4000
        )
        .is_empty());
        assert!(run_at(
            &mut d,
            "10.0.0.66",
            &smtp("10.0.0.66", "192.0.2.2", 4010),
            4010
        )
        .is_empty());
        let a = run_at(
            &mut d,
            "10.0.0.66",
            &smtp("10.0.0.66", "192.0.2.3", 4020),
            4020,
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "spambot.outbound_smtp");
        assert_eq!(a[0].src_ip.to_string(), "10.0.0.66");
        assert!(a[0].dest_ip.is_none());
        assert_eq!(a[0].evidence["distinct_mail_servers"], 3);
        assert!(a[0].response.as_ref().unwrap().isolate["nftables"].contains("10.0.0.66"));
        assert!(run_at(
            &mut d,
            "10.0.0.66",
            &smtp("10.0.0.66", "192.0.2.4", 4030),
            4030
        )
        .is_empty());
    }

    #[test]
    fn two_servers_is_below_the_threshold_and_windows_expire() {
        let mut d = SpambotDetector::new(SpambotConfig::default());
        for (i, at) in [(1, 4000), (2, 4100), (3, 8000)] {
            let server = format!("192.0.2.{i}");
            assert!(run_at(&mut d, "10.0.0.66", &smtp("10.0.0.66", &server, at), at).is_empty());
        }
    }

    #[test]
    fn learned_mail_hosts_survive_a_restart_open_windows_do_not() {
        let cfg = SpambotConfig {
            mail_servers: vec!["10.0.9.0/24".into()],
            ..SpambotConfig::default()
        };
        let mut d = SpambotDetector::new(cfg.clone());
        // Learned while learning; configured; and a host with an open window.
        run_at(&mut d, "10.0.0.25", &smtp("10.0.0.25", "192.0.2.1", 60), 60);
        run_at(&mut d, "10.0.9.9", &smtp("10.0.9.9", "192.0.2.1", 60), 60);
        for (i, at) in [(1, 4000), (2, 4010)] {
            let server = format!("192.0.2.{i}");
            run_at(&mut d, "10.0.0.66", &smtp("10.0.0.66", &server, at), at);
        }
        let saved = export(&d);
        assert_eq!(saved.len(), 1, "{saved:?}");
        assert_eq!(saved[0].0.to_string(), "10.0.0.25");
        assert_eq!(
            saved[0].1,
            json!({"last_seen_us": (crate::testutil::START + 60) * 1_000_000})
        );
        let mut d2 = SpambotDetector::new(cfg);
        transfer(&d, &mut d2);
        assert_eq!(export(&d2), saved);
        // After the restart (learning over): the mail host stays quiet...
        for i in 0..10 {
            let server = format!("198.51.100.{i}");
            let f = smtp("10.0.0.25", &server, 5000 + i);
            assert!(run_at(&mut d2, "10.0.0.25", &f, 5000 + i).is_empty());
        }
        // ...and the host whose window was open starts a new one.
        let f = smtp("10.0.0.66", "192.0.2.3", 5000);
        assert!(run_at(&mut d2, "10.0.0.66", &f, 5000).is_empty());
    }

    #[test]
    fn imported_mail_hosts_respect_max_hosts_and_bad_entries_are_refused() {
        let mut d = SpambotDetector::new(SpambotConfig {
            max_hosts: 10,
            ..SpambotConfig::default()
        });
        for i in 0..100u8 {
            let host = IpAddr::from([10, 0, 1, i]);
            d.import_state(host, json!({"last_seen_us": i64::from(i)}))
                .unwrap();
        }
        let saved = export(&d);
        assert_eq!(saved.len(), 10);
        assert!(saved
            .iter()
            .all(|(h, _)| *h >= IpAddr::from([10, 0, 1, 90])));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for bad in [
            json!(null),
            json!({}),
            json!({"last_seen_us": "soon"}),
            json!({"last_seen_us": 1, "extra": true}),
            json!([1, 2]),
        ] {
            assert!(d.import_state(ip, bad.clone()).is_err(), "{bad}");
        }
        assert_eq!(export(&d).len(), 10);
    }

    #[test]
    fn bulk_through_one_relay_and_configured_servers() {
        let mut d = SpambotDetector::new(SpambotConfig::default());
        let mut got = Vec::new();
        for i in 0..20 {
            got.extend(run_at(
                &mut d,
                "10.0.0.70",
                &flow(
                    "10.0.0.70",
                    40000 + i,
                    "192.0.2.9",
                    587,
                    6,
                    4000 + i64::from(i),
                ),
                4000,
            ));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].dest_ip.unwrap().to_string(), "192.0.2.9");
        let mut d = SpambotDetector::new(SpambotConfig {
            mail_servers: vec!["10.0.5.0/24".into()],
            ..SpambotConfig::default()
        });
        for i in 0..10 {
            let server = format!("192.0.2.{i}");
            assert!(run_at(&mut d, "10.0.5.5", &smtp("10.0.5.5", &server, 4000), 4000).is_empty());
        }
        assert_eq!(
            SpambotConfig {
                mail_servers: vec!["bad".into()],
                ..SpambotConfig::default()
            }
            .problems("detect.spambot")
            .len(),
            1
        );
    }

    #[test]
    fn smtp_recognised_on_any_port_counts_other_traffic_there_does_not() {
        let mut d = SpambotDetector::new(SpambotConfig::default());
        let on = |server: &str, port: u16, app: AppProto, at: i64| {
            FlowRecordBuilder::tcp("10.0.0.66", 40000, server, port)
                .at(at)
                .app_proto(app)
                .build()
        };
        // HTTP on 2525 is no mail; SMTP on 2525 and 8025 is.
        for i in 1..=3 {
            let r = on(&format!("192.0.2.{i}"), 2525, AppProto::Http, 4000 + i);
            assert!(run_at(&mut d, "10.0.0.66", &r, 4000 + i).is_empty());
        }
        assert!(run_at(
            &mut d,
            "10.0.0.66",
            &on("192.0.2.1", 2525, AppProto::Smtp, 4010),
            4010
        )
        .is_empty());
        assert!(run_at(
            &mut d,
            "10.0.0.66",
            &on("192.0.2.2", 8025, AppProto::Smtp, 4020),
            4020
        )
        .is_empty());
        let a = run_at(
            &mut d,
            "10.0.0.66",
            &on("192.0.2.3", 2525, AppProto::Smtp, 4030),
            4030,
        );
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].alert.signature, "spambot.outbound_smtp");
        assert_eq!(a[0].evidence["smtp_on_other_ports"], json!([2525, 8025]));
        let block = &a[0].response.as_ref().unwrap().isolate;
        assert!(
            block["nftables"].contains("25, 465, 587, 2525, 8025"),
            "{block:?}"
        );
    }
}
