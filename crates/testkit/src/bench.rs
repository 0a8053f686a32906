//! A large synthetic capture for throughput benchmarks (issue 4): millions
//! of whole Ethernet/IPv4 frames over a few hundred thousand flows, with a
//! realistic size mix, written straight to a classic pcap file.
//!
//! The traffic is plausible rather than labelled: TCP connections with a
//! handshake, requests, full-size response segments acknowledged every one
//! or two segments, and an orderly close; some uploads; interactive TCP with
//! mid-size segments both ways; QUIC-like UDP on port 443; and DNS
//! query/response pairs with real DNS messages. Clients are inside
//! (10.0.0.0/8), most servers are public addresses, some are inside.
//! Every header checksum is correct, so no tool takes an error path.
//!
//! Each flow gets a start time, a packet budget (heavy-tailed, so a few
//! elephants carry much of the volume) and a pace; a heap merges the flows'
//! packets into one time-ordered stream. Budgets add up to exactly the
//! requested packet count. The same [`BenchSpec`] always gives the same
//! bytes.
//!
//! Frames are built by hand into one reused buffer and written through a
//! large `BufWriter`, not through etherparse's builder and libpcap's
//! dumper, so writing is bound by the disk rather than by the generator.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use tapsentry_types::LinkType;

use crate::checksum::{fold, internet_checksum, pseudo_header_v4, sum, udp_v4};
use crate::frames::mac_for;
use crate::raw_pcap::PcapFormat;
use crate::rng::Rng;
use crate::DnsMessage;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchSpec {
    /// Packets in the capture (exact from 4 packets up). Default 5,000,000.
    pub packets: u64,
    /// Flows (exact unless there are too few packets to give each flow
    /// its minimum; then fewer). Default 200,000.
    pub flows: u64,
    /// Seed of the pseudo-random stream. Default 1.
    pub seed: u64,
    /// Mean packet rate in packets per second of capture time; sets how
    /// long the capture lasts (packets / rate). Default 100,000.
    pub rate_pps: u64,
}

impl Default for BenchSpec {
    fn default() -> Self {
        BenchSpec {
            packets: 5_000_000,
            flows: 200_000,
            seed: 1,
            rate_pps: 100_000,
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BenchSummary {
    /// Packets written.
    pub packets: u64,
    /// Flows, all kinds.
    pub flows: u64,
    /// Of which TCP.
    pub tcp_flows: u64,
    /// Of which non-DNS UDP (QUIC-like).
    pub udp_flows: u64,
    /// Of which DNS (one query, one response).
    pub dns_flows: u64,
    /// Sum of frame lengths (captured = wire: frames are whole).
    pub frame_bytes: u64,
    /// Frames of 1514 bytes.
    pub full_size: u64,
    /// Frames of at most 66 bytes (bare ACKs, SYNs are 74 or less too but
    /// counted only when ≤ 66).
    pub small: u64,
    /// First packet's timestamp, µs since the Unix epoch.
    pub first_micros: i64,
    /// Last packet's timestamp, µs since the Unix epoch.
    pub last_micros: i64,
}

/// Capture start: 2024-03-01T10:00:00Z.
const START_MICROS: i64 = 1_709_287_200_000_000;
const ETH: usize = 14;
const IP: usize = 20;
const MTU: usize = 1500;
/// Bytes of payload that can be drawn from; enough for any segment.
const PAYLOAD_LEN: usize = MTU;

/// Writes the capture to `path` (created or truncated) and returns what it
/// holds.
pub fn write_bench(spec: &BenchSpec, path: &Path) -> io::Result<BenchSummary> {
    let mut out = BufWriter::with_capacity(4 << 20, File::create(path)?);
    let format = PcapFormat::micros(LinkType::ETHERNET);
    out.write_all(&format.file_header())?;
    let summary = generate(spec, |ts, frame| {
        out.write_all(&format.record_header_at(ts, frame.len()))?;
        out.write_all(frame)
    })?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(summary)
}

/// Generates the capture, handing each frame with its timestamp (µs since
/// the Unix epoch, non-decreasing) to `emit`.
pub fn generate<F>(spec: &BenchSpec, mut emit: F) -> io::Result<BenchSummary>
where
    F: FnMut(i64, &[u8]) -> io::Result<()>,
{
    let mut rng = Rng::new(spec.seed ^ 0x0BE7_C4DA_7A5E_ED00);
    let world = World::new(&mut rng);
    let duration_ns = (spec.packets.max(1) as f64 / spec.rate_pps.max(1) as f64 * 1e9) as u64;
    let mut flows = plan_flows(spec, &world, &mut rng, duration_ns);
    let mut summary = BenchSummary {
        flows: flows.len() as u64,
        ..BenchSummary::default()
    };
    for f in &flows {
        match f.kind {
            Kind::Dns => summary.dns_flows += 1,
            Kind::Quic => summary.udp_flows += 1,
            _ => summary.tcp_flows += 1,
        }
    }

    // Flows are sorted by start time; the heap holds the started ones by
    // the time of their next packet (ties by index, so the order is fixed).
    let mut heap: BinaryHeap<Reverse<(u64, u32)>> = BinaryHeap::new();
    let mut next_start = 0usize;
    let mut frame = Vec::with_capacity(ETH + MTU);
    let builder = Builder::new(&mut rng);
    loop {
        let next_due = heap.peek().map(|Reverse((t, _))| *t);
        let idx = match (next_start < flows.len(), next_due) {
            (true, Some(t)) if flows[next_start].start_ns > t => pop(&mut heap),
            (true, _) => {
                next_start += 1;
                (flows[next_start - 1].start_ns, next_start as u32 - 1)
            }
            (false, Some(_)) => pop(&mut heap),
            (false, None) => break,
        };
        let (now_ns, i) = idx;
        let f = &mut flows[i as usize];
        f.next_packet(&builder, &mut rng, &mut frame);
        let ts = START_MICROS + (now_ns / 1_000) as i64;
        if summary.packets == 0 {
            summary.first_micros = ts;
        }
        summary.last_micros = ts;
        summary.packets += 1;
        summary.frame_bytes += frame.len() as u64;
        if frame.len() == ETH + MTU {
            summary.full_size += 1;
        } else if frame.len() <= 66 {
            summary.small += 1;
        }
        emit(ts, &frame)?;
        if f.left > 0 {
            // Exponential-ish gap around the flow's pace.
            let gap = (f.gap_ns as f64 * -(1.0 - rng.unit()).ln()).min(f.gap_ns as f64 * 8.0);
            heap.push(Reverse((now_ns + gap as u64 + 1, i)));
        }
    }
    Ok(summary)
}

fn pop(heap: &mut BinaryHeap<Reverse<(u64, u32)>>) -> (u64, u32) {
    match heap.pop() {
        Some(Reverse(x)) => x,
        None => unreachable!("pop is called only after a successful peek"),
    }
}

// ---------------------------------------------------------------------------
// Flows

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Client requests, server answers with full-size segments.
    Download,
    /// Client sends full-size segments, server acknowledges.
    Upload,
    /// Mid-size segments both ways.
    Interactive,
    /// QUIC-like: large datagrams down, small ones up.
    Quic,
    /// One query, one answer.
    Dns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Syn,
    SynAck,
    HandshakeAck,
    /// The side that asks sends a request of this many bytes next.
    Request,
    /// The answering side sends `segs` more segments, the last `last`
    /// bytes long; `unacked` are waiting for an acknowledgment.
    Respond {
        segs: u32,
        last: u16,
        unacked: u8,
    },
    /// An acknowledgment from the asking side is due.
    AckDue {
        segs: u32,
        last: u16,
    },
    Fin1,
    Fin2,
    LastAck,
    Done,
}

struct Flow {
    kind: Kind,
    client: [u8; 4],
    server: [u8; 4],
    cport: u16,
    sport: u16,
    start_ns: u64,
    gap_ns: u64,
    /// Packets still to send.
    left: u64,
    phase: Phase,
    cseq: u32,
    sseq: u32,
    cid: u16,
    sid: u16,
    /// Acknowledge every this many segments (1 or 2).
    ack_every: u8,
    /// TCP timestamp option on every segment (12 bytes).
    ts_opt: bool,
    /// Index of the DNS name (DNS) or mean request size (TCP).
    param: u32,
}

/// Addresses the flows are drawn from.
struct World {
    clients: Vec<[u8; 4]>,
    outside: Vec<[u8; 4]>,
    inside_servers: Vec<[u8; 4]>,
    resolvers: [[u8; 4]; 2],
}

impl World {
    fn new(rng: &mut Rng) -> World {
        let clients = (0..4000u32)
            .map(|i| [10, 1 + (i / 250) as u8, (i % 250) as u8, 10 + (i % 7) as u8])
            .collect();
        let mut outside = Vec::with_capacity(20_000);
        while outside.len() < 20_000 {
            let a = (rng.next_u64() as u32).to_be_bytes();
            if is_public(a) {
                outside.push(a);
            }
        }
        let inside_servers = (0..64u8).map(|i| [10, 0, 1, 10 + i]).collect();
        World {
            clients,
            outside,
            inside_servers,
            resolvers: [[10, 0, 0, 53], [10, 0, 0, 54]],
        }
    }
}

/// Globally routed unicast (roughly): not private, loopback, link-local,
/// CGNAT, documentation, multicast or reserved.
fn is_public(a: [u8; 4]) -> bool {
    let ip = Ipv4Addr::from(a);
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || a[0] == 0
        || a[0] >= 224
        || (a[0] == 100 && (a[1] & 0xc0) == 64)
        || (a[0] == 198 && (a[1] & 0xfe) == 18))
}

fn plan_flows(spec: &BenchSpec, world: &World, rng: &mut Rng, duration_ns: u64) -> Vec<Flow> {
    let n = spec.packets;
    // Minimum packets per kind: handshake + request + answer + ack + close.
    let min_of = |k: Kind| -> u64 {
        match k {
            Kind::Dns => 2,
            Kind::Quic => 4,
            _ => 8,
        }
    };
    let mut flows_wanted = spec.flows.max(1);
    // Fewer flows when the packets cannot give each its minimum (about 5
    // on average with the kind mix below).
    if flows_wanted.saturating_mul(6) > n {
        flows_wanted = (n / 6).max(1);
    }
    let mut kinds = Vec::with_capacity(flows_wanted as usize);
    let mut weights = Vec::with_capacity(flows_wanted as usize);
    for _ in 0..flows_wanted {
        let r = rng.unit();
        let k = if r < 0.30 {
            Kind::Dns
        } else if r < 0.40 {
            Kind::Quic
        } else if r < 0.49 {
            Kind::Interactive
        } else if r < 0.56 {
            Kind::Upload
        } else {
            Kind::Download
        };
        kinds.push(k);
        // Pareto(α = 1.3) extra weight, capped so no flow holds more than
        // a small share; DNS has a fixed size.
        let w = if k == Kind::Dns {
            0.0
        } else {
            (1.0 / (1.0 - rng.unit()).powf(1.0 / 1.3)).min(2_000.0)
        };
        weights.push(w);
    }
    let mut mins: u64 = kinds.iter().map(|k| min_of(*k)).sum();
    // Still too few packets (tiny captures): make flows DNS until it fits.
    let mut j = 0;
    while mins > n && j < kinds.len() {
        if kinds[j] != Kind::Dns {
            mins -= min_of(kinds[j]) - 2;
            kinds[j] = Kind::Dns;
            weights[j] = 0.0;
        }
        j += 1;
    }
    while mins > n && !kinds.is_empty() {
        kinds.pop();
        weights.pop();
        mins -= 2;
    }
    // Only DNS flows left: one becomes QUIC-like to take the spare packets.
    if !kinds.is_empty() && mins + 2 <= n && mins < n && weights.iter().all(|w| *w == 0.0) {
        mins += min_of(Kind::Quic) - min_of(kinds[0]);
        kinds[0] = Kind::Quic;
        weights[0] = 1.0;
    }
    let spare = n - mins;
    let total_w: f64 = weights.iter().sum();
    let mut budgets: Vec<u64> = kinds.iter().map(|k| min_of(*k)).collect();
    let mut given = 0u64;
    if total_w > 0.0 {
        for (b, w) in budgets.iter_mut().zip(&weights) {
            let extra = (spare as f64 * w / total_w) as u64;
            *b += extra;
            given += extra;
        }
        // The rounding remainder goes round the non-DNS flows.
        let mut rest = spare - given;
        let mut i = 0;
        while rest > 0 {
            if kinds[i % kinds.len()] != Kind::Dns {
                budgets[i % kinds.len()] += 1;
                rest -= 1;
            }
            i += 1;
        }
    }

    let mut flows = Vec::with_capacity(kinds.len());
    for (i, (kind, left)) in kinds.into_iter().zip(budgets).enumerate() {
        let client = world.clients[rng.below(world.clients.len() as u64) as usize];
        let inside = rng.unit() < 0.2;
        let (server, sport) = match kind {
            Kind::Dns => (world.resolvers[rng.below(2) as usize], 53),
            Kind::Quic => (
                world.outside[rng.below(world.outside.len() as u64) as usize],
                443,
            ),
            _ if inside => {
                let s = world.inside_servers[rng.below(world.inside_servers.len() as u64) as usize];
                let ports = [445u16, 443, 80, 8080, 3389, 22, 389, 5432];
                (s, ports[rng.below(ports.len() as u64) as usize])
            }
            _ => {
                let s = world.outside[rng.below(world.outside.len() as u64) as usize];
                let r = rng.unit();
                (
                    s,
                    if r < 0.8 {
                        443
                    } else if r < 0.95 {
                        80
                    } else {
                        8443
                    },
                )
            }
        };
        // Start anywhere in the first 90 % of the capture; finish within it.
        let start_ns = (rng.unit() * 0.9 * duration_ns as f64) as u64;
        let span = (duration_ns - start_ns) as f64 * rng.range(0.02, 0.9);
        let gap_ns = match kind {
            Kind::Dns => rng.range(200_000.0, 30_000_000.0) as u64,
            _ => ((span / left as f64) as u64).max(1_000),
        };
        let cport = 32_768 + ((i as u64 * 7919 + rng.below(64)) % 28_000) as u16;
        flows.push(Flow {
            kind,
            client,
            server,
            cport,
            sport,
            start_ns,
            gap_ns,
            left,
            phase: if kind == Kind::Dns || kind == Kind::Quic {
                Phase::Request
            } else {
                Phase::Syn
            },
            cseq: rng.next_u64() as u32,
            sseq: rng.next_u64() as u32,
            cid: rng.next_u64() as u16,
            sid: rng.next_u64() as u16,
            ack_every: if rng.unit() < 0.3 { 1 } else { 2 },
            ts_opt: rng.unit() < 0.6,
            param: rng.next_u64() as u32,
        });
    }
    flows.sort_by_key(|f| f.start_ns);
    flows
}

impl Flow {
    /// Builds this flow's next packet into `frame` and moves on.
    fn next_packet(&mut self, b: &Builder, rng: &mut Rng, frame: &mut Vec<u8>) {
        self.left -= 1;
        match self.kind {
            Kind::Dns => self.next_dns(b, frame),
            Kind::Quic => self.next_quic(b, rng, frame),
            _ => self.next_tcp(b, rng, frame),
        }
    }

    fn next_dns(&mut self, b: &Builder, frame: &mut Vec<u8>) {
        let query = self.phase == Phase::Request;
        let msg = dns_message(self.param, query, self.server);
        if query {
            b.udp(
                frame,
                self.client,
                self.cport,
                self.server,
                self.sport,
                self.cid,
                &msg,
            );
            self.cid = self.cid.wrapping_add(1);
            self.phase = Phase::Respond {
                segs: 1,
                last: 0,
                unacked: 0,
            };
        } else {
            b.udp(
                frame,
                self.server,
                self.sport,
                self.client,
                self.cport,
                self.sid,
                &msg,
            );
            self.sid = self.sid.wrapping_add(1);
            self.phase = Phase::Done;
        }
    }

    fn next_quic(&mut self, b: &Builder, rng: &mut Rng, frame: &mut Vec<u8>) {
        // Mostly 1250-1350 byte datagrams down, a small one up every ~4.
        if self.left.is_multiple_of(4) {
            let len = 30 + rng.below(50) as usize;
            b.udp(
                frame,
                self.client,
                self.cport,
                self.server,
                self.sport,
                self.cid,
                &b.payload[..len],
            );
            self.cid = self.cid.wrapping_add(1);
        } else {
            let len = 1_222 + rng.below(100) as usize;
            b.udp(
                frame,
                self.server,
                self.sport,
                self.client,
                self.cport,
                self.sid,
                &b.payload[..len],
            );
            self.sid = self.sid.wrapping_add(1);
        }
    }

    fn next_tcp(&mut self, b: &Builder, rng: &mut Rng, frame: &mut Vec<u8>) {
        const SYN: u8 = 0x02;
        const ACK: u8 = 0x10;
        const PSH_ACK: u8 = 0x18;
        const FIN_ACK: u8 = 0x11;
        // Close when only the three closing packets are left.
        if self.left == 2
            && !matches!(
                self.phase,
                Phase::Fin1 | Phase::Fin2 | Phase::LastAck | Phase::Done
            )
        {
            self.phase = Phase::Fin1;
        }
        // Who asks and who answers: the client, except for uploads.
        let upload = self.kind == Kind::Upload;
        let mss = MTU - IP - 20 - if self.ts_opt { 12 } else { 0 };
        match self.phase {
            Phase::Syn => {
                self.tcp(b, frame, true, SYN, 0);
                self.cseq = self.cseq.wrapping_add(1);
                self.phase = Phase::SynAck;
            }
            Phase::SynAck => {
                self.tcp(b, frame, false, SYN | ACK, 0);
                self.sseq = self.sseq.wrapping_add(1);
                self.phase = Phase::HandshakeAck;
            }
            Phase::HandshakeAck => {
                self.tcp(b, frame, true, ACK, 0);
                self.phase = Phase::Request;
            }
            Phase::Request => {
                // Requests: mid-size; interactive flows stay mid-size.
                let len = 80 + rng.below(700) as usize;
                self.tcp(b, frame, !upload, PSH_ACK, len);
                let (segs, last) = match self.kind {
                    Kind::Interactive => (1 + rng.below(3) as u32, 60 + rng.below(900) as u16),
                    _ => (1 + rng.below(40) as u32, (1 + rng.below(mss as u64)) as u16),
                };
                self.phase = Phase::Respond {
                    segs,
                    last,
                    unacked: 0,
                };
            }
            Phase::Respond {
                segs,
                last,
                unacked,
            } => {
                let len = if segs == 1 {
                    usize::from(last)
                } else if self.kind == Kind::Interactive {
                    60 + rng.below(500) as usize
                } else {
                    mss
                };
                self.tcp(b, frame, upload, if segs == 1 { PSH_ACK } else { ACK }, len);
                let unacked = unacked + 1;
                let segs = segs - 1;
                self.phase = if unacked >= self.ack_every || segs == 0 {
                    Phase::AckDue { segs, last }
                } else {
                    Phase::Respond {
                        segs,
                        last,
                        unacked,
                    }
                };
            }
            Phase::AckDue { segs, last } => {
                self.tcp(b, frame, !upload, ACK, 0);
                self.phase = if segs == 0 {
                    Phase::Request
                } else {
                    Phase::Respond {
                        segs,
                        last,
                        unacked: 0,
                    }
                };
            }
            Phase::Fin1 => {
                self.tcp(b, frame, true, FIN_ACK, 0);
                self.cseq = self.cseq.wrapping_add(1);
                self.phase = Phase::Fin2;
            }
            Phase::Fin2 => {
                self.tcp(b, frame, false, FIN_ACK, 0);
                self.sseq = self.sseq.wrapping_add(1);
                self.phase = Phase::LastAck;
            }
            Phase::LastAck | Phase::Done => {
                // A budget above the plan's (never, by construction) would
                // end in more pure ACKs, still a valid flow.
                self.tcp(b, frame, true, ACK, 0);
                self.phase = Phase::Done;
            }
        }
    }

    /// One TCP segment from the client (`from_client`) or the server, with
    /// `len` bytes of payload; sequence numbers advance.
    fn tcp(&mut self, b: &Builder, frame: &mut Vec<u8>, from_client: bool, flags: u8, len: usize) {
        let seg = if from_client {
            TcpSeg {
                src: self.client,
                dst: self.server,
                sport: self.cport,
                dport: self.sport,
                seq: self.cseq,
                ack: if flags & 0x10 != 0 { self.sseq } else { 0 },
                flags,
                id: self.cid,
                ts_opt: self.ts_opt,
            }
        } else {
            TcpSeg {
                src: self.server,
                dst: self.client,
                sport: self.sport,
                dport: self.cport,
                seq: self.sseq,
                ack: self.cseq,
                flags,
                id: self.sid,
                ts_opt: self.ts_opt,
            }
        };
        b.tcp(frame, &seg, len);
        if from_client {
            self.cseq = self.cseq.wrapping_add(len as u32);
            self.cid = self.cid.wrapping_add(1);
        } else {
            self.sseq = self.sseq.wrapping_add(len as u32);
            self.sid = self.sid.wrapping_add(1);
        }
    }
}

const DNS_WORDS: [&str; 24] = [
    "www", "mail", "api", "cdn", "static", "login", "update", "img", "news", "shop", "docs",
    "video", "edge", "auth", "files", "chat", "maps", "cloud", "status", "assets", "m", "app",
    "data", "portal",
];
const DNS_ZONES: [&str; 8] = ["com", "net", "org", "de", "io", "co.uk", "fr", "info"];

/// A DNS query or its answer (one A record) for name number `n`.
fn dns_message(n: u32, query: bool, resolver: [u8; 4]) -> Vec<u8> {
    let name = format!(
        "{}.{}.{}",
        DNS_WORDS[(n % 24) as usize],
        site_name(n / 24 % 5_000),
        DNS_ZONES[(n / 7 % 8) as usize]
    );
    let msg = DnsMessage::query((n as u16) ^ 0x5a5a, &name, 1);
    if query {
        return msg.encode();
    }
    let a = [93, (n >> 16) as u8, (n >> 8) as u8, n as u8 ^ resolver[3]];
    msg.response(0).answer(1, 3600, &a).encode()
}

/// A pronounceable site name for number `n`: "site" plus up to 12 letters.
fn site_name(mut n: u32) -> String {
    let mut out = String::from("site");
    loop {
        out.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 || out.len() == 16 {
            break;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Frames

struct TcpSeg {
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    id: u16,
    ts_opt: bool,
}

/// Builds frames; payload bytes come from one fixed random block, whose
/// one's-complement prefix sums make the TCP/UDP checksum of any payload
/// length a table look-up.
struct Builder {
    payload: Vec<u8>,
    /// `prefix[len]`: the checksum sum of `payload[..len]` (odd tail
    /// padded with a zero byte).
    prefix: Vec<u32>,
}

impl Builder {
    fn new(rng: &mut Rng) -> Builder {
        let payload: Vec<u8> = (0..PAYLOAD_LEN).map(|_| rng.next_u64() as u8).collect();
        let mut prefix = vec![0u32; PAYLOAD_LEN + 1];
        for len in 1..=PAYLOAD_LEN {
            // Extend the sum of the longest even prefix before `len` by
            // the word (or padded last byte) that ends at `len`.
            let even = (len - 1) & !1;
            prefix[len] = sum(prefix[even], &payload[even..len]);
        }
        Builder { payload, prefix }
    }

    fn eth_ip(frame: &mut Vec<u8>, src: [u8; 4], dst: [u8; 4], proto: u8, ip_len: usize, id: u16) {
        frame.clear();
        frame.extend_from_slice(&mac_for(&dst));
        frame.extend_from_slice(&mac_for(&src));
        frame.extend_from_slice(&[0x08, 0x00]);
        let ttl = if src[0] == 10 { 64 } else { 52 };
        let mut ip = [0u8; IP];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&id.to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = ttl;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let c = internet_checksum(&ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        frame.extend_from_slice(&ip);
    }

    fn tcp(&self, frame: &mut Vec<u8>, s: &TcpSeg, len: usize) {
        let hdr_len = if s.ts_opt { 32 } else { 20 };
        let seg_len = hdr_len + len;
        Self::eth_ip(frame, s.src, s.dst, 6, IP + seg_len, s.id);
        let mut h = [0u8; 32];
        h[0..2].copy_from_slice(&s.sport.to_be_bytes());
        h[2..4].copy_from_slice(&s.dport.to_be_bytes());
        h[4..8].copy_from_slice(&s.seq.to_be_bytes());
        h[8..12].copy_from_slice(&s.ack.to_be_bytes());
        h[12] = ((hdr_len / 4) as u8) << 4;
        h[13] = s.flags;
        h[14..16].copy_from_slice(&64_240u16.to_be_bytes());
        if s.ts_opt {
            h[20..24].copy_from_slice(&[1, 1, 8, 10]);
            h[24..28].copy_from_slice(&s.seq.rotate_left(7).to_be_bytes());
            h[28..32].copy_from_slice(&s.ack.rotate_left(11).to_be_bytes());
        }
        let acc = sum(pseudo_header_v4(s.src, s.dst, 6, seg_len), &h[..hdr_len]);
        h[16..18].copy_from_slice(&fold(acc + self.prefix[len]).to_be_bytes());
        frame.extend_from_slice(&h[..hdr_len]);
        frame.extend_from_slice(&self.payload[..len]);
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "a generated exchange is exactly these fields; a struct would only rename them"
    )]
    fn udp(
        &self,
        frame: &mut Vec<u8>,
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        id: u16,
        data: &[u8],
    ) {
        let udp_len = 8 + data.len();
        Self::eth_ip(frame, src, dst, 17, IP + udp_len, id);
        let at = frame.len();
        frame.extend_from_slice(&sport.to_be_bytes());
        frame.extend_from_slice(&dport.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(data);
        let c = udp_v4(src, dst, &frame[at..]);
        frame[at + 6..at + 8].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> BenchSpec {
        BenchSpec {
            packets: 20_000,
            flows: 800,
            seed: 7,
            rate_pps: 100_000,
        }
    }

    #[test]
    fn exact_packet_count_ordered_and_reproducible() {
        let mut a = Vec::new();
        let mut last = i64::MIN;
        let s = generate(&small(), |ts, f| {
            assert!(ts >= last);
            last = ts;
            a.extend_from_slice(f);
            Ok(())
        })
        .unwrap();
        assert_eq!(s.packets, 20_000);
        assert_eq!(s.flows, 800);
        assert_eq!(s.tcp_flows + s.udp_flows + s.dns_flows, 800);
        let mut b = Vec::new();
        generate(&small(), |_, f| {
            b.extend_from_slice(f);
            Ok(())
        })
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn checksums_are_valid() {
        generate(&small(), |_, f| {
            let p = etherparse::SlicedPacket::from_ethernet(f).unwrap();
            let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
                panic!("not IPv4")
            };
            let h = ip.header().to_header();
            assert_eq!(h.header_checksum, h.calc_header_checksum());
            match p.transport {
                Some(etherparse::TransportSlice::Tcp(t)) => {
                    let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
                    assert_eq!(t.checksum(), want);
                }
                Some(etherparse::TransportSlice::Udp(u)) => {
                    let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
                    assert_eq!(u.checksum(), want);
                }
                other => panic!("unexpected transport {other:?}"),
            }
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn tiny_captures_still_work() {
        for packets in [4, 5, 10, 11, 13, 50, 100, 1000] {
            let spec = BenchSpec {
                packets,
                flows: 100,
                ..BenchSpec::default()
            };
            let s = generate(&spec, |_, _| Ok(())).unwrap();
            assert_eq!(s.packets, packets);
        }
    }
}
