//! The sweep stage (thread `flow-sweep`): on each tick from the ingest
//! thread it sweeps the flow table (drains it on the final tick), and
//! routes the records and the tick's DNS events to the workers' shards as
//! one epoch (see [`super::epoch`]); ended flows also go to the writer for
//! the flow log.
//!
//! A record goes to the shard of each host it is judged from
//! ([`route_flow`]): a flow between two inside hosts goes to both shards.
//! State saves are requested on capture-time boundaries, so a replay saves
//! the same states at any speed and worker count.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tapsentry_detect::{route_flow, shard_for, HomeNet};
use tapsentry_flow::FlowTable;
use tapsentry_telemetry::{wall, DropReason};
use tapsentry_types::{AdminEvent, DnsEvent, FlowRecord, RecordKind, Timestamp};

use super::epoch::EpochIssuer;
use super::flow_meta::{FlowMetaTable, LoggedFlow};
use super::ingest::TickEvents;
use super::inventory::InventoryFeed;
use super::stats::SharedStats;
use super::workers::WorkerMsg;
use super::writer::WriterMsg;
use crate::state::SaveReq;

/// What the ingest thread sends the sweeper.
pub(crate) enum SweepMsg {
    /// Sweep at capture time `now`; hand the events out with the records.
    Tick { now: Timestamp, events: TickEvents },
    /// The capture is over: drain the table.
    Final { now: Timestamp, events: TickEvents },
}

/// Flow records per detector batch. A sweep that ends many flows at once
/// (the end of a replay, the expiry after a flood) goes out in epochs of
/// this many, so the first alerts are written while later records are still
/// being judged: one batch of 200,000 records held the flow-end-to-alert
/// p99 at 236 ms. Chunks are cut from the global record order before
/// sharding, so every worker count sees the same epochs.
pub(crate) const RECORDS_PER_EPOCH: usize = 4096;

/// The capture times a batch is stamped with.
#[derive(Clone, Copy)]
pub(crate) struct Step {
    pub now: Timestamp,
    pub capture_start: Timestamp,
    /// The final sweep of the capture: its last epoch is marked so the
    /// detectors tell what is still going on.
    pub last: bool,
}

/// Hands the records and DNS events of a sweep to the workers, as epochs.
pub(crate) struct Router {
    home: Arc<HomeNet>,
    /// One queue per worker, in worker (shard) order.
    workers: Vec<Sender<WorkerMsg>>,
    /// The writer, when a flow log is configured.
    flow_log: Option<Sender<WriterMsg>>,
    /// First-message metadata of live flows, for their flow-log records
    /// (kept only when there is a flow log).
    flow_meta: FlowMetaTable,
    /// Opens epochs of `workers.len()` batches.
    issuer: EpochIssuer,
    live: bool,
    shared: Arc<SharedStats>,
    /// The asset inventory (with `output.inventory`), fed each epoch
    /// before the workers get it, and the writer its records go to.
    inventory: Option<(InventoryFeed, Sender<WriterMsg>)>,
}

impl Router {
    /// A router to `workers` (one queue per worker, in shard order): the
    /// epochs it opens have exactly one batch per queue.
    pub fn new(
        home: Arc<HomeNet>,
        workers: Vec<Sender<WorkerMsg>>,
        flow_log: Option<Sender<WriterMsg>>,
        live: bool,
        shared: Arc<SharedStats>,
    ) -> Router {
        Router {
            issuer: EpochIssuer::new(workers.len()),
            home,
            workers,
            flow_log,
            flow_meta: FlowMetaTable::default(),
            live,
            shared,
            inventory: None,
        }
    }

    /// Feeds `feed` every epoch; its records go to `writer`.
    pub fn with_inventory(mut self, feed: InventoryFeed, writer: Sender<WriterMsg>) -> Router {
        self.inventory = Some((feed, writer));
        self
    }

    /// Saves the inventory if a boundary passed (see [`InventoryFeed::maybe_save`]).
    fn save_inventory(&mut self, now: Timestamp, last: bool) {
        if let Some((feed, _)) = self.inventory.as_mut() {
            feed.maybe_save(now, last);
        }
    }

    /// Hands out one sweep: in epochs of at most [`RECORDS_PER_EPOCH`]
    /// records; DNS goes with the first, the save with the last. The
    /// tick's first-message metadata is filed first, so that a flow the
    /// sweep ends is logged with it.
    pub fn dispatch(
        &mut self,
        step: Step,
        events: &TickEvents,
        recs: &[FlowRecord],
        save: Option<SaveReq>,
    ) {
        if self.flow_log.is_some() {
            self.flow_meta.add(&events.first);
            let dropped = self.flow_meta.take_dropped();
            if dropped > 0 {
                self.shared
                    .drops
                    .add(DropReason::FlowMetaTableFull, dropped);
            }
        }
        if let Some((feed, _)) = self.inventory.as_mut() {
            feed.observe_macs(&events.macs);
        }
        let dns = &events.dns[..];
        let admin = &events.admin[..];
        if recs.len() <= RECORDS_PER_EPOCH {
            self.dispatch_epoch(step, dns, admin, recs, save);
            return;
        }
        let final_step = step.last;
        let chunks = recs.chunks(RECORDS_PER_EPOCH);
        let last = chunks.len() - 1;
        for (i, chunk) in chunks.enumerate() {
            // DNS goes with the first chunk (it was handed out before these
            // records before too); the save waits for the last.
            self.dispatch_epoch(
                Step {
                    last: final_step && i == last,
                    ..step
                },
                if i == 0 { dns } else { &[] },
                if i == 0 { admin } else { &[] },
                chunk,
                if i == last { save } else { None },
            );
        }
    }

    fn dispatch_epoch(
        &mut self,
        step: Step,
        dns: &[DnsEvent],
        admin: &[AdminEvent],
        recs: &[FlowRecord],
        save: Option<SaveReq>,
    ) {
        // A save goes out even with nothing to process: every worker must
        // export at the same capture time.
        if dns.is_empty() && admin.is_empty() && recs.is_empty() && save.is_none() && !step.last {
            return;
        }
        let n = self.workers.len();
        let mut epoch = self
            .issuer
            .open(step.now, step.capture_start, wall::instant());
        if let Some((feed, writer)) = self.inventory.as_mut() {
            let records = feed.observe(step.now, dns, recs);
            // Sent before the batches, so the writer has them when the
            // epoch completes (invariant 6 of the epoch protocol).
            if !records.is_empty() {
                let msg = WriterMsg::Inventory {
                    epoch: epoch.epoch(),
                    records,
                };
                if self.live {
                    if let Err(TrySendError::Full(WriterMsg::Inventory { records, .. })) =
                        writer.try_send(msg)
                    {
                        self.shared
                            .drops
                            .add(DropReason::AlertQueueFull, records.len() as u64);
                    }
                } else {
                    let _ = writer.send(msg);
                }
            }
        }
        for shard in 0..n {
            if let Some(b) = epoch.shard_mut(shard) {
                b.last = step.last;
            }
        }
        for ev in dns {
            if let Some(b) = epoch.shard_mut(shard_for(ev.client, n)) {
                b.dns.push(*ev);
            }
        }
        // An administration event goes to the shard of the host that did
        // it (the client), like a DNS query.
        for ev in admin {
            if let Some(b) = epoch.shard_mut(shard_for(ev.client, n)) {
                b.admin.push(*ev);
            }
        }
        for rec in recs {
            for host in route_flow(rec, &self.home).into_iter().flatten() {
                if let Some(b) = epoch.shard_mut(shard_for(host, n)) {
                    b.flows.push((host, *rec));
                }
            }
        }
        // The exit batch (and its save) is never dropped: capture has stopped.
        let wait = !self.live || save.is_some_and(|s| s.last);
        for (tx, (batch, ticket)) in self.workers.iter().zip(epoch.into_deliveries()) {
            let msg = WorkerMsg {
                batch,
                ticket,
                save,
            };
            if wait {
                let _ = tx.send(msg);
            } else {
                let items =
                    (msg.batch.dns.len() + msg.batch.admin.len() + msg.batch.flows.len()) as u64;
                if let Err(TrySendError::Full(_)) = tx.try_send(msg) {
                    self.shared.drops.add(DropReason::DetectorQueueFull, items);
                }
            }
        }
        if let Some(tx) = &self.flow_log {
            let meta = &mut self.flow_meta;
            let ended: Vec<LoggedFlow> = recs
                .iter()
                .filter(|r| matches!(r.kind, RecordKind::End(_)))
                .map(|r| LoggedFlow {
                    rec: *r,
                    meta: meta.take(r),
                })
                .collect();
            if !ended.is_empty() {
                let count = ended.len() as u64;
                if self.live {
                    if let Err(TrySendError::Full(_)) = tx.try_send(WriterMsg::Flows(ended)) {
                        self.shared.drops.add(DropReason::FlowLogQueueFull, count);
                    }
                } else {
                    let _ = tx.send(WriterMsg::Flows(ended));
                }
            }
        }
    }
}

/// When state saves fall: on multiples of `every` seconds of capture time,
/// and at the end.
pub(crate) struct SaveClock {
    every: u64,
    next: Option<Timestamp>,
    seq: u64,
}

impl SaveClock {
    /// Saves every `every` seconds (at least 1).
    pub fn new(every: u64) -> SaveClock {
        SaveClock {
            every: every.max(1),
            next: None,
            seq: 0,
        }
    }

    /// The save due at capture time `now`, if any (`last`: the final sweep,
    /// always a save).
    fn due(&mut self, now: Timestamp, capture_start: Timestamp, last: bool) -> Option<SaveReq> {
        let due = last || self.next.is_some_and(|t| now >= t);
        if due || self.next.is_none() {
            self.next = Some(next_save_boundary(now, self.every));
        }
        due.then(|| {
            self.seq += 1;
            SaveReq {
                seq: self.seq,
                now,
                elapsed_secs: now.micros_since(capture_start) / 1_000_000,
                last,
            }
        })
    }
}

/// The first multiple of `every` seconds (since the epoch) after `t`.
fn next_save_boundary(t: Timestamp, every: u64) -> Timestamp {
    let step = i64::try_from(every.max(1))
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000);
    Timestamp::from_micros((t.micros().div_euclid(step) + 1).saturating_mul(step))
}

/// The sweep stage: the table it sweeps, where the records go, and when
/// state saves fall (none without a state file).
pub(crate) struct Sweep {
    pub table: Arc<FlowTable>,
    pub router: Router,
    pub saves: Option<SaveClock>,
}

impl Sweep {
    /// Sweeps on every tick until the final one (or the ingest thread
    /// disappears); in replay, acks each tick with the emptied buffers.
    pub fn run(self, ticks: &Receiver<SweepMsg>, acks: &Sender<TickEvents>) {
        let Sweep {
            table,
            mut router,
            mut saves,
        } = self;
        let mut recs: Vec<FlowRecord> = Vec::new();
        let mut capture_start: Option<Timestamp> = None;
        let mut last_now = Timestamp::ZERO;
        loop {
            let (now, mut events, last) = match ticks.recv() {
                Ok(SweepMsg::Tick { now, events }) => (now, events, false),
                Ok(SweepMsg::Final { now, events }) => (now, events, true),
                // The ingest thread is gone without saying goodbye: flush anyway.
                Err(_) => (Timestamp::ZERO, TickEvents::default(), true),
            };
            recs.clear();
            if last {
                table.drain(&mut recs);
            } else {
                table.sweep(now, &mut recs);
            }
            let step = Step {
                now,
                capture_start: *capture_start.get_or_insert(now),
                last,
            };
            last_now = last_now.max(now);
            let save = saves
                .as_mut()
                .and_then(|s| s.due(last_now, step.capture_start, last));
            router.dispatch(step, &events, &recs, save);
            router.save_inventory(last_now, last);
            if last {
                break;
            }
            events.clear();
            if !router.live && acks.send(events).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use std::net::IpAddr;
    use tapsentry_flow::FlowConfig;
    use tapsentry_testkit::PacketMetaBuilder;
    use tapsentry_types::{PacketMeta, TcpFlags};

    fn packet(us: i64, src: [u8; 4], dst: [u8; 4], flags: u8) -> PacketMeta<'static> {
        PacketMetaBuilder::tcp(src, 40_000, dst, 445, flags)
            .at_micros(us)
            .build()
    }

    /// Two inside hosts that land on different shards of 2.
    fn two_shards() -> ([u8; 4], [u8; 4]) {
        let a = [10, 0, 0, 1];
        let b = (2..=254u8)
            .map(|i| [10, 0, 0, i])
            .find(|b| shard_for(IpAddr::from(*b), 2) != shard_for(IpAddr::from(a), 2))
            .unwrap();
        (a, b)
    }

    /// An inside↔inside flow and an outside one through the real sweep
    /// thread and channels: the final sweep drains the table, the inside
    /// flow's record reaches both workers' shards (each with its own host),
    /// both workers get the epoch, and the writer gets the ended flows.
    #[test]
    fn sweep_routes_an_inside_flow_to_both_shards_and_logs_ended_flows() {
        let base = 1_700_000_000_000_000i64;
        let (a, b) = two_shards();
        let table = Arc::new(FlowTable::new(FlowConfig::default()));
        {
            let mut s = table.session();
            s.ingest(&packet(base, a, b, TcpFlags::SYN));
            s.ingest(&packet(base + 10, [192, 0, 2, 9], a, TcpFlags::SYN));
        }
        let shared = Arc::new(SharedStats::new());
        let (w0_tx, w0_rx) = bounded::<WorkerMsg>(4);
        let (w1_tx, w1_rx) = bounded::<WorkerMsg>(4);
        let (log_tx, log_rx) = bounded::<WriterMsg>(4);
        let sweep = Sweep {
            table: Arc::clone(&table),
            router: Router::new(
                Arc::new(HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap()),
                vec![w0_tx, w1_tx],
                Some(log_tx),
                false,
                shared,
            ),
            saves: Some(SaveClock::new(60)),
        };
        let (tick_tx, tick_rx) = bounded::<SweepMsg>(1);
        let (ack_tx, _ack_rx) = bounded::<TickEvents>(1);
        let h = std::thread::spawn(move || sweep.run(&tick_rx, &ack_tx));
        tick_tx
            .send(SweepMsg::Final {
                now: Timestamp::from_micros(base + 20),
                events: TickEvents::default(),
            })
            .unwrap();
        h.join().unwrap();

        let m0: Vec<WorkerMsg> = w0_rx.try_iter().collect();
        let m1: Vec<WorkerMsg> = w1_rx.try_iter().collect();
        assert_eq!((m0.len(), m1.len()), (1, 1), "every worker gets the epoch");
        let (m0, m1) = (&m0[0], &m1[0]);
        assert_eq!((m0.ticket.epoch(), m1.ticket.epoch()), (1, 1));
        assert_eq!((m0.ticket.worker(), m1.ticket.worker()), (0, 1));
        assert!(m0.save.is_some_and(|s| s.last) && m1.save.is_some_and(|s| s.last));
        let inside = |m: &WorkerMsg| -> Vec<IpAddr> {
            m.batch
                .flows
                .iter()
                .filter(|(_, r)| r.client == IpAddr::from(a) && r.server == IpAddr::from(b))
                .map(|(h, _)| *h)
                .collect()
        };
        let mut hosts: Vec<IpAddr> = inside(m0).into_iter().chain(inside(m1)).collect();
        hosts.sort();
        assert_eq!(
            hosts,
            [IpAddr::from(a), IpAddr::from(b)],
            "seen from both ends"
        );
        for m in [m0, m1] {
            for (host, _) in &m.batch.flows {
                assert_eq!(
                    shard_for(*host, 2),
                    m.ticket.worker(),
                    "each host on its shard"
                );
            }
        }
        let logged: Vec<FlowRecord> = log_rx
            .try_iter()
            .flat_map(|m| match m {
                WriterMsg::Flows(r) => r.into_iter().map(|f| f.rec).collect(),
                WriterMsg::Alerts(_) | WriterMsg::Inventory { .. } => Vec::new(),
            })
            .collect();
        assert_eq!(logged.len(), 2, "both drained flows go to the flow log");
        assert_eq!(table.live_flows(), 0);
    }

    #[test]
    fn large_sweeps_go_out_in_epochs_dns_first_save_last() {
        let home = Arc::new(HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap());
        let (w_tx, w_rx) = bounded::<WorkerMsg>(8);
        let mut router = Router::new(home, vec![w_tx], None, false, Arc::new(SharedStats::new()));
        let table = FlowTable::new(FlowConfig::default());
        let n = RECORDS_PER_EPOCH + 10;
        {
            let mut s = table.session();
            for i in 0..n {
                let mut p = packet(
                    1_000,
                    [10, 0, (i >> 8) as u8, i as u8],
                    [192, 0, 2, 1],
                    TcpFlags::SYN,
                );
                p.src_port = 1024 + (i % 60_000) as u16;
                s.ingest(&p);
            }
        }
        let mut recs = Vec::new();
        table.drain(&mut recs);
        assert_eq!(recs.len(), n);
        let events = TickEvents {
            dns: vec![crate::pipeline::test_util::dns_event([10, 0, 0, 1])],
            first: Vec::new(),
            macs: Vec::new(),
            admin: Vec::new(),
        };
        let save = SaveClock::new(1).due(Timestamp::from_micros(1_000), Timestamp::ZERO, true);
        let step = Step {
            now: Timestamp::from_micros(2_000),
            capture_start: Timestamp::ZERO,
            last: false,
        };
        router.dispatch(step, &events, &recs, save);
        // Nothing to hand out: no epoch is spent.
        router.dispatch(step, &TickEvents::default(), &[], None);
        let msgs: Vec<WorkerMsg> = w_rx.try_iter().collect();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].batch.flows.len(), RECORDS_PER_EPOCH);
        assert_eq!((msgs[0].batch.dns.len(), msgs[0].save), (1, None));
        assert_eq!(
            (msgs[1].batch.flows.len(), msgs[1].batch.dns.len()),
            (10, 0)
        );
        assert_eq!(msgs[1].save, save);
        assert_eq!(router.issuer.last(), 2);
    }
}
