//! `external_login`: connections from outside addresses to remote-access
//! services (SSH, RDP, VNC, Telnet, WinRM, ...) on inside hosts: brute
//! force, a successful-looking session to a host whose logins normally come
//! from inside, and many outside sources on one host.
//!
//! A flow is a remote-access session when the classifier named it one of
//! [`LoginProto`]'s protocols, on whatever port (services are moved to other
//! ports all the time), or, for protocols the classifier cannot name (WinRM
//! over HTTPS, a vendor's remote console), when its server port is in
//! `ports`. Whether a session got in is judged by what was exchanged when
//! the protocol is known ([`LoginProto::logged_in`]: past the handshake and
//! the authentication exchange, with data both ways), by its length only
//! when just the port is.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{
    Alert, AppProto, Category, FlowRecord, Mitre, Problem, SectionProblems, Timestamp,
};

use crate::common::{accepted, record_community_id, Finding, HostTable};
use crate::state::{entry_value, parse_entry};
use crate::{Bound, DetectCx, Detector, StateError};

/// The `[detect.external_login]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct ExternalLoginConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// Remote-access TCP ports, judged whatever the classifier says: an
    /// addition for services it cannot name (WinRM over HTTPS on 5986, a
    /// vendor's console). SSH, RDP, VNC, Telnet and WinRM over HTTP are
    /// recognised by their bytes on any port. Default [22, 23, 3389, 5900,
    /// 5985, 5986].
    pub ports: Vec<u16>,
    /// Seconds of capture time from the start during which each server's
    /// usual login sources (inside or outside) are learned. Default 1800.
    pub learning_secs: u64,
    /// Sessions from one outside source to one server within the window
    /// that make a brute force. Default 10.
    pub brute_force_sessions: u64,
    /// Distinct outside sources on one server within the window. Default 20.
    pub many_sources: usize,
    /// A session of a protocol the classifier did not name (judged by its
    /// port only), accepted by the server and lasting at least this many
    /// seconds, looks like a successful interactive login. Sessions of a
    /// recognised protocol are judged by what they exchanged instead
    /// (docs/detections.md). Default 60.
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

/// A brute force that was alerted and may go on: counted until it stops
/// (`window_secs` without a new session) or the capture ends, then told
/// in one `alert_update`.
#[derive(Debug, Clone)]
struct Ongoing {
    /// The alert written.
    alert: Alert,
    /// Start of the window the alert counted.
    first: Timestamp,
    /// Latest end of a session.
    last: Timestamp,
    /// Sessions since `first`, the alert's included.
    sessions: u64,
    /// Of which accepted.
    accepted: u64,
    /// Sessions the alert counted.
    at_alert: u64,
}

/// See the module documentation.
pub struct ExternalLoginDetector {
    cfg: ExternalLoginConfig,
    servers: HostTable<IpAddr, ServerLogins>,
    pairs: HostTable<(IpAddr, IpAddr), SourceAttempts>,
    /// Alerted brute forces by (source, server), at most `max_tracked`
    /// (at the cap the one idle longest is told at once and forgotten).
    ongoing: BTreeMap<(IpAddr, IpAddr), Ongoing>,
}

impl ExternalLoginDetector {
    /// Tells `o` as it stands, if it went on after its alert.
    fn tell(o: Ongoing, cx: &mut DetectCx<'_>) {
        if o.sessions <= o.at_alert {
            return;
        }
        let span_us = o.last.micros_since(o.first);
        let secs = span_us as f64 / 1e6;
        let per_min = if span_us == 0 {
            o.sessions as f64
        } else {
            o.sessions as f64 * 60.0 / secs
        };
        let per_min = (per_min * 100.0).round() / 100.0;
        let mut u = o.alert.clone();
        u.event_type = "alert_update";
        u.updates = Some(o.alert.timestamp);
        u.timestamp = o.last;
        u.evidence.insert("sessions", json!(o.sessions));
        u.evidence.insert("sessions_accepted", json!(o.accepted));
        u.evidence.insert("first_session", json!(o.first));
        u.evidence.insert("last_seen", json!(o.last));
        u.evidence
            .insert("duration_secs", json!((secs * 1e3).round() / 1e3));
        u.evidence.insert("rate_per_min", json!(per_min));
        u.evidence
            .insert("at_alert", json!({ "sessions": o.at_alert }));
        let svc = o
            .alert
            .evidence
            .get("service")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("login");
        u.alert.description = format!(
            "{} brute force of {svc} on {} ended: {} sessions ({} accepted) over {:.1} s ({per_min} a minute); the alert counted {}",
            o.alert.src_ip,
            o.alert
                .dest_ip
                .map_or_else(String::new, |d| d.to_string()),
            o.sessions,
            o.accepted,
            secs,
            o.at_alert
        );
        cx.raise(u);
    }
}

impl ExternalLoginDetector {
    /// A detector with the given settings.
    pub fn new(cfg: ExternalLoginConfig) -> Self {
        ExternalLoginDetector {
            servers: HostTable::new(cfg.max_tracked),
            pairs: HostTable::new(cfg.max_tracked),
            ongoing: BTreeMap::new(),
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

/// A remote-access protocol the classifier names from the session's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoginProto {
    Ssh,
    Rdp,
    Vnc,
    Telnet,
    Winrm,
}

/// What a session must have exchanged, each way, to have gone past its
/// protocol's handshake and authentication exchange: bytes counted from the
/// IP header, as flow records count them. The figures come from the shared
/// real captures (docs/detections.md, "external_login", has the table):
/// each bound sits well above the largest failed or refused session seen
/// and below the shortest real login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exchange {
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    pub packets_to_server: u64,
    pub packets_to_client: u64,
}

impl LoginProto {
    /// The remote-access protocol `rec` speaks, from the classifier's
    /// verdict (TCP only: the UDP side channel of RDP is not a session).
    pub(crate) fn of(rec: &FlowRecord) -> Option<LoginProto> {
        if rec.proto != 6 {
            return None;
        }
        match rec.app_proto {
            AppProto::Ssh => Some(LoginProto::Ssh),
            AppProto::Rdp => Some(LoginProto::Rdp),
            AppProto::Vnc => Some(LoginProto::Vnc),
            AppProto::Telnet => Some(LoginProto::Telnet),
            AppProto::Winrm => Some(LoginProto::Winrm),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            LoginProto::Ssh => "SSH",
            LoginProto::Rdp => "RDP",
            LoginProto::Vnc => "VNC",
            LoginProto::Telnet => "Telnet",
            LoginProto::Winrm => "WinRM",
        }
    }

    /// The least a logged-in session exchanges (see [`Exchange`]).
    pub(crate) const fn login_exchange(self) -> Exchange {
        let (bytes_to_server, bytes_to_client, packets_to_server, packets_to_client) = match self {
            // Failed password sessions (hydra, medusa, ncrack, a zeek
            // trace: 632 sessions) stay at or under 4.3 kB and 26 packets
            // to the server, 3.9 kB and 27 packets to the client; the one
            // real login sent 13.4 kB in 159 packets and got 18.5 kB in 99.
            LoginProto::Ssh => (6_000, 6_000, 40, 40),
            // A refused login from outside (1.2 s, reset) and an X.224 +
            // MCS + security exchange + client info: at most 2.3 kB each
            // way; a 41 s session with TLS security: 24 kB up, 87 kB down.
            // A login shows in the server's bitmap updates.
            LoginProto::Rdp => (5_000, 20_000, 20, 40),
            // Two sessions that stopped at the VNC authentication
            // challenge: at most 560 B and 10 packets up, 460 B and 8
            // down; the full session: 10.4 kB up, 16.7 kB down, 166+.
            LoginProto::Vnc => (1_500, 4_000, 20, 20),
            // Option negotiation, "login:", the name and the password
            // echoed one character a packet stay under about 1 kB and 25
            // packets each way; the real login with a shell: 2.9 kB in 48
            // packets up, 3.7 kB in 44 down.
            LoginProto::Telnet => (1_500, 3_000, 30, 30),
            // No real capture: a WinRM command is a SOAP envelope of
            // several kB each way after the 401 / Negotiate round trip,
            // which alone stays under 2 kB.
            LoginProto::Winrm => (4_000, 4_000, 8, 8),
        };
        Exchange {
            bytes_to_server,
            bytes_to_client,
            packets_to_server,
            packets_to_client,
        }
    }

    /// True when `rec` exchanged at least a login's worth each way.
    pub(crate) fn logged_in(self, rec: &FlowRecord) -> bool {
        let e = self.login_exchange();
        rec.to_server.bytes >= e.bytes_to_server
            && rec.to_client.bytes >= e.bytes_to_client
            && rec.to_server.packets >= e.packets_to_server
            && rec.to_client.packets >= e.packets_to_client
    }
}

/// The service's name for descriptions: the recognised protocol, else what
/// the port usually carries.
fn service(proto: Option<LoginProto>, port: u16) -> &'static str {
    if let Some(p) = proto {
        return p.name();
    }
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
            map: "ongoing brute forces",
            key: "max_tracked",
            len: self.ongoing.len(),
            cap: self.cfg.max_tracked,
        });
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
        let login_proto = LoginProto::of(rec);
        if login_proto.is_none() && (rec.proto != 6 || !self.cfg.ports.contains(&rec.server_port)) {
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
        let svc = service(login_proto, rec.server_port);

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
            if let Some(o) = self.ongoing.get_mut(&(rec.client, rec.server)) {
                o.sessions += 1;
                o.accepted += u64::from(accepted(rec));
                o.last = o.last.max(rec.last_seen);
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
                ev.insert("server_port", json!(rec.server_port));
                alerts.push(login_finding(
                    rec,
                    rec.first_seen,
                    "external_login.brute_force",
                    2,
                    format!(
                        "{} opened {} {svc} sessions to {} port {} within {} s (brute force)",
                        rec.client,
                        pair.sessions,
                        rec.server,
                        rec.server_port,
                        self.cfg.window_secs
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
        // whose logins come from inside (or that had none while learning):
        // by what it exchanged when the protocol is known (a login of a few
        // seconds counts, a failed attempt held open does not), by its
        // length when only the port is.
        let duration_us = rec.last_seen.micros_since(rec.first_seen);
        let interactive = accepted(rec)
            && match login_proto {
                Some(p) => p.logged_in(rec),
                None => duration_us >= self.cfg.interactive_secs.saturating_mul(1_000_000),
            };
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
            ev.insert("server_port", json!(rec.server_port));
            ev.insert("packets_to_server", json!(rec.to_server.packets));
            ev.insert("packets_to_client", json!(rec.to_client.packets));
            match login_proto {
                Some(p) => {
                    let e = p.login_exchange();
                    ev.insert("judged_by", json!("exchange"));
                    ev.insert(
                        "login_exchange",
                        json!({
                            "bytes_to_server": e.bytes_to_server,
                            "bytes_to_client": e.bytes_to_client,
                            "packets_to_server": e.packets_to_server,
                            "packets_to_client": e.packets_to_client,
                        }),
                    );
                }
                None => {
                    ev.insert("judged_by", json!("duration"));
                    ev.insert("interactive_secs", json!(self.cfg.interactive_secs));
                }
            }
            alerts.push(login_finding(
                    rec,
                    rec.last_seen,
                    "external_login.unusual_source",
                    if after_brute_force { 1 } else { 2 },
                    format!(
                    "{} held a {} s {svc} session with {} port {} ({} B sent, {} B received), whose logins came only from inside while learning{}",
                    rec.client,
                    duration_us / 1_000_000,
                    rec.server,
                    rec.server_port,
                    rec.to_server.bytes,
                    rec.to_client.bytes,
                    if after_brute_force { ", right after brute-forcing it" } else { "" }
                ),
                    Mitre { tactic: "TA0001", technique: "T1133" },
                    ev,
                ));
        }
        let (sessions, accepted_n, window_start) =
            (pair.sessions, pair.accepted, pair.window_start);
        for f in alerts {
            // Every finding here carries this record's community_id.
            let mut a = f.into_alert(cx);
            a.flow_id = Some(rec.flow_id());
            if a.alert.signature == "external_login.brute_force" {
                if self.ongoing.len() >= self.cfg.max_tracked.max(1) {
                    // At the cap: the one idle longest is told now.
                    let oldest = self
                        .ongoing
                        .iter()
                        .min_by_key(|(k, o)| (o.last, **k))
                        .map(|(k, _)| *k);
                    if let Some(o) = oldest.and_then(|k| self.ongoing.remove(&k)) {
                        Self::tell(o, cx);
                    }
                }
                self.ongoing.insert(
                    (rec.client, rec.server),
                    Ongoing {
                        alert: a.clone(),
                        first: window_start,
                        last: rec.last_seen,
                        sessions,
                        accepted: accepted_n,
                        at_alert: sessions,
                    },
                );
            }
            cx.raise(a);
        }
    }

    fn on_tick(&mut self, now: Timestamp, cx: &mut DetectCx<'_>) {
        // No new session for the window: the brute force stopped.
        let quiet = self.cfg.window_secs.saturating_mul(1_000_000);
        let stopped: Vec<(IpAddr, IpAddr)> = self
            .ongoing
            .iter()
            .filter(|(_, o)| now.micros_since(o.last) > quiet)
            .map(|(k, _)| *k)
            .collect();
        for k in stopped {
            if let Some(o) = self.ongoing.remove(&k) {
                Self::tell(o, cx);
            }
        }
    }

    fn on_end(&mut self, _now: Timestamp, cx: &mut DetectCx<'_>) {
        for (_, o) in std::mem::take(&mut self.ongoing) {
            Self::tell(o, cx);
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

    /// A session of `app` on `port` from `src` to `dst` lasting `secs`,
    /// with `up`/`down` bytes in `pu`/`pd` packets.
    #[allow(clippy::too_many_arguments)]
    fn session(
        app: AppProto,
        src: &str,
        sport: u16,
        dst: &str,
        port: u16,
        at: i64,
        secs: u64,
        (up, down, pu, pd): (u64, u64, u64, u64),
    ) -> FlowRecord {
        FlowRecordBuilder::tcp(src, sport, dst, port)
            .at(at)
            .lasting(secs)
            .bytes(up, down)
            .packets(pu, pd)
            .app_proto(app)
            .build()
    }

    #[test]
    fn recognised_protocols_count_on_any_port() {
        // SSH on 902, as nmap's brute force against a moved server: not in
        // `ports`, found by its bytes.
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
        let mut got = Vec::new();
        for i in 0..10u16 {
            let r = session(
                AppProto::Ssh,
                "203.0.113.9",
                40000 + i,
                "10.0.0.5",
                902,
                4000 + i64::from(i),
                3,
                (2_000, 3_200, 17, 25),
            );
            got.extend(run_at(&mut d, "10.0.0.5", &r, 4010));
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].alert.signature, "external_login.brute_force");
        assert_eq!(got[0].evidence["service"], "SSH");
        assert_eq!(got[0].evidence["server_port"], 902);
        // Unrecognised traffic on 902 is not a login service.
        let other = session(
            AppProto::Unknown,
            "203.0.113.10",
            40000,
            "10.0.0.6",
            902,
            4000,
            600,
            (90_000, 90_000, 500, 500),
        );
        assert!(run_at(&mut d, "10.0.0.6", &other, 4600).is_empty());
        // But a port listed in `ports` still counts without a verdict.
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig {
            ports: vec![902],
            ..ExternalLoginConfig::default()
        });
        let a = run_at(&mut d, "10.0.0.6", &other, 4600);
        assert_eq!(a[0].alert.signature, "external_login.unusual_source");
        assert_eq!(a[0].evidence["judged_by"], "duration");
    }

    #[test]
    fn a_login_is_judged_by_what_was_exchanged() {
        let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
        // VNC on 6900: the session that stopped at the authentication
        // challenge is no login however long it stayed open...
        let challenge = session(
            AppProto::Vnc,
            "198.51.100.7",
            50000,
            "10.0.0.9",
            6900,
            4000,
            300,
            (560, 460, 10, 8),
        );
        assert!(run_at(&mut d, "10.0.0.9", &challenge, 4300).is_empty());
        // ...a full one of 20 s is.
        let login = session(
            AppProto::Vnc,
            "198.51.100.7",
            50001,
            "10.0.0.9",
            6900,
            4400,
            20,
            (10_419, 16_736, 172, 166),
        );
        let a = run_at(&mut d, "10.0.0.9", &login, 4420);
        assert_eq!(a.len(), 1, "{a:?}");
        assert_eq!(a[0].alert.signature, "external_login.unusual_source");
        assert_eq!(a[0].evidence["service"], "VNC");
        assert_eq!(a[0].evidence["judged_by"], "exchange");
        assert_eq!(a[0].app_proto, Some(AppProto::Vnc));
        // Telnet, RDP and WinRM the same way: each protocol's own bounds.
        for (app, port, ex) in [
            (AppProto::Telnet, 2323, (2_919, 3_667, 48, 44)),
            (AppProto::Rdp, 13389, (24_129, 86_982, 236, 403)),
            (AppProto::Winrm, 8085, (9_000, 12_000, 20, 20)),
            (AppProto::Ssh, 2222, (13_389, 18_545, 159, 99)),
        ] {
            let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
            let r = session(app, "198.51.100.8", 50002, "10.0.0.10", port, 4000, 8, ex);
            let a = run_at(&mut d, "10.0.0.10", &r, 4008);
            assert_eq!(a.len(), 1, "{app}: {a:?}");
            assert_eq!(a[0].alert.signature, "external_login.unusual_source");
            // Just under the bounds (a failed attempt): nothing.
            let e = LoginProto::of(&r).unwrap().login_exchange();
            let mut d = ExternalLoginDetector::new(ExternalLoginConfig::default());
            let short = session(
                app,
                "198.51.100.8",
                50003,
                "10.0.0.10",
                port,
                4000,
                600,
                (
                    e.bytes_to_server,
                    e.bytes_to_client - 1,
                    e.packets_to_server,
                    e.packets_to_client,
                ),
            );
            assert!(
                run_at(&mut d, "10.0.0.10", &short, 4600).is_empty(),
                "{app}"
            );
        }
    }

    #[test]
    fn failed_sessions_of_the_real_brute_forces_are_under_every_bound() {
        // The largest failed session of each real capture (docs/detections.md).
        for ex in [
            (2_025, 3_171, 17, 25),
            (2_632, 3_807, 20, 27),
            (3_792, 2_727, 23, 22),
            (4_249, 3_444, 26, 19),
        ] {
            let r = session(AppProto::Ssh, "203.0.113.9", 1, "10.0.0.5", 22, 0, 3, ex);
            assert!(!LoginProto::Ssh.logged_in(&r), "{ex:?}");
        }
    }
}
