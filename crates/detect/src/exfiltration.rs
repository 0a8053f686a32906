//! `exfiltration` by volume: an inside host sending far more to outside
//! addresses than it ever does, in one burst (`exfiltration.volume`) or
//! trickled to one destination over hours (`exfiltration.slow`).
//!
//! Burst: the bytes a host sent outside within the last `window_secs`
//! (sliding, see [`crate::volume`]) must clear three bars at once: the
//! absolute floor `min_bytes`, `z_threshold` standard deviations above the
//! host's own log-volume baseline, and `peak_factor` times the largest
//! window it has had (decaying slowly). The floor keeps small hosts from
//! alerting on small numbers, the baseline asks "unusual for this host",
//! and the peak keeps a host that uploads a big backup every hour quiet.
//!
//! Slow: per (host, outside destination) an exponentially decaying sum of
//! bytes sent, with time constant `slow_horizon_secs`, is held against the
//! floor `slow_min_bytes`, against `slow_factor` times what the host sends
//! in a whole horizon of typical windows, and against `slow_factor` times
//! the rate it was seen sending to that destination while learning. It must
//! have gone on for `slow_min_span_secs` (shorter is a burst's business) and
//! be mostly one way (video calls send as much as they receive; an upload
//! does not).
//!
//! Direction of initiative: bytes a host *pushes* on connections it opened
//! (it is the flow's client) and bytes it *serves* on connections an
//! outside peer opened (it is the flow's server) have separate baselines
//! and windows. Pushed bytes are judged as above; served bytes only by a
//! burst against the host's own served baseline, with the much higher
//! floor `served_min_bytes` and one outside client taking most of it (a
//! dump pulled through a webshell or an exposed service). So a public web
//! server's downloads neither raise alerts as uploads nor inflate the norm
//! a connection it opens itself is judged against. An active-mode FTP data
//! connection (the outside peer connects from port 20) carries what the
//! host asked to send over its own control connection: pushed.
//!
//! FTP data connections carry no port of their own: a connection to a peer
//! the host also holds an FTP control connection with (port 21), or one
//! that the peer opened from port 20 (active mode), is reported as FTP.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{
    proto_name, AppProto, Category, FlowRecord, Mitre, Problem, SectionProblems, Timestamp,
};

use crate::common::{Finding, HostTable};
use crate::home::parse_net;
use crate::state::{entry_value, parse_entry};
use crate::volume::{
    app_protocol, dominant, human, versus_typical, PeerBytes, Service, VolumeBaseline,
    VolumeParams, WindowedVolume,
};
use crate::Bound;
use crate::{DetectCx, Detector, StateError};

/// The `[detect.exfiltration]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExfiltrationConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// Seconds of capture time from the start during which baselines only
    /// learn. Default 1800.
    pub learning_secs: u64,
    /// Length of the sliding window a burst is measured over. Default 600.
    pub window_secs: u64,
    /// Bytes sent outside within one window below which nothing alerts,
    /// whatever the baseline. Default 50000000.
    pub min_bytes: u64,
    /// Standard deviations of log volume above the host's mean that make a
    /// window unusual. Default 3.0.
    pub z_threshold: f64,
    /// Floor of the log-volume standard deviation, so a perfectly steady
    /// host does not alert on a wobble. Default 0.5 (a factor of 1.65).
    pub min_sd: f64,
    /// Cap of the log-volume standard deviation: hosts with bursty habits
    /// are judged on their peak beyond it. Default 1.5 (a factor of 4.5).
    pub max_sd: f64,
    /// Weight of each new window in the baseline after learning (0.02 per
    /// 10-minute window: a change of habit is absorbed over about a day).
    /// Default 0.02.
    pub alpha: f64,
    /// A burst must also exceed this many times the host's largest window
    /// so far. Default 2.0.
    pub peak_factor: f64,
    /// The remembered largest window halves every this many seconds.
    /// Default 604800 (a week).
    pub peak_half_life_secs: u64,
    /// Time constant of the per-destination accumulation for slow
    /// exfiltration. Default 21600 (6 hours).
    pub slow_horizon_secs: u64,
    /// Accumulated bytes to one destination below which nothing alerts.
    /// Default 20000000.
    pub slow_min_bytes: u64,
    /// How many times the host's norm (per destination learned, and in
    /// total over a horizon) the accumulation must reach. Default 3.0.
    pub slow_factor: f64,
    /// The accumulation must have been going on this long. Default 1800.
    pub slow_min_span_secs: u64,
    /// Bytes sent must be at least this many times the bytes received in
    /// the same flows (an upload, not a conversation: a video call sends
    /// about as much as it receives). Default 3.0.
    pub min_asymmetry: f64,
    /// Outside destinations never counted (CIDRs or addresses): known
    /// backup and sync services. Default [].
    pub allow: Vec<String>,
    /// Bytes a host *serves* (sent on connections an outside peer opened)
    /// within one window below which serving never alerts, whatever the
    /// served baseline; one outside client must also have taken two thirds
    /// of them. Served bytes are judged apart from pushed ones, against
    /// the host's served baseline, and never by the slow check.
    /// Default 1000000000.
    pub served_min_bytes: u64,
    /// Inside hosts tracked per worker (memory bound; least recently seen
    /// dropped). Default 50000.
    pub max_hosts: usize,
    /// Outside destinations tracked per host for slow exfiltration (the one
    /// with the least accumulated is dropped). Default 16.
    pub max_destinations: usize,
}

impl Default for ExfiltrationConfig {
    fn default() -> Self {
        ExfiltrationConfig {
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
            slow_horizon_secs: 21_600,
            slow_min_bytes: 20_000_000,
            slow_factor: 3.0,
            slow_min_span_secs: 1800,
            min_asymmetry: 3.0,
            allow: Vec::new(),
            served_min_bytes: 1_000_000_000,
            max_hosts: 50_000,
            max_destinations: 16,
        }
    }
}

impl ExfiltrationConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        self.params().problems(&mut p);
        for e in &self.allow {
            if parse_net(e).is_none() {
                p.push("allow", format!("'{e}' is not an address or CIDR network"));
            }
        }
        p.at_least("slow_horizon_secs", self.slow_horizon_secs, 1);
        p.at_least("served_min_bytes", self.served_min_bytes, 1);
        for (k, v) in [
            ("slow_factor", self.slow_factor),
            ("min_asymmetry", self.min_asymmetry),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                p.push(k, "must be 0 or more");
            }
        }
        p.at_least("max_destinations", self.max_destinations, 1);
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

    /// The knobs of the served-bytes judgement: the pushed ones with the
    /// served floor.
    fn served_params(&self) -> VolumeParams {
        VolumeParams {
            min_bytes: self.served_min_bytes,
            ..self.params()
        }
    }
}

/// FTP control peers remembered per host.
const MAX_FTP_PEERS: usize = 8;
/// An FTP control connection vouches for data connections this long.
const FTP_PEER_SECS: u64 = 3600;

/// Bytes accumulated towards one destination (decaying sums).
#[derive(Debug, Clone, Copy)]
struct Accumulation {
    dest: IpAddr,
    sent: f64,
    received: f64,
    /// Capture time the sums were last decayed to.
    at: Timestamp,
    /// Start of the current accumulation episode.
    since: Timestamp,
    /// Bytes per second this host was seen sending to `dest` while learning
    /// (or at its last alert): its known habit.
    known_rate: f64,
    /// The service of the largest contribution.
    svc: Service,
    largest: u64,
    flows: u64,
    alerted: bool,
}

#[derive(Debug, Clone, Default)]
struct HostState {
    /// Bytes pushed on connections the host opened.
    base: VolumeBaseline,
    win: WindowedVolume,
    /// No new burst alert before this time (the window has slid past).
    quiet_until: Timestamp,
    /// Bytes served on connections outside peers opened: judged apart.
    served: Served,
    dests: Vec<Accumulation>,
    ftp_peers: Vec<(IpAddr, Timestamp)>,
}

impl HostState {
    fn is_ftp_peer(&self, peer: IpAddr, now: Timestamp) -> bool {
        self.ftp_peers
            .iter()
            .any(|(p, at)| *p == peer && now.micros_since(*at) <= FTP_PEER_SECS * 1_000_000)
    }

    fn note_ftp_peer(&mut self, peer: IpAddr, now: Timestamp) {
        if let Some(e) = self.ftp_peers.iter_mut().find(|(p, _)| *p == peer) {
            e.1 = e.1.max(now);
        } else if self.ftp_peers.len() < MAX_FTP_PEERS {
            self.ftp_peers.push((peer, now));
        } else if let Some(oldest) = self.ftp_peers.iter_mut().min_by_key(|(_, at)| *at) {
            *oldest = (peer, now);
        }
    }
}

/// What a host serves to outside clients: its own baseline and window.
#[derive(Debug, Clone, Default)]
struct Served {
    base: VolumeBaseline,
    win: WindowedVolume,
    quiet_until: Timestamp,
}

/// Whether the host is the side that asked for this flow's bytes to move:
/// it opened the flow, or it is an active-mode FTP data connection (the
/// outside server connects from port 20 because the host asked it to
/// over its own control connection).
fn pushed_by(host: IpAddr, rec: &FlowRecord) -> bool {
    host == rec.client || (rec.proto == 6 && rec.client_port == 20)
}

fn decay(x: f64, from: Timestamp, to: Timestamp, tau_secs: u64) -> f64 {
    let dt = to.micros_since(from) as f64 / 1e6;
    let v = x * (-dt / tau_secs.max(1) as f64).exp();
    if v.is_finite() {
        v.max(0.0)
    } else {
        0.0
    }
}

/// ATT&CK technique by the protocol the data left over.
fn mitre_for(app: &str) -> Mitre {
    let technique = match app {
        // Exfiltration Over Asymmetric Encrypted Non-C2 Protocol.
        "HTTPS" | "SSH" => "T1048.002",
        // Exfiltration Over Unencrypted Non-C2 Protocol.
        "HTTP" | "FTP" | "DNS" | "SMTP" | "SMB" | "NFS" | "rsync" => "T1048.003",
        // Exfiltration Over Alternative Protocol.
        _ => "T1048",
    };
    Mitre {
        tactic: "TA0010",
        technique,
    }
}

/// One host's learned habits in the state file: its volume baseline and
/// what it was seen sending to which destination. Open windows and
/// accumulations are evidence about now and start afresh.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    last_seen_us: i64,
    /// The pushed-bytes baseline. In a file written before pushed and
    /// served bytes were told apart (no `served_baseline`) it learned both;
    /// it is kept as the pushed baseline (see `import_state`).
    baseline: VolumeBaseline,
    /// The served-bytes baseline; absent in older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    served_baseline: Option<VolumeBaseline>,
    /// (destination, learned bytes per second), largest first.
    known_destinations: Vec<(IpAddr, f64)>,
}

/// See the module documentation.
pub struct ExfiltrationDetector {
    cfg: ExfiltrationConfig,
    params: VolumeParams,
    served_params: VolumeParams,
    allow: Vec<IpNet>,
    hosts: HostTable<IpAddr, HostState>,
}

impl ExfiltrationDetector {
    /// A detector with the given settings (bad `allow` entries are skipped;
    /// `check-config` reports them).
    pub fn new(cfg: ExfiltrationConfig) -> Self {
        let allow = cfg.allow.iter().filter_map(|s| parse_net(s)).collect();
        let hosts = HostTable::new(cfg.max_hosts);
        ExfiltrationDetector {
            params: cfg.params(),
            served_params: cfg.served_params(),
            cfg,
            allow,
            hosts,
        }
    }

    /// Hosts dropped at the memory bound.
    pub fn evicted(&self) -> u64 {
        self.hosts.evicted()
    }
}

impl Detector for ExfiltrationDetector {
    fn name(&self) -> &'static str {
        "exfiltration"
    }

    fn bounds(&self, out: &mut dyn FnMut(Bound)) {
        out(self.hosts.bound("hosts", "max_hosts"));
        let most = |f: fn(&HostState) -> usize| self.hosts.iter().map(|(_, s)| f(s)).max();
        out(Bound {
            map: "destinations per host",
            key: "max_destinations",
            len: most(|s| s.dests.len()).unwrap_or(0),
            cap: self.cfg.max_destinations.max(1),
        });
        out(Bound {
            map: "FTP peers per host",
            key: "",
            len: most(|s| s.ftp_peers.len()).unwrap_or(0),
            cap: MAX_FTP_PEERS,
        });
    }

    fn persists_state(&self) -> bool {
        true
    }

    fn export_state(&self, out: &mut dyn FnMut(IpAddr, serde_json::Value)) {
        for (host, seen, st) in self.hosts.iter_seen() {
            let mut known: Vec<(IpAddr, f64)> = st
                .dests
                .iter()
                .filter(|d| d.known_rate > 0.0)
                .map(|d| (d.dest, d.known_rate))
                .collect();
            known.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let e = HostEntry {
                last_seen_us: seen.micros(),
                baseline: st.base,
                served_baseline: Some(st.served.base),
                known_destinations: known,
            };
            out(*host, entry_value(&e));
        }
    }

    fn import_state(&mut self, host: IpAddr, entry: serde_json::Value) -> Result<(), StateError> {
        let e: HostEntry = parse_entry(entry)?;
        if !e.baseline.is_sane() || e.served_baseline.is_some_and(|b| !b.is_sane()) {
            return Err(StateError::Invalid("volume baseline out of range".into()));
        }
        // An entry from before pushed and served bytes were told apart has
        // one baseline of both. It becomes the pushed baseline: for a host
        // that only opens connections (most hosts) it is exactly that; for
        // a server it is too high (it counted what it served) until the
        // served-free windows wear it down, which errs towards the old
        // behaviour rather than relearning every host from nothing. The
        // served baseline then starts empty: served bytes are judged on
        // their floor until it learns.
        let served = Served {
            base: e.served_baseline.unwrap_or_default(),
            ..Served::default()
        };
        let seen = Timestamp::from_micros(e.last_seen_us);
        let dests = e
            .known_destinations
            .into_iter()
            .filter(|(_, rate)| rate.is_finite() && *rate > 0.0 && *rate < 1e15)
            .take(self.cfg.max_destinations.max(1))
            .map(|(dest, known_rate)| Accumulation {
                dest,
                sent: 0.0,
                received: 0.0,
                at: seen,
                since: seen,
                known_rate,
                svc: Service {
                    port: 0,
                    proto: 0,
                    app: AppProto::Unknown,
                },
                largest: 0,
                flows: 0,
                alerted: false,
            })
            .collect();
        let st = HostState {
            base: e.baseline,
            served,
            dests,
            ..HostState::default()
        };
        self.hosts.restore(host, seen, st);
        Ok(())
    }

    /// Registered [`crate::Perspective::InsideHost`]: `host` is inside,
    /// either end; only flows with an outside peer carry data out.
    fn on_flow(&mut self, host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        let peer = if host == rec.client {
            rec.server
        } else {
            rec.client
        };
        if cx.home.contains(peer) || self.allow.iter().any(|n| n.contains(&peer)) {
            return;
        }
        let (sent, received) = if host == rec.client {
            (rec.new_bytes_to_server(), rec.new_bytes_to_client())
        } else {
            (rec.new_bytes_to_client(), rec.new_bytes_to_server())
        };
        if sent == 0 && received == 0 {
            return;
        }
        let now = rec.last_seen;
        let learning = cx.learning(self.cfg.learning_secs);
        let p = self.params;
        let sp = self.served_params;
        let cfg = &self.cfg;
        let st = self.hosts.touch(host, now, HostState::default);
        if let Some(closed) = st.win.advance(now, &p) {
            st.base.learn(closed, now, &p, learning);
        }
        if let Some(closed) = st.served.win.advance(now, &sp) {
            st.served.base.learn(closed, now, &sp, learning);
        }
        let svc = Service::of(rec);
        // An FTP control connection vouches for the data connections with
        // that peer: on port 21, or wherever the classifier found FTP.
        let ftp_control = rec.server_port == 21 || rec.app_proto == AppProto::Ftp;
        if rec.proto == 6 && host == rec.client && ftp_control {
            st.note_ftp_peer(peer, now);
        }
        if !pushed_by(host, rec) {
            // Served: an outside client opened this flow. Its own window
            // and baseline, no per-destination accumulation.
            if sent > 0 {
                st.served.win.add(peer, svc, sent, received);
            }
            if !learning {
                judge_served(host, &mut st.served, now, cfg, &sp, cx);
            }
            return;
        }
        if sent > 0 {
            st.win.add(peer, svc, sent, received);
        }
        let tau = cfg.slow_horizon_secs;
        let idx = match st.dests.iter().position(|d| d.dest == peer) {
            Some(i) => i,
            None => {
                let fresh = Accumulation {
                    dest: peer,
                    sent: 0.0,
                    received: 0.0,
                    at: now,
                    since: now,
                    known_rate: 0.0,
                    svc,
                    largest: 0,
                    flows: 0,
                    alerted: false,
                };
                if st.dests.len() < cfg.max_destinations.max(1) {
                    st.dests.push(fresh);
                    st.dests.len() - 1
                } else {
                    // Make room: the destination that matters least goes,
                    // by what it carries now or its learned habit.
                    let weight = |a: &Accumulation| {
                        decay(a.sent, a.at, now, tau).max(a.known_rate * tau as f64)
                    };
                    let victim = st
                        .dests
                        .iter()
                        .enumerate()
                        .min_by(|(_, a), (_, b)| weight(a).total_cmp(&weight(b)))
                        .map(|(i, _)| i)
                        .unwrap_or(0);
                    st.dests[victim] = fresh;
                    victim
                }
            }
        };
        let slow_floor = cfg.slow_min_bytes as f64;
        {
            let d = &mut st.dests[idx];
            d.sent = decay(d.sent, d.at, now, tau);
            d.received = decay(d.received, d.at, now, tau);
            d.at = d.at.max(now);
            if d.sent < slow_floor / 100.0 {
                // What was left of an earlier episode has faded: a new one.
                d.since = now;
                d.alerted = false;
            }
            d.sent += sent as f64;
            d.received += received as f64;
            d.flows = d.flows.saturating_add(u64::from(rec.is_first_report()));
            if sent > d.largest {
                (d.largest, d.svc) = (sent, svc);
            }
            if learning {
                let elapsed =
                    (now.micros_since(cx.capture_start) as f64 / 1e6).max(cfg.window_secs as f64);
                d.known_rate = d.known_rate.max(d.sent / elapsed);
            }
        }
        if learning {
            return;
        }

        // Burst.
        if now >= st.quiet_until {
            let observed = st.win.sliding(now, &p);
            let j = st.base.judge(observed, now, &p);
            let top = if j.exceeded {
                st.win.top_peers(now, &p)
            } else {
                Vec::new()
            };
            let dominant = dominant(&top, observed);
            // One way, like an upload: the dominant destination's flows, or
            // all the named ones when none dominates.
            let (out_b, back_b) = match dominant {
                Some(d) => (d.bytes, d.reverse),
                None => top
                    .iter()
                    .fold((0u64, 0u64), |(a, b), t| (a + t.bytes, b + t.reverse)),
            };
            if j.exceeded && out_b as f64 >= cfg.min_asymmetry * back_b as f64 {
                let ftp = dominant.is_some_and(|d| st.is_ftp_peer(d.peer, now));
                let finding = burst_finding(host, now, cfg, &p, &j, &top, dominant, ftp, false);
                let mut alert = finding.into_alert(cx);
                if let Some(d) = dominant {
                    alert.dest_port = Some(d.port);
                    alert.proto = Some(proto_name(d.proto).into_owned());
                    // The dominant destination's accumulation is this
                    // finding: slow alerts it again only if it triples.
                    if let Some(acc) = st.dests.iter_mut().find(|a| a.dest == d.peer) {
                        acc.known_rate = acc.known_rate.max(acc.sent / tau.max(1) as f64);
                        acc.alerted = true;
                    }
                }
                cx.raise(alert);
                st.base.absorb_alert(observed, now, &p);
                st.quiet_until = now.plus_secs(cfg.window_secs);
            }
        }

        // Slow.
        let typical = st.base.typical();
        let ftp = st.is_ftp_peer(peer, now);
        let d = &mut st.dests[idx];
        let span = now.micros_since(d.since) / 1_000_000;
        let norm_total = typical * tau as f64 / cfg.window_secs.max(1) as f64;
        let norm_dest = d.known_rate * tau as f64;
        let threshold = slow_floor
            .max(cfg.slow_factor * norm_total)
            .max(cfg.slow_factor * norm_dest);
        if d.alerted
            || d.sent < threshold
            || span < cfg.slow_min_span_secs
            || d.sent < cfg.min_asymmetry * d.received
        {
            return;
        }
        d.alerted = true;
        d.known_rate = d.known_rate.max(d.sent / tau.max(1) as f64);
        let app = app_protocol(d.svc, ftp);
        let mut evidence = BTreeMap::new();
        evidence.insert("accumulated_bytes_sent", json!(d.sent.round() as u64));
        evidence.insert(
            "accumulated_bytes_received",
            json!(d.received.round() as u64),
        );
        evidence.insert("since", json!(d.since));
        evidence.insert("span_secs", json!(span));
        evidence.insert("flows", json!(d.flows));
        evidence.insert("horizon_secs", json!(tau));
        evidence.insert("threshold_bytes", json!(threshold.round() as u64));
        evidence.insert("slow_min_bytes", json!(cfg.slow_min_bytes));
        evidence.insert("host_typical_window_bytes", json!(typical.round() as u64));
        evidence.insert(
            "host_norm_over_horizon_bytes",
            json!(norm_total.round() as u64),
        );
        evidence.insert(
            "learned_bytes_to_destination_over_horizon",
            json!(norm_dest.round() as u64),
        );
        evidence.insert("slow_factor", json!(cfg.slow_factor));
        evidence.insert("app_protocol", json!(app));
        evidence.insert("app_proto", json!(d.svc.app));
        evidence.insert("dest_port", json!(d.svc.port));
        evidence.insert("initiative", json!("pushed"));
        let norm = norm_total.max(norm_dest);
        let versus = if norm < 1.0 {
            "with no earlier traffic to compare".to_string()
        } else {
            format!(
                "{:.0}x its norm of {} per {} h",
                d.sent / norm,
                human(norm),
                tau / 3600
            )
        };
        let description = format!(
            "{host} has sent {} to {} ({app}, {}/{}) over {} min, {versus}",
            human(d.sent),
            d.dest,
            d.svc.port,
            proto_name(d.svc.proto),
            span / 60,
        );
        let severity = if d.sent >= 5.0 * threshold { 1 } else { 2 };
        let (dest, port, proto) = (d.dest, d.svc.port, d.svc.proto);
        let finding = Finding {
            ts: now,
            category: Category::EXFILTRATION,
            signature: "exfiltration.slow",
            severity,
            description,
            // Data Transfer Size Limits: kept small to stay under thresholds.
            mitre: Mitre {
                tactic: "TA0010",
                technique: "T1030",
            },
            src: host,
            dest: Some(dest),
            ports: None,
            proto: Some(proto),
            evidence,
            community_id: None,
            app_proto: None,
            outside: Some(dest),
        };
        let mut alert = finding.into_alert(cx);
        alert.dest_port = Some(port);
        cx.raise(alert);
    }
}

/// Served bytes: a burst to one outside client that connected to the host,
/// above the served floor and the host's served baseline, mostly one way.
fn judge_served(
    host: IpAddr,
    st: &mut Served,
    now: Timestamp,
    cfg: &ExfiltrationConfig,
    sp: &VolumeParams,
    cx: &mut DetectCx<'_>,
) {
    if now < st.quiet_until {
        return;
    }
    let observed = st.win.sliding(now, sp);
    let j = st.base.judge(observed, now, sp);
    if !j.exceeded {
        return;
    }
    let top = st.win.top_peers(now, sp);
    // Many visitors each taking their share is what a server is for; one
    // client taking most of it is a dump.
    let Some(d) = dominant(&top, observed) else {
        return;
    };
    if (d.bytes as f64) < cfg.min_asymmetry * d.reverse as f64 {
        return;
    }
    let finding = burst_finding(host, now, cfg, sp, &j, &top, Some(d), false, true);
    let mut alert = finding.into_alert(cx);
    // The service is the host's own port; the client's is ephemeral.
    alert.src_port = Some(d.port);
    alert.proto = Some(proto_name(d.proto).into_owned());
    cx.raise(alert);
    st.base.absorb_alert(observed, now, sp);
    st.quiet_until = now.plus_secs(cfg.window_secs);
}

#[allow(
    clippy::too_many_arguments,
    reason = "one finding's facts, each distinct"
)]
fn burst_finding(
    host: IpAddr,
    now: Timestamp,
    cfg: &ExfiltrationConfig,
    p: &VolumeParams,
    j: &crate::volume::Judgement,
    top: &[PeerBytes],
    dominant: Option<PeerBytes>,
    ftp: bool,
    served: bool,
) -> Finding {
    let app = dominant.map_or("other", |d| {
        let svc = Service {
            port: d.port,
            proto: d.proto,
            app: d.app,
        };
        app_protocol(svc, ftp)
    });
    let mut evidence = j.evidence(
        p,
        "bytes_sent_outside",
        "top_destinations",
        Some("bytes_received"),
        top,
    );
    evidence.insert("app_protocol", json!(app));
    evidence.insert("min_asymmetry", json!(cfg.min_asymmetry));
    evidence.insert(
        "initiative",
        json!(if served { "served" } else { "pushed" }),
    );
    let to = match dominant {
        Some(d) if served => format!(
            ", {} of it to {}, a client that connected to its {app} service on {}/{}",
            human(d.bytes as f64),
            d.peer,
            d.port,
            proto_name(d.proto)
        ),
        Some(d) => format!(
            ", {} of it to {} ({app}, {}/{})",
            human(d.bytes as f64),
            d.peer,
            d.port,
            proto_name(d.proto)
        ),
        None => format!(" spread over {} destinations", top.len()),
    };
    let what = if served { "served" } else { "sent" };
    let description = format!(
        "{host} {what} {} to outside hosts within {} s{to}: {} (threshold {})",
        human(j.observed as f64),
        cfg.window_secs,
        versus_typical(j.observed as f64, j),
        human(j.threshold),
    );
    Finding {
        ts: now,
        category: Category::EXFILTRATION,
        signature: "exfiltration.volume",
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
        outside: dominant.map(|d| d.peer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::run_at;
    use tapsentry_testkit::FlowRecordBuilder;
    use tapsentry_types::AppProto;

    /// A record of `up` bytes sent by `c` to `s:sp` ending at `at`.
    fn upload(c: &str, s: &str, sp: u16, up: u64, down: u64, at: i64) -> FlowRecord {
        FlowRecordBuilder::tcp(c, 40_000 + (at % 20_000) as u16, s, sp)
            .at(at)
            .bytes(up, down)
            .build()
    }

    /// A workstation browsing: ~20 kB up per minute to varying sites, for
    /// `minutes` from `from`.
    fn browse(
        d: &mut ExfiltrationDetector,
        host: &str,
        from: i64,
        minutes: i64,
    ) -> Vec<tapsentry_types::Alert> {
        let mut out = Vec::new();
        for m in 0..minutes {
            let at = from + m * 60;
            let site = format!("192.0.2.{}", 10 + (m % 30));
            let up = 2_000 + ((m * 7919) % 5) as u64 * 800;
            out.extend(run_at(
                d,
                host,
                &upload(host, &site, 443, up, 80_000, at),
                at,
            ));
        }
        out
    }

    #[test]
    fn a_workstation_uploading_hundreds_of_mb_alerts_naming_the_destination() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        assert!(browse(&mut d, "10.0.0.5", 0, 120).is_empty());
        // 120 MB in 4 minutes, reported as interim records every 60 s.
        let mut alerts = Vec::new();
        for i in 1..=4u64 {
            let mut r = upload(
                "10.0.0.5",
                "203.0.113.66",
                443,
                30_000_000 * i,
                10_000 * i,
                7200 + 60 * i as i64,
            );
            r.client_port = 51_000;
            r.reported_to_server.bytes = 30_000_000 * (i - 1);
            r.reported_to_server.packets = u64::from(i > 1);
            alerts.extend(run_at(&mut d, "10.0.0.5", &r, 7200 + 60 * i as i64));
        }
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.alert.signature, "exfiltration.volume");
        assert_eq!(a.src_ip.to_string(), "10.0.0.5");
        assert_eq!(a.dest_ip.unwrap().to_string(), "203.0.113.66");
        assert_eq!(a.dest_port, Some(443));
        assert_eq!(a.evidence["app_protocol"], "HTTPS");
        assert_eq!(a.alert.mitre.technique, "T1048.002");
        assert!(a.evidence["bytes_sent_outside"].as_u64().unwrap() >= 50_000_000);
        assert_eq!(a.evidence["initiative"], "pushed");
        assert!(a.evidence["baseline_typical_bytes"].as_u64().unwrap() < 100_000);
        assert!(a.response.is_some());
    }

    #[test]
    fn the_protocol_is_named_from_the_verdict_not_the_port() {
        // SSH on 443 (a tunnel dressed as HTTPS) and HTTP on 8888: the
        // port alone would say HTTPS and "other".
        for (port, app, name, technique) in [
            (443, AppProto::Ssh, "SSH", "T1048.002"),
            (8888, AppProto::Http, "HTTP", "T1048.003"),
            (8888, AppProto::Unknown, "other", "T1048"),
        ] {
            let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
            assert!(browse(&mut d, "10.0.0.5", 0, 120).is_empty());
            let mut r = upload("10.0.0.5", "203.0.113.66", port, 120_000_000, 10_000, 7300);
            r.app_proto = app;
            let a = run_at(&mut d, "10.0.0.5", &r, 7300);
            assert_eq!(a.len(), 1, "{a:#?}");
            assert_eq!(a[0].evidence["app_protocol"], name, "{app}");
            assert_eq!(
                a[0].evidence["top_destinations"][0]["app_proto"],
                app.as_str()
            );
            assert_eq!(a[0].alert.mitre.technique, technique, "{app}");
            assert!(
                a[0].alert
                    .description
                    .contains(&format!("({name}, {port}/TCP)")),
                "{}",
                a[0].alert.description
            );
        }
    }

    #[test]
    fn nothing_alerts_while_learning_or_below_the_floor() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        let r = upload("10.0.0.5", "203.0.113.66", 443, 500_000_000, 0, 60);
        assert!(run_at(&mut d, "10.0.0.5", &r, 60).is_empty(), "learning");
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        assert!(browse(&mut d, "10.0.0.5", 0, 60).is_empty());
        let r = upload("10.0.0.5", "203.0.113.66", 443, 49_000_000, 0, 4000);
        assert!(
            run_at(&mut d, "10.0.0.5", &r, 4000).is_empty(),
            "below the floor"
        );
        let r = upload("10.0.0.5", "203.0.113.66", 443, 1_100_000, 0, 4010);
        assert_eq!(
            run_at(&mut d, "10.0.0.5", &r, 4010).len(),
            1,
            "at the floor"
        );
    }

    #[test]
    fn hourly_backups_learned_stay_quiet() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        let mut alerts = Vec::new();
        for h in 0..8i64 {
            alerts.extend(browse(&mut d, "10.0.0.20", h * 3600, 10));
            let at = h * 3600 + 600;
            let up = 90_000_000 + (h as u64 % 3) * 30_000_000;
            alerts.extend(run_at(
                &mut d,
                "10.0.0.20",
                &upload("10.0.0.20", "198.51.100.200", 443, up, 50_000, at),
                at,
            ));
            alerts.extend(browse(&mut d, "10.0.0.20", h * 3600 + 660, 49));
        }
        assert!(alerts.is_empty(), "{alerts:#?}");
    }

    #[test]
    fn allow_listed_destinations_are_not_counted() {
        let cfg = ExfiltrationConfig {
            allow: vec!["203.0.113.0/24".into()],
            ..ExfiltrationConfig::default()
        };
        let mut d = ExfiltrationDetector::new(cfg);
        assert!(browse(&mut d, "10.0.0.5", 0, 60).is_empty());
        let r = upload("10.0.0.5", "203.0.113.66", 443, 500_000_000, 0, 4000);
        assert!(run_at(&mut d, "10.0.0.5", &r, 4000).is_empty());
    }

    #[test]
    fn slow_trickle_to_one_destination_alerts_once() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        assert!(browse(&mut d, "10.0.0.7", 0, 40).is_empty());
        let mut alerts = Vec::new();
        // 2.5 MB every 5 minutes (30 MB/h), each under any burst threshold.
        for i in 0..36i64 {
            let at = 2400 + i * 300;
            alerts.extend(browse(&mut d, "10.0.0.7", at, 1));
            let r = upload("10.0.0.7", "192.0.2.222", 443, 2_500_000, 5_000, at + 30);
            alerts.extend(run_at(&mut d, "10.0.0.7", &r, at + 30));
        }
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.alert.signature, "exfiltration.slow");
        assert_eq!(a.dest_ip.unwrap().to_string(), "192.0.2.222");
        assert_eq!(a.alert.mitre.technique, "T1030");
        assert!(a.evidence["span_secs"].as_u64().unwrap() >= 1800);
        let sent = a.evidence["accumulated_bytes_sent"].as_u64().unwrap();
        assert!((20_000_000..30_000_000).contains(&sent), "{sent}");
    }

    #[test]
    fn a_long_video_call_is_not_slow_exfiltration() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        assert!(browse(&mut d, "10.0.0.7", 0, 40).is_empty());
        let mut alerts = Vec::new();
        // One hour at 2 Mbit/s each way: as much received as sent.
        for i in 0..60i64 {
            let at = 2400 + i * 60;
            let r = upload(
                "10.0.0.7",
                "198.51.100.50",
                3478,
                15_000_000,
                15_000_000,
                at,
            );
            alerts.extend(run_at(&mut d, "10.0.0.7", &r, at));
        }
        assert!(alerts.is_empty(), "{alerts:#?}");
    }

    #[test]
    fn ftp_data_connections_are_attributed_to_ftp() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        assert!(browse(&mut d, "10.0.0.8", 0, 60).is_empty());
        let ctl = upload("10.0.0.8", "198.51.100.9", 21, 2_000, 3_000, 3700);
        assert!(run_at(&mut d, "10.0.0.8", &ctl, 3700).is_empty());
        // Passive mode: the data connection goes to a high port of the server.
        let data = upload(
            "10.0.0.8",
            "198.51.100.9",
            50_123,
            200_000_000,
            100_000,
            3760,
        );
        let a = run_at(&mut d, "10.0.0.8", &data, 3760);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].evidence["app_protocol"], "FTP");
        assert_eq!(a[0].alert.mitre.technique, "T1048.003");
        assert_eq!(a[0].alert.severity, 2);
        // The control connection on 2121, named FTP by the classifier: its
        // passive data connections are FTP's too.
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        assert!(browse(&mut d, "10.0.0.8", 0, 60).is_empty());
        let mut ctl = upload("10.0.0.8", "198.51.100.9", 2121, 2_000, 3_000, 3700);
        ctl.app_proto = AppProto::Ftp;
        assert!(run_at(&mut d, "10.0.0.8", &ctl, 3700).is_empty());
        let a = run_at(&mut d, "10.0.0.8", &data, 3760);
        assert_eq!(a[0].evidence["app_protocol"], "FTP");
        // Active mode: the server connects back from port 20.
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        assert!(browse(&mut d, "10.0.0.8", 0, 60).is_empty());
        let mut r = upload(
            "198.51.100.9",
            "10.0.0.8",
            40_001,
            100_000,
            300_000_000,
            3760,
        );
        r.client_port = 20;
        let a = run_at(&mut d, "10.0.0.8", &r, 3760);
        assert_eq!(a.len(), 1, "{a:#?}");
        assert_eq!(a[0].dest_ip.unwrap().to_string(), "198.51.100.9");
        assert_eq!(a[0].dest_port, Some(20));
        assert_eq!(a[0].evidence["app_protocol"], "FTP");
    }

    #[test]
    fn learned_habits_survive_a_restart_through_the_state_file() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        // Learned: browsing, and a 90 MB backup to 198.51.100.200.
        browse(&mut d, "10.0.0.20", 0, 10);
        let r = upload("10.0.0.20", "198.51.100.200", 443, 90_000_000, 50_000, 600);
        assert!(run_at(&mut d, "10.0.0.20", &r, 600).is_empty());
        browse(&mut d, "10.0.0.20", 660, 40);
        let mut saved = Vec::new();
        d.export_state(&mut |h, v| saved.push((h, v)));
        assert_eq!(saved.len(), 1);
        let text = serde_json::to_string(&saved[0].1).unwrap();
        assert!(text.contains("198.51.100.200"), "{text}");

        let mut again = ExfiltrationDetector::new(ExfiltrationConfig::default());
        for (h, v) in saved.clone() {
            again.import_state(h, v).unwrap();
        }
        let mut resaved = Vec::new();
        again.export_state(&mut |h, v| resaved.push((h, v)));
        assert_eq!(saved, resaved);
        // The restarted detector knows the backup's size: the next one is
        // quiet, though the process never saw one.
        let r = upload(
            "10.0.0.20",
            "198.51.100.200",
            443,
            120_000_000,
            50_000,
            4200,
        );
        assert!(run_at(&mut again, "10.0.0.20", &r, 4200).is_empty());
        // Without the state it would have alerted.
        let mut fresh = ExfiltrationDetector::new(ExfiltrationConfig::default());
        browse(&mut fresh, "10.0.0.20", 1800, 40);
        assert_eq!(run_at(&mut fresh, "10.0.0.20", &r, 4200).len(), 1);
    }

    /// `bytes` served by `server:sp` to the outside client `visitor` that
    /// connected to it (the visitor is the flow's client), ending at `at`.
    fn served(server: &str, sp: u16, visitor: &str, bytes: u64, at: i64) -> FlowRecord {
        FlowRecordBuilder::tcp(visitor, 40_000 + (at % 20_000) as u16, server, sp)
            .at(at)
            .bytes(bytes / 100 + 600, bytes)
            .build()
    }

    /// A public web server's day: a page or two a minute to ever-new
    /// visitors (`per_minute` bytes in all), for `minutes` from `from`.
    fn visitors(
        d: &mut ExfiltrationDetector,
        server: &str,
        from: i64,
        minutes: i64,
        per_minute: u64,
    ) -> Vec<tapsentry_types::Alert> {
        let mut out = Vec::new();
        for m in 0..minutes {
            let at = from + m * 60;
            let v = format!("198.18.{}.{}", (at / 60 / 250) % 250, (at / 60) % 250);
            out.extend(run_at(
                d,
                server,
                &served(server, 443, &v, per_minute, at),
                at,
            ));
        }
        out
    }

    #[test]
    fn a_web_server_serving_installers_to_visitors_raises_nothing() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        let web = "10.0.1.10";
        assert!(visitors(&mut d, web, 0, 120, 400_000).is_empty());
        // 200 MB of installers: 150 MB to one visitor within 5 minutes (its
        // download reported as interim records), then 50 MB to another.
        let mut alerts = Vec::new();
        for i in 1..=5u64 {
            let at = 7200 + 60 * i as i64;
            let mut r = served(web, 443, "198.51.100.77", 30_000_000 * i, at);
            r.client_port = 52_000;
            r.reported_to_client.bytes = 30_000_000 * (i - 1);
            r.reported_to_client.packets = u64::from(i > 1);
            alerts.extend(run_at(&mut d, web, &r, at));
            alerts.extend(visitors(&mut d, web, at + 1, 1, 400_000));
        }
        let r = served(web, 443, "198.51.100.78", 50_000_000, 7560);
        alerts.extend(run_at(&mut d, web, &r, 7560));
        assert!(alerts.is_empty(), "{alerts:#?}");
    }

    #[test]
    fn a_server_trickling_on_connections_it_opened_is_slow_exfiltration() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        let web = "10.0.1.10";
        // Busy serving: 6 MB a minute to visitors (60 MB per window), which
        // is no upload and must not become the norm its own pushes meet.
        // What it opens itself is small: update checks and the like. After
        // an hour it sends 400 MB over 6 hours to one outside host, on
        // connections it opens every 5 minutes.
        let mut alerts = Vec::new();
        for m in 0..420i64 {
            let at = m * 60;
            alerts.extend(visitors(&mut d, web, at, 1, 6_000_000));
            if m < 60 || m % 5 == 0 {
                alerts.extend(browse(&mut d, web, at + 10, 1));
            }
            if m >= 60 && m % 5 == 0 {
                let r = upload(web, "203.0.113.99", 443, 5_555_555, 20_000, at + 30);
                alerts.extend(run_at(&mut d, web, &r, at + 30));
            }
        }
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.alert.signature, "exfiltration.slow");
        assert_eq!(a.src_ip.to_string(), web);
        assert_eq!(a.dest_ip.unwrap().to_string(), "203.0.113.99");
        assert_eq!(a.evidence["initiative"], "pushed");
        // Its norm is what it pushes, not the 60 MB windows it serves.
        assert!(a.evidence["host_typical_window_bytes"].as_u64().unwrap() < 20_000_000);
    }

    #[test]
    fn a_vpn_concentrators_tunnelled_downloads_raise_nothing() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        let vpn = "10.0.1.5";
        // Remote workers keep their tunnels up (they opened them: WireGuard
        // over UDP 51820, and IPsec ESP); file pulls go down the tunnel.
        let tunnel = |remote: &str, down: u64, at: i64| -> FlowRecord {
            if remote.ends_with(".9") {
                FlowRecordBuilder::new(remote, 0, vpn, 0, 50)
                    .at(at)
                    .bytes(down / 40 + 100, down)
                    .build()
            } else {
                FlowRecordBuilder::udp(remote, 51_820, vpn, 51_820)
                    .at(at)
                    .bytes(down / 40 + 100, down)
                    .build()
            }
        };
        let remotes = ["192.0.2.7", "192.0.2.8", "192.0.2.9"];
        let mut alerts = Vec::new();
        for m in 0..60i64 {
            for r in remotes {
                let at = m * 60;
                alerts.extend(run_at(&mut d, vpn, &tunnel(r, 3_000, at), at));
            }
        }
        assert!(alerts.is_empty(), "{alerts:#?}");
        // Each remote worker pulls 400 MB from the file server in turn, 100 MB
        // a minute through the tunnel, an hour apart.
        for (k, r) in remotes.iter().enumerate() {
            for i in 0..4i64 {
                let at = 3600 + k as i64 * 3600 + i * 60;
                alerts.extend(run_at(&mut d, vpn, &tunnel(r, 100_000_000, at), at));
            }
        }
        assert!(alerts.is_empty(), "{alerts:#?}");
    }

    #[test]
    fn a_dump_served_to_one_client_still_alerts_as_served() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        let web = "10.0.1.10";
        assert!(visitors(&mut d, web, 0, 120, 400_000).is_empty());
        // A webshell download: 1.2 GB to one client within 8 minutes.
        let mut alerts = Vec::new();
        for i in 1..=8u64 {
            let at = 7200 + 60 * i as i64;
            let mut r = served(web, 443, "198.51.100.66", 150_000_000 * i, at);
            r.client_port = 53_000;
            r.reported_to_client.bytes = 150_000_000 * (i - 1);
            r.reported_to_client.packets = u64::from(i > 1);
            alerts.extend(run_at(&mut d, web, &r, at));
        }
        assert_eq!(alerts.len(), 1, "{alerts:#?}");
        let a = &alerts[0];
        assert_eq!(a.alert.signature, "exfiltration.volume");
        assert_eq!(a.src_ip.to_string(), web);
        assert_eq!(a.dest_ip.unwrap().to_string(), "198.51.100.66");
        assert_eq!(a.src_port, Some(443));
        assert_eq!(a.evidence["initiative"], "served");
        assert_eq!(a.evidence["min_bytes"], 1_000_000_000u64);
        assert!(a.evidence["bytes_sent_outside"].as_u64().unwrap() >= 1_000_000_000);
    }

    #[test]
    fn a_state_file_from_before_the_split_keeps_its_baseline_as_the_pushed_one() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        browse(&mut d, "10.0.0.20", 0, 10);
        let r = upload("10.0.0.20", "198.51.100.200", 443, 90_000_000, 50_000, 600);
        assert!(run_at(&mut d, "10.0.0.20", &r, 600).is_empty());
        browse(&mut d, "10.0.0.20", 660, 40);
        let mut saved = Vec::new();
        d.export_state(&mut |h, v| saved.push((h, v)));
        // The entry as the previous version wrote it: one baseline, no
        // served one.
        let (host, mut old) = saved.pop().unwrap();
        let served = old
            .as_object_mut()
            .unwrap()
            .remove("served_baseline")
            .expect("the new format writes a served baseline");
        assert_eq!(
            served,
            serde_json::to_value(VolumeBaseline::default()).unwrap()
        );
        let mut again = ExfiltrationDetector::new(ExfiltrationConfig::default());
        again.import_state(host, old.clone()).unwrap();
        let mut resaved = Vec::new();
        again.export_state(&mut |h, v| resaved.push((h, v)));
        assert_eq!(resaved[0].1["baseline"], old["baseline"]);
        // It is in force as the pushed baseline: the next backup is quiet,
        // where a host with no history alerts (see the restart test).
        let r = upload(
            "10.0.0.20",
            "198.51.100.200",
            443,
            120_000_000,
            50_000,
            4200,
        );
        assert!(run_at(&mut again, "10.0.0.20", &r, 4200).is_empty());
    }

    #[test]
    fn damaged_state_entries_are_refused() {
        let mut d = ExfiltrationDetector::new(ExfiltrationConfig::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for bad in [
            serde_json::json!({"last_seen_us": 1}),
            serde_json::json!([1, 2]),
            serde_json::json!({"last_seen_us": 1, "baseline": {"ewma": {"mean": 1e300, "var": 0.0, "samples": 3}, "peak": 0.0, "peak_at_us": 0}, "known_destinations": []}),
            serde_json::json!({"last_seen_us": 1, "baseline": {"ewma": {"mean": 1.0, "var": 0.0, "samples": 3}, "peak": -5.0, "peak_at_us": 0}, "known_destinations": []}),
        ] {
            assert!(d.import_state(ip, bad.clone()).is_err(), "{bad}");
        }
        assert!(d.hosts.is_empty());
    }

    #[test]
    fn state_stays_within_its_caps() {
        let cfg = ExfiltrationConfig {
            max_hosts: 10,
            max_destinations: 4,
            ..ExfiltrationConfig::default()
        };
        let mut d = ExfiltrationDetector::new(cfg);
        for i in 0..2_000i64 {
            let h = format!("10.0.{}.{}", i % 50, i % 200);
            let dst = format!("203.0.113.{}", i % 250);
            run_at(&mut d, &h, &upload(&h, &dst, 443, 1_000, 1_000, i), i);
        }
        assert!(d.hosts.len() <= 10);
        assert!(d
            .hosts
            .iter()
            .all(|(_, s)| s.dests.len() <= 4 && s.ftp_peers.len() <= MAX_FTP_PEERS));
        assert!(d.evicted() > 0);
    }
}
