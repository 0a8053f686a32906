//! The detector stage (threads `det-0..N`): each worker owns the detector
//! state of one shard of hosts, judges every epoch it is handed and replies
//! once per epoch with its alerts (see [`super::epoch`]).
//!
//! A worker also exports its baselines when an epoch carries a save
//! request, and picks up a new intel snapshot (SIGHUP) before its next
//! batch. Workers are built in one place, `build_workers`, with the
//! baselines of the state file loaded into them.

use std::path::Path;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use tapsentry_detect::{Batch, HomeNet, Worker};
use tapsentry_telemetry::DropReason;

use super::epoch::ReplyTicket;
use super::stats::SharedStats;
use super::writer::WriterMsg;
use crate::config::SensorConfig;
use crate::control::{FileFaults, IntelHandle};
use crate::state::{self, SaveReq, StatePart};

/// One worker's share of an epoch.
pub(crate) struct WorkerMsg {
    pub batch: Batch,
    /// The worker's right to reply to this epoch, once.
    pub ticket: ReplyTicket,
    /// Export the worker's baselines after this batch, for a state save.
    pub save: Option<SaveReq>,
}

/// The workers of a run, baselines loaded; and, with a state file, the
/// saver that writes their exports.
pub(crate) struct Built {
    pub workers: Vec<Worker>,
    pub saver: Option<state::Saver>,
}

/// Builds `n` workers for `cfg` and loads the state file into them, if one
/// is configured (warnings go to stderr: a bad state file never stops the
/// sensor).
pub(crate) fn build_workers(
    cfg: &SensorConfig,
    n: usize,
    home: &Arc<HomeNet>,
    intel: &IntelHandle,
    state_path: Option<&Path>,
    files: &Arc<FileFaults>,
) -> Built {
    let mut workers: Vec<Worker> = (0..n)
        .map(|_| Worker::new(&cfg.detect, Arc::clone(home), intel.current()))
        .collect();
    let saver = state_path.map(|path| {
        let loaded = state::load(path, &mut workers);
        for w in &loaded.warnings {
            FileFaults::count(&files.state_load_failures);
            eprintln!("tapsentry: warning: {w}");
        }
        if let Some(info) = &loaded.info {
            eprintln!("tapsentry: {info}");
        }
        for w in workers.iter_mut() {
            for (det, secs) in &loaded.prior_learning {
                w.set_prior_learning(det, *secs);
            }
        }
        let names = workers
            .first()
            .map(Worker::persisted_detectors)
            .unwrap_or_default();
        state::Saver::new(path.to_path_buf(), names, loaded.prior_learning)
            .counting_failures(Arc::clone(files))
    });
    Built { workers, saver }
}

/// One detector worker and where its output goes.
pub(crate) struct DetectorStage {
    pub worker: Worker,
    /// The alert writer.
    pub out: Sender<WriterMsg>,
    pub intel: Arc<IntelHandle>,
    pub shared: Arc<SharedStats>,
    pub live: bool,
    /// The `state-out` thread, with a state file.
    pub state: Option<Sender<StatePart>>,
}

impl DetectorStage {
    /// Judges every batch until the sweeper hangs up (or, in replay, the
    /// writer does).
    pub fn run(self, input: &Receiver<WorkerMsg>) {
        let DetectorStage {
            mut worker,
            out,
            intel,
            shared,
            live,
            state,
        } = self;
        let mut seen_generation = intel.generation();
        for msg in input {
            let g = intel.generation();
            if g != seen_generation {
                worker.set_intel(intel.current());
                seen_generation = g;
            }
            let mut alerts = Vec::new();
            worker.process(&msg.batch, &mut alerts);
            if let (Some(req), Some(tx)) = (msg.save, state.as_ref()) {
                let part = state::export(&worker, req);
                // Live, a periodic save is skipped rather than stall
                // detection (the next one comes); the exit save always waits.
                if live && !req.last {
                    let _ = tx.try_send(part);
                } else {
                    let _ = tx.send(part);
                }
            }
            let m = WriterMsg::Alerts(msg.ticket.reply(alerts));
            if live {
                if let Err(TrySendError::Full(WriterMsg::Alerts(r))) = out.try_send(m) {
                    shared
                        .drops
                        .add(DropReason::AlertQueueFull, r.alerts().len() as u64);
                }
            } else if out.send(m).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::epoch::EpochIssuer;
    use crate::pipeline::test_util::flow_record;
    use crossbeam_channel::bounded;
    use std::net::IpAddr;
    use tapsentry_intel::{IntelSnapshot, TorExitList};
    use tapsentry_types::{Category, Timestamp};

    /// Three epochs through a real worker thread and channels: the first
    /// empty, the second with a flow to a Tor exit the intel knows. One
    /// reply per epoch, in order, the Tor alert in the second.
    #[test]
    fn a_worker_replies_once_per_epoch_even_empty() {
        let cfg = SensorConfig::embedded_default().unwrap();
        let home = Arc::new(HomeNet::parse(&["10.0.0.0/8".to_string()]).unwrap());
        let exit: IpAddr = "185.220.101.4".parse().unwrap();
        let intel = Arc::new(IntelHandle::new(IntelSnapshot {
            tor: TorExitList::parse("185.220.101.4\n", "test").0,
            ..IntelSnapshot::empty()
        }));
        let built = build_workers(&cfg, 1, &home, &intel, None, &Arc::default());
        assert!(built.saver.is_none());
        let (out_tx, out_rx) = bounded::<WriterMsg>(8);
        let stage = DetectorStage {
            worker: built.workers.into_iter().next().unwrap(),
            out: out_tx,
            intel,
            shared: Arc::new(SharedStats::new()),
            live: false,
            state: None,
        };
        let (tx, rx) = bounded::<WorkerMsg>(8);
        let h = std::thread::spawn(move || stage.run(&rx));

        let mut issuer = EpochIssuer::new(1);
        let t = Timestamp::from_micros(1_700_000_000_000_000);
        for e in 1..=3u64 {
            let mut epoch = issuer.open(t, t, tapsentry_telemetry::wall::instant());
            if e == 2 {
                let inside = IpAddr::from([10, 0, 0, 7]);
                let rec = flow_record(inside, 50_000, exit, 443, t);
                epoch.shard_mut(0).unwrap().flows.push((inside, rec));
            }
            for (batch, ticket) in epoch.into_deliveries() {
                tx.send(WorkerMsg {
                    batch,
                    ticket,
                    save: None,
                })
                .unwrap();
            }
        }
        drop(tx);
        h.join().unwrap();
        let replies: Vec<(u64, Vec<Category>)> = out_rx
            .try_iter()
            .map(|m| match m {
                WriterMsg::Alerts(r) => (
                    r.epoch(),
                    r.alerts().iter().map(|a| a.alert.category).collect(),
                ),
                WriterMsg::Flows(_) | WriterMsg::Inventory { .. } => (0, Vec::new()),
            })
            .collect();
        assert_eq!(
            replies,
            [(1, vec![]), (2, vec![Category::TOR]), (3, vec![])]
        );
    }
}
