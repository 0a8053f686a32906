//! `flood`: an inside host swamped by new flows from many sources (a SYN
//! flood, a UDP flood), spoofed or not: one alert a flood, about the host
//! flooded, not a line per source.
//!
//! Per inside server it counts the flows opened to it (first records only)
//! in an episode: the episode starts with a flow and ends after
//! `quiet_secs` of capture time without one. An episode becomes a flood
//! when it has at least `min_flows` flows at `min_rate_per_sec` or more,
//! from at least `min_sources` sources, with at least `min_one_packet_ratio`
//! of them one-packet flows (a SYN never followed by the handshake's ACK, a
//! lone datagram): real clients complete handshakes and send more than one
//! datagram. Sources are counted in a fixed 8 192-bit sketch (linear
//! counting), so the count is an estimate, exact enough to tell ten sources
//! from ten thousand, and the memory is fixed.
//!
//! "Spoofed" in the evidence means at least 95 % one-packet flows, and
//! sources that each appear about once (the distinct-source estimate is at
//! least half the flows) or too many to count (the sketch saturated, about
//! 74 000): what random source addresses look like. The
//! sensor sees no TTLs in flow records, so TTL spread is not used; a
//! source's history (seen before or not) is not kept for flood sources.
//!
//! Blind spots: a flood whose flows the flow table refused (full, nothing
//! idle enough to evict) never reaches the detectors; those packets are
//! counted in the stats (`flows.refused`), and the rest of the flood still
//! raises the alert. A flood of completed connections (an HTTP flood from a
//! botnet) has few one-packet flows and is not called a flood here.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tapsentry_types::{Category, FlowRecord, Mitre, Problem, SectionProblems, Timestamp};

use crate::common::{Finding, HostTable};
use crate::{Bound, DetectCx, Detector};

/// The category every flood alert carries (contract, second round).
pub const FLOOD: Category = Category::new("flood");

/// The `[detect.flood]` section.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    /// Run this detector. Default true.
    pub enabled: bool,
    /// Flows opened to one inside host in an episode before it can be a
    /// flood. Default 10000.
    pub min_flows: u64,
    /// New flows a second (over the episode so far) that make a flood.
    /// Default 500.
    pub min_rate_per_sec: u64,
    /// Distinct sources (estimated) that make a flood. Default 500.
    pub min_sources: u64,
    /// Share of one-packet flows (no completed handshake, a lone datagram)
    /// needed. Default 0.8.
    pub min_one_packet_ratio: f64,
    /// Seconds of capture time without a new flow that end an episode.
    /// Default 10.
    pub quiet_secs: u64,
    /// Inside hosts tracked per worker (memory bound: about 1.2 KiB each;
    /// least recently flooded dropped). Default 4096.
    pub max_hosts: usize,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            enabled: true,
            min_flows: 10_000,
            min_rate_per_sec: 500,
            min_sources: 500,
            min_one_packet_ratio: 0.8,
            quiet_secs: 10,
            max_hosts: 4096,
        }
    }
}

impl FloodConfig {
    /// Every problem with the values, each under `section`.
    pub fn problems(&self, section: &str) -> Vec<Problem> {
        let mut p = SectionProblems::new(section);
        p.at_least("min_flows", self.min_flows, 1);
        p.at_least("min_rate_per_sec", self.min_rate_per_sec, 1);
        p.at_least("min_sources", self.min_sources, 1);
        p.at_least("quiet_secs", self.quiet_secs, 1);
        p.at_least("max_hosts", self.max_hosts, 1);
        if !(0.0..=1.0).contains(&self.min_one_packet_ratio) {
            p.push("min_one_packet_ratio", "must be between 0 and 1");
        }
        p.into_vec()
    }
}

/// Bits of the distinct-source sketch (1 KiB a host).
const SKETCH_BITS: usize = 8192;
/// Destination ports remembered per host, for the evidence.
const MAX_PORTS: usize = 8;

/// Distinct values seen, estimated by linear counting over a bitmap: each
/// source sets one bit chosen by its hash; `m * ln(m / zeros)` estimates how
/// many distinct sources set them. Saturates (every bit set) beyond about
/// `m * ln(m)`; [`Sketch::estimate`] then says so.
#[derive(Debug, Clone)]
struct Sketch([u64; SKETCH_BITS / 64]);

impl Sketch {
    fn new() -> Self {
        Sketch([0; SKETCH_BITS / 64])
    }

    fn insert(&mut self, ip: IpAddr) {
        let bytes: [u8; 16] = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        let (hi, lo) = bytes.split_at(8);
        let word = |b: &[u8]| b.iter().fold(0u64, |w, &x| w << 8 | u64::from(x));
        // A fixed 64-bit finaliser (Stafford's "mix13", as in SplitMix64)
        // over both halves: every input bit reaches every output bit, so
        // neighbouring addresses (a /16 swept in order) land on unrelated
        // bits; the top bits pick the bit. Fixed, so the estimate (and the
        // evidence) is the same on every run and platform.
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let h = mix(word(hi) ^ mix(word(lo)));
        let bit = usize::try_from(h >> (64 - SKETCH_BITS.trailing_zeros())).unwrap_or(0);
        if let Some(w) = self.0.get_mut(bit / 64) {
            *w |= 1 << (bit % 64);
        }
    }

    /// (estimate, saturated).
    fn estimate(&self) -> (u64, bool) {
        let zeros: u32 = self.0.iter().map(|w| w.count_zeros()).sum();
        let m = SKETCH_BITS as f64;
        if zeros == 0 {
            return ((m * m.ln()) as u64, true);
        }
        ((m * (m / f64::from(zeros)).ln()).round() as u64, false)
    }
}

#[derive(Debug, Clone)]
struct Episode {
    start: Timestamp,
    last: Timestamp,
    flows: u64,
    one_packet: u64,
    sources: Sketch,
    ports: BTreeMap<u16, u64>,
    protos: BTreeMap<u8, u64>,
    alerted: bool,
}

impl Episode {
    fn new(t: Timestamp) -> Self {
        Episode {
            start: t,
            last: t,
            flows: 0,
            one_packet: 0,
            sources: Sketch::new(),
            ports: BTreeMap::new(),
            protos: BTreeMap::new(),
            alerted: false,
        }
    }
}

/// See the module documentation.
pub struct FloodDetector {
    cfg: FloodConfig,
    hosts: HostTable<IpAddr, Episode>,
}

impl FloodDetector {
    /// A detector with the given settings.
    pub fn new(cfg: FloodConfig) -> Self {
        let hosts = HostTable::new(cfg.max_hosts);
        FloodDetector { cfg, hosts }
    }
}

impl Detector for FloodDetector {
    fn name(&self) -> &'static str {
        "flood"
    }

    fn bounds(&self, out: &mut dyn FnMut(Bound)) {
        out(self.hosts.bound("hosts", "max_hosts"));
        out(Bound {
            map: "destination ports per flooded host",
            key: "",
            len: self
                .hosts
                .iter()
                .map(|(_, e)| e.ports.len())
                .max()
                .unwrap_or(0),
            cap: MAX_PORTS,
        });
    }

    /// Registered [`crate::Perspective::InsideServer`]: `host` is the
    /// server, inside.
    fn on_flow(&mut self, host: IpAddr, rec: &FlowRecord, cx: &mut DetectCx<'_>) {
        if !rec.is_first_report() {
            return;
        }
        let quiet_us = self.cfg.quiet_secs.saturating_mul(1_000_000);
        let t = rec.first_seen;
        let e = self.hosts.touch(host, t, || Episode::new(t));
        if t.micros_since(e.last) > quiet_us {
            *e = Episode::new(t);
        }
        e.start = e.start.min(t);
        e.last = e.last.max(t);
        e.flows += 1;
        if rec.to_server.packets <= 1 {
            e.one_packet += 1;
        }
        e.sources.insert(rec.client);
        let ports = e.ports.len();
        if let Some(n) = e.ports.get_mut(&rec.server_port) {
            *n += 1;
        } else if ports < MAX_PORTS {
            e.ports.insert(rec.server_port, 1);
        }
        if e.protos.len() < 4 || e.protos.contains_key(&rec.proto) {
            *e.protos.entry(rec.proto).or_default() += 1;
        }
        if e.alerted || e.flows < self.cfg.min_flows {
            return;
        }
        // At least 10 ms, so a burst of first records at one instant does
        // not divide by zero; the duration is the episode's so far.
        let secs = (e.last.micros_since(e.start) as f64 / 1e6).max(0.01);
        let rate = e.flows as f64 / secs;
        let one_packet_ratio = e.one_packet as f64 / e.flows as f64;
        let (sources, saturated) = e.sources.estimate();
        if rate < self.cfg.min_rate_per_sec as f64
            || one_packet_ratio < self.cfg.min_one_packet_ratio
            || sources < self.cfg.min_sources
        {
            return;
        }
        e.alerted = true;
        // A saturated sketch means more distinct one-packet sources than
        // any client population sends at a flood rate: spoofed too.
        let spoofed =
            one_packet_ratio >= 0.95 && (saturated || sources.saturating_mul(2) >= e.flows);
        let proto = e
            .protos
            .iter()
            .max_by_key(|(p, n)| (**n, std::cmp::Reverse(**p)))
            .map_or(rec.proto, |(p, _)| *p);
        let mut evidence = BTreeMap::new();
        evidence.insert("flows", json!(e.flows));
        evidence.insert("rate_per_sec", json!((rate * 10.0).round() / 10.0));
        evidence.insert("duration_secs", json!((secs * 1000.0).round() / 1000.0));
        evidence.insert("episode_start", json!(e.start));
        evidence.insert("distinct_sources", json!(sources));
        evidence.insert("distinct_sources_at_least", json!(saturated));
        evidence.insert(
            "one_packet_ratio",
            json!((one_packet_ratio * 1000.0).round() / 1000.0),
        );
        evidence.insert("spoofed", json!(spoofed));
        evidence.insert(
            "spoofed_because",
            json!(if spoofed {
                "each source seen about once, and none completing a handshake or sending a second packet"
            } else {
                "sources repeat or complete handshakes"
            }),
        );
        evidence.insert(
            "dest_ports",
            json!(e
                .ports
                .iter()
                .map(|(p, n)| json!({"port": p, "flows": n}))
                .collect::<Vec<_>>()),
        );
        evidence.insert("min_flows", json!(self.cfg.min_flows));
        evidence.insert("min_rate_per_sec", json!(self.cfg.min_rate_per_sec));
        evidence.insert("min_sources", json!(self.cfg.min_sources));
        let description = format!(
            "{host} received {} new flows in {:.3} s ({:.0}/s) from {}{} sources, {:.0}% of them one packet{}",
            e.flows,
            secs,
            rate,
            if saturated { "at least " } else { "about " },
            sources,
            one_packet_ratio * 100.0,
            if spoofed { ": a flood from spoofed addresses" } else { ": a flood" },
        );
        let severity = if rate >= 10.0 * self.cfg.min_rate_per_sec as f64 {
            1
        } else {
            2
        };
        let alert = Finding {
            ts: e.last,
            category: FLOOD,
            signature: if proto == 6 {
                "flood.syn"
            } else {
                "flood.new_flows"
            },
            severity,
            description,
            mitre: Mitre {
                tactic: "TA0040",
                technique: "T1498.001",
            },
            src: host,
            dest: None,
            ports: None,
            proto: Some(proto),
            evidence,
            community_id: None,
            app_proto: None,
            outside: None,
        }
        .into_alert(cx);
        cx.raise(alert);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sketch_tells_ten_sources_from_ten_thousand() {
        let mut s = Sketch::new();
        for i in 0..10u32 {
            s.insert(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()));
        }
        let (ten, sat) = s.estimate();
        assert!(!sat && (9..=11).contains(&ten), "{ten}");
        // Consecutive addresses (a sweep in order) and scattered ones alike.
        for step in [1u32, 7919] {
            let mut s = Sketch::new();
            for i in 0..10_000u32 {
                s.insert(IpAddr::from((0x5000_0000u32 + i * step).to_be_bytes()));
                // The same sources again change nothing.
                s.insert(IpAddr::from((0x5000_0000u32 + i * step).to_be_bytes()));
            }
            let (n, sat) = s.estimate();
            assert!(!sat && (9_500..=10_500).contains(&n), "step {step}: {n}");
        }
        let mut s = Sketch::new();
        for i in 0..1_000_000u32 {
            s.insert(IpAddr::from(i.to_be_bytes()));
        }
        assert!(s.estimate().1, "a million sources saturate 8 192 bits");
    }
}
