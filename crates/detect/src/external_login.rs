//! `external_login`: connections from outside addresses to remote-access
//! services (SSH, RDP, VNC, Telnet, WinRM, ...) on inside hosts: brute
//! force, a successful-looking session to a host whose logins normally come
//! from inside, and many outside sources on one host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{Category, FlowRecord, Mitre, Problem, SectionProblems, Timestamp};

use crate::common::{accepted, record_community_id, Finding, HostTable};
use crate::state::{entry_value, parse_entry};
use crate::{Bound, DetectCx, Detector, StateError};

/// The `[detect.external_login]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalLoginConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// Remote-access TCP ports. Default [22, 23, 3389, 5900, 5985, 5986].
    pub ports: Vec<u16>,
    /// Seconds of capture time from the start during which each server's
    /// usual login sources (inside or outside) are learned. Default 1800.
    pub learning_secs: u64,
    /// Sessions from one outside source to one server within the window
    /// that make a brute force. Default 10.
    pub brute_force_sessions: u64,
    /// Distinct outside sources on one server within the window. Default 20.
    pub many_sources: usize,
    /// A session accepted by the server and lasting at least this many
    /// seconds looks like a successful interactive login. Default 60.
    pub interactive_secs: u64,
    /// The window, in seconds of capture time. Default 600.
    pub window_secs: u64,
    /// Servers and (source, server) pairs tracked per worker, each (memory
    /// bound; least recently seen dropped). Default 100000.
    pub max_tracked: usize,
}

impl Default for ExternalLoginConfig {
    fn default() -> Self {
        ExternalLoginConfig {
            enabled: true,
            ports: vec![22, 23, 3389, 5900, 5985, 5986],
            learning_secs: 1800,
            brute_force_sessions: 10,
            many_sources: 20,
            interactive_secs: 60,
            window_secs: 600,
            max_tracked: 100_000,
        }
    }
}

impl ExternalLoginConfig {
    /// Every problem with the values, each under `section`.
    /// (`learning_secs` and `interactive_secs` may be 0.)
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        p.ports("ports", &self.ports);
        // One session is not a brute force, one source not many.
        p.at_least("brute_force_sessions", self.brute_force_sessions, 2);
        p.at_least("many_sources", self.many_sources, 2);
        p.at_least("window_secs", self.window_secs, 1);
        p.at_least("max_tracked", self.max_tracked, 1);
        p.into_vec()
    }
}

/// Outside sources remembered per server and window.
const MAX_SOURCES_PER_SERVER: usize = 1024;

#[derive(Debug, Clone, Default)]
struct ServerLogins {
    learned_inside: u64,
    learned_outside: u64,
    window_start: Timestamp,
    outside_sources: BTreeSet<IpAddr>,
    alerted_many: bool,
}

#[derive(Debug, Clone, Default)]
struct SourceAttempts {
    window_start: Timestamp,
    sessions: u64,
    accepted: u64,
    brute_forced: bool,
    alerted_login: bool,
}

/// A saved server: where its logins came from while learning. The
/// brute-force and many-sources windows are evidence about now, not
/// habits, and are not saved.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerEntry {
    /// Accepted logins from inside seen while learning.
    inside_logins: u64,
    /// Accepted logins from outside seen while learning.
    outside_logins: u64,
    /// Capture time (µs since the epoch) last seen: the eviction order.
    last_seen_us: i64,
}

/// See the module documentation.
pub struct ExternalLoginDetector {
    cfg: ExternalLoginConfig,
    servers: HostTable<IpAddr, ServerLogins>,
    pairs: HostTable<(IpAddr, IpAddr), SourceAttempts>,
}

impl ExternalLoginDetector {
    /// A detector with the given settings.
    pub fn new(cfg: ExternalLoginConfig) -> Self {
        ExternalLoginDetector {
            servers: HostTable::new(cfg.max_tracked),
            pairs: HostTable::new(cfg.max_tracked),
            cfg,
        }
    }
}

/// An external-login finding about one flow: the outside client is the
/// subject and the party to block, the inside server the counterpart.
fn login_finding(
    rec: &FlowRecord,
    ts: Timestamp,
    signature: &'static str,
    severity: u8,
    description: String,
    mitre: Mitre,
    evidence: BTreeMap<&'static str, serde_json::Value>,
) -> Finding {
    Finding {
        ts,
        category: Category::EXTERNAL_LOGIN,
        signature,
        severity,
        description,
        mitre,
        src: rec.client,
        dest: Some(rec.server),
        ports: Some((rec.client_port, rec.server_port)),
        proto: Some(6),
        evidence,
        community_id: Some(record_community_id(rec)),
        app_proto: Some(rec.app_proto),
        outside: Some(rec.client),
    }
}

fn service(port: u16) -> &'static str {
    match port {
        22 => "SSH",
        23 => "Telnet",
        3389 => "RDP",
        5900 => "VNC",
        5985 | 5986 => "WinRM",
        _ => "remote access",
    }
}

impl Detector for ExternalLoginDetector {
    fn name(&self) -> &'static str {
        "external_login"
    }

    fn bounds(&self, out: &mut dyn FnMut(Bound)) {
        out(self.servers.bound("servers", "max_tracked"));
        out(self.pairs.bound("(server, source) pairs", "max_tracked"));
        out(Bound {
            map: "outside sources per server",
            key: "",
            len: self
                .servers
                .iter()
                .map(|(_, s)| s.outside_sources.len())
                .max()
                .unwrap_or(0),
            cap: MAX_SOURCES_PER_SERVER,
        });
    }

    fn persists_state(&self) -> bool {
        true
    }

    fn export_state(&self, out: &mut dyn FnMut(IpAddr, serde_json::Value)) {
        for (server, seen, s) in self.servers.iter_seen() {
            // A server with no learned login is judged like an unknown one.
            if s.learned_inside > 0 || s.learned_outside > 0 {
                let e = ServerEntry {
                    inside_logins: s.learned_inside,
                    outside_logins: s.learned_outside,
                    last_seen_us: seen.micros(),
                };
                out(*server, entry_value(&e));
            }
        }
    }

    fn import_state(&mut self, host: IpAddr, entry: serde_json::Value) -> Result<(), StateError> {
        let e: ServerEntry = parse_entry(entry)?;
        let seen = Timestamp::from_micros(e.last_seen_us);
        // Through the bounded table: at max_tracked the most recent stay.
        let s = ServerLogins {
            learned_inside: e.inside_logins,
            learned_outside: e.outside_logins,
            ..ServerLogins::default()
        };
        self.servers.restore(host, seen, s);
        Ok(())
    }

    /// Registered [`crate::Perspective::InsideServer`]: `host` is the
    /// record's server, inside.
    fn on_flow(&mut self, _host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        if rec.proto != 6 || !self.cfg.ports.contains(&rec.server_port) {
            return;
        }
        let outside = !cx.home.contains(rec.client);
        let learning = cx.learning(self.cfg.learning_secs);
        let window_us = self.cfg.window_secs.saturating_mul(1_000_000);
        let first = rec.is_first_report();
        let server = self
            .servers
            .touch(rec.server, rec.first_seen, ServerLogins::default);
        // Learning only shapes the "unusual source" judgement; brute force
        // and many sources need no baseline and are watched from the start.
        if learning && first && accepted(rec) {
            if outside {
                server.learned_outside += 1;
            } else {
                server.learned_inside += 1;
            }
        }
        if !outside {
            return;
        }
        let logins_from_outside_usual = server.learned_outside > 0;
        let (learned_inside, learned_outside) = (server.learned_inside, server.learned_outside);
        let mut alerts = Vec::new();
        let svc = service(rec.server_port);

        // Many outside sources on one server.
        if first {
            if rec.first_seen.micros_since(server.window_start) >= window_us {
                server.window_start = rec.first_seen;
                server.outside_sources.clear();
                server.alerted_many = false;
            }
            if server.outside_sources.len() < MAX_SOURCES_PER_SERVER {
                server.outside_sources.insert(rec.client);
            }
            let n = server.outside_sources.len();
            if !server.alerted_many && n >= self.cfg.many_sources {
                server.alerted_many = true;
                let mut ev = BTreeMap::new();
                ev.insert("distinct_outside_sources", json!(n));
                ev.insert("threshold", json!(self.cfg.many_sources));
                ev.insert("window_secs", json!(self.cfg.window_secs));
                ev.insert("window_start", json!(server.window_start));
                ev.insert(
                    "example_sources",
                    json!(server
                        .outside_sources
                        .iter()
                        .take(10)
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()),
                );
                alerts.push(login_finding(
                    rec,
                    rec.first_seen,
                    "external_login.many_sources",
                    2,
                    format!(
                        "{n} outside addresses connected to {svc} on {} within {} s",
                        rec.server, self.cfg.window_secs
                    ),
                    Mitre {
                        tactic: "TA0006",
                        technique: "T1110",
                    },
                    ev,
                ));
            }
        }

        let pair = self.pairs.touch(
            (rec.client, rec.server),
            rec.first_seen,
            SourceAttempts::default,
        );
        if first {
            if rec.first_seen.micros_since(pair.window_start) >= window_us {
                let brute_forced = pair.brute_forced;
                let alerted_login = pair.alerted_login;
                *pair = SourceAttempts {
                    window_start: rec.first_seen,
                    brute_forced,
                    alerted_login,
                    ..SourceAttempts::default()
                };
            }
            pair.sessions += 1;
            if accepted(rec) {
                pair.accepted += 1;
            }
            if !pair.brute_forced && pair.sessions >= self.cfg.brute_force_sessions {
                pair.brute_forced = true;
                let mut ev = BTreeMap::new();
                ev.insert("sessions", json!(pair.sessions));
                ev.insert("sessions_accepted", json!(pair.accepted));
                ev.insert("threshold", json!(self.cfg.brute_force_sessions));
                ev.insert("window_secs", json!(self.cfg.window_secs));
                ev.insert("window_start", json!(pair.window_start));
                ev.insert("service", json!(svc));
                alerts.push(login_finding(
                    rec,
                    rec.first_seen,
                    "external_login.brute_force",
                    2,
                    format!(
                        "{} opened {} {svc} sessions to {} within {} s (brute force)",
                        rec.client, pair.sessions, rec.server, self.cfg.window_secs
                    ),
                    Mitre {
                        tactic: "TA0006",
                        technique: "T1110",
                    },
                    ev,
                ));
            }
        }

        // A successful-looking interactive session from outside to a host
        // whose logins come from inside (or that had none while learning).
        let duration_us = rec.last_seen.micros_since(rec.first_seen);
        let interactive =
            accepted(rec) && duration_us >= self.cfg.interactive_secs.saturating_mul(1_000_000);
        if interactive && !learning && !logins_from_outside_usual && !pair.alerted_login {
            pair.alerted_login = true;
            let after_brute_force = pair.brute_forced;
            let mut ev = BTreeMap::new();
            ev.insert("session_secs", json!(duration_us / 1_000_000));
            ev.insert("bytes_to_server", json!(rec.to_server.bytes));
            ev.insert("bytes_to_client", json!(rec.to_client.bytes));
            ev.insert("learned_inside_logins", json!(learned_inside));
            ev.insert("learned_outside_logins", json!(learned_outside));
            ev.insert("after_brute_force", json!(after_brute_force));
            ev.insert("service", json!(svc));
            alerts.push(login_finding(
                    rec,
                    rec.last_seen,
                    "external_login.unusual_source",
                    if after_brute_force { 1 } else { 2 },
                    format!(
                    "{} held a {} s {svc} session with {}, whose logins came only from inside while learning{}",
                    rec.client,
                    duration_us / 1_000_000,
                    rec.server,
                    if after_brute_force { ", right after brute-forcing it" } else { "" }
                ),
                    Mitre { tactic: "TA0001", technique: "T1133" },
                    ev,
                ));
        }
        for f in alerts {
            let a = f.into_alert(cx);
            cx.raise(a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{export, flow, run_at, transfer};
    use tapsentry_testkit::FlowRecordBuilder;
    use tapsentry_types::FlowState;

    /// An SSH login from `src` to `dst` lasting `secs`; refused unless `ok`.
    fn ssh(src: &str, sport: u16, dst: &str, at: i64, secs: u64, ok: bool) -> FlowRecord {
        let b = FlowRecordBuilder::tcp(src, sport, dst, 22)
            .at(at)
            .lasting(secs);
        if ok { b } else { b.state(FlowState::Rejected) }.build()
    }

    #[test]
    fn brute_force_alerts_at_the_threshold_then_success_is_high() {
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
        for i in 0..9 {
            assert!(run_at(
                &mut d,
                "10.0.0.5",
                &ssh(
                    "203.0.113.9",
                    40000 + i,
                    "10.0.0.5",
                    4000 + i64::from(i),
                    3,
                    true
                ),
                4000
            )
            .is_empty());
        }
        let a = run_at(
            &mut d,
            "10.0.0.5",
            &ssh("203.0.113.9", 40009, "10.0.0.5", 4010, 3, true),
            4010,
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "external_login.brute_force");
        assert_eq!(a[0].src_ip.to_string(), "203.0.113.9");
        assert_eq!(a[0].dest_ip.unwrap().to_string(), "10.0.0.5");
        let a = run_at(
            &mut d,
            "10.0.0.5",
            &ssh("203.0.113.9", 40100, "10.0.0.5", 4020, 300, true),
            4320,
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].alert.signature, "external_login.unusual_source");
        assert_eq!(a[0].alert.severity, 1);
    }

    #[test]
    fn brute_force_needs_no_learning_period() {
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
        let mut got = Vec::new();
        for i in 0..12 {
            got.extend(run_at(
                &mut d,
                "10.0.0.5",
                &ssh(
                    "203.0.113.9",
                    40000 + i,
                    "10.0.0.5",
                    10 + i64::from(i),
                    3,
                    false,
                ),
                30,
            ));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].alert.signature, "external_login.brute_force");
    }

    #[test]
    fn server_used_from_outside_while_learning_is_quiet() {
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
        assert!(run_at(
            &mut d,
            "10.0.0.6",
            &ssh("198.51.100.4", 50000, "10.0.0.6", 100, 600, true),
            700
        )
        .is_empty());
        assert!(run_at(
            &mut d,
            "10.0.0.6",
            &ssh("198.51.100.5", 50000, "10.0.0.6", 4000, 600, true),
            4600
        )
        .is_empty());
    }

    #[test]
    fn inside_logins_short_failures_and_inside_clients_are_quiet() {
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
        // Admins log in from inside while learning.
        assert!(run_at(
            &mut d,
            "10.0.0.7",
            &ssh("10.0.9.9", 50000, "10.0.0.7", 100, 900, true),
            1000
        )
        .is_empty());
        // Inside logins after learning: never this detector's business.
        assert!(run_at(
            &mut d,
            "10.0.0.7",
            &ssh("10.0.9.9", 50001, "10.0.0.7", 4000, 900, true),
            4900
        )
        .is_empty());
        // One refused attempt from outside: internet background noise.
        assert!(run_at(
            &mut d,
            "10.0.0.7",
            &ssh("203.0.113.1", 50002, "10.0.0.7", 4000, 1, false),
            4001
        )
        .is_empty());
        // A long session from outside to a host with inside-only logins alerts.
        let a = run_at(
            &mut d,
            "10.0.0.7",
            &ssh("203.0.113.2", 50003, "10.0.0.7", 5000, 120, true),
            5120,
        );
        assert_eq!(a[0].alert.signature, "external_login.unusual_source");
        assert_eq!(a[0].alert.severity, 2);
    }

    #[test]
    fn learned_login_sources_survive_a_restart() {
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
        // Learned: 10.0.0.6 takes logins from outside, 10.0.0.7 from inside.
        let a = ssh("198.51.100.4", 50000, "10.0.0.6", 100, 600, true);
        run_at(&mut d, "10.0.0.6", &a, 700);
        let b = ssh("10.0.9.9", 50000, "10.0.0.7", 100, 900, true);
        run_at(&mut d, "10.0.0.7", &b, 1000);
        // After learning, a failed attempt on a third server: not a habit.
        let c = ssh("203.0.113.1", 50002, "10.0.0.8", 4000, 1, false);
        run_at(&mut d, "10.0.0.8", &c, 4001);
        let mut saved = export(&d);
        saved.sort_by_key(|(h, _)| *h);
        assert_eq!(saved.len(), 2, "{saved:?}");
        assert_eq!(saved[0].1["outside_logins"], 1);
        assert_eq!(saved[1].1["inside_logins"], 1);

        let mut d2 = ExternalLoginDetector::new(ExternalLoginConfig::default());
        transfer(&d, &mut d2);
        let quiet = ssh("198.51.100.5", 50000, "10.0.0.6", 5000, 600, true);
        assert!(run_at(&mut d2, "10.0.0.6", &quiet, 5600).is_empty());
        let loud = ssh("203.0.113.2", 50003, "10.0.0.7", 5000, 120, true);
        let a = run_at(&mut d2, "10.0.0.7", &loud, 5120);
        assert_eq!(a[0].alert.signature, "external_login.unusual_source");
        assert_eq!(a[0].evidence["learned_inside_logins"], 1);
    }

    #[test]
    fn imported_servers_respect_max_tracked() {
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig {
            max_tracked: 5,
            ..ExternalLoginConfig::default()
        });
        for i in 0..50u8 {
            let e = serde_json::json!({"inside_logins": 1, "outside_logins": 0, "last_seen_us": i64::from(i)});
            d.import_state(IpAddr::from([10, 0, 0, i]), e).unwrap();
        }
        assert_eq!(export(&d).len(), 5);
        let bad = serde_json::json!({"inside_logins": -1, "outside_logins": 0, "last_seen_us": 0});
        assert!(d.import_state(IpAddr::from([10, 0, 0, 1]), bad).is_err());
    }

    #[test]
    fn many_outside_sources_on_one_host() {
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
        let mut got = Vec::new();
        for i in 0..25u8 {
            let src = format!("203.0.113.{i}");
            got.extend(run_at(
                &mut d,
                "10.0.0.8",
                &flow(&src, 40000, "10.0.0.8", 3389, 6, 4000 + i64::from(i)),
                4000,
            ));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].alert.signature, "external_login.many_sources");
        assert_eq!(got[0].evidence["distinct_outside_sources"], 20);
    }
}
