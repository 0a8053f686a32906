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
//! # P2P clients
//!
//! A P2P client working through a stale peer list fails most first contacts
//! too (the Gnutella capture of the corpus: 70 failed pings before its first
//! answer). A horizontal or mixed verdict is withheld when the host's failed
//! contacts look like a peer list (see `PeerShape::peer_list`): about one
//! port per target (at most 1.5 failed port numbers per target, none with
//! `vertical_ports`), about as many distinct ports as targets (at least
//! half), no port with half of the contacts, 90% on ports >= 1024, and the
//! targets scattered (distinct /16s for at least half of them, no /16 with a
//! quarter). The pattern is confirmed by payload exchanged both ways with
//! `p2p_min_peers` distinct peers on ports >= 1024; until then the verdict
//! is only held, and raised once `p2p_unconfirmed_targets` targets failed
//! (a random-pair scan can mimic the failures, not the conversations).
//! Vertical scans and ICMP sweeps are never exempt. A horizontal scan of one
//! port (any port, 8080 or 6379 too) fails the port tests, a subnet sweep
//! the scatter tests, a multi-port scan the one-port-per-target test.
//!
//! **Blind spot:** a confirmed P2P client can hide a scan that stays under
//! those shares: a one-port scan of scattered hosts smaller than its stale
//! peer list, a subnet sweep under a quarter of its failed targets, random
//! (host, high port) pairs.
//!
//! # Who is seen where
//!
//! The scanner is always `rec.client`, and each flow is judged once, on its
//! first record, from the scanner's side: the detector is registered with
//! [`crate::Perspective::ClientFirstRecord`], and [`crate::route_flow`]
//! routes every first record to its client's shard, inside or outside (a
//! flow opened from outside also to the inside server's, which this
//! detector does not judge). So all the probes of one scanner meet in one
//! shard, whichever workers own its targets, and the verdict does not
//! depend on the worker count. Later records of a flow are not probes.
//!
//! Multicast and broadcast destinations are no probes: nobody answers from
//! them (mDNS, SSDP and LLMNR would count as failures).
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
use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{
    proto_name, Alert, AlertBody, Category, FlowRecord, FlowState, Mitre, Problem, SectionProblems,
    TcpFlags, Timestamp,
};

use crate::{block_response, isolate_response, Bound, DetectCx, Detector};

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

/// P2P peer-list pattern (see [`PeerShape::peer_list`]), with the values
/// measured on the Gnutella capture of the corpus over all its judgements.
/// Failed port numbers per failed target, at most (Gnutella: up to 1.24,
/// rising as peers behind NAT are retried on new ports; a grid scan of k
/// ports has k).
const P2P_PORTS_PER_TARGET: f64 = 1.5;

/// P2P: distinct failed ports per failed target, at least (Gnutella: 0.9 or
/// more; a scan of a port list over many hosts has a handful per hundreds).
const P2P_MIN_PORT_SHARE: f64 = 0.5;

/// P2P: the most common port holds at most this share of the failed
/// contacts (Gnutella: its default port 6346 holds up to 0.34).
const P2P_TOP_PORT_SHARE: f64 = 0.5;

/// P2P: at least this share of failed contacts on ports >= 1024 (Gnutella:
/// 0.98 or more; its LAN broadcasts are the rest).
const P2P_HIGH_PORT_SHARE: f64 = 0.9;

/// P2P: distinct /16 networks per failed target, at least (Gnutella: 0.87
/// or more; a subnet sweep has one).
const P2P_MIN_PREFIX_SHARE: f64 = 0.5;

/// P2P: the busiest /16 holds at most this share of the failed targets
/// (Gnutella: 0.03 at most).
const P2P_TOP_PREFIX_SHARE: f64 = 0.25;

/// Examples of ports and targets in the evidence.
const EXAMPLES: usize = 10;

/// `[detect.port_scan]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
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
    /// P2P exemption: distinct peers (targets on ports >= 1024 with payload
    /// both ways) that confirm a host whose failed contacts look like a
    /// stale peer list is a P2P client, not a horizontal or mixed scanner
    /// (count). 0 turns the exemption off. Default 5.
    pub p2p_min_peers: usize,
    /// P2P exemption: failed targets a host with a peer-list pattern may
    /// reach while it has fewer than `p2p_min_peers` peers before its scan
    /// verdict is raised after all (count). Default 256.
    pub p2p_unconfirmed_targets: usize,
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
            p2p_min_peers: 5,
            p2p_unconfirmed_targets: 256,
        }
    }
}

fn in_unit(x: f64) -> bool {
    x.is_finite() && x > 0.0 && x < 1.0
}

impl PortScanConfig {
    /// Every problem with the settings, each under `section`.
    /// (`p2p_min_peers` may be 0: it turns the P2P exemption off.)
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        for (k, v) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("theta0", self.theta0),
            ("theta1", self.theta1),
        ] {
            if !in_unit(v) {
                p.push(k, format!("{v} must be strictly between 0 and 1"));
            }
        }
        if in_unit(self.alpha) && in_unit(self.beta) && self.beta <= self.alpha {
            p.push("beta",
                format!(
                    "{} must be above alpha ({}): the detection probability must beat the false-positive rate",
                    self.beta, self.alpha
                ));
        }
        if in_unit(self.theta0) && in_unit(self.theta1) && self.theta1 >= self.theta0 {
            p.push(
                "theta1",
                format!(
                    "{} must be below theta0 ({}): scanners succeed less often than benign hosts",
                    self.theta1, self.theta0
                ),
            );
        }
        for (k, v) in [
            ("min_distinct", self.min_distinct),
            ("vertical_ports", self.vertical_ports),
            ("horizontal_hosts", self.horizontal_hosts),
            ("max_tracked_scanners", self.max_tracked_scanners),
            ("max_pairs_per_scanner", self.max_pairs_per_scanner),
            ("p2p_unconfirmed_targets", self.p2p_unconfirmed_targets),
        ] {
            if v == 0 {
                p.push(k, "must be at least 1".to_string());
            }
        }
        if self.p2p_unconfirmed_targets > self.max_pairs_per_scanner {
            p.push(
                "p2p_unconfirmed_targets",
                format!(
                    "{} is above max_pairs_per_scanner ({}): a held verdict could never be raised",
                    self.p2p_unconfirmed_targets, self.max_pairs_per_scanner
                ),
            );
        }
        if self.max_pairs_per_scanner > MAX_PAIRS_TOTAL {
            p.push(
                "max_pairs_per_scanner",
                format!(
                    "{} is above the per-worker total of {MAX_PAIRS_TOTAL} pairs",
                    self.max_pairs_per_scanner
                ),
            );
        }
        if self.window_secs == 0 {
            p.push("window_secs", "must be at least 1 second".to_string());
        }
        if self.slow_window_secs < self.window_secs {
            p.push(
                "slow_window_secs",
                format!(
                    "{} must be at least window_secs ({})",
                    self.slow_window_secs, self.window_secs
                ),
            );
        }
        for a in &self.allow {
            if parse_net(a).is_none() {
                p.push("allow", format!("'{a}' is not an address or CIDR network"));
            }
        }
        p.into_vec()
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
    /// Horizontal or mixed verdicts withheld because the host looked like a
    /// P2P client (counted at each judgement that would have alerted).
    pub p2p_withheld: u64,
    /// Judgements taken (each a pass over one scanner's pairs).
    pub judgements: u64,
    /// `alert_update` records raised (final figures of scans that stopped).
    pub updates: u64,
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
    Ack,
}

impl Probe {
    const ALL: [Probe; 8] = [
        Probe::Syn,
        Probe::Connect,
        Probe::Fin,
        Probe::Null,
        Probe::Xmas,
        Probe::Udp,
        Probe::Icmp,
        Probe::Ack,
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
            Probe::Ack => "ack",
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
        // Nobody answers from a multicast or broadcast address (replies come
        // from the members' own addresses, as other flows): mDNS, SSDP and
        // LLMNR would otherwise count as failed first contacts.
        let group = match rec.server {
            IpAddr::V4(a) => a.is_multicast() || a.is_broadcast(),
            IpAddr::V6(a) => a.is_multicast(),
        };
        if group {
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
                } else if f.0 == TcpFlags::ACK {
                    bare_ack_probe(rec).then_some(Probe::Ack)
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

/// An ACK ping (nmap -PA, firewall mapping): one bare ACK with no payload,
/// answered by a RST or by nothing. A mid-stream pickup of a real session
/// is not one: its client sends more than one packet, or data, and its
/// server answers with something other than a lone RST.
fn bare_ack_probe(rec: &FlowRecord) -> bool {
    // 20 bytes of IPv4 (40 of IPv6) and 20 of TCP, with up to 12 bytes of
    // options (timestamps): anything longer carries data.
    let header_max = if rec.client.is_ipv4() { 52 } else { 72 };
    let answer_is_reset = rec.to_client.packets == 0
        || (rec.to_client.packets == 1 && rec.server_flags.0 == TcpFlags::RST);
    rec.to_server.packets == 1 && rec.to_server.bytes <= header_max && answer_is_reset
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

/// True when both sides carried payload: a working conversation with a
/// peer, not a probe answered by a bare SYN-ACK or a refusal. TCP: each side
/// pushed data (PSH) in an accepted connection; UDP: a datagram came back
/// from the target itself (an ICMP error makes the flow `Rejected`).
fn two_way(rec: &FlowRecord) -> bool {
    if !rec.responder_answered || rec.to_server.packets == 0 || rec.to_client.packets == 0 {
        return false;
    }
    match rec.proto {
        6 => {
            matches!(
                rec.state,
                FlowState::Established | FlowState::ClosedFin | FlowState::ClosedRst
            ) && rec.client_flags.has(TcpFlags::PSH)
                && rec.server_flags.has(TcpFlags::PSH)
        }
        17 => rec.state == FlowState::Established,
        _ => false,
    }
}

/// (target, protocol, port); ICMP echo uses the request type as its port.
type PairKey = (IpAddr, u8, u16);

#[derive(Debug, Clone, Copy)]
struct Pair {
    first: Timestamp,
    last: Timestamp,
    failed: bool,
    /// Some contact to the pair exchanged payload both ways (see [`two_way`]).
    two_way: bool,
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

/// Failures from which a scanner's judgements are spaced out (a sixteenth
/// more failures apart) instead of taken at every failure.
const REJUDGE_FROM: u64 = 512;

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
    probe_kinds: [u64; 8],
    /// Failures at which the next judgement is due (see `REJUDGE_FROM`).
    rejudge_at: u64,
    /// The alerts raised for this scanner (at most one per class, so at
    /// most four), kept to tell their final figures when the scan stops.
    told: Vec<Alert>,
    /// Probes when the alerts' figures were last told (raised or updated):
    /// an update is due once the scan stops with more probes than that.
    told_probes: u64,
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
            probe_kinds: [0; 8],
            rejudge_at: 0,
            told: Vec::new(),
            told_probes: 0,
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
    /// Scanners with alerts and probes since their figures were last told:
    /// checked at every tick for a scan that stopped (`window_secs` without
    /// a probe). Ordered, so updates come out in the same order every run.
    unsettled: BTreeSet<IpAddr>,
    /// Updates of scanners forgotten where no context was at hand
    /// (eviction), raised at the next hook.
    outbox: Vec<Alert>,
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
        cfg.p2p_unconfirmed_targets = cfg
            .p2p_unconfirmed_targets
            .clamp(1, cfg.max_pairs_per_scanner);
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
            unsettled: BTreeSet::new(),
            outbox: Vec::new(),
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
            // Forgotten while still unsettled: tell its figures now.
            if self.unsettled.remove(&ip) && s.probes > s.told_probes {
                self.outbox
                    .extend(s.told.iter().map(|a| build_update(a, &s)));
                self.stats.updates += s.told.len() as u64;
            }
        }
    }

    /// Tells the final figures of `ip`'s alerts (its scan stopped, or the
    /// capture ended) when it probed more since they were last told.
    fn settle(&mut self, ip: IpAddr) {
        self.unsettled.remove(&ip);
        let Some(s) = self.scanners.get_mut(&ip) else {
            return;
        };
        if s.probes > s.told_probes {
            s.told_probes = s.probes;
            let s = &*s;
            self.outbox
                .extend(s.told.iter().map(|a| build_update(a, s)));
            self.stats.updates += s.told.len() as u64;
        }
    }

    /// Raises what the outbox holds.
    fn flush(&mut self, cx: &mut DetectCx<'_>) {
        for u in self.outbox.drain(..) {
            cx.raise(u);
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

/// The network a target belongs to for the scatter test: its /16 (IPv4) or
/// /32 (IPv6), about the size of one provider's allocation. Peers of a P2P
/// client sit in many unrelated networks; a subnet scan stays in one.
fn prefix_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(a) & 0xffff_0000)),
        IpAddr::V6(a) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(a) & !((1u128 << 96) - 1),
        )),
    }
}

/// How a host's failed first contacts compare with a P2P client's stale
/// peer list, and how many peers it really talked with. A failed contact is
/// counted once per (target, port number): P2P peers listen with TCP and UDP
/// on the same port, and a client tries both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct PeerShape {
    /// Failed (target, port number) contacts.
    failed: usize,
    /// Distinct targets among them.
    targets: usize,
    /// Most port numbers failed on one target.
    max_target_ports: usize,
    /// Failed contacts on ports >= 1024 (ICMP never counts).
    high_port: usize,
    /// Distinct port numbers among them.
    ports: usize,
    /// Failed contacts on the most common port number.
    top_port: usize,
    /// Distinct /16 (IPv6 /32) networks of the failed targets.
    prefixes: usize,
    /// Failed targets in the most common of those networks.
    top_prefix: usize,
    /// Distinct targets on ports >= 1024 with payload both ways.
    peers: usize,
}

impl PeerShape {
    fn of(pairs: &HashMap<PairKey, Pair>) -> PeerShape {
        let high = |k: &PairKey| k.2 >= 1024 && !matches!(k.1, 1 | 58);
        let mut contacts: HashSet<(IpAddr, u16, bool)> = HashSet::new();
        let mut peers: HashSet<IpAddr> = HashSet::new();
        for (k, p) in pairs {
            if p.two_way && high(k) {
                peers.insert(k.0);
            }
            if p.failed {
                contacts.insert((k.0, k.2, high(k)));
            }
        }
        let mut per_target: HashMap<IpAddr, usize> = HashMap::new();
        let mut per_port: HashMap<u16, usize> = HashMap::new();
        let mut sh = PeerShape {
            failed: contacts.len(),
            peers: peers.len(),
            ..PeerShape::default()
        };
        for (ip, port, high) in &contacts {
            *per_target.entry(*ip).or_default() += 1;
            *per_port.entry(*port).or_default() += 1;
            sh.high_port += usize::from(*high);
        }
        let mut per_prefix: HashMap<IpAddr, usize> = HashMap::new();
        for ip in per_target.keys() {
            *per_prefix.entry(prefix_of(*ip)).or_default() += 1;
        }
        sh.targets = per_target.len();
        sh.max_target_ports = per_target.values().copied().max().unwrap_or(0);
        sh.ports = per_port.len();
        sh.top_port = per_port.values().copied().max().unwrap_or(0);
        sh.prefixes = per_prefix.len();
        sh.top_prefix = per_prefix.values().copied().max().unwrap_or(0);
        sh
    }

    /// True when the failed contacts look like a stale peer list (Karagiannis
    /// et al. 2004: a P2P client meets about as many distinct ports as
    /// distinct peers): about one port per target, as many ports as targets,
    /// none of them dominant, unprivileged, and targets scattered over
    /// unrelated networks. A horizontal scan of a few ports fails the port
    /// tests, a vertical or grid scan the ports-per-target tests, a subnet
    /// sweep the scatter tests. `vertical_ports` failed ports on one target
    /// are a vertical scan whatever surrounds them.
    fn peer_list(&self, vertical_ports: usize) -> bool {
        let (failed, targets) = (self.failed as f64, self.targets as f64);
        self.failed > 0
            && failed <= P2P_PORTS_PER_TARGET * targets
            && self.max_target_ports < vertical_ports
            && self.ports as f64 >= P2P_MIN_PORT_SHARE * targets
            && (self.top_port as f64) <= P2P_TOP_PORT_SHARE * failed
            && self.high_port as f64 >= P2P_HIGH_PORT_SHARE * failed
            && self.prefixes as f64 >= P2P_MIN_PREFIX_SHARE * targets
            && (self.top_prefix as f64) <= P2P_TOP_PREFIX_SHARE * targets
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

    fn bounds(&self, out: &mut dyn FnMut(Bound)) {
        out(Bound {
            map: "scanners",
            key: "max_tracked_scanners",
            len: self.scanners.len(),
            cap: self.cfg.max_tracked_scanners,
        });
        let pairs = self.scanners.values().map(|s| s.pairs.len());
        out(Bound {
            map: "(host, port) pairs per scanner",
            key: "max_pairs_per_scanner",
            len: pairs.clone().max().unwrap_or(0),
            cap: self.cfg.max_pairs_per_scanner,
        });
        out(Bound {
            map: "(host, port) pairs",
            key: "",
            len: pairs.sum(),
            cap: MAX_PAIRS_TOTAL,
        });
    }

    /// Registered [`crate::Perspective::ClientFirstRecord`]: each flow's
    /// first record, once, from its client (the scanner), inside or out.
    fn on_flow(&mut self, _host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        if !self.cfg.enabled {
            return;
        }
        let scanner = rec.client;
        let client_inside = cx.home.contains(scanner);
        if rec.client == rec.server || self.allow.iter().any(|n| n.contains(&scanner)) {
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
        // An ACK answered by a RST proves a host, not a service: for the
        // walk it is a refusal, never a success.
        let result = match probe {
            Probe::Ack if rec.to_client.packets > 0 => Outcome::Refused,
            Probe::Ack => Outcome::Silent,
            _ => outcome(rec),
        };
        let exchange = two_way(rec);

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
        if !s.told.is_empty() {
            self.unsettled.insert(scanner);
        }
        s.answered_any |= rec.responder_answered;
        if let Some(i) = Probe::ALL.iter().position(|p| *p == probe) {
            s.probe_kinds[i] += 1;
        }
        if let Some(p) = s.pairs.get_mut(&key) {
            // A repeat contact: only the first one to a pair is evidence
            // for the walk; a later working exchange still shows a peer.
            p.two_way |= exchange;
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
                two_way: exchange,
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
        if !result.failed() || s.failures < s.rejudge_at {
            return;
        }
        // A judgement is a pass over the scanner's pairs. Judged at every
        // failure, a scan of n targets cost O(n^2): a 4,096-port scan took
        // about a second of a worker (criterion `detectors` bench). From
        // `REJUDGE_FROM` failures on, the next judgement waits for a
        // sixteenth more failures, O(n log n) in all; below it every failure
        // is judged, so the default thresholds (20 ports or hosts, 256 P2P
        // targets) are met at the exact probe as before.
        s.rejudge_at = if s.failures < REJUDGE_FROM {
            0
        } else {
            s.failures + s.failures / 16
        };
        self.stats.judgements += 1;
        let verdict = self
            .scanners
            .get(&scanner)
            .and_then(|s| self.judge_walk(s).or_else(|| self.judge_counts(s, now)));
        let Some(v) = verdict else {
            return;
        };
        let Some(s) = self.scanners.get(&scanner) else {
            return;
        };
        if s.raised & v.class.bit() != 0 {
            return;
        }
        // A P2P client with a stale peer list fails most first contacts too.
        // Only horizontal and mixed verdicts can be its peer list: a vertical
        // scan is one host, an ICMP sweep no peer protocol.
        let shape = match v.class {
            Class::Horizontal | Class::Mixed if self.cfg.p2p_min_peers > 0 => {
                let sh = PeerShape::of(&s.pairs);
                Some((sh, sh.peer_list(self.cfg.vertical_ports)))
            }
            _ => None,
        };
        if let Some((sh, true)) = shape {
            // Confirmed by working exchanges with enough peers: a P2P client.
            // Unconfirmed (its sessions are reported later than its failed
            // pings, or no peer answers at all): held until the failures
            // reach `p2p_unconfirmed_targets`, where a random-pair scan that
            // only mimics the pattern is raised after all.
            if sh.peers >= self.cfg.p2p_min_peers || sh.targets < self.cfg.p2p_unconfirmed_targets {
                self.stats.p2p_withheld += 1;
                return;
            }
        }
        let Some(s) = self.scanners.get_mut(&scanner) else {
            return;
        };
        s.raised |= v.class.bit();
        let alert = build_alert(scanner, client_inside, s, &v, shape, rec, cx);
        if let Some(s) = self.scanners.get_mut(&scanner) {
            s.told.push(alert.clone());
            s.told_probes = s.probes;
        }
        self.stats.alerts += 1;
        cx.raise(alert);
    }

    fn on_tick(&mut self, now: Timestamp, cx: &mut DetectCx<'_>) {
        // A scan that made no probe for `window_secs` has stopped: tell its
        // alerts' final figures (once; a scan that resumes is told again
        // when it stops again).
        let quiet = self.cfg.window_secs.saturating_mul(1_000_000);
        let stopped: Vec<IpAddr> = self
            .unsettled
            .iter()
            .copied()
            .filter(|ip| {
                self.scanners
                    .get(ip)
                    .is_none_or(|s| now.micros_since(s.last_seen) > quiet)
            })
            .collect();
        for ip in stopped {
            self.settle(ip);
        }
        // Idle state is not evidence: forget scanners silent for the slow
        // window (a slower scan is a blind spot, see the module docs).
        let span = self.cfg.slow_window_secs.saturating_mul(1_000_000);
        while let Some(&(seen, ip)) = self.order.first() {
            if now.micros_since(seen) <= span {
                break;
            }
            self.remove(ip);
        }
        self.flush(cx);
    }

    fn on_end(&mut self, _now: Timestamp, cx: &mut DetectCx<'_>) {
        // The capture ended: every scan still going is told as it stands.
        let all: Vec<IpAddr> = self.unsettled.iter().copied().collect();
        for ip in all {
            self.settle(ip);
        }
        self.flush(cx);
    }
}

fn build_alert(
    scanner: IpAddr,
    inside: bool,
    s: &Scanner,
    v: &Verdict,
    shape: Option<(PeerShape, bool)>,
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
    // An ICMP sweep says its own probe type; the scanner's dominant TCP/UDP
    // probe type would only confuse it ("SYN ICMP echo sweep").
    let description = if v.class == Class::IcmpSweep {
        format!("{direction} {what} by {scanner}: {how}")
    } else {
        format!(
            "{direction} {} {what} by {scanner}: {how}",
            s.scan_type().to_uppercase()
        )
    };
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
    if let Some((sh, peer_list)) = shape {
        // Why the P2P exemption did not apply: the pattern, and how many
        // peers the host exchanged payload with.
        evidence.insert("peer_list_pattern", json!(peer_list));
        evidence.insert("two_way_peers", json!(sh.peers));
    }
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
            category: Category::PORT_SCAN,
            signature: v.class.signature(),
            severity,
            description,
            mitre,
        },
        evidence,
        community_id: None,
        flow_id: None,
        app_proto: None,
        // The outside party: the scanner when it is outside, else the one
        // outside host an inside scanner probed (a horizontal scan of many
        // outside hosts has no one party).
        geo: if inside {
            v.dest_ip
                .filter(|d| !cx.home.contains(*d))
                .and_then(|d| cx.intel.geo.lookup(d))
        } else {
            cx.intel.geo.lookup(scanner)
        },
        // Block an outside scanner; isolate an inside host scanning out.
        // Never a rule against the scanned hosts. An internal scan gets
        // none: which side to cut is the operator's call.
        response: match direction {
            "outbound" => Some(isolate_response(scanner)),
            _ if inside => None,
            _ => Some(block_response(scanner)),
        },
        updates: None,
    }
}

/// The `alert_update` of `raised` (an alert this detector wrote for `s`):
/// its evidence as it stands now, when the scan has stopped. Same
/// identity, category and severity; `timestamp` is the scanner's last
/// probe. Figures are over the pairs still kept (pairs idle for the slow
/// window are pruned; `pairs_dropped` counts those over the cap) and, for
/// an alert about one host, over that host's pairs.
fn build_update(raised: &Alert, s: &Scanner) -> Alert {
    let mut targets = BTreeSet::new();
    let mut ports = BTreeSet::new();
    let mut failures = 0u64;
    for (k, p) in &s.pairs {
        if raised.dest_ip.is_some_and(|d| d != k.0) {
            continue;
        }
        targets.insert(k.0);
        ports.insert((k.1, k.2));
        failures += u64::from(p.failed);
    }
    let duration_us = s.last_seen.micros_since(s.first_seen);
    let duration = duration_us as f64 / 1e6;
    // Probes per second over the scan's span; a scan within one
    // microsecond is reported at its probe count.
    let rate = if duration_us == 0 {
        s.probes as f64
    } else {
        s.probes as f64 / duration
    };
    let rate = (rate * 100.0).round() / 100.0;
    let mut u = raised.clone();
    u.event_type = "alert_update";
    u.updates = Some(raised.timestamp);
    u.timestamp = s.last_seen;
    let at_alert = |k: &str| raised.evidence.get(k).and_then(serde_json::Value::as_u64);
    u.evidence.insert("distinct_targets", json!(targets.len()));
    u.evidence.insert("distinct_ports", json!(ports.len()));
    u.evidence.insert("probes", json!(s.probes));
    u.evidence.insert("failures", json!(failures));
    u.evidence.insert("successes", json!(s.successes));
    u.evidence.insert("first_seen", json!(s.first_seen));
    u.evidence.insert("last_seen", json!(s.last_seen));
    u.evidence
        .insert("duration_secs", json!((duration * 1e3).round() / 1e3));
    u.evidence.insert("rate_per_sec", json!(rate));
    u.evidence.insert("pairs_dropped", json!(s.pairs_dropped));
    u.evidence.insert(
        "at_alert",
        json!({
            "distinct_targets": at_alert("distinct_targets"),
            "distinct_ports": at_alert("distinct_ports"),
            "probes": at_alert("probes"),
        }),
    );
    u.evidence.insert(
        "examples",
        json!({
            "ports": ports.iter().take(EXAMPLES).map(|p| p.1).collect::<Vec<_>>(),
            "targets": targets.iter().take(EXAMPLES).map(|t| t.to_string()).collect::<Vec<_>>(),
        }),
    );
    u.alert.description = format!(
        "scan by {} ended: {} ports on {} hosts, {} probes over {:.1} s ({rate} probes/s); the alert counted {} ports on {} hosts",
        raised.src_ip,
        ports.len(),
        targets.len(),
        s.probes,
        duration,
        at_alert("distinct_ports").unwrap_or(0),
        at_alert("distinct_targets").unwrap_or(0),
    );
    u
}

#[cfg(test)]
mod tests {
    //! Edges of the P2P exemption. The end-to-end check is the Gnutella
    //! capture in `tests/integration/detections.rs`; these pin the rule.

    use super::*;
    use crate::HomeNet;
    use tapsentry_intel::IntelSnapshot;
    use tapsentry_testkit::FlowRecordBuilder;

    const P2P: &str = "10.0.0.50";

    /// How a contact turns out.
    #[derive(Clone, Copy, PartialEq)]
    enum How {
        /// Nothing came back.
        Silent,
        /// Accepted, but no payload both ways (a SYN-ACK answered by RST).
        Answered,
        /// A working exchange: payload both ways.
        TwoWay,
    }

    fn rec(client: &str, server: &str, proto: u8, port: u16, how: How, t: i64) -> FlowRecord {
        let (state, cf, sf, back) = match how {
            How::Silent => (FlowState::Attempt, 0x02, 0, 0),
            How::Answered => (FlowState::ClosedRst, 0x06, 0x12, 1),
            How::TwoWay => (FlowState::ClosedFin, 0x1b, 0x1b, 5),
        };
        let tcp = proto == 6;
        let b = FlowRecordBuilder::new(client, 40000, server, port, proto)
            .at(t)
            .packets(if how == How::TwoWay { 5 } else { 1 }, back)
            .bytes(400, 300 * back)
            .state(if !tcp && how != How::Silent {
                FlowState::Established
            } else {
                state
            })
            .answered(how != How::Silent);
        if tcp { b.flags(cf, sf) } else { b }.build()
    }

    struct H {
        det: PortScanDetector,
        home: HomeNet,
        intel: IntelSnapshot,
        alerts: Vec<Alert>,
    }

    impl H {
        fn new(cfg: PortScanConfig) -> H {
            H {
                det: PortScanDetector::new(cfg),
                home: HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap(),
                intel: IntelSnapshot::empty(),
                alerts: Vec::new(),
            }
        }

        /// Judged from the client's shard, as the worker routes an inside
        /// client's records. Returns the alerts it raised.
        fn feed(&mut self, r: FlowRecord) -> usize {
            let before = self.alerts.len();
            let mut cx = DetectCx::new(&self.home, &self.intel, &mut self.alerts);
            self.det.on_flow(r.client, &r, &mut cx);
            self.alerts.len() - before
        }
    }

    /// Peer `i` of a stale peer list: its own /16, one port, every fourth
    /// peer on the Gnutella default 6346, the others on a high port.
    fn peer(i: u32) -> (String, u16) {
        let ip = format!(
            "{}.{}.{}.{}",
            11 + i % 100,
            1 + i / 100,
            i % 250,
            1 + i % 200
        );
        let port = if i.is_multiple_of(4) {
            6346
        } else {
            1024 + ((i.wrapping_mul(2_654_435_761) >> 8) % 60_000) as u16
        };
        (ip, port)
    }

    /// A P2P client: `stale` failed UDP pings to its peer list, with a
    /// working TCP session to `working` other peers after every tenth ping.
    fn p2p(h: &mut H, stale: u32, working: u32) {
        let mut w = 0;
        for i in 0..stale {
            let (ip, port) = peer(i);
            h.feed(rec(P2P, &ip, 17, port, How::Silent, i64::from(i)));
            if i % 10 == 9 && w < working {
                let (ip, port) = peer(10_000 + w);
                h.feed(rec(P2P, &ip, 6, port, How::TwoWay, i64::from(i)));
                w += 1;
            }
        }
        while w < working {
            let (ip, port) = peer(10_000 + w);
            h.feed(rec(P2P, &ip, 6, port, How::TwoWay, i64::from(stale)));
            w += 1;
        }
    }

    /// A vertical scan of 4,096 ports alerts at the same probe as ever, and
    /// past `REJUDGE_FROM` failures its judgements are spaced out: judged
    /// at every failure it took 4,096 passes over up to 4,096 pairs.
    #[test]
    fn big_scan_is_judged_o_n_log_n_times() {
        let mut h = H::new(PortScanConfig::default());
        let target = "10.0.9.9";
        h.feed(rec("10.0.0.7", target, 6, 443, How::TwoWay, 0));
        let mut first_alert_at = None;
        for port in 1..=4096u16 {
            if h.feed(rec("10.0.0.7", target, 6, 10_000 + port, How::Silent, 1)) > 0
                && first_alert_at.is_none()
            {
                first_alert_at = Some(port);
            }
        }
        let mut fresh = H::new(PortScanConfig::default());
        fresh.det.cfg = h.det.cfg.clone();
        fresh.feed(rec("10.0.0.7", target, 6, 443, How::TwoWay, 0));
        let mut exact_at = None;
        for port in 1..=REJUDGE_FROM as u16 {
            if fresh.feed(rec("10.0.0.7", target, 6, 10_000 + port, How::Silent, 1)) > 0 {
                exact_at = Some(port);
                break;
            }
        }
        assert!(exact_at.is_some(), "the scan alerts below REJUDGE_FROM");
        assert_eq!(first_alert_at, exact_at);
        assert_eq!(h.alerts.len(), 1);
        let judged = h.det.stats().judgements;
        // Every failure up to 512, then one per sixteenth more failures:
        // 512 + ln(4096 / 512) / ln(17 / 16) ≈ 546 (4,096 before).
        assert!(judged <= 560, "{judged} judgements for a 4,096-port scan");
        assert!(judged >= 512, "{judged}");
    }

    #[test]
    fn p2p_client_with_working_peers_is_quiet() {
        let mut h = H::new(PortScanConfig::default());
        p2p(&mut h, 400, 20);
        assert!(h.alerts.is_empty(), "{:#?}", h.alerts);
        assert!(h.det.stats().p2p_withheld > 0);
        let sh = PeerShape::of(&h.det.scanners[&P2P.parse().unwrap()].pairs);
        assert!(sh.peer_list(20), "{sh:?}");
        assert_eq!(sh.peers, 20);

        // The exemption is what keeps it quiet: turned off, the same host
        // is a scanner.
        let mut h = H::new(PortScanConfig {
            p2p_min_peers: 0,
            ..PortScanConfig::default()
        });
        p2p(&mut h, 400, 20);
        assert!(!h.alerts.is_empty());
    }

    #[test]
    fn unconfirmed_peer_list_is_held_until_the_limit() {
        // Four working peers, one short of p2p_min_peers: the verdict is
        // held while fewer than 256 targets failed, raised at the 256th. A
        // random-pair scan (one random high port per random host) that
        // mimics a peer list without talking to anyone ends the same way.
        let mut h = H::new(PortScanConfig::default());
        p2p(&mut h, 255, 4);
        assert!(h.alerts.is_empty(), "{:#?}", h.alerts);
        let (ip, port) = peer(255);
        assert_eq!(h.feed(rec(P2P, &ip, 17, port, How::Silent, 300)), 1);
        let a = &h.alerts[0];
        assert_eq!(a.evidence["peer_list_pattern"], true);
        assert_eq!(a.evidence["two_way_peers"], 4);
        assert_eq!(a.evidence["distinct_targets"], 256);

        // With the fifth peer, it stays quiet past the limit.
        let mut h = H::new(PortScanConfig::default());
        p2p(&mut h, 400, 5);
        assert!(h.alerts.is_empty(), "{:#?}", h.alerts);
    }

    #[test]
    fn horizontal_scan_of_a_high_port_across_a_24_alerts() {
        // 6379 over an outside /24, one target in twelve answering (one of
        // them with a real exchange): still a horizontal scan of 6379.
        for (port, two_way_every) in [(6379u16, 24u32), (8080, 12), (3389, 1000)] {
            let mut h = H::new(PortScanConfig::default());
            for i in 1..=254u32 {
                let how = if i.is_multiple_of(two_way_every) {
                    How::TwoWay
                } else if i.is_multiple_of(12) {
                    How::Answered
                } else {
                    How::Silent
                };
                h.feed(rec(
                    P2P,
                    &format!("198.51.100.{i}"),
                    6,
                    port,
                    how,
                    i64::from(i),
                ));
            }
            assert_eq!(h.alerts.len(), 1, "{port}: {:#?}", h.alerts);
            let a = &h.alerts[0];
            assert_eq!(a.alert.signature, "port_scan.horizontal", "{port}");
            assert_eq!(a.dest_port, Some(port));
            assert_eq!(a.evidence["peer_list_pattern"], false);
        }
    }

    #[test]
    fn random_outbound_scan_of_one_port_alerts() {
        // masscan 0.0.0.0/0 -p6379: scattered hosts, one high port.
        // One target answers first, so the walk judges (not the one-way
        // counts).
        let mut h = H::new(PortScanConfig::default());
        h.feed(rec(P2P, "198.51.100.1", 6, 6379, How::Answered, 0));
        for i in 0..100u32 {
            let (ip, _) = peer(i);
            h.feed(rec(P2P, &ip, 6, 6379, How::Silent, i64::from(i)));
        }
        assert_eq!(h.alerts.len(), 1, "{:#?}", h.alerts);
        assert_eq!(h.alerts[0].alert.signature, "port_scan.horizontal");
        assert_eq!(h.alerts[0].dest_port, Some(6379));

        // A port list spread over random hosts (one port each): few ports
        // for many targets, no peer list.
        let mut h = H::new(PortScanConfig::default());
        h.feed(rec(P2P, "198.51.100.1", 6, 22, How::Answered, 0));
        let list = [3389u16, 5900, 6379, 8080, 8443, 9200, 27017];
        for i in 0..100u32 {
            let (ip, _) = peer(i);
            let port = list[i as usize % list.len()];
            h.feed(rec(P2P, &ip, 6, port, How::Silent, i64::from(i)));
        }
        assert_eq!(h.alerts.len(), 1, "{:#?}", h.alerts);
        assert_eq!(h.alerts[0].alert.signature, "port_scan.mixed");
        assert_eq!(h.alerts[0].evidence["peer_list_pattern"], false);
    }

    #[test]
    fn p2p_client_that_scans_a_subnet_or_one_host_alerts() {
        // A confirmed P2P client (200 stale peers, 20 working) that then
        // sweeps 8080 over 80 hosts of one /24: that /24 holds more than a
        // quarter of the failed targets.
        let mut h = H::new(PortScanConfig::default());
        p2p(&mut h, 200, 20);
        assert!(h.alerts.is_empty());
        for i in 1..=80u32 {
            h.feed(rec(P2P, &format!("10.9.8.{i}"), 6, 8080, How::Silent, 500));
        }
        assert_eq!(h.alerts.len(), 1, "{:#?}", h.alerts);
        assert_eq!(h.alerts[0].evidence["peer_list_pattern"], false);

        // ... or probes 30 ports of one server: never a peer.
        let mut h = H::new(PortScanConfig::default());
        p2p(&mut h, 200, 20);
        for port in 1..=30u16 {
            h.feed(rec(P2P, "10.9.8.7", 6, port, How::Silent, 500));
        }
        assert_eq!(h.alerts.len(), 1, "{:#?}", h.alerts);
        assert_eq!(h.alerts[0].evidence["peer_list_pattern"], false);
    }

    #[test]
    fn scan_hidden_in_p2p_traffic_is_a_blind_spot() {
        // Documented blind spot: a confirmed P2P client whose scan stays
        // below the shares of the rule (here 40 hosts of a /24 on 8080 among
        // 200 stale peers: the /24 holds 0.17 of the failed targets, 8080
        // 0.17 of the contacts) is not flagged.
        let mut h = H::new(PortScanConfig::default());
        p2p(&mut h, 200, 20);
        for i in 1..=40u32 {
            h.feed(rec(P2P, &format!("10.9.8.{i}"), 6, 8080, How::Silent, 500));
        }
        assert!(h.alerts.is_empty(), "{:#?}", h.alerts);
    }

    #[test]
    fn multicast_and_broadcast_are_no_probes() {
        let mut h = H::new(PortScanConfig::default());
        for i in 0..50 {
            for (dst, port) in [
                ("224.0.0.251", 5353u16),
                ("239.255.255.250", 1900),
                ("255.255.255.255", 67),
                ("ff02::fb", 5353),
            ] {
                let client = if dst.contains(':') { "fd00::5" } else { P2P };
                h.feed(rec(client, dst, 17, port + i, How::Silent, i64::from(i)));
            }
        }
        assert!(h.alerts.is_empty());
        assert_eq!(h.det.stats().pairs, 0);
    }

    #[test]
    fn two_way_needs_payload_from_both_sides() {
        let ok = rec(P2P, "198.51.100.1", 6, 6346, How::TwoWay, 0);
        assert!(two_way(&ok));
        assert!(!two_way(&rec(
            P2P,
            "198.51.100.1",
            6,
            6346,
            How::Answered,
            0
        )));
        assert!(!two_way(&rec(P2P, "198.51.100.1", 6, 6346, How::Silent, 0)));
        let mut one_sided = ok;
        one_sided.server_flags = TcpFlags(0x12);
        assert!(!two_way(&one_sided));
        assert!(two_way(&rec(P2P, "198.51.100.1", 17, 6346, How::TwoWay, 0)));
        let mut refused = rec(P2P, "198.51.100.1", 17, 6346, How::Silent, 0);
        refused.state = FlowState::Rejected;
        refused.responder_answered = true;
        refused.to_client.packets = 1;
        assert!(!two_way(&refused));
    }

    #[test]
    fn p2p_keys_are_validated() {
        let cfg = PortScanConfig {
            p2p_unconfirmed_targets: 0,
            ..PortScanConfig::default()
        };
        assert!(cfg
            .problems("detect.port_scan")
            .iter()
            .any(|p| p.path == "detect.port_scan.p2p_unconfirmed_targets"));
        let cfg = PortScanConfig {
            p2p_unconfirmed_targets: 5000,
            ..PortScanConfig::default()
        };
        assert!(cfg
            .problems("detect.port_scan")
            .iter()
            .any(|p| p.path == "detect.port_scan.p2p_unconfirmed_targets"));
        assert!(PortScanConfig::default()
            .problems("detect.port_scan")
            .is_empty());
        // Invalid values are made safe rather than trusted.
        let d = PortScanDetector::new(PortScanConfig {
            p2p_unconfirmed_targets: 0,
            ..PortScanConfig::default()
        });
        assert_eq!(d.cfg.p2p_unconfirmed_targets, 1);
    }
}
