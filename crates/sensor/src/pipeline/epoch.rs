//! The epoch protocol between `flow-sweep`, the `det-N` workers and
//! `alert-out`, which makes a replay's alert log the same at any speed and
//! any worker count.
//!
//! An *epoch* is one step of work the sweeper hands out: the DNS events and
//! flow records of one sweep (or one chunk of a large one), split by shard.
//! Workers judge their shares in parallel and in any order relative to each
//! other; the writer puts the results back together.
//!
//! # Invariants (replay)
//!
//! 1. **Epochs are numbered 1, 2, 3, … with no gaps**, in the order the
//!    sweeper opens them: only [`EpochIssuer::open`] makes one.
//! 2. **Every worker gets every epoch, even an empty one.** An epoch is
//!    opened as [`EpochBatches`], one batch per worker, and is handed out
//!    only whole ([`EpochBatches::into_deliveries`] yields exactly one
//!    delivery per worker, in worker order). Otherwise the writer would wait
//!    forever for a reply that never comes.
//! 3. **Every worker replies exactly once per epoch.** Each delivery carries
//!    a [`ReplyTicket`] that is neither `Clone` nor `Copy`; the reply is made
//!    by consuming it ([`ReplyTicket::reply`]), with no alerts if there were
//!    none.
//! 4. **The writer releases an epoch only when every worker has replied,
//!    and in epoch order**, its alerts sorted by [`alert_order`], so the
//!    written order does not depend on which worker finished first
//!    ([`EpochCollector::release`]).
//! 5. **A reply that breaks the protocol is refused, not merged**: one for
//!    an epoch already released, from a worker that does not exist, or a
//!    second one from the same worker for the same epoch
//!    ([`EpochCollector::accept`] returns it inside [`Refused`]).
//! 6. **The sweeper's own records of an epoch (the asset inventory's) reach
//!    the writer before the epoch's batches reach the workers**, on the
//!    same queue as the replies, so they are held
//!    ([`EpochCollector::attach`]) when the epoch completes and are written
//!    right after its alerts, in the order the sweeper raised them.
//!
//! Live, the sweeper drops a batch when a worker's queue is full (counted),
//! so 2 and 4 cannot hold: the writer then uses no collector and writes each
//! reply as it arrives, sorted within itself.

use std::collections::BTreeMap;
use std::time::Instant;

use tapsentry_detect::Batch;
use tapsentry_inventory::InventoryRecord;
use tapsentry_types::{Alert, Timestamp};

/// Most workers an [`EpochCollector`] can count replies from (one bit each);
/// `pipeline.workers` is validated to at most this.
pub const MAX_WORKERS: usize = 64;

/// Hands out epoch numbers: 1, 2, 3, … (invariant 1).
#[derive(Debug)]
pub struct EpochIssuer {
    workers: usize,
    last: u64,
}

impl EpochIssuer {
    /// An issuer for `workers` workers (at least one), before epoch 1.
    pub fn new(workers: usize) -> EpochIssuer {
        EpochIssuer {
            workers: workers.max(1),
            last: 0,
        }
    }

    /// Opens the next epoch: one empty batch per worker, stamped with the
    /// epoch number and the capture times.
    pub fn open(
        &mut self,
        now: Timestamp,
        capture_start: Timestamp,
        emitted: Instant,
    ) -> EpochBatches {
        self.last += 1;
        let epoch = self.last;
        EpochBatches {
            epoch,
            emitted,
            batches: (0..self.workers)
                .map(|_| Batch {
                    epoch,
                    now,
                    capture_start,
                    ..Batch::default()
                })
                .collect(),
        }
    }

    /// The number of the last epoch opened (0 before the first).
    pub fn last(&self) -> u64 {
        self.last
    }
}

/// The batches of one epoch, one per worker (invariant 2).
#[derive(Debug)]
pub struct EpochBatches {
    epoch: u64,
    emitted: Instant,
    batches: Vec<Batch>,
}

impl EpochBatches {
    /// The epoch number.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The batch of worker `shard`, to fill.
    #[inline]
    pub fn shard_mut(&mut self, shard: usize) -> Option<&mut Batch> {
        self.batches.get_mut(shard)
    }

    /// One delivery per worker, in worker order: its batch and the ticket
    /// it replies with.
    pub fn into_deliveries(self) -> impl ExactSizeIterator<Item = (Batch, ReplyTicket)> {
        let (epoch, emitted) = (self.epoch, self.emitted);
        self.batches
            .into_iter()
            .enumerate()
            .map(move |(worker, batch)| {
                (
                    batch,
                    ReplyTicket {
                        epoch,
                        worker,
                        emitted,
                    },
                )
            })
    }
}

/// The right to reply once to one epoch (invariant 3): not `Clone`, and
/// consumed by [`reply`](Self::reply).
#[derive(Debug)]
pub struct ReplyTicket {
    epoch: u64,
    worker: usize,
    emitted: Instant,
}

impl ReplyTicket {
    /// The epoch this ticket replies to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The worker it was handed to.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// The worker's reply: the alerts it raised on the epoch's batch
    /// (possibly none).
    pub fn reply(self, alerts: Vec<Alert>) -> Reply {
        Reply {
            epoch: self.epoch,
            worker: self.worker,
            emitted: self.emitted,
            alerts,
        }
    }
}

/// A worker's answer to one epoch.
#[derive(Debug)]
pub struct Reply {
    epoch: u64,
    worker: usize,
    emitted: Instant,
    alerts: Vec<Alert>,
}

impl Reply {
    /// The epoch replied to.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Alerts in the reply.
    pub fn alerts(&self) -> &[Alert] {
        &self.alerts
    }

    /// The alerts, and when the sweeper handed the epoch out (the start of
    /// the flow-end-to-alert latency).
    pub fn into_parts(self) -> (Vec<Alert>, Instant) {
        (self.alerts, self.emitted)
    }
}

/// An epoch whose alerts may be written: every worker replied (or the run
/// is over), alerts sorted by [`alert_order`].
#[derive(Debug)]
pub struct Released {
    /// The epoch number.
    pub epoch: u64,
    /// Its alerts, from every worker, in [`alert_order`].
    pub alerts: Vec<Alert>,
    /// The sweeper's inventory records of the epoch, in the order raised
    /// (written after the alerts).
    pub inventory: Vec<InventoryRecord>,
    /// When the sweeper handed it out.
    pub emitted: Instant,
}

/// Why a reply was refused (invariant 5) or a collector not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EpochError {
    /// More workers than replies can be counted for.
    #[error("{workers} workers: at most {MAX_WORKERS} can reply to an epoch")]
    TooManyWorkers {
        /// The number asked for.
        workers: usize,
    },
    /// A reply to an epoch already released (or to epoch 0, never issued).
    #[error("a reply to epoch {epoch}, which was already written")]
    Released {
        /// The epoch of the reply.
        epoch: u64,
    },
    /// A reply from a worker index the collector does not count.
    #[error("a reply to epoch {epoch} from worker {worker}, which does not exist")]
    UnknownWorker {
        /// The epoch of the reply.
        epoch: u64,
        /// The worker index.
        worker: usize,
    },
    /// A second reply from one worker to one epoch.
    #[error("a second reply to epoch {epoch} from worker {worker}")]
    Duplicate {
        /// The epoch of the reply.
        epoch: u64,
        /// The worker index.
        worker: usize,
    },
}

/// A reply the collector did not take, handed back with the reason.
#[derive(Debug)]
pub struct Refused {
    /// Why.
    pub error: EpochError,
    /// The reply, so its alerts are not lost.
    pub reply: Reply,
}

/// An epoch some workers have replied to.
#[derive(Debug)]
struct Pending {
    /// Bit `i` is set once worker `i` replied.
    replied: u64,
    alerts: Vec<Alert>,
    inventory: Vec<InventoryRecord>,
    emitted: Instant,
}

/// Gathers the workers' replies and releases whole epochs in order
/// (invariants 4 and 5). Used by the writer in replay.
#[derive(Debug)]
pub struct EpochCollector {
    all: u64,
    workers: usize,
    next: u64,
    pending: BTreeMap<u64, Pending>,
}

impl EpochCollector {
    /// A collector expecting one reply per epoch from each of `workers`
    /// workers (1 to [`MAX_WORKERS`]).
    pub fn new(workers: usize) -> Result<EpochCollector, EpochError> {
        if workers == 0 || workers > MAX_WORKERS {
            return Err(EpochError::TooManyWorkers { workers });
        }
        Ok(EpochCollector {
            all: u64::MAX >> (64 - workers),
            workers,
            next: 1,
            pending: BTreeMap::new(),
        })
    }

    /// Takes one reply, or refuses it (and hands it back) if it breaks the
    /// protocol.
    pub fn accept(&mut self, reply: Reply) -> Result<(), Refused> {
        let (epoch, worker) = (reply.epoch, reply.worker);
        let refuse = |error, reply| Err(Refused { error, reply });
        if epoch < self.next {
            return refuse(EpochError::Released { epoch }, reply);
        }
        if worker >= self.workers {
            return refuse(EpochError::UnknownWorker { epoch, worker }, reply);
        }
        let bit = 1u64 << worker;
        let p = self.pending.entry(epoch).or_insert_with(|| Pending {
            replied: 0,
            alerts: Vec::new(),
            inventory: Vec::new(),
            emitted: reply.emitted,
        });
        if p.replied & bit != 0 {
            return refuse(EpochError::Duplicate { epoch, worker }, reply);
        }
        p.replied |= bit;
        p.alerts.extend(reply.alerts);
        Ok(())
    }

    /// Holds the sweeper's inventory records of `epoch` until it is
    /// released (invariant 6). An epoch already released (which the
    /// protocol rules out) hands them back, to be written at once rather
    /// than lost.
    pub fn attach(
        &mut self,
        epoch: u64,
        records: Vec<InventoryRecord>,
        emitted: Instant,
    ) -> Result<(), Vec<InventoryRecord>> {
        if epoch < self.next {
            return Err(records);
        }
        let p = self.pending.entry(epoch).or_insert_with(|| Pending {
            replied: 0,
            alerts: Vec::new(),
            inventory: Vec::new(),
            emitted,
        });
        p.inventory.extend(records);
        Ok(())
    }

    /// The next epoch in order, if every worker has replied to it.
    pub fn release(&mut self) -> Option<Released> {
        let complete = self
            .pending
            .get(&self.next)
            .is_some_and(|p| p.replied == self.all);
        if !complete {
            return None;
        }
        let epoch = self.next;
        self.next += 1;
        self.pending.remove(&epoch).map(|p| released(epoch, p))
    }

    /// Epochs not yet released (a worker died before replying), in epoch
    /// order with what did arrive: at the end of a run, better written late
    /// than lost.
    pub fn finish(self) -> impl Iterator<Item = Released> {
        self.pending
            .into_iter()
            .map(|(epoch, p)| released(epoch, p))
    }
}

fn released(epoch: u64, p: Pending) -> Released {
    let mut alerts = p.alerts;
    alerts.sort_by(alert_order);
    Released {
        epoch,
        alerts,
        inventory: p.inventory,
        emitted: p.emitted,
    }
}

/// A total order on alerts, so an epoch's alerts are written the same way
/// whichever worker raised them first.
pub fn alert_order(a: &Alert, b: &Alert) -> std::cmp::Ordering {
    (
        a.timestamp,
        a.alert.signature,
        a.src_ip,
        a.dest_ip,
        a.src_port,
        a.dest_port,
        &a.alert.description,
    )
        .cmp(&(
            b.timestamp,
            b.alert.signature,
            b.src_ip,
            b.dest_ip,
            b.src_port,
            b.dest_port,
            &b.alert.description,
        ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tapsentry_types::{AlertBody, Category, Mitre};

    const SIGNATURES: [&str; 10] = ["s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"];

    /// An alert told apart by its timestamp (seconds) and signature `s{n}`.
    pub(crate) fn alert(secs: i64, n: u32) -> Alert {
        Alert {
            timestamp: Timestamp::from_micros(secs * 1_000_000),
            event_type: "alert",
            src_ip: std::net::IpAddr::from([10, 0, 0, 1]),
            dest_ip: None,
            src_port: None,
            dest_port: None,
            proto: None,
            alert: AlertBody {
                category: Category::PORT_SCAN,
                signature: SIGNATURES[n as usize % SIGNATURES.len()],
                severity: 2,
                description: format!("alert {secs}/{n}"),
                mitre: Mitre {
                    tactic: "TA0007",
                    technique: "T1046",
                },
            },
            evidence: BTreeMap::new(),
            community_id: None,
            flow_id: None,
            app_proto: None,
            geo: None,
            response: None,
            updates: None,
        }
    }

    fn stamps(alerts: &[Alert]) -> Vec<(i64, u32)> {
        alerts
            .iter()
            .map(|a| {
                let n = SIGNATURES.iter().position(|s| *s == a.alert.signature);
                (a.timestamp.micros() / 1_000_000, n.unwrap_or(99) as u32)
            })
            .collect()
    }

    /// Opens `n` epochs for `workers` workers and returns every ticket,
    /// by epoch then worker.
    pub(crate) fn tickets(workers: usize, n: usize) -> Vec<Vec<ReplyTicket>> {
        let mut issuer = EpochIssuer::new(workers);
        (0..n)
            .map(|_| {
                issuer
                    .open(
                        Timestamp::ZERO,
                        Timestamp::ZERO,
                        tapsentry_telemetry::wall::instant(),
                    )
                    .into_deliveries()
                    .map(|(_, t)| t)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn epochs_are_numbered_without_gaps_and_go_to_every_worker() {
        let mut issuer = EpochIssuer::new(3);
        assert_eq!(issuer.last(), 0);
        for want in 1..=4u64 {
            let e = issuer.open(
                Timestamp::ZERO,
                Timestamp::from_micros(5),
                tapsentry_telemetry::wall::instant(),
            );
            assert_eq!(e.epoch(), want);
            let d: Vec<_> = e.into_deliveries().collect();
            assert_eq!(d.len(), 3, "every worker gets every epoch, even empty");
            for (i, (batch, ticket)) in d.iter().enumerate() {
                assert_eq!(batch.epoch, want);
                assert_eq!(batch.capture_start, Timestamp::from_micros(5));
                assert!(batch.is_empty());
                assert_eq!((ticket.epoch(), ticket.worker()), (want, i));
            }
        }
        assert_eq!(issuer.last(), 4);
    }

    #[test]
    fn out_of_order_replies_across_workers_are_released_in_epoch_order_sorted() {
        let mut c = EpochCollector::new(3).unwrap();
        let mut t = tickets(3, 3).into_iter();
        let (mut e1, mut e2, mut e3) = (t.next().unwrap(), t.next().unwrap(), t.next().unwrap());
        // Epoch 3 completes first, then epoch 2, and epoch 1 last; within
        // epoch 1 the workers answer 2, 0, 1 with alerts out of order.
        for tk in e3.drain(..) {
            let w = tk.worker() as u32;
            c.accept(tk.reply(vec![alert(30, w)])).unwrap();
        }
        assert!(c.release().is_none(), "epoch 3 waits for 1 and 2");
        for tk in e2.drain(..) {
            c.accept(tk.reply(Vec::new())).unwrap();
        }
        assert!(c.release().is_none());
        let w1 = e1.pop().unwrap();
        let w0 = e1.pop().unwrap();
        let w2 = e1.pop().unwrap();
        c.accept(w2.reply(vec![alert(12, 9), alert(10, 1)]))
            .unwrap();
        c.accept(w0.reply(vec![alert(11, 5)])).unwrap();
        assert!(c.release().is_none(), "worker 1 has not replied to epoch 1");
        c.accept(w1.reply(vec![alert(10, 0)])).unwrap();

        let r1 = c.release().unwrap();
        assert_eq!(r1.epoch, 1);
        assert_eq!(stamps(&r1.alerts), [(10, 0), (10, 1), (11, 5), (12, 9)]);
        let r2 = c.release().unwrap();
        assert_eq!(
            (r2.epoch, r2.alerts.len()),
            (2, 0),
            "empty epochs release too"
        );
        let r3 = c.release().unwrap();
        assert_eq!(stamps(&r3.alerts), [(30, 0), (30, 1), (30, 2)]);
        assert!(c.release().is_none());
        assert_eq!(c.finish().count(), 0);
    }

    #[test]
    fn refuses_duplicate_released_and_unknown_replies() {
        let mut c = EpochCollector::new(2).unwrap();
        let mut e1 = tickets(2, 1).pop().unwrap();
        let w1 = e1.pop().unwrap();
        let w0 = e1.pop().unwrap();
        c.accept(w0.reply(vec![alert(1, 1)])).unwrap();
        // A forged second reply from worker 0 (a ticket cannot be copied,
        // so it takes a second issuer to make one).
        let forged = tickets(2, 1).pop().unwrap().remove(0);
        let r = c.accept(forged.reply(vec![alert(2, 2)])).unwrap_err();
        assert_eq!(
            r.error,
            EpochError::Duplicate {
                epoch: 1,
                worker: 0
            }
        );
        assert_eq!(
            r.reply.alerts().len(),
            1,
            "the refused reply is handed back"
        );
        c.accept(w1.reply(Vec::new())).unwrap();
        let r1 = c.release().unwrap();
        assert_eq!(stamps(&r1.alerts), [(1, 1)], "the duplicate was not merged");

        let late = tickets(2, 1).pop().unwrap().remove(1);
        let r = c.accept(late.reply(Vec::new())).unwrap_err();
        assert_eq!(r.error, EpochError::Released { epoch: 1 });

        let mut three = tickets(3, 2).pop().unwrap();
        let stranger = three.pop().unwrap();
        let r = c.accept(stranger.reply(Vec::new())).unwrap_err();
        assert_eq!(
            r.error,
            EpochError::UnknownWorker {
                epoch: 2,
                worker: 2
            }
        );

        assert!(EpochCollector::new(0).is_err());
        assert!(EpochCollector::new(MAX_WORKERS).is_ok());
        assert_eq!(
            EpochCollector::new(MAX_WORKERS + 1).unwrap_err(),
            EpochError::TooManyWorkers { workers: 65 }
        );
    }

    #[test]
    fn finish_hands_back_incomplete_epochs_in_order() {
        let mut c = EpochCollector::new(2).unwrap();
        let mut t = tickets(2, 3);
        let e3 = t.pop().unwrap();
        let e2 = t.pop().unwrap();
        for tk in e3 {
            c.accept(tk.reply(vec![alert(3, 0)])).unwrap();
        }
        let w0 = e2.into_iter().next().unwrap();
        c.accept(w0.reply(vec![alert(2, 1), alert(2, 0)])).unwrap();
        // Epoch 1 never got any reply: nothing can be released.
        assert!(c.release().is_none());
        let rest: Vec<Released> = c.finish().collect();
        assert_eq!(rest.iter().map(|r| r.epoch).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(stamps(&rest[0].alerts), [(2, 0), (2, 1)]);
    }
}
