use foldhash::fast::RandomState;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;
use tapsentry_proto::{
    first_message_meta, ftp_data_endpoint, Dir, Meta, ProtoState, PACKET_BUDGET,
};

use crate::expect::Expectations;
use tapsentry_types::{
    AppProto, DirCounts, EndReason, FlowKey, FlowRecord, FlowState, PacketMeta, RecordKind, Side,
    TcpFlags, Timestamp,
};

use crate::FlowConfig;

const TCP: u8 = 6;
const UDP: u8 = 17;

/// Bytes one slot of the table costs: the (key, entry) pair as the hash
/// table stores it (128 bytes) and its control byte. Each shard keeps its
/// load factor at or below 7/8 and doubles (the shards fill evenly, so they
/// double together), so a live flow costs between
/// `ENTRY_BYTES * 8 / 7` and `ENTRY_BYTES * 16 / 7`: 270 bytes at 1,000,000
/// flows, a count just past a doubling (measured in `tests/alloc.rs`).
pub const ENTRY_BYTES: usize = std::mem::size_of::<(FlowKey, FlowEntry)>() + 1;

/// Per-flow state. Kept small: it is the table's memory bound.
#[derive(Debug, Clone, Copy)]
struct FlowEntry {
    first_seen: Timestamp,
    last_seen: Timestamp,
    /// Capture time of the last record emitted for this flow (interim pacing).
    last_report: Timestamp,
    /// Bytes from each side, indexed by [`Side`] (0 = A, 1 = B), and the
    /// part already carried by earlier records.
    bytes: [u64; 2],
    reported_bytes: [u64; 2],
    /// Packets likewise, 32-bit so that a key and an entry fit in 128 bytes
    /// (a hash table holding 1M flows has 2M slots: 8 bytes here are 16 MB
    /// there). They saturate at 4,294,967,295 packets a direction, about
    /// five minutes of one 10 GbE flow of minimum-size frames.
    packets: [u32; 2],
    reported_packets: [u32; 2],
    flags: [u8; 2],
    state: FlowState,
    /// The initiator, whether the responder answered and whether a SYN
    /// fixed the initiator, packed in one byte (`BIT_*`) so that the
    /// classifier's four bytes fit: the entry is 80 bytes, the slot 128.
    bits: u8,
    /// The application-protocol classifier: fed each packet until it is done.
    proto: ProtoState,
}

/// `FlowEntry::bits`: the initiator is side B.
const BIT_INITIATOR_B: u8 = 1 << 0;
/// `FlowEntry::bits`: the responder sent something (RST and ICMP included).
const BIT_ANSWERED: u8 = 1 << 1;
/// `FlowEntry::bits`: a SYN without ACK has fixed the initiator.
const BIT_SYN_SEEN: u8 = 1 << 2;
/// `FlowEntry::bits`: the classifier is done (its verdict is final or its
/// budget spent): one bit test per packet from then on.
const BIT_PROTO_DONE: u8 = 1 << 3;

// A slot is the (key, entry) pair; 128 bytes is two cache lines and the
// figure docs/performance.md's memory bound is stated in.
const _: () = assert!(std::mem::size_of::<(FlowKey, FlowEntry)>() == 128);

const fn idx(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

impl FlowEntry {
    fn new(side: Side, m: &PacketMeta<'_>, payload: &[u8]) -> (FlowEntry, Option<Dir>) {
        let f = m.tcp_flags;
        let tcp = m.proto == TCP;
        // A SYN-ACK as the first packet means we missed the SYN: the sender is
        // the responder. Otherwise the first sender initiated.
        let synack_first = tcp && f.has(TcpFlags::SYN | TcpFlags::ACK);
        let initiator = if synack_first { side.other() } else { side };
        let mut e = FlowEntry {
            first_seen: m.ts,
            last_seen: m.ts,
            last_report: m.ts,
            bytes: [0; 2],
            reported_bytes: [0; 2],
            packets: [0; 2],
            reported_packets: [0; 2],
            flags: [0; 2],
            state: if synack_first {
                FlowState::Established
            } else {
                FlowState::Attempt
            },
            bits: 0,
            proto: ProtoState::new(),
        };
        e.set_initiator(initiator);
        e.set_bit(BIT_ANSWERED, synack_first);
        e.set_bit(
            BIT_SYN_SEEN,
            tcp && f.has(TcpFlags::SYN) && !f.has(TcpFlags::ACK),
        );
        e.count(side, m);
        if !matches!(m.proto, TCP | UDP) {
            // ESP and AH are named at once; other protocols never inspected.
            e.proto.observe(Dir::ToServer, m.proto, &[], (0, 0));
            e.set_bit(BIT_PROTO_DONE, true);
        }
        let first = e.classify(side, m, payload);
        (e, first)
    }

    #[inline]
    fn initiator(&self) -> Side {
        if self.bits & BIT_INITIATOR_B != 0 {
            Side::B
        } else {
            Side::A
        }
    }

    #[inline]
    fn set_initiator(&mut self, side: Side) {
        self.set_bit(BIT_INITIATOR_B, side == Side::B);
    }

    #[inline]
    fn bit(&self, bit: u8) -> bool {
        self.bits & bit != 0
    }

    #[inline]
    fn set_bit(&mut self, bit: u8, on: bool) {
        if on {
            self.bits |= bit;
        } else {
            self.bits &= !bit;
        }
    }

    /// Feeds a TCP or UDP payload to the classifier while it still wants
    /// packets: after the first few payload packets of each direction it is
    /// done, and a packet costs one bit test. Returns the direction when
    /// this was its first payload packet and the protocol is known (the
    /// message to take metadata from).
    #[inline]
    fn classify(&mut self, side: Side, m: &PacketMeta<'_>, payload: &[u8]) -> Option<Dir> {
        if payload.is_empty() {
            return None;
        }
        let dir = if side == self.initiator() {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let first = self.proto.seen(dir) == 0;
        // A direction's first payload is still counted after the verdict
        // (the classifier's `seen` tells which message carries metadata);
        // past that, a done classifier or a spent direction has nothing to
        // learn from this packet.
        if !first && (self.bit(BIT_PROTO_DONE) || self.proto.seen(dir) >= PACKET_BUDGET) {
            return None;
        }
        self.proto
            .observe(dir, m.proto, payload, (m.src_port, m.dst_port));
        if self.proto.is_done() {
            self.set_bit(BIT_PROTO_DONE, true);
        }
        (first && !self.proto.verdict().is_unknown()).then_some(dir)
    }

    fn count(&mut self, side: Side, m: &PacketMeta<'_>) {
        let i = idx(side);
        self.packets[i] = self.packets[i].saturating_add(1);
        self.bytes[i] = self.bytes[i].saturating_add(u64::from(m.ip_len));
        self.flags[idx(side)] |= m.tcp_flags.0;
        // Files given in a row may step back in time; a flow's clock never does.
        if m.ts > self.last_seen {
            self.last_seen = m.ts;
        }
    }

    fn update(&mut self, side: Side, m: &PacketMeta<'_>, payload: &[u8]) -> Option<Dir> {
        self.count(side, m);
        let f = m.tcp_flags;
        if m.proto == TCP {
            let syn = f.has(TcpFlags::SYN);
            let ack = f.has(TcpFlags::ACK);
            let rst = f.has(TcpFlags::RST);
            let syn_seen = self.bit(BIT_SYN_SEEN);
            if syn && !ack && !syn_seen {
                self.set_initiator(side);
                self.set_bit(BIT_SYN_SEEN, true);
            }
            let syn_seen = self.bit(BIT_SYN_SEEN);
            let from_responder = side != self.initiator();
            if from_responder {
                self.set_bit(BIT_ANSWERED, true);
            }
            self.state = match self.state {
                FlowState::Attempt | FlowState::Rejected if from_responder => {
                    if rst {
                        FlowState::Rejected
                    } else if syn && ack {
                        FlowState::Established
                    } else if !syn_seen || self.state == FlowState::Attempt {
                        // Picked up mid-stream, or the SYN-ACK was not seen:
                        // the responder talking back is an established session.
                        FlowState::Established
                    } else {
                        self.state
                    }
                }
                FlowState::Established if rst => FlowState::ClosedRst,
                FlowState::Established
                    if self.flags[0] & TcpFlags::FIN != 0 && self.flags[1] & TcpFlags::FIN != 0 =>
                {
                    FlowState::ClosedFin
                }
                s => s,
            };
        } else if side != self.initiator() {
            self.set_bit(BIT_ANSWERED, true);
            if matches!(self.state, FlowState::Attempt | FlowState::Rejected) {
                self.state = FlowState::Established;
            }
        }
        self.classify(side, m, payload)
    }

    fn timeout_secs(&self, proto: u8, cfg: &FlowConfig) -> u32 {
        let t = &cfg.timeouts;
        match (proto, self.state) {
            (TCP, FlowState::Attempt | FlowState::Rejected) => t.tcp_new,
            (TCP, FlowState::Established) => t.tcp_established,
            (TCP, FlowState::ClosedFin | FlowState::ClosedRst) => t.tcp_closed,
            (UDP, FlowState::Established) => t.udp_established,
            (UDP, _) => t.udp_new,
            (_, FlowState::Established) => t.other_established,
            _ => t.other_new,
        }
    }

    fn counts(&self, i: usize) -> DirCounts {
        DirCounts {
            packets: u64::from(self.packets[i]),
            bytes: self.bytes[i],
        }
    }

    fn reported(&self, i: usize) -> DirCounts {
        DirCounts {
            packets: u64::from(self.reported_packets[i]),
            bytes: self.reported_bytes[i],
        }
    }

    fn has_unreported(&self) -> bool {
        self.packets != self.reported_packets
    }

    fn record(&self, key: &FlowKey, kind: RecordKind) -> FlowRecord {
        let initiator = self.initiator();
        let c = idx(initiator);
        let s = idx(initiator.other());
        let (client, client_port) = key.endpoint(initiator);
        let (server, server_port) = key.endpoint(initiator.other());
        FlowRecord {
            key: *key,
            client,
            client_port,
            server,
            server_port,
            proto: key.proto,
            vlan: key.vlan,
            first_seen: self.first_seen,
            last_seen: self.last_seen,
            to_server: self.counts(c),
            to_client: self.counts(s),
            reported_to_server: self.reported(c),
            reported_to_client: self.reported(s),
            client_flags: TcpFlags(self.flags[c]),
            server_flags: TcpFlags(self.flags[s]),
            state: self.state,
            responder_answered: self.bit(BIT_ANSWERED),
            app_proto: self.proto.verdict(),
            kind,
        }
    }
}

/// What [`FlowTable::ingest`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Counted on an existing flow.
    Updated,
    /// Started a new flow.
    Created,
    /// Started a new flow after evicting idle flows to make room.
    CreatedAfterEviction,
    /// The table is full of recently active flows: the packet was not tracked.
    Refused,
}

/// A snapshot of the table's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowCounters {
    /// Flows currently in the table.
    pub active: u64,
    /// Flows ever created.
    pub created: u64,
    /// Flows ended by idle timeout.
    pub expired: u64,
    /// Flows evicted at the cap.
    pub evicted: u64,
    /// New flows refused at the cap (no flow idle enough to evict).
    pub refused: u64,
    /// Interim records emitted.
    pub interim_records: u64,
    /// Flows flushed at shutdown or end of capture.
    pub flushed: u64,
    /// Records of evicted flows dropped because the sweeper fell behind (live only).
    pub records_dropped: u64,
    /// Flows marked refused by an ICMP unreachable quoting them.
    pub icmp_rejections: u64,
    /// Scans of the whole table for idle flows to evict (each O(table)).
    pub eviction_scans: u64,
    /// FTP data connections named by their control connection's announcement.
    pub ftp_data_named: u64,
    /// FTP data-connection announcements not kept (the bound was full).
    pub ftp_announcements_refused: u64,
}

/// What one shard holds: flows keyed by their canonical 5-tuple, found by
/// the table's 64-bit hash of the key.
type Slots = HashTable<(FlowKey, FlowEntry)>;

/// One shard: a hash table behind its own lock. Aligned to 128 bytes (two
/// cache lines, what the adjacent-line prefetcher pulls in) so that the
/// sweeper locking one shard never bounces the line of a lock the ingest
/// thread holds.
#[repr(align(128))]
struct Shard(Mutex<Slots>);

impl Shard {
    /// Locks the shard. A panic while a shard was held leaves its flows
    /// consistent (every mutation is a counter update or one insert or
    /// remove), so a poisoned lock is taken as it is.
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Shards in a table: four per core, rounded up to a power of two (the
/// count dashmap chose when it held the flows, kept so that the measurements
/// carry over), at least two. The ingest thread holds the shards it touches
/// across a batch while a live sweeper works through the others one by one:
/// more shards mean shorter waits for both.
fn shard_count() -> usize {
    (std::thread::available_parallelism().map_or(1, usize::from) * 4)
        .next_power_of_two()
        .clamp(2, 256)
}

/// The bounded, concurrent flow table. See the crate documentation.
///
/// The flows live in `shard_count()` shards, each a `hashbrown::HashTable`
/// behind a `Mutex`. One hash path serves every operation: a key's 64-bit
/// hash (`hasher`) is computed once per packet and picks both the shard
/// (bits 57-k..57 for 2^k shards) and the slot within it (hashbrown takes
/// the low bits for the bucket and the top seven for the tag, so the
/// shard's bits are spent on neither). Inserts rehash with the same hasher,
/// evictions find their victims through it, and sweeps and drains walk
/// each shard ([`FlowTable::sweep`], [`FlowTable::drain`]).
///
/// Locking: each operation locks one shard at a time, except an
/// [`IngestSession`], which keeps the shards it has touched until it
/// releases them. Sweeps, drains and eviction scans take the shards in
/// turn and never hold two, so they wait for a session's shards but cannot
/// deadlock with it; the one rule is the session's: its own thread releases
/// before it sweeps, evicts or waits on a thread that does.
pub struct FlowTable {
    cfg: FlowConfig,
    /// Seeded hasher: the keys are chosen by whoever sends packets, so the
    /// seed is random per table (foldhash's per-instance seed; hashbrown's
    /// own default). SipHash cost 5-6 % of a replay's samples in `perf`,
    /// foldhash a fraction of it.
    hasher: RandomState,
    shards: Box<[Shard]>,
    /// `64 - log2(shards.len())`: a hash shifted left seven bits then right
    /// by this many is its shard.
    shard_shift: u32,
    live: AtomicUsize,
    /// Records of flows evicted by the capture thread, handed out at the next sweep.
    pending: Mutex<Vec<FlowRecord>>,
    pending_len: AtomicUsize,
    pending_cap: usize,
    /// While the table is full of active flows, eviction scans are skipped
    /// until this capture time (µs) so a flood does not rescan per packet.
    no_scan_until: AtomicI64,
    created: AtomicU64,
    expired: AtomicU64,
    evicted: AtomicU64,
    refused: AtomicU64,
    interim: AtomicU64,
    flushed: AtomicU64,
    records_dropped: AtomicU64,
    icmp_rejections: AtomicU64,
    eviction_scans: AtomicU64,
    /// Connections announced by FTP control connections (ingest thread
    /// only; a lock, not a shard: rare and tiny).
    expected: Mutex<Expectations>,
    /// `expected`'s length, so that a new flow checks it without locking
    /// when nothing is announced (nearly always).
    expected_len: AtomicUsize,
    ftp_data_named: AtomicU64,
}

impl FlowTable {
    /// An empty table.
    pub fn new(cfg: FlowConfig) -> FlowTable {
        let max = cfg.max_flows.max(1);
        let n = shard_count();
        // Grows on demand; pre-sizing to the cap would commit its memory
        // even for a quiet link.
        let per_shard = max.min(4096).div_ceil(n);
        FlowTable {
            hasher: RandomState::default(),
            shards: (0..n)
                .map(|_| Shard(Mutex::new(HashTable::with_capacity(per_shard))))
                .collect(),
            shard_shift: 64 - n.trailing_zeros(),
            live: AtomicUsize::new(0),
            pending: Mutex::new(Vec::new()),
            pending_len: AtomicUsize::new(0),
            pending_cap: (max / 16).max(1024),
            no_scan_until: AtomicI64::new(i64::MIN),
            created: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            interim: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            records_dropped: AtomicU64::new(0),
            icmp_rejections: AtomicU64::new(0),
            eviction_scans: AtomicU64::new(0),
            expected: Mutex::new(Expectations::default()),
            expected_len: AtomicUsize::new(0),
            ftp_data_named: AtomicU64::new(0),
            cfg,
        }
    }

    fn lock_expected(&self) -> MutexGuard<'_, Expectations> {
        self.expected.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes the data connection an FTP control packet announces (the
    /// flow is `ftp`; `from_server`: the server sent it).
    fn ftp_control(&self, m: &PacketMeta<'_>, from_server: bool, payload: &[u8]) {
        let dir = if from_server {
            Dir::ToClient
        } else {
            Dir::ToServer
        };
        if let Some(ep) = ftp_data_endpoint(dir, payload) {
            // A `229` names only a port: the server's own address is meant.
            let addr = ep.addr.unwrap_or(m.src);
            let mut expected = self.lock_expected();
            expected.announce((addr, ep.port), m.ts);
            self.expected_len.store(expected.len(), Ordering::Relaxed);
        }
    }

    /// True when a new TCP flow to `responder` was announced by an FTP
    /// control connection (the announcement is used up).
    fn announced(&self, responder: (IpAddr, u16), now: Timestamp) -> bool {
        if self.expected_len.load(Ordering::Relaxed) == 0 {
            return false;
        }
        let mut expected = self.lock_expected();
        let hit = expected.take(responder, now);
        self.expected_len.store(expected.len(), Ordering::Relaxed);
        hit
    }

    /// The table's hash of a key: the one hash for shard choice, lookup,
    /// insert (and rehash on growth) and removal.
    #[inline]
    fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The shard a hash belongs to: the bits just below hashbrown's seven
    /// tag bits, which the bucket index (low bits) does not use either.
    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        ((hash << 7) >> self.shard_shift) as usize
    }

    /// The configuration in force.
    pub fn config(&self) -> &FlowConfig {
        &self.cfg
    }

    /// Flows in the table (one atomic load; never walks the map).
    pub fn live_flows(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// True when evicted-flow records are piling up and the caller should
    /// sweep soon (replay: sweep now, so nothing is dropped).
    pub fn needs_sweep(&self) -> bool {
        self.pending_len.load(Ordering::Relaxed) >= self.pending_cap / 2
    }

    /// Counts one packet on its flow, creating the flow if needed. A run of
    /// packets goes faster through one [`IngestSession`].
    pub fn ingest(&self, m: &PacketMeta<'_>) -> IngestOutcome {
        self.session().ingest(m)
    }

    /// A session for counting a run of packets. It keeps each shard it
    /// touches locked until [`IngestSession::release`] (or its drop), so a
    /// packet costs no lock round trip, and it looks up a group of packets'
    /// flows at once ([`IngestSession::probe`]) so that their cache misses
    /// overlap.
    ///
    /// While a session holds a shard, other threads' sweeps wait for it; the
    /// session's own thread must release before it sweeps, drains, calls
    /// [`FlowTable::ingest`] or waits for a thread that does.
    pub fn session(&self) -> IngestSession<'_> {
        let shards = self.shards.len();
        IngestSession {
            table: self,
            first_messages: Vec::with_capacity(FIRST_MESSAGES_MAX),
            first_messages_dropped: 0,
            guards: std::iter::repeat_with(|| None).take(shards).collect(),
            held: Vec::with_capacity(shards),
        }
    }

    fn probe(&self, m: &PacketMeta<'_>) -> FlowProbe {
        let (key, side) = FlowKey::canonical(m.src, m.src_port, m.dst, m.dst_port, m.proto, m.vlan);
        self.probe_key(key, side)
    }

    fn probe_key(&self, key: FlowKey, side: Side) -> FlowProbe {
        let hash = self.hash(&key);
        FlowProbe {
            key,
            side,
            hash,
            shard: self.shard_of(hash),
        }
    }

    /// Evicts a batch of the oldest sufficiently idle flows. Returns false
    /// when no flow is idle enough (the caller refuses the new flow).
    fn evict_idle(&self, now: Timestamp) -> bool {
        if now.micros() < self.no_scan_until.load(Ordering::Relaxed) {
            return false;
        }
        let min_idle_us = u64::from(self.cfg.evict_min_idle_secs) * 1_000_000;
        // Evict a batch, not one flow: a scan costs O(table), so amortise it
        // over many new flows (an eighth of the cap: each scan then pays for
        // max_flows/8 new flows). A bounded max-heap keeps the `batch` oldest.
        let batch = (self.cfg.max_flows / 8).clamp(1, 131_072);
        self.eviction_scans.fetch_add(1, Ordering::Relaxed);
        let mut oldest: BinaryHeap<(Timestamp, FlowKey)> = BinaryHeap::with_capacity(batch + 1);
        // One shard at a time: the heap orders the candidates totally (by
        // last seen, then key), so which flows go does not depend on the
        // order the shards or their slots are walked in.
        for shard in self.shards.iter() {
            for (k, e) in shard.lock().iter() {
                if now.micros_since(e.last_seen) >= min_idle_us {
                    oldest.push((e.last_seen, *k));
                    if oldest.len() > batch {
                        oldest.pop();
                    }
                }
            }
        }
        if oldest.is_empty() {
            self.no_scan_until
                .store(now.plus_secs(1).micros(), Ordering::Relaxed);
            return false;
        }
        let victims = oldest.into_sorted_vec();
        let mut removed = 0usize;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (_, key) in victims {
            let hash = self.hash(&key);
            let Some(shard) = self.shards.get(self.shard_of(hash)) else {
                continue;
            };
            let mut slots = shard.lock();
            if let Ok(entry) = slots.find_entry(hash, |(k, _)| *k == key) {
                let ((k, e), _) = entry.remove();
                drop(slots);
                removed += 1;
                if pending.len() < self.pending_cap {
                    pending.push(e.record(&k, RecordKind::End(EndReason::Evicted)));
                } else {
                    self.records_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.pending_len.store(pending.len(), Ordering::Relaxed);
        drop(pending);
        if removed < batch {
            // A short batch means few flows are idle enough: scanning again
            // for the next new flow would free only the handful that turned
            // idle in between, at O(table) each (a 10M-flow SYN flood at
            // 1M/s spent 94 % of its time here). Refuse until capture time
            // has moved on a second instead.
            self.no_scan_until
                .store(now.plus_secs(1).micros(), Ordering::Relaxed);
        }
        self.live.fetch_sub(removed, Ordering::Relaxed);
        self.evicted.fetch_add(removed as u64, Ordering::Relaxed);
        removed > 0
    }

    /// Expires flows idle past their timeout at capture time `now` and emits
    /// interim records of live flows due one, plus records of flows evicted
    /// since the last sweep. Appends to `out`, sorted by (last seen, key) so
    /// the order never depends on hashing.
    pub fn sweep(&self, now: Timestamp, out: &mut Vec<FlowRecord>) {
        let start = out.len();
        self.take_pending(out);
        let interim_us = u64::from(self.cfg.interim_interval_secs) * 1_000_000;
        let mut expired = 0usize;
        let mut interim = 0u64;
        let cfg = &self.cfg;
        self.retain(|(k, e)| {
            let idle = now.micros_since(e.last_seen);
            if idle >= u64::from(e.timeout_secs(k.proto, cfg)) * 1_000_000 {
                out.push(e.record(k, RecordKind::End(EndReason::Timeout)));
                expired += 1;
                return false;
            }
            if interim_us > 0 && now.micros_since(e.last_report) >= interim_us && e.has_unreported()
            {
                out.push(e.record(k, RecordKind::Interim));
                e.reported_packets = e.packets;
                e.reported_bytes = e.bytes;
                e.last_report = now;
                interim += 1;
            }
            true
        });
        self.live.fetch_sub(expired, Ordering::Relaxed);
        self.expired.fetch_add(expired as u64, Ordering::Relaxed);
        self.interim.fetch_add(interim, Ordering::Relaxed);
        sort_records(&mut out[start..]);
    }

    /// Ends every flow (shutdown or end of capture) and appends their records
    /// to `out`, sorted like [`FlowTable::sweep`].
    pub fn drain(&self, out: &mut Vec<FlowRecord>) {
        let start = out.len();
        self.take_pending(out);
        let mut n = 0usize;
        self.retain(|(k, e)| {
            out.push(e.record(k, RecordKind::End(EndReason::Shutdown)));
            n += 1;
            false
        });
        self.live.fetch_sub(n, Ordering::Relaxed);
        self.flushed.fetch_add(n as u64, Ordering::Relaxed);
        sort_records(&mut out[start..]);
    }

    /// Keeps the flows `keep` says to, one shard locked at a time (a live
    /// sweeper waits only for the shard an ingest session holds, not for
    /// all of them).
    fn retain(&self, mut keep: impl FnMut(&mut (FlowKey, FlowEntry)) -> bool) {
        for shard in self.shards.iter() {
            shard.lock().retain(&mut keep);
        }
    }

    fn take_pending(&self, out: &mut Vec<FlowRecord>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        out.append(&mut pending);
        self.pending_len.store(0, Ordering::Relaxed);
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> FlowCounters {
        FlowCounters {
            active: self.live.load(Ordering::Relaxed) as u64,
            created: self.created.load(Ordering::Relaxed),
            expired: self.expired.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            interim_records: self.interim.load(Ordering::Relaxed),
            flushed: self.flushed.load(Ordering::Relaxed),
            records_dropped: self.records_dropped.load(Ordering::Relaxed),
            icmp_rejections: self.icmp_rejections.load(Ordering::Relaxed),
            eviction_scans: self.eviction_scans.load(Ordering::Relaxed),
            ftp_data_named: self.ftp_data_named.load(Ordering::Relaxed),
            ftp_announcements_refused: self.lock_expected().refused,
        }
    }
}

fn sort_records(recs: &mut [FlowRecord]) {
    recs.sort_unstable_by(|x, y| {
        (
            x.last_seen,
            x.first_seen,
            x.key,
            x.kind == RecordKind::Interim,
        )
            .cmp(&(
                y.last_seen,
                y.first_seen,
                y.key,
                y.kind == RecordKind::Interim,
            ))
    });
}

/// First-message metadata a session holds before its caller takes it
/// ([`IngestSession::take_first_messages`]): the pipeline takes them after
/// every batch of 512 frames, and a frame yields at most one.
pub const FIRST_MESSAGES_MAX: usize = 1024;

/// What the first message of one direction of a flow revealed (TLS SNI and
/// ALPN, a software banner, an HTTP host): see
/// [`tapsentry_proto::first_message_meta`]. Kept out of the flow slot; the
/// caller carries it to the flow's records.
#[derive(Debug, Clone, Copy)]
pub struct FirstMessage {
    /// The flow.
    pub key: FlowKey,
    /// Capture time of the message.
    pub ts: Timestamp,
    /// True when the client sent it.
    pub to_server: bool,
    /// The flow's protocol when the message was read.
    pub app_proto: AppProto,
    /// What it revealed.
    pub meta: Meta,
}

/// Packets an [`IngestSession::probe`] call looks up at once. Eight misses
/// in flight is what one core overlaps well; 4 and 16 measured slower on
/// the 5M-packet bench (docs/performance.md).
pub const PROBE_GROUP: usize = 8;

type ShardGuard<'t> = MutexGuard<'t, Slots>;

/// A packet's canonical flow key, the side that sent it, and where the key
/// lives in the table that computed it. Only meaningful to that table's
/// sessions: the hash is seeded per table.
#[derive(Debug, Clone, Copy)]
pub struct FlowProbe {
    key: FlowKey,
    side: Side,
    hash: u64,
    shard: usize,
}

/// Counts a run of packets with the table's shard locks held across the
/// run. See [`FlowTable::session`].
pub struct IngestSession<'t> {
    table: &'t FlowTable,
    /// Metadata of first messages, until the caller takes them.
    first_messages: Vec<FirstMessage>,
    first_messages_dropped: u64,
    /// One slot per shard, `Some` while this session holds it.
    guards: Vec<Option<ShardGuard<'t>>>,
    /// Which slots are `Some`, so that a release does not walk every shard.
    held: Vec<usize>,
}

impl<'t> IngestSession<'t> {
    /// Unlocks every shard this session holds. Call it before anything on
    /// this thread that sweeps, evicts or waits for a thread that does.
    pub fn release(&mut self) {
        for i in self.held.drain(..) {
            if let Some(guard) = self.guards.get_mut(i) {
                *guard = None;
            }
        }
    }

    #[inline]
    fn shard(&mut self, i: usize) -> Option<&mut Slots> {
        let slot = self.guards.get_mut(i)?;
        if slot.is_none() {
            *slot = Some(self.table.shards.get(i)?.lock());
            self.held.push(i);
        }
        slot.as_deref_mut()
    }

    /// Computes the probes of up to [`PROBE_GROUP`] packets (one per item,
    /// `None` for `None`) and looks their flows up back to back, throwing
    /// the answers away: the point is the memory traffic. A lookup in a big
    /// table is a cache miss on the slot, taken one at a time when each
    /// packet is counted before the next is looked at. Independent lookups
    /// in a row let the core have them all in flight, and the
    /// [`IngestSession::ingest_probed`] calls that follow find their slots
    /// in cache.
    pub fn probe<'m>(
        &mut self,
        metas: impl Iterator<Item = Option<&'m PacketMeta<'m>>>,
    ) -> [Option<FlowProbe>; PROBE_GROUP] {
        let mut probes = [None; PROBE_GROUP];
        for (m, p) in metas.zip(probes.iter_mut()) {
            *p = m.map(|m| self.table.probe(m));
        }
        for p in probes.iter().flatten() {
            if let Some(shard) = self.shard(p.shard) {
                std::hint::black_box(shard.find(p.hash, |(k, _)| *k == p.key).is_some());
            }
        }
        probes
    }

    /// Counts one packet on its flow, creating the flow if needed.
    pub fn ingest(&mut self, m: &PacketMeta<'_>) -> IngestOutcome {
        let probe = self.table.probe(m);
        self.ingest_probed(m, &probe)
    }

    /// [`IngestSession::ingest`] with the probe that
    /// [`IngestSession::probe`] computed for this packet.
    pub fn ingest_probed(&mut self, m: &PacketMeta<'_>, p: &FlowProbe) -> IngestOutcome {
        self.ingest_probed_payload(m, m.payload, p)
    }

    /// [`IngestSession::ingest_probed`] with the packet's payload (or its
    /// first bytes) given apart from its summary, whose own payload is then
    /// ignored: the pipeline keeps payloads in a per-batch arena.
    pub fn ingest_probed_payload(
        &mut self,
        m: &PacketMeta<'_>,
        payload: &[u8],
        p: &FlowProbe,
    ) -> IngestOutcome {
        self.ingest_probed_verdict(m, payload, p).0
    }

    /// [`IngestSession::ingest_probed_payload`] that also returns the
    /// flow's application-protocol verdict after this packet (`Unknown` for
    /// a refused packet). Read from the entry already in hand: no second
    /// lookup, so a caller can act on the verdict per packet for free (the
    /// pipeline parses DNS of flows named `dns` on other ports).
    pub fn ingest_probed_verdict(
        &mut self,
        m: &PacketMeta<'_>,
        payload: &[u8],
        p: &FlowProbe,
    ) -> (IngestOutcome, AppProto) {
        let table = self.table;
        if let Some((_, quoted)) = m.icmp_error {
            self.note_icmp_error(m.vlan, &quoted);
        }
        if let Some(shard) = self.shard(p.shard) {
            if let Some((_, e)) = shard.find_mut(p.hash, |(k, _)| *k == p.key) {
                let first = e.update(p.side, m, payload);
                let proto = e.proto.verdict();
                let from_server = p.side != e.initiator();
                if let Some(dir) = first {
                    self.first_message(p.key, m.ts, dir, proto, payload);
                }
                // An FTP control connection is read to its end for the data
                // connections it announces: a byte compare per packet of
                // other flows.
                if proto == AppProto::Ftp && !payload.is_empty() {
                    table.ftp_control(m, from_server, payload);
                }
                return (IngestOutcome::Updated, proto);
            }
        }
        let mut outcome = IngestOutcome::Created;
        if table.live.load(Ordering::Relaxed) >= table.cfg.max_flows {
            // Eviction walks and removes from every shard: let go of ours.
            self.release();
            if !table.evict_idle(m.ts) {
                table.refused.fetch_add(1, Ordering::Relaxed);
                return (IngestOutcome::Refused, AppProto::Unknown);
            }
            outcome = IngestOutcome::CreatedAfterEviction;
        }
        let Some(shard) = self.shard(p.shard) else {
            // Not reached: the probe's shard index came from this table.
            table.refused.fetch_add(1, Ordering::Relaxed);
            return (IngestOutcome::Refused, AppProto::Unknown);
        };
        // Growth rehashes with the table's own hash, so every flow stays
        // where a probe computes it to be.
        let (mut entry, first) = FlowEntry::new(p.side, m, payload);
        if m.proto == TCP && table.announced(p.key.endpoint(entry.initiator().other()), m.ts) {
            entry.proto.assign(AppProto::FtpData);
            entry.set_bit(BIT_PROTO_DONE, true);
            table.ftp_data_named.fetch_add(1, Ordering::Relaxed);
        }
        let proto = entry.proto.verdict();
        shard.insert_unique(p.hash, (p.key, entry), |(k, _)| table.hash(k));
        if let Some(dir) = first {
            self.first_message(p.key, m.ts, dir, proto, payload);
        }
        table.live.fetch_add(1, Ordering::Relaxed);
        table.created.fetch_add(1, Ordering::Relaxed);
        (outcome, proto)
    }

    /// True when the packet `p` was probed for came from its flow's
    /// responder (the server), false from its initiator; `None` when the
    /// flow is not in the table (the packet was refused). A second lookup,
    /// for the few flows a caller reads past identification (the pipeline's
    /// SMB and DCE-RPC inspector), so that [`Self::ingest_probed_verdict`]
    /// returns no more than every packet needs.
    pub fn sent_by_server(&mut self, p: &FlowProbe) -> Option<bool> {
        let shard = self.shard(p.shard)?;
        let (_, e) = shard.find_mut(p.hash, |(k, _)| *k == p.key)?;
        Some(p.side != e.initiator())
    }

    /// Keeps the metadata of a direction's first message, if it has any
    /// and the session's buffer has room (see [`IngestSession::take_first_messages`]).
    fn first_message(
        &mut self,
        key: FlowKey,
        ts: Timestamp,
        dir: Dir,
        proto: AppProto,
        payload: &[u8],
    ) {
        if let Some(meta) = first_message_meta(proto, dir, payload) {
            if self.first_messages.len() < FIRST_MESSAGES_MAX {
                self.first_messages.push(FirstMessage {
                    key,
                    ts,
                    to_server: dir == Dir::ToServer,
                    app_proto: proto,
                    meta,
                });
            } else {
                self.first_messages_dropped += 1;
            }
        }
    }

    /// Moves the first-message metadata gathered since the last call to
    /// `out`, in packet order; returns how many were dropped because the
    /// session's buffer ([`FIRST_MESSAGES_MAX`]) was full.
    pub fn take_first_messages(&mut self, out: &mut Vec<FirstMessage>) -> u64 {
        out.append(&mut self.first_messages);
        std::mem::take(&mut self.first_messages_dropped)
    }

    /// An ICMP unreachable answering an unanswered flow marks it refused:
    /// that is how closed UDP ports answer, and scanners count on it.
    fn note_icmp_error(&mut self, vlan: u16, q: &tapsentry_types::QuotedTuple) {
        let (key, side) = FlowKey::canonical(q.src, q.src_port, q.dst, q.dst_port, q.proto, vlan);
        let p = self.table.probe_key(key, side);
        let table = self.table;
        let Some(shard) = self.shard(p.shard) else {
            return;
        };
        if let Some((_, e)) = shard.find_mut(p.hash, |(k, _)| *k == p.key) {
            if e.initiator() == p.side && e.state == FlowState::Attempt {
                e.state = FlowState::Rejected;
                e.set_bit(BIT_ANSWERED, true);
                table.icmp_rejections.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use tapsentry_testkit::PacketMetaBuilder;

    fn packet(i: u32) -> PacketMeta<'static> {
        PacketMetaBuilder::udp(Ipv4Addr::from(0x0a00_0000 | i), 5000, [10, 9, 9, 9], 53)
            .ip_len(60)
            .at_micros(1_000_000 + i64::from(i))
            .build()
    }

    /// Every flow sits in the shard its hash names, at the slot the same
    /// hash finds, after the shards have grown (and rehashed) many times;
    /// and a removal through that hash (eviction) finds each of them.
    #[test]
    fn one_hash_places_finds_and_removes_every_flow() {
        let n = 20_000u32;
        let table = FlowTable::new(FlowConfig {
            max_flows: n as usize,
            evict_min_idle_secs: 0,
            ..FlowConfig::default()
        });
        let mut session = table.session();
        for i in 0..n {
            assert_eq!(session.ingest(&packet(i)), IngestOutcome::Created);
        }
        session.release();
        let mut placed = 0;
        for (i, shard) in table.shards.iter().enumerate() {
            for (key, _) in shard.lock().iter() {
                let hash = table.hash(key);
                assert_eq!(table.shard_of(hash), i, "{key:?} in the wrong shard");
                placed += 1;
            }
        }
        assert_eq!(placed, n);
        for i in 0..n {
            let m = packet(i);
            let p = table.probe(&m);
            let shard = table.shards[p.shard].lock();
            assert!(shard.find(p.hash, |(k, _)| *k == p.key).is_some());
        }
        // One more flow at the cap evicts an eighth of the table through
        // `find_entry` with the same hash.
        assert_eq!(
            table.ingest(&packet(n)),
            IngestOutcome::CreatedAfterEviction
        );
        let evicted = table.counters().evicted;
        assert_eq!(evicted, u64::from(n / 8));
        let held: usize = table.shards.iter().map(|s| s.lock().len()).sum();
        assert_eq!(held, n as usize + 1 - n as usize / 8);
        assert_eq!(table.live_flows(), held);
    }
}
