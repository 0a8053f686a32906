//! The ingest stage (thread `flow-in`): counts each frame on its flow, in
//! capture order, and cuts the stream into sweep ticks on capture-time
//! boundaries.
//!
//! It sees the frames in exactly the order the reader read them, so the
//! ticks and what each carries are those of a single thread. It counts a
//! batch through one flow-table session: the shards stay locked for the
//! batch, and each group of [`PROBE_GROUP`] frames is looked up back to back
//! before it is counted, so that the table's cache misses overlap.
//!
//! In replay a tick waits for the sweeper's ack, so flow expiry never races
//! with ingest; live, a tick is skipped when the sweeper is busy.

use std::collections::HashMap;
use std::mem;
use std::net::IpAddr;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tapsentry_decode::dns;
use tapsentry_detect::HomeNet;
use tapsentry_flow::{
    FirstMessage, FlowProbe, FlowTable, IngestOutcome, IngestSession, PROBE_GROUP,
};
use tapsentry_telemetry::{wall, DropReason, LatencyHist};
use tapsentry_types::{AdminEvent, AppProto, DnsEvent, MacSighting, PacketMeta, Timestamp};

use super::admin::AdminTable;
use super::stats::{lock, SharedStats};
use super::sweep::SweepMsg;
use crate::config::PipelineConfig;

/// Frames per batch from the reader to the ingest thread: large enough that
/// the channel hand-off (a few hundred ns) is noise per packet, small enough
/// (about 80 KB of summaries) to stay in cache between the two cores.
pub const INGEST_BATCH: usize = 512;

/// Batches in flight between reader and ingest (about 10 MB at most, 65,536
/// frames): lets the reader decode on while the ingest thread waits for a
/// replay's sweep, which on a 200,000-flow table takes longer than 32
/// batches last. 32, 64 and 128 measured 2.30, 2.10 and 1.94 s on the 5M
/// replay in one hyperfine run (docs/performance.md).
pub const INGEST_QUEUE: usize = 128;

/// Payload bytes the reader keeps of one packet for the protocol
/// classifier: every matcher decides within the first few hundred bytes of a
/// first message, and the HTTP headers analysts read (host, user agent)
/// come early.
pub const PAYLOAD_KEEP: usize = 512;

/// Payload bytes kept of a UDP datagram and of a TCP segment that starts a
/// TLS handshake record. Several UDP matchers judge a datagram by its
/// length (an RDP-UDP SYN is padded to 1,232 bytes; an SNMP message's BER
/// length must equal the datagram's), so a datagram is kept whole; a
/// ClientHello's SNI and ALPN can sit anywhere in its extensions, and a
/// hello with a post-quantum key share is about 1,800 bytes.
pub const PAYLOAD_KEEP_MAX: usize = 2048;

/// The payload arena of one batch: its capacity, never grown. The reader
/// hands a batch on early when another packet's payload might not fit, so
/// a batch of full-sized payloads is about 64 frames, not 512 (the channel
/// hand-off is then still a few ns a frame); with [`INGEST_QUEUE`] batches
/// in flight the arenas hold 16 MiB at most.
pub const PAYLOAD_ARENA: usize = 128 * 1024;

/// One frame as the reader hands it to the ingest thread: its capture time
/// and, when it decoded, the packet summary. The summary's payload slice is
/// empty; the first bytes of the payload (at most [`PAYLOAD_KEEP`], or
/// [`PAYLOAD_KEEP_MAX`]) are in the batch's arena at `payload`.
#[derive(Clone, Copy)]
pub(crate) struct Ingest {
    pub ts: Timestamp,
    pub meta: Option<PacketMeta<'static>>,
    /// Where this frame's kept payload is in the batch's arena (start, length).
    pub payload: (u32, u32),
    /// The next event of the batch's `dns` list came from this frame.
    pub dns: bool,
    /// Decode time of a sampled frame (1 in 64), in ns; the ingest thread
    /// adds its own part (an eighth of its group's lookups, then the count)
    /// and records the sum as the packet's processing time.
    pub decode_ns: Option<u32>,
}

/// Frames in capture order plus the DNS summaries taken from them: what
/// the reader hands the ingest thread, recycled back empty.
#[doc(hidden)]
pub struct IngestBatch {
    pub(crate) frames: Vec<Ingest>,
    pub(crate) dns: Vec<DnsEvent>,
    /// The first payload bytes of the frames, back to back (the classifier's
    /// input); capacity [`PAYLOAD_ARENA`], never grown.
    pub(crate) payload: Vec<u8>,
    /// Destination then source MAC of each frame (zero when not Ethernet),
    /// in frame order, only when the reader keeps them (the inventory is
    /// on); empty otherwise. Beside the frames rather than in them, so the
    /// per-frame summary stays its size when the inventory is off.
    pub(crate) macs: Vec<[u8; 12]>,
}

impl IngestBatch {
    /// An empty batch with room for a full one.
    pub fn empty() -> Self {
        IngestBatch {
            frames: Vec::with_capacity(INGEST_BATCH),
            dns: Vec::with_capacity(64),
            payload: Vec::with_capacity(PAYLOAD_ARENA),
            macs: Vec::new(),
        }
    }

    /// Copies the first bytes of `payload` that the classifier may need
    /// into the arena and returns where they are. Nothing is kept when the
    /// arena is full (the reader hands the batch on before that happens:
    /// see [`IngestBatch::is_full`]).
    #[inline]
    pub(crate) fn keep_payload(&mut self, payload: &[u8], udp: bool) -> (u32, u32) {
        let keep = if udp || payload.starts_with(&[0x16, 0x03]) {
            PAYLOAD_KEEP_MAX
        } else {
            PAYLOAD_KEEP
        };
        let start = self.payload.len();
        let take = payload
            .len()
            .min(keep)
            .min(PAYLOAD_ARENA.saturating_sub(start));
        let Some(bytes) = payload.get(..take) else {
            return (0, 0);
        };
        self.payload.extend_from_slice(bytes);
        // Both fit in u32: the arena is 128 KiB.
        (start as u32, take as u32)
    }

    /// True when the batch should go: [`INGEST_BATCH`] frames, or too little
    /// arena left for one more TLS hello. Where a batch is cut changes no
    /// record (ticks follow capture time, not batches).
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.frames.len() >= INGEST_BATCH || self.payload.len() + PAYLOAD_KEEP_MAX > PAYLOAD_ARENA
    }

    /// Frames in the batch.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when no frame is in the batch.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frames that decoded (and will be counted on a flow).
    pub fn decoded(&self) -> usize {
        self.frames.iter().filter(|f| f.meta.is_some()).count()
    }

    /// The DNS summaries taken from the batch's frames, in frame order.
    pub fn dns(&self) -> &[DnsEvent] {
        &self.dns
    }
}

/// What a tick hands the sweeper besides the time: the DNS summaries and
/// the first-message metadata gathered since the last tick, in packet
/// order. The buffers go back and forth between the two threads, so no
/// tick allocates.
#[doc(hidden)]
#[derive(Default)]
pub struct TickEvents {
    /// DNS summaries (from the reader).
    pub dns: Vec<DnsEvent>,
    /// What the first message of a direction of a flow revealed (from the
    /// flow table).
    pub first: Vec<FirstMessage>,
    /// Inside hosts' MAC addresses, new or changed, as new flows showed
    /// them (only with the inventory on).
    pub macs: Vec<MacSighting>,
    /// What SMB and DCE-RPC flows did (from the administration inspector).
    pub admin: Vec<AdminEvent>,
}

impl TickEvents {
    /// Empties both lists, keeping their capacity.
    pub fn clear(&mut self) {
        self.dns.clear();
        self.first.clear();
        self.macs.clear();
        self.admin.clear();
    }
}

/// What the reader sends the ingest thread.
pub(crate) enum IngestMsg {
    Frames(IngestBatch),
    /// Live and quiet: the wall clock (never behind the last packet) is
    /// capture time until the next packet.
    Idle(Timestamp),
}

/// Where the ingest step hands a sweep tick.
#[doc(hidden)]
pub trait Ticks {
    /// Asks for a sweep at capture time `now` with the events gathered
    /// since the last one (taken out of `events`, which is left empty or
    /// holds the events a busy sweeper could not take). The session's
    /// shards are released first: the sweeper needs them. False when the
    /// sweeper is gone.
    fn tick(
        &mut self,
        now: Timestamp,
        session: &mut IngestSession<'_>,
        events: &mut TickEvents,
    ) -> bool;
}

/// Ticks to the `flow-sweep` thread. Replay: wait for the sweep to finish.
/// Live: skip if the sweeper is busy (the next tick covers it).
pub(crate) struct SweepTicks {
    pub live: bool,
    pub tx: Sender<SweepMsg>,
    pub acks: Receiver<TickEvents>,
    /// The buffers the sweeper last handed back, swapped in at each tick
    /// so no tick allocates.
    pub spare: TickEvents,
}

impl Ticks for SweepTicks {
    fn tick(
        &mut self,
        now: Timestamp,
        session: &mut IngestSession<'_>,
        events: &mut TickEvents,
    ) -> bool {
        session.release();
        if self.live {
            match self.tx.try_send(SweepMsg::Tick {
                now,
                events: mem::take(events),
            }) {
                Ok(()) => {
                    mem::swap(events, &mut self.spare);
                    true
                }
                Err(TrySendError::Full(SweepMsg::Tick { events: back, .. })) => {
                    *events = back;
                    true
                }
                Err(_) => false,
            }
        } else {
            let out = mem::replace(events, mem::take(&mut self.spare));
            if self.tx.send(SweepMsg::Tick { now, events: out }).is_err() {
                return false;
            }
            match self.acks.recv() {
                Ok(v) => {
                    self.spare = v;
                    true
                }
                Err(_) => false,
            }
        }
    }
}

/// Capture-time tick boundaries are aligned to the interval, so the sweep
/// points depend only on packet timestamps.
fn next_boundary(ts: Timestamp, interval_s: u32) -> Timestamp {
    let step = i64::from(interval_s.max(1)) * 1_000_000;
    Timestamp::from_micros((ts.micros().div_euclid(step) + 1).saturating_mul(step))
}

/// The ingest thread's work on one batch, with its state between batches:
/// the pending DNS events, the next tick and the per-packet latency
/// samples. `tests/alloc.rs` drives it directly.
#[doc(hidden)]
pub struct IngestStep {
    sweep_interval_secs: u32,
    max_pending_dns: usize,
    live: bool,
    events: TickEvents,
    next_tick: Option<Timestamp>,
    last_ts: Timestamp,
    packet_time: LatencyHist,
    dns_dropped: u64,
    first_dropped: u64,
    /// DNS messages parsed here (other ports) since the last publish.
    dns_other_ports: u64,
    /// SMB and DCE-RPC flows followed past their first messages.
    admin: AdminTable,
    /// The MAC each inside address last showed, when the inventory is on.
    macs: Option<MacMemory>,
}

/// Where `item` is in `frames`: from the addresses, so the per-packet loop
/// carries no index for the rare frame that needs one.
fn frame_index(frames: &[Ingest], item: &Ingest) -> usize {
    let size = mem::size_of::<Ingest>().max(1);
    (item as *const Ingest as usize).saturating_sub(frames.as_ptr() as usize) / size
}

/// The MAC each inside address last showed at a flow's start: a sighting
/// goes to the inventory only when it is new or changed, so a host's
/// thousands of flows cost one event. Its capacity is fixed at the start
/// (`inventory.max_hosts`), so nothing allocates per packet; an address
/// past it is not reported, counted as `inventory.macs_not_tracked`.
struct MacMemory {
    home: Arc<HomeNet>,
    last: HashMap<IpAddr, [u8; 6]>,
    cap: usize,
    not_tracked: u64,
}

impl MacMemory {
    /// Notes what the first frame of a new flow shows: the initiator
    /// (`src`) behind the source MAC, the responder behind the destination
    /// MAC. Group (multicast, broadcast) and zero addresses name no host.
    fn new_flow(&mut self, m: &PacketMeta<'_>, macs: &[u8; 12], out: &mut Vec<MacSighting>) {
        let (dst_mac, src_mac) = macs.split_at(6);
        for (ip, mac) in [(m.src, src_mac), (m.dst, dst_mac)] {
            let Ok(mac) = <[u8; 6]>::try_from(mac) else {
                continue;
            };
            if mac[0] & 1 != 0 || mac == [0; 6] || !self.home.contains(ip) {
                continue;
            }
            let full = self.last.len() >= self.cap;
            match self.last.get_mut(&ip) {
                Some(known) if *known == mac => continue,
                Some(known) => *known = mac,
                None if full => {
                    self.not_tracked += 1;
                    continue;
                }
                None => {
                    self.last.insert(ip, mac);
                }
            }
            out.push(MacSighting {
                ts: m.ts,
                ip,
                mac,
                vlan: m.vlan,
            });
        }
    }
}

impl IngestStep {
    /// A step with the pipeline's sweep interval and DNS buffer bound.
    pub fn new(cfg: &PipelineConfig, live: bool) -> IngestStep {
        IngestStep {
            sweep_interval_secs: cfg.sweep_interval_secs,
            max_pending_dns: cfg.max_pending_dns,
            live,
            events: TickEvents {
                dns: Vec::with_capacity(1024),
                first: Vec::with_capacity(1024),
                macs: Vec::new(),
                admin: Vec::with_capacity(64),
            },
            next_tick: None,
            last_ts: Timestamp::ZERO,
            packet_time: LatencyHist::new(),
            dns_dropped: 0,
            first_dropped: 0,
            dns_other_ports: 0,
            macs: None,
            admin: AdminTable::new(cfg.max_admin_flows, cfg.admin_packet_budget),
        }
    }

    /// Also reports inside hosts' MAC addresses (for the inventory): at
    /// most `cap` addresses are remembered.
    pub fn with_macs(mut self, home: Arc<HomeNet>, cap: usize) -> IngestStep {
        self.events.macs.reserve(1024);
        self.macs = Some(MacMemory {
            home,
            last: HashMap::with_capacity(cap),
            cap,
            not_tracked: 0,
        });
        self
    }

    /// Counts every frame of `batch` on its flow, takes its DNS events and
    /// ticks when a capture-time boundary is crossed (or, in replay, when
    /// evicted records or DNS events pile up). Leaves `batch` empty and the
    /// session's shards released. False when the sweeper is gone.
    #[inline]
    pub fn on_batch<T: Ticks>(
        &mut self,
        batch: &mut IngestBatch,
        table: &FlowTable,
        session: &mut IngestSession<'_>,
        ticks: &mut T,
    ) -> bool {
        let mut events = batch.dns.drain(..);
        let arena = &batch.payload;
        let macs_of = &batch.macs;
        let mut going = true;
        'groups: for group in batch.frames.chunks(PROBE_GROUP) {
            // The group's lookups are work done for each of its frames: a
            // sampled frame's processing time carries its share of them.
            let probe_start = group
                .iter()
                .any(|f| f.decode_ns.is_some())
                .then(wall::instant);
            let probes = session.probe(group.iter().map(|f| f.meta.as_ref()));
            let probe_share_ns = probe_start.map_or(0, |t| {
                u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX) / group.len() as u64
            });
            for (item, probe) in group.iter().zip(probes) {
                let t0 = item.decode_ns.map(|ns| (ns, wall::instant()));
                if item.ts > self.last_ts {
                    self.last_ts = item.ts;
                }
                if let (Some(m), Some(probe)) = (&item.meta, probe) {
                    let (start, len) = item.payload;
                    let payload = arena
                        .get(start as usize..start as usize + len as usize)
                        .unwrap_or_default();
                    let (outcome, verdict) = session.ingest_probed_verdict(m, payload, &probe);
                    // Empty unless the inventory is on: one test per packet.
                    if !macs_of.is_empty()
                        && matches!(
                            outcome,
                            IngestOutcome::Created | IngestOutcome::CreatedAfterEviction
                        )
                    {
                        self.new_flow_macs(m, frame_index(&batch.frames, item), macs_of);
                    }
                    // SMB and DCE-RPC flows are read past their first
                    // messages (remote execution, tool transfer): a second
                    // compare per packet for the rest; the flow's direction
                    // (a second lookup) and the side table only for these
                    // (see `pipeline::admin`).
                    if matches!(verdict, AppProto::Smb | AppProto::Dcerpc) {
                        self.follow_admin(session, &probe, m, payload, verdict);
                    }
                    // DNS on a port other than 53. The reader summarises
                    // port 53 only: at that stage nothing says what another
                    // port speaks, and trying to parse every payload as DNS
                    // would cost every packet and invite false events from
                    // binary that happens to parse. Here the flow's verdict
                    // is in hand (read from the slot the packet was just
                    // counted on, no second lookup), so the test costs one
                    // compare per packet, and only flows the classifier
                    // named `dns` (one well-formed question, RFC 1035) are
                    // parsed, from the payload prefix the arena keeps (512
                    // bytes: a question's name is at most 255). The verdict
                    // is made in capture order by this one thread, so the
                    // events are the same at any speed and worker count;
                    // they join the reader's events in frame order.
                    if verdict == AppProto::Dns && !item.dns && !m.is_dns_port() {
                        if let Some(Ok(event)) = dns::event_any_port(m, payload) {
                            self.dns_other_ports += 1;
                            if self.events.dns.len() < self.max_pending_dns {
                                self.events.dns.push(event);
                            } else {
                                self.dns_dropped += 1;
                            }
                        }
                    }
                }
                if item.dns {
                    if let Some(event) = events.next() {
                        if self.events.dns.len() < self.max_pending_dns {
                            self.events.dns.push(event);
                        } else {
                            self.dns_dropped += 1;
                        }
                    }
                }
                if let Some((decode_ns, t0)) = t0 {
                    let ingest_ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    self.packet_time.record_ns(
                        u64::from(decode_ns)
                            .saturating_add(probe_share_ns)
                            .saturating_add(ingest_ns),
                    );
                }
                let due = match self.next_tick {
                    None => {
                        self.next_tick =
                            Some(next_boundary(self.last_ts, self.sweep_interval_secs));
                        false
                    }
                    Some(t) => self.last_ts >= t,
                };
                // Replay must not drop evicted-flow records or events:
                // sweep early when any piles up (live drops them, counted).
                let backlog = table.needs_sweep()
                    || self.events.dns.len() >= self.max_pending_dns
                    || self.events.first.len() >= self.max_pending_dns;
                if due || (!self.live && backlog) {
                    self.admin.expire(self.last_ts);
                    // The metadata of flows the sweep may end goes with it.
                    self.take_first_messages(session);
                    if !ticks.tick(self.last_ts, session, &mut self.events) {
                        going = false;
                        break 'groups;
                    }
                    self.next_tick = Some(next_boundary(self.last_ts, self.sweep_interval_secs));
                }
            }
        }
        // The sweeper may want the shards while this thread waits for frames.
        session.release();
        self.take_first_messages(session);
        drop(events);
        batch.frames.clear();
        batch.payload.clear();
        batch.macs.clear();
        going
    }

    /// A new flow's first frame: its hosts' MACs, if new or changed, for
    /// the next tick (within the bound; a sighting not taken now is taken
    /// at the host's next new flow, as the memory was not updated).
    #[cold]
    #[inline(never)]
    fn new_flow_macs(&mut self, m: &PacketMeta<'_>, index: usize, macs_of: &[[u8; 12]]) {
        let (Some(memory), Some(addrs)) = (self.macs.as_mut(), macs_of.get(index)) else {
            return;
        };
        if self.events.macs.len() < self.max_pending_dns {
            memory.new_flow(m, addrs, &mut self.events.macs);
        }
    }

    /// Reads one packet of an SMB or DCE-RPC flow into the administration
    /// side table. Out of line: the per-packet loop keeps only the verdict
    /// compare.
    #[inline(never)]
    fn follow_admin(
        &mut self,
        session: &mut IngestSession<'_>,
        probe: &FlowProbe,
        m: &PacketMeta<'_>,
        payload: &[u8],
        verdict: AppProto,
    ) {
        if self.admin.is_off() {
            return;
        }
        if let Some(from_server) = session.sent_by_server(probe) {
            self.admin.on_packet(
                m,
                payload,
                verdict,
                from_server,
                &mut self.events.admin,
                self.max_pending_dns,
            );
        }
        // Replay must not drop events: a full buffer makes the next tick
        // due now (the tick check runs per packet anyway, so the other
        // packets pay nothing for this bound). Live drops and counts.
        if !self.live && self.events.admin.len() >= self.max_pending_dns {
            self.next_tick = Some(Timestamp::from_micros(i64::MIN));
        }
    }

    /// Moves the session's first-message metadata to the events of the
    /// next tick, up to the bound (`pipeline.max_pending_dns`, which bounds
    /// each list); the rest is counted as dropped. Replay ticks before the
    /// bound is reached, so only live capture drops.
    fn take_first_messages(&mut self, session: &mut IngestSession<'_>) {
        let first = &mut self.events.first;
        let start = first.len();
        self.first_dropped += session.take_first_messages(first);
        if first.len() > self.max_pending_dns {
            self.first_dropped += (first.len() - self.max_pending_dns.max(start)) as u64;
            first.truncate(self.max_pending_dns.max(start));
        }
    }

    /// Live and quiet: ticks if `now` (the wall clock) passed the next
    /// boundary. False when the sweeper is gone.
    pub fn on_idle<T: Ticks>(
        &mut self,
        now: Timestamp,
        session: &mut IngestSession<'_>,
        ticks: &mut T,
    ) -> bool {
        if self.next_tick.is_some_and(|t| now >= t) {
            self.take_first_messages(session);
            if !ticks.tick(now, session, &mut self.events) {
                return false;
            }
            self.next_tick = Some(next_boundary(now, self.sweep_interval_secs));
        }
        true
    }

    /// The latest capture time counted.
    pub fn last_ts(&self) -> Timestamp {
        self.last_ts
    }

    /// DNS events waiting for the next tick.
    pub fn pending_dns(&self) -> &[DnsEvent] {
        &self.events.dns
    }

    /// Hands the latency samples and DNS drops gathered so far to `shared`.
    fn publish(&mut self, shared: &SharedStats) {
        {
            let mut cap = lock(&shared.capture);
            cap.packet_time.merge(&self.packet_time);
            cap.dns_messages_other_ports += mem::take(&mut self.dns_other_ports);
            if let Some(m) = self.macs.as_mut() {
                cap.macs_not_tracked += mem::take(&mut m.not_tracked);
            }
        }
        self.packet_time.reset();
        if self.dns_dropped > 0 {
            shared
                .drops
                .add(DropReason::DnsBufferFull, mem::take(&mut self.dns_dropped));
        }
        let (refused, dropped) = self.admin.take_counts();
        if refused > 0 {
            shared.drops.add(DropReason::AdminTableFull, refused);
        }
        if dropped > 0 {
            shared.drops.add(DropReason::AdminBufferFull, dropped);
        }
        if self.first_dropped > 0 {
            shared.drops.add(
                DropReason::FlowMetaBufferFull,
                mem::take(&mut self.first_dropped),
            );
        }
    }
}

/// The ingest stage: its step, its input from the reader, the recycling
/// queue back, and the sweeper it ticks.
pub(crate) struct IngestStage {
    pub step: IngestStep,
    pub table: Arc<FlowTable>,
    pub shared: Arc<SharedStats>,
    pub ticks: SweepTicks,
}

impl IngestStage {
    /// Runs until the reader hangs up (or the sweeper does), then asks the
    /// sweeper for the final sweep, which drains the table.
    pub fn run(self, input: &Receiver<IngestMsg>, recycle: &Sender<IngestBatch>) {
        let IngestStage {
            mut step,
            table,
            shared,
            mut ticks,
        } = self;
        let mut since_publish = 0usize;
        // Holds the table's shards locked while a batch is counted.
        let mut session = table.session();
        while let Ok(msg) = input.recv() {
            let mut batch = match msg {
                IngestMsg::Idle(now) => {
                    if !step.on_idle(now, &mut session, &mut ticks) {
                        break;
                    }
                    continue;
                }
                IngestMsg::Frames(batch) => batch,
            };
            let frames = batch.len();
            let going = step.on_batch(&mut batch, &table, &mut session, &mut ticks);
            if !going {
                break;
            }
            since_publish += frames;
            if since_publish >= 4096 {
                since_publish = 0;
                step.publish(&shared);
            }
            let _ = recycle.try_send(batch);
        }
        step.take_first_messages(&mut session);
        drop(session);
        step.publish(&shared);
        let _ = ticks.tx.send(SweepMsg::Final {
            now: step.last_ts,
            events: step.events,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use tapsentry_flow::FlowConfig;
    use tapsentry_testkit::PacketMetaBuilder;

    fn meta(us: i64, sport: u16) -> PacketMeta<'static> {
        PacketMetaBuilder::udp([10, 0, 0, 1], sport, [10, 0, 0, 2], 53)
            .ip_len(60)
            .at_micros(us)
            .build()
    }

    fn frame(us: i64, sport: u16) -> Ingest {
        Ingest {
            ts: Timestamp::from_micros(us),
            meta: Some(meta(us, sport)),
            payload: (0, 0),
            dns: false,
            decode_ns: None,
        }
    }

    /// Frames 0.5 s apart over 3.2 s of capture time, one of them not
    /// decoded, through the real stage and channels: the sweeper (this
    /// test) sees a tick at each whole second, acks it, and then the final
    /// sweep; the table holds the flows.
    #[test]
    fn ingest_counts_frames_and_ticks_on_capture_time_boundaries() {
        let base = 1_700_000_000_000_000i64;
        let cfg = PipelineConfig::default();
        let table = Arc::new(FlowTable::new(FlowConfig::default()));
        let shared = Arc::new(SharedStats::new());
        let (in_tx, in_rx) = bounded::<IngestMsg>(4);
        let (recycle_tx, recycle_rx) = bounded::<IngestBatch>(4);
        let (tick_tx, tick_rx) = bounded::<SweepMsg>(1);
        let (ack_tx, ack_rx) = bounded::<TickEvents>(1);
        let stage = IngestStage {
            step: IngestStep::new(&cfg, false),
            table: Arc::clone(&table),
            shared: Arc::clone(&shared),
            ticks: SweepTicks {
                live: false,
                tx: tick_tx,
                acks: ack_rx,
                spare: TickEvents::default(),
            },
        };
        let h = std::thread::spawn(move || stage.run(&in_rx, &recycle_tx));

        let mut batch = IngestBatch::empty();
        for i in 0..7i64 {
            batch
                .frames
                .push(frame(base + i * 500_000, 1000 + (i % 2) as u16));
        }
        batch.frames.push(Ingest {
            meta: None,
            ..frame(base + 3_200_000, 1)
        });
        in_tx.send(IngestMsg::Frames(batch)).unwrap();
        drop(in_tx);

        let mut ticks = Vec::new();
        loop {
            match tick_rx.recv().unwrap() {
                SweepMsg::Tick { now, events } => {
                    ticks.push(now.micros() - base);
                    ack_tx.send(events).unwrap();
                }
                SweepMsg::Final { now, .. } => {
                    assert_eq!(now.micros() - base, 3_200_000);
                    break;
                }
            }
        }
        h.join().unwrap();
        // Boundaries at 1, 2 and 3 s, each crossed by the frame at 1.0,
        // 2.0 and 3.0 s (ticks carry the packet's time).
        assert_eq!(ticks, [1_000_000, 2_000_000, 3_000_000]);
        assert_eq!(
            table.counters().created,
            2,
            "two flows; the undecoded frame counts on none"
        );
        let back = recycle_rx.try_recv().unwrap();
        assert!(
            back.is_empty() && back.dns().is_empty(),
            "the batch comes back empty"
        );
    }

    /// A tick with the sweeper gone stops the step.
    #[test]
    fn a_missing_sweeper_stops_ingest() {
        let base = 1_700_000_000_000_000i64;
        let table = FlowTable::new(FlowConfig::default());
        let (tick_tx, tick_rx) = bounded::<SweepMsg>(1);
        let (_ack_tx, ack_rx) = bounded::<TickEvents>(1);
        drop(tick_rx);
        let mut ticks = SweepTicks {
            live: false,
            tx: tick_tx,
            acks: ack_rx,
            spare: TickEvents::default(),
        };
        let mut step = IngestStep::new(&PipelineConfig::default(), false);
        let mut session = table.session();
        let mut batch = IngestBatch::empty();
        batch.frames.push(frame(base, 1));
        batch.frames.push(frame(base + 2_000_000, 1));
        assert!(!step.on_batch(&mut batch, &table, &mut session, &mut ticks));
    }
}
