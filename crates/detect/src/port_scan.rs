//! `port_scan`: hosts probing many ports or many hosts, judged by how their
//! first contacts turn out rather than by raw counts.
//!
//! # Algorithm
//!
//! For each scanner (the client of a flow) the detector remembers the first
//! contact to each (target, protocol, port) pair and whether it succeeded
//! (the responder answered with something other than a refusal) or failed
//! (refused: RST to a SYN, ICMP unreachable; or silent: no answer at all).
//!
//! * **Threshold Random Walk** (Jung, Paxson, Berger, Balakrishnan, 2004).
//!   Each first contact to a new pair multiplies a likelihood ratio by
//!   `theta1/theta0` on success or `(1-theta1)/(1-theta0)` on failure (kept
//!   as a sum of logs). A benign host succeeds with probability `theta0`
//!   (0.8), a scanner with `theta1` (0.2). Crossing `eta1 = ln(beta/alpha)`
//!   (4.6 with the defaults: four failures net of successes) with at least
//!   `min_distinct` pairs probed declares a scanner; falling to
//!   `eta0 = ln((1-beta)/(1-alpha))` declares the host benign: the walk
//!   then restarts from that floor (not from zero, which would give a busy
//!   host a fresh chance of a false alarm every few contacts). `alpha` is the false-positive and `beta` the detection
//!   probability, as in the paper. The walk is time-independent, so slow
//!   scans accumulate as long as the scanner's state is kept
//!   (`slow_window_secs` of idleness forgets it). The paper updates per new
//!   destination host; here per new (host, port) pair, which also catches
//!   vertical scans of one host.
//! * **One-way taps.** When no packet from any target of a scanner was ever
//!   seen, the walk cannot tell a scanner from any busy client (every contact
//!   looks failed), so it only decides once the scanner has received at least
//!   one answer. Scanners with no answer across [`ONE_WAY_MIN_CONTACTS`]
//!   contacts are judged by counts of failed-looking contacts: at least
//!   `vertical_ports` ports on one host, or `horizontal_hosts` hosts on one
//!   port, within `window_secs` (fast) or `slow_window_secs` (slow). A TCP
//!   client that sent an ACK after its SYN must have heard the SYN-ACK, and a
//!   UDP client that keeps sending is likely hearing back: such contacts are
//!   counted as successes even unseen, so browsers are not scanners.
//!
//! Classification: ICMP echo to many hosts is `port_scan.icmp_sweep`; one
//! host holding most pairs is `port_scan.vertical` (`dest_ip` = that host);
//! one or a few ports on many hosts is `port_scan.horizontal` (`dest_ip`
//! omitted, `dest_port` = the port when one dominates); else
//! `port_scan.mixed`. One alert per (scanner, classification) while its
//! state is kept; counting continues after the alert.
//!
//! # Who is seen where
//!
//! The scanner is always `rec.client`; each record is judged once: from the
//! client's shard when the client is inside or neither side is, otherwise
//! (an outside client) from the inside server's shard.
//!
//! **Blind spot:** an outside scanner's contacts are routed to the shards of
//! the inside hosts it touches, so with N workers its evidence is split N
//! ways and each shard sees about 1/N of a horizontal scan: thresholds are
//! reached later (about N times more hosts for the count fallback; the walk
//! needs its ~5 failures within one shard). A vertical scan of one inside
//! host lives entirely in one shard and is not affected.
//!
//! Other blind spots: TCP ACK/window scans and IP protocol scans are not
//! judged (a TCP flow starting without SYN but with ACK looks like a
//! mid-stream pickup); a scan that is entirely dropped by a firewall on a
//! two-way tap is judged by the counts, like a one-way tap (and says
//! `one_way_tap: true`); scans slower than one new contact per
//! `slow_window_secs` are forgotten between contacts.
//!
//! # Memory
//!
//! Per worker: at most `max_tracked_scanners` scanners (least recently seen
//! evicted, counted) and at most `max_pairs_per_scanner` pairs each (further
//! new pairs are counted, not stored), and at most [`MAX_PAIRS_TOTAL`]
//! pairs in all (the least recently seen scanners are evicted to stay
//! under it). A pair costs about 64 bytes, a scanner about 200 bytes plus its
//! pairs: with the defaults at most about 64 MiB of pairs per worker.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::home::parse_net;
use serde::Deserialize;
use serde_json::json;
use tapsentry_types::{
    proto_name, Alert, AlertBody, Category, FlowRecord, FlowState, Mitre, TcpFlags, Timestamp,
};

use crate::{block_response, DetectCx, Detector};

/// Contacts without a single answer after which a scanner's view is taken to
/// be one-way (a one-way tap, or everything dropped) and counts decide.
pub const ONE_WAY_MIN_CONTACTS: u64 = 10;

/// Pairs held per worker over all scanners (about 64 MiB).
pub const MAX_PAIRS_TOTAL: usize = 1_000_000;

/// Share of the pairs one host (vertical) or port (horizontal) must hold to
/// dominate a classification.
const DOMINANT_SHARE: f64 = 0.8;

/// At most this many distinct ports still reads as horizontal (e.g. 139+445).
const FEW_PORTS: usize = 3;

/// A silent non-TCP flow whose client sent at least this many packets is
/// taken to be hearing back (a probe is one or two packets, with retries).
const CHATTY_PACKETS: u64 = 4;

/// Examples of ports and targets in the evidence.
const EXAMPLES: usize = 10;

/// `[detect.port_scan]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PortScanConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// Tolerated false-positive probability of the random walk, in (0, 1).
    /// Default 0.01.
    pub alpha: f64,
    /// Wanted detection probability of the random walk, in (0, 1) and above
    /// `alpha`. Default 0.99.
    pub beta: f64,
    /// Probability that a benign host's first contact succeeds, in (0, 1).
    /// Default 0.8.
    pub theta0: f64,
    /// Probability that a scanner's first contact succeeds, in (0, 1) and
    /// below `theta0`. Default 0.2.
    pub theta1: f64,
    /// Distinct (host, port) pairs a scanner must have probed before the walk
    /// may declare it (count). Default 5.
    pub min_distinct: usize,
    /// One-way fallback: distinct failed ports on one host that make a
    /// vertical scan (count). Default 20.
    pub vertical_ports: usize,
    /// One-way fallback: distinct failed hosts on one port that make a
    /// horizontal scan (count). Default 20.
    pub horizontal_hosts: usize,
    /// One-way fallback: the fast window, in seconds of capture time.
    /// Default 600.
    pub window_secs: u64,
    /// How long contacts are remembered (the slow-scan window of the counts,
    /// and the idle time after which a scanner is forgotten), in seconds of
    /// capture time. Default 3600.
    pub slow_window_secs: u64,
    /// Scanners (client addresses) tracked per worker (memory bound; least
    /// recently seen evicted). Default 20000.
    pub max_tracked_scanners: usize,
    /// (host, port) pairs remembered per scanner (memory bound; new pairs
    /// beyond are counted only). Default 4096.
    pub max_pairs_per_scanner: usize,
    /// Addresses or CIDR networks never judged as scanners (vulnerability
    /// scanners, monitoring). Default empty.
    pub allow: Vec<String>,
}

impl Default for PortScanConfig {
    fn default() -> Self {
        PortScanConfig {
            enabled: true,
            alpha: 0.01,
            beta: 0.99,
            theta0: 0.8,
            theta1: 0.2,
            min_distinct: 5,
            vertical_ports: 20,
            horizontal_hosts: 20,
            window_secs: 600,
            slow_window_secs: 3600,
            max_tracked_scanners: 20_000,
            max_pairs_per_scanner: 4096,
            allow: Vec::new(),
        }
    }
}

fn in_unit(x: f64) -> bool {
    x.is_finite() && x > 0.0 && x < 1.0
}

impl PortScanConfig {
    /// Every problem with the settings, as (key, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut p = Vec::new();
        for (k, v) in [
            ("detect.port_scan.alpha", self.alpha),
            ("detect.port_scan.beta", self.beta),
            ("detect.port_scan.theta0", self.theta0),
            ("detect.port_scan.theta1", self.theta1),
        ] {
            if !in_unit(v) {
                p.push((k, format!("{v} must be strictly between 0 and 1")));
            }
        }
        if in_unit(self.alpha) && in_unit(self.beta) && self.beta <= self.alpha {
            p.push((
                "detect.port_scan.beta",
                format!(
                    "{} must be above alpha ({}): the detection probability must beat the false-positive rate",
                    self.beta, self.alpha
                ),
            ));
        }
        if in_unit(self.theta0) && in_unit(self.theta1) && self.theta1 >= self.theta0 {
            p.push((
                "detect.port_scan.theta1",
                format!(
                    "{} must be below theta0 ({}): scanners succeed less often than benign hosts",
                    self.theta1, self.theta0
                ),
            ));
        }
        for (k, v) in [
            ("detect.port_scan.min_distinct", self.min_distinct),
            ("detect.port_scan.vertical_ports", self.vertical_ports),
            ("detect.port_scan.horizontal_hosts", self.horizontal_hosts),
            (
                "detect.port_scan.max_tracked_scanners",
                self.max_tracked_scanners,
            ),
            (
                "detect.port_scan.max_pairs_per_scanner",
                self.max_pairs_per_scanner,
            ),
        ] {
            if v == 0 {
                p.push((k, "must be at least 1".to_string()));
            }
        }
        if self.max_pairs_per_scanner > MAX_PAIRS_TOTAL {
            p.push((
                "detect.port_scan.max_pairs_per_scanner",
                format!(
                    "{} is above the per-worker total of {MAX_PAIRS_TOTAL} pairs",
                    self.max_pairs_per_scanner
                ),
            ));
        }
        if self.window_secs == 0 {
            p.push((
                "detect.port_scan.window_secs",
                "must be at least 1 second".to_string(),
            ));
        }
        if self.slow_window_secs < self.window_secs {
            p.push((
                "detect.port_scan.slow_window_secs",
                format!(
                    "{} must be at least window_secs ({})",
                    self.slow_window_secs, self.window_secs
                ),
            ));
        }
        for a in &self.allow {
            if parse_net(a).is_none() {
                p.push((
                    "detect.port_scan.allow",
                    format!("'{a}' is not an address or CIDR network"),
                ));
            }
        }
        p
    }
}

/// Counters an operator can watch to see whether the bounds fit the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortScanStats {
    /// Scanners tracked now.
    pub tracked_scanners: usize,
    /// Scanners dropped at the caps so far (their evidence is lost).
    pub evicted_scanners: u64,
    /// (host, port) pairs held now, over all scanners.
    pub pairs: usize,
    /// New pairs not stored because their scanner was at its cap.
    pub pairs_dropped: u64,
    /// Alerts raised.
    pub alerts: u64,
}

/// How one first contact turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The responder answered with something other than a refusal.
    Success,
    /// Not seen answered, but the client behaved as if it heard back.
    InferredSuccess,
    /// RST to a SYN, ICMP unreachable.
    Refused,
    /// Nothing came back.
    Silent,
}

impl Outcome {
    fn failed(self) -> bool {
        matches!(self, Outcome::Refused | Outcome::Silent)
    }
}

/// The probe technique of one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Syn,
    Connect,
    Fin,
    Null,
    Xmas,
    Udp,
    Icmp,
}

impl Probe {
    const ALL: [Probe; 7] = [
        Probe::Syn,
        Probe::Connect,
        Probe::Fin,
        Probe::Null,
        Probe::Xmas,
        Probe::Udp,
        Probe::Icmp,
    ];

    fn name(self) -> &'static str {
        match self {
            Probe::Syn => "syn",
            Probe::Connect => "connect",
            Probe::Fin => "fin",
            Probe::Null => "null",
            Probe::Xmas => "xmas",
            Probe::Udp => "udp",
            Probe::Icmp => "icmp",
        }
    }

    /// What kind of probe a record is, or None when it is no probe at all
    /// (a mid-stream pickup, a stray RST, an ICMP error, another protocol).
    fn of(rec: &FlowRecord) -> Option<Probe> {
        // A flow first seen at its SYN-ACK (backscatter, or a missed SYN) is
        // credited to a client that sent nothing: no probe.
        if rec.to_server.packets == 0 {
            return None;
        }
        match rec.proto {
            6 => {
                let f = rec.client_flags;
                if f.has(TcpFlags::SYN) {
                    // connect(): the handshake completes and the scanner
                    // resets at once, without sending data. A SYN scanner's
                    // RST to an open port carries no ACK.
                    let connect = rec.state == FlowState::ClosedRst
                        && f.has(TcpFlags::ACK)
                        && !f.has(TcpFlags::PSH);
                    Some(if connect { Probe::Connect } else { Probe::Syn })
                } else if f.0 & (TcpFlags::ACK | TcpFlags::RST) != 0 {
                    None
                } else if f.0 & TcpFlags::URG != 0 {
                    Some(Probe::Xmas)
                } else if f.0 & TcpFlags::FIN != 0 {
                    Some(Probe::Fin)
                } else {
                    Some(Probe::Null)
                }
            }
            17 => Some(Probe::Udp),
            1 if rec.client_port == 8 => Some(Probe::Icmp),
            58 if rec.client_port == 128 => Some(Probe::Icmp),
            _ => None,
        }
    }
}

fn outcome(rec: &FlowRecord) -> Outcome {
    match rec.state {
        FlowState::Established | FlowState::ClosedFin | FlowState::ClosedRst => Outcome::Success,
        FlowState::Rejected => Outcome::Refused,
        FlowState::Attempt => {
            let heard = if rec.proto == 6 {
                rec.client_flags.has(TcpFlags::SYN | TcpFlags::ACK)
            } else {
                rec.to_server.packets >= CHATTY_PACKETS
            };
            if heard {
                Outcome::InferredSuccess
            } else {
                Outcome::Silent
            }
        }
    }
}

/// (target, protocol, port); ICMP echo uses the request type as its port.
type PairKey = (IpAddr, u8, u16);

#[derive(Debug, Clone, Copy)]
struct Pair {
    first: Timestamp,
    last: Timestamp,
    failed: bool,
}

/// The classifications, as bits of [`Scanner::raised`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Vertical,
    Horizontal,
    Mixed,
    IcmpSweep,
}

impl Class {
    fn bit(self) -> u8 {
        match self {
            Class::Vertical => 1,
            Class::Horizontal => 2,
            Class::Mixed => 4,
            Class::IcmpSweep => 8,
        }
    }

    fn signature(self) -> &'static str {
        match self {
            Class::Vertical => "port_scan.vertical",
            Class::Horizontal => "port_scan.horizontal",
            Class::Mixed => "port_scan.mixed",
            Class::IcmpSweep => "port_scan.icmp_sweep",
        }
    }
}

#[derive(Debug, Clone)]
struct Scanner {
    first_seen: Timestamp,
    last_seen: Timestamp,
    last_prune: Timestamp,
    pairs: HashMap<PairKey, Pair>,
    pairs_dropped: u64,
    probes: u64,
    failures: u64,
    successes: u64,
    answered_any: bool,
    llr: f64,
    raised: u8,
    probe_kinds: [u64; 7],
}

impl Scanner {
    fn new(now: Timestamp) -> Self {
        Scanner {
            first_seen: now,
            last_seen: now,
            last_prune: now,
            pairs: HashMap::new(),
            pairs_dropped: 0,
            probes: 0,
            failures: 0,
            successes: 0,
            answered_any: false,
            llr: 0.0,
            raised: 0,
            probe_kinds: [0; 7],
        }
    }

    fn scan_type(&self) -> &'static str {
        // Closed ports look the same to SYN and connect scans; a single
        // completed-and-reset handshake tells connect() apart.
        if self.probe_kinds[1] > 0 {
            return Probe::Connect.name();
        }
        let mut best = (0, Probe::Syn);
        for (i, p) in Probe::ALL.iter().enumerate() {
            if self.probe_kinds[i] > best.0 {
                best = (self.probe_kinds[i], *p);
            }
        }
        best.1.name()
    }
}

/// The decision of one judgement, before it becomes an alert.
struct Verdict {
    class: Class,
    dest_ip: Option<IpAddr>,
    dest_port: Option<u16>,
    proto: Option<u8>,
    one_way: bool,
    /// Seconds of the window the evidence fits in.
    window_secs: u64,
    /// The threshold crossed (log-likelihood, or a count).
    threshold: f64,
    method: &'static str,
    /// Pairs the evidence is about (all pairs for the walk, failed pairs in
    /// the window for counts).
    keys: Vec<PairKey>,
}

/// See the module documentation.
pub struct PortScanDetector {
    cfg: PortScanConfig,
    allow: Vec<IpNet>,
    /// ln of the likelihood-ratio factor of a success (negative).
    step_success: f64,
    /// ln of the likelihood-ratio factor of a failure (positive).
    step_failure: f64,
    eta1: f64,
    eta0: f64,
    scanners: HashMap<IpAddr, Scanner>,
    /// (last seen, scanner), oldest first: the eviction order.
    order: BTreeSet<(Timestamp, IpAddr)>,
    total_pairs: usize,
    stats: PortScanStats,
}

/// A probability setting made safe: outside (0, 1) or not a number, the
/// default; inside, kept away from 0 and 1 so its logarithms stay finite.
fn prob(v: f64, default: f64) -> f64 {
    if in_unit(v) {
        v.clamp(1e-6, 1.0 - 1e-6)
    } else {
        default
    }
}

impl PortScanDetector {
    /// A detector with the given settings. Invalid settings (see
    /// [`PortScanConfig::problems`]) fall back to their defaults, so the
    /// walk's steps and thresholds are always finite and point the right way.
    pub fn new(cfg: PortScanConfig) -> Self {
        let d = PortScanConfig::default();
        let (mut alpha, mut beta) = (prob(cfg.alpha, d.alpha), prob(cfg.beta, d.beta));
        if beta <= alpha {
            (alpha, beta) = (d.alpha, d.beta);
        }
        let (mut theta0, mut theta1) = (prob(cfg.theta0, d.theta0), prob(cfg.theta1, d.theta1));
        if theta1 >= theta0 {
            (theta0, theta1) = (d.theta0, d.theta1);
        }
        let allow = cfg.allow.iter().filter_map(|s| parse_net(s)).collect();
        let mut cfg = cfg;
        cfg.min_distinct = cfg.min_distinct.max(1);
        cfg.vertical_ports = cfg.vertical_ports.max(1);
        cfg.horizontal_hosts = cfg.horizontal_hosts.max(1);
        cfg.window_secs = cfg.window_secs.max(1);
        cfg.slow_window_secs = cfg.slow_window_secs.max(cfg.window_secs);
        cfg.max_tracked_scanners = cfg.max_tracked_scanners.max(1);
        cfg.max_pairs_per_scanner = cfg.max_pairs_per_scanner.clamp(1, MAX_PAIRS_TOTAL);
        PortScanDetector {
            cfg,
            allow,
            step_success: (theta1 / theta0).ln(),
            step_failure: ((1.0 - theta1) / (1.0 - theta0)).ln(),
            eta1: (beta / alpha).ln(),
            eta0: ((1.0 - beta) / (1.0 - alpha)).ln(),
            scanners: HashMap::new(),
            order: BTreeSet::new(),
            total_pairs: 0,
            stats: PortScanStats::default(),
        }
    }

    /// Bounds and drops so far.
    pub fn stats(&self) -> PortScanStats {
        PortScanStats {
            tracked_scanners: self.scanners.len(),
            pairs: self.total_pairs,
            ..self.stats
        }
    }

    /// The walk's current log-likelihood ratio for `scanner`, if tracked.
    pub fn log_likelihood(&self, scanner: IpAddr) -> Option<f64> {
        self.scanners.get(&scanner).map(|s| s.llr)
    }

    /// The walk's upper threshold, `ln(beta/alpha)`.
    pub fn threshold(&self) -> f64 {
        self.eta1
    }

    fn remove(&mut self, ip: IpAddr) {
        if let Some(s) = self.scanners.remove(&ip) {
            self.order.remove(&(s.last_seen, ip));
            self.total_pairs = self.total_pairs.saturating_sub(s.pairs.len());
        }
    }

    /// Evicts the least recently seen scanner other than `keep`.
    fn evict_one(&mut self, keep: IpAddr) -> bool {
        let victim = self.order.iter().map(|&(_, ip)| ip).find(|&ip| ip != keep);
        match victim {
            Some(ip) => {
                self.remove(ip);
                self.stats.evicted_scanners += 1;
                true
            }
            None => false,
        }
    }

    /// Makes sure `ip` is tracked and marks it seen at `now`.
    fn touch(&mut self, ip: IpAddr, now: Timestamp) {
        if let Some(s) = self.scanners.get_mut(&ip) {
            if now > s.last_seen {
                self.order.remove(&(s.last_seen, ip));
                s.last_seen = now;
                self.order.insert((now, ip));
            }
            return;
        }
        while self.scanners.len() >= self.cfg.max_tracked_scanners {
            if !self.evict_one(ip) {
                break;
            }
        }
        self.scanners.insert(ip, Scanner::new(now));
        self.order.insert((now, ip));
    }

    /// Drops a scanner's pairs not contacted within the slow window, at most
    /// every eighth of the window (pruning walks all its pairs).
    fn prune(&mut self, ip: IpAddr, now: Timestamp) {
        let slow = self.cfg.slow_window_secs;
        let Some(s) = self.scanners.get_mut(&ip) else {
            return;
        };
        if now.micros_since(s.last_prune) < (slow / 8).max(1).saturating_mul(1_000_000) {
            return;
        }
        s.last_prune = now;
        let before = s.pairs.len();
        s.pairs
            .retain(|_, p| now.micros_since(p.last) <= slow.saturating_mul(1_000_000));
        self.total_pairs = self
            .total_pairs
            .saturating_sub(before.saturating_sub(s.pairs.len()));
    }

    /// The judgement of the walk, once it has crossed its threshold.
    fn judge_walk(&self, s: &Scanner) -> Option<Verdict> {
        if !s.answered_any || s.llr < self.eta1 || s.pairs.len() < self.cfg.min_distinct {
            return None;
        }
        // Classify by the failed contacts: they are the scan. A host that
        // browses the web and then scans one server must not read as a
        // horizontal scan of port 443. The evidence then also counts the
        // contacts that share a host or port with a failed one (the open
        // ports of a vertically scanned host).
        let failed: Vec<PairKey> = s
            .pairs
            .iter()
            .filter(|(_, p)| p.failed)
            .map(|(k, _)| *k)
            .collect();
        let icmp = failed.iter().filter(|k| matches!(k.1, 1 | 58)).count();
        let mut v = classify(&failed, icmp * 2 >= failed.len());
        let hosts: HashSet<IpAddr> = failed.iter().map(|k| k.0).collect();
        let ports: HashSet<(u8, u16)> = failed.iter().map(|k| (k.1, k.2)).collect();
        v.keys = s
            .pairs
            .keys()
            .filter(|k| match v.class {
                Class::Vertical => Some(k.0) == v.dest_ip,
                Class::Horizontal | Class::IcmpSweep => ports.contains(&(k.1, k.2)),
                Class::Mixed => hosts.contains(&k.0) || ports.contains(&(k.1, k.2)),
            })
            .copied()
            .collect();
        v.window_secs = self.cfg.slow_window_secs;
        v.threshold = self.eta1;
        v.method = "trw";
        Some(v)
    }

    /// The one-way judgement: counts of failed contacts in the windows.
    fn judge_counts(&self, s: &Scanner, now: Timestamp) -> Option<Verdict> {
        if s.answered_any || s.probes < ONE_WAY_MIN_CONTACTS {
            return None;
        }
        for window in [self.cfg.window_secs, self.cfg.slow_window_secs] {
            let span = window.saturating_mul(1_000_000);
            let keys: Vec<PairKey> = s
                .pairs
                .iter()
                .filter(|(_, p)| p.failed && now.micros_since(p.last) <= span)
                .map(|(k, _)| *k)
                .collect();
            let mut per_host: HashMap<IpAddr, usize> = HashMap::new();
            let mut per_port: HashMap<(u8, u16), usize> = HashMap::new();
            for k in &keys {
                *per_host.entry(k.0).or_default() += 1;
                *per_port.entry((k.1, k.2)).or_default() += 1;
            }
            let top_host = per_host.iter().max_by_key(|(ip, n)| (**n, **ip));
            let top_port = per_port.iter().max_by_key(|(p, n)| (**n, **p));
            let pick = |keys: Vec<PairKey>, class: Class, threshold: usize| {
                let mut v = classify(&keys, class == Class::IcmpSweep);
                v.class = class;
                if class != Class::Vertical {
                    v.dest_ip = None;
                }
                v.window_secs = window;
                v.threshold = threshold as f64;
                v.method = "count";
                v.one_way = true;
                v
            };
            if let Some((&host, &n)) = top_host {
                if n >= self.cfg.vertical_ports {
                    let ks = keys.iter().copied().filter(|k| k.0 == host).collect();
                    let mut v = pick(ks, Class::Vertical, self.cfg.vertical_ports);
                    v.dest_ip = Some(host);
                    return Some(v);
                }
            }
            if let Some((&port, &n)) = top_port {
                if n >= self.cfg.horizontal_hosts {
                    let ks = keys
                        .iter()
                        .copied()
                        .filter(|k| (k.1, k.2) == port)
                        .collect();
                    let class = if matches!(port.0, 1 | 58) {
                        Class::IcmpSweep
                    } else {
                        Class::Horizontal
                    };
                    return Some(pick(ks, class, self.cfg.horizontal_hosts));
                }
            }
        }
        None
    }
}

/// Vertical, horizontal, mixed or sweep, from the pairs probed.
fn classify(keys: &[PairKey], sweep: bool) -> Verdict {
    let mut per_host: HashMap<IpAddr, usize> = HashMap::new();
    let mut per_port: HashMap<(u8, u16), usize> = HashMap::new();
    let mut protos: HashSet<u8> = HashSet::new();
    for k in keys {
        *per_host.entry(k.0).or_default() += 1;
        *per_port.entry((k.1, k.2)).or_default() += 1;
        protos.insert(k.1);
    }
    let n = keys.len().max(1) as f64;
    let top_host = per_host
        .iter()
        .max_by_key(|(ip, c)| (**c, **ip))
        .map(|(ip, c)| (*ip, *c));
    let top_port = per_port
        .iter()
        .max_by_key(|(p, c)| (**c, **p))
        .map(|(p, c)| (*p, *c));
    let dominant = |c: usize| c as f64 >= DOMINANT_SHARE * n;
    let proto = if protos.len() == 1 {
        protos.iter().next().copied()
    } else {
        None
    };
    let mut v = Verdict {
        class: Class::Mixed,
        dest_ip: None,
        dest_port: None,
        proto,
        one_way: false,
        window_secs: 0,
        threshold: 0.0,
        method: "",
        keys: keys.to_vec(),
    };
    if sweep {
        v.class = Class::IcmpSweep;
        return v;
    }
    match (top_host, top_port) {
        (Some((ip, c)), _) if per_host.len() == 1 || (dominant(c) && per_port.len() > 1) => {
            v.class = Class::Vertical;
            v.dest_ip = Some(ip);
        }
        (_, Some(((_, port), c))) if per_port.len() <= FEW_PORTS || dominant(c) => {
            v.class = Class::Horizontal;
            if dominant(c) && !matches!(proto, Some(1 | 58)) {
                v.dest_port = Some(port);
            }
        }
        _ => {}
    }
    v
}

impl Detector for PortScanDetector {
    fn name(&self) -> &'static str {
        "port_scan"
    }

    fn on_flow(&mut self, host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        if !self.cfg.enabled || !rec.is_first_report() {
            return;
        }
        let scanner = rec.client;
        let client_inside = cx.home.contains(scanner);
        // Judge each record once, from the scanner's side: the client's shard
        // when it is inside (or nobody is), else the inside server's shard.
        let ours = host == scanner || (!client_inside && host == rec.server);
        if !ours || rec.client == rec.server || self.allow.iter().any(|n| n.contains(&scanner)) {
            return;
        }
        let Some(probe) = Probe::of(rec) else {
            return;
        };
        let port = if probe == Probe::Icmp {
            rec.client_port
        } else {
            rec.server_port
        };
        let key: PairKey = (rec.server, rec.proto, port);
        let now = rec.last_seen;
        let result = outcome(rec);

        self.touch(scanner, now);
        self.prune(scanner, now);
        // Keep the shard-wide pair budget: drop the stalest scanners first.
        while self.total_pairs >= MAX_PAIRS_TOTAL {
            if !self.evict_one(scanner) {
                break;
            }
        }
        let cap = self.cfg.max_pairs_per_scanner;
        let (step_s, step_f, eta0, eta1) =
            (self.step_success, self.step_failure, self.eta0, self.eta1);
        let Some(s) = self.scanners.get_mut(&scanner) else {
            return;
        };
        s.probes += 1;
        s.answered_any |= rec.responder_answered;
        if let Some(i) = Probe::ALL.iter().position(|p| *p == probe) {
            s.probe_kinds[i] += 1;
        }
        if let Some(p) = s.pairs.get_mut(&key) {
            // A repeat contact: only the first one to a pair is evidence.
            if now > p.last {
                p.last = now;
            }
            return;
        }
        if s.pairs.len() >= cap {
            s.pairs_dropped += 1;
            self.stats.pairs_dropped += 1;
            return;
        }
        s.pairs.insert(
            key,
            Pair {
                first: rec.first_seen,
                last: now,
                failed: result.failed(),
            },
        );
        self.total_pairs += 1;
        if result.failed() {
            s.failures += 1;
            s.llr += step_f;
        } else {
            s.successes += 1;
            s.llr += step_s;
        }
        // Declared benign at eta0: the walk restarts from that verdict, not
        // from zero. Restarting at zero gives a busy host a fresh `alpha`
        // chance of a false alarm every few contacts (a P2P host with 20%
        // failures would trip within hours); from the floor, about twice the
        // evidence is needed to overturn the benign verdict. Past the upper
        // threshold the walk carries no more information; bounding it keeps
        // it finite and lets a reformed host come back down.
        s.llr = s.llr.clamp(eta0, eta1 + 10.0 * step_f);

        // Only a failed contact can complete the evidence (the counts count
        // failures, and a success moves the walk away from its threshold):
        // judging costs a pass over the scanner's pairs, so skip it otherwise.
        if !result.failed() {
            return;
        }
        let verdict = self
            .scanners
            .get(&scanner)
            .and_then(|s| self.judge_walk(s).or_else(|| self.judge_counts(s, now)));
        let Some(v) = verdict else {
            return;
        };
        let Some(s) = self.scanners.get_mut(&scanner) else {
            return;
        };
        if s.raised & v.class.bit() != 0 {
            return;
        }
        s.raised |= v.class.bit();
        let s = s.clone();
        let alert = build_alert(scanner, client_inside, &s, &v, rec, cx);
        self.stats.alerts += 1;
        cx.raise(alert);
    }

    fn on_tick(&mut self, now: Timestamp, _cx: &mut DetectCx<'_>) {
        // Idle state is not evidence: forget scanners silent for the slow
        // window (a slower scan is a blind spot, see the module docs).
        let span = self.cfg.slow_window_secs.saturating_mul(1_000_000);
        while let Some(&(seen, ip)) = self.order.first() {
            if now.micros_since(seen) <= span {
                break;
            }
            self.remove(ip);
        }
    }
}

fn build_alert(
    scanner: IpAddr,
    inside: bool,
    s: &Scanner,
    v: &Verdict,
    rec: &FlowRecord,
    cx: &DetectCx<'_>,
) -> Alert {
    let mut targets: Vec<IpAddr> = v.keys.iter().map(|k| k.0).collect();
    targets.sort();
    targets.dedup();
    let mut ports: Vec<(u8, u16)> = v.keys.iter().map(|k| (k.1, k.2)).collect();
    ports.sort();
    ports.dedup();
    let any_inside_target = targets.iter().any(|t| cx.home.contains(*t));
    let all_inside_targets = targets.iter().all(|t| cx.home.contains(*t));
    let direction = match (inside, any_inside_target, all_inside_targets) {
        (false, true, _) => "inbound",
        (false, false, _) => "transit",
        (true, _, true) => "internal",
        (true, _, false) => "outbound",
    };
    let severity = match direction {
        "inbound" if s.successes > 0 => 1,
        "inbound" => 2,
        "transit" => 3,
        _ => 1,
    };
    let mitre = Mitre {
        tactic: "TA0007",
        technique: if v.class == Class::IcmpSweep {
            "T1018"
        } else {
            "T1046"
        },
    };
    let first_seen = v
        .keys
        .iter()
        .filter_map(|k| s.pairs.get(k).map(|p| p.first))
        .min()
        .unwrap_or(s.first_seen);
    let what = match v.class {
        Class::Vertical => format!(
            "vertical scan of {} ({} ports)",
            v.dest_ip.map_or_else(String::new, |ip| ip.to_string()),
            ports.len()
        ),
        Class::Horizontal => match v.dest_port {
            Some(p) => format!("horizontal scan of port {p} on {} hosts", targets.len()),
            None => format!(
                "horizontal scan of {} ports on {} hosts",
                ports.len(),
                targets.len()
            ),
        },
        Class::Mixed => format!("scan of {} ports on {} hosts", ports.len(), targets.len()),
        Class::IcmpSweep => format!("ICMP echo sweep of {} hosts", targets.len()),
    };
    let how = if v.method == "trw" {
        format!(
            "{} of {} first contacts failed (random-walk log-likelihood {:.2} >= {:.2})",
            s.failures,
            s.failures + s.successes,
            s.llr,
            v.threshold
        )
    } else {
        format!(
            "{} unanswered probes within {} s, no answer ever seen (one-way view)",
            v.keys.len(),
            v.window_secs
        )
    };
    let description = format!(
        "{direction} {} {what} by {scanner}: {how}",
        s.scan_type().to_uppercase()
    );
    let mut evidence = BTreeMap::new();
    evidence.insert("distinct_targets", json!(targets.len()));
    evidence.insert("distinct_ports", json!(ports.len()));
    evidence.insert("probes", json!(s.probes));
    evidence.insert("failures", json!(s.failures));
    evidence.insert("successes", json!(s.successes));
    evidence.insert("trw_log_likelihood", json!(s.llr));
    evidence.insert("threshold", json!(v.threshold));
    evidence.insert("method", json!(v.method));
    evidence.insert("window_secs", json!(v.window_secs));
    evidence.insert("first_seen", json!(first_seen));
    evidence.insert("scan_type", json!(s.scan_type()));
    evidence.insert("direction", json!(direction));
    evidence.insert("one_way_tap", json!(v.one_way));
    evidence.insert("pairs_dropped", json!(s.pairs_dropped));
    evidence.insert(
        "examples",
        json!({
            "ports": ports.iter().take(EXAMPLES).map(|p| p.1).collect::<Vec<_>>(),
            "targets": targets.iter().take(EXAMPLES).map(|t| t.to_string()).collect::<Vec<_>>(),
        }),
    );
    Alert {
        // The record whose outcome completed the evidence.
        timestamp: rec.last_seen,
        event_type: "alert",
        src_ip: scanner,
        dest_ip: v.dest_ip,
        src_port: None,
        dest_port: v.dest_port,
        proto: v.proto.map(|p| proto_name(p).into_owned()),
        alert: AlertBody {
            category: Category::PortScan,
            signature: v.class.signature(),
            severity,
            description,
            mitre,
        },
        evidence,
        community_id: None,
        geo: if inside {
            None
        } else {
            cx.intel.geo.lookup(scanner)
        },
        response: if inside {
            None
        } else {
            Some(block_response(scanner))
        },
    }
}
