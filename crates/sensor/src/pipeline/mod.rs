//! The running sensor: threads, queues and the order they stop in. Each
//! stage is a module with a struct that owns its state; this module only
//! connects them ([`Pipeline::run`]).
//!
//! ```text
//!           frames        Frames(512)   Tick(now, dns, first msgs)    Batch (per shard)       Alerts(epoch)
//!  source ──> cap-rx ───────────────> flow-in ───────────────> flow-sweep ──────────────> det-0..N ────────────> alert-out ──> alert log
//!  (file or   read, decode, bounded   flow-table  bounded(1)  sweep/drain the  bounded     detectors, one  bounded   sort per epoch,
//!   libpcap)  fragments,    (128)     ingest,     replay      flow table,      (worker_    shard of hosts  (writer_  suppress, write,
//!             DNS summaries,          first msgs, waits for   route records    queue)      each            queue)    flow log
//!             payload arena           sweep ticks the ack     (+ first msgs)
//!                                                                      └──────────── Flows(ended) ────────────────────┘
//!  side threads: signals (SIGINT/SIGTERM stop, SIGHUP reload + reopen), stats (stats log every interval),
//!  state-out (baseline state file: workers export at one capture time, it writes),
//!  inventory-out (the asset inventory file: the sweeper encodes at one capture time, it writes),
//!  metrics (GET /metrics: the stats counters in the Prometheus text format)
//! ```
//!
//! | thread | stage | owns | receives (queue, bound) | sends |
//! | --- | --- | --- | --- | --- |
//! | `cap-rx` | [`reader`] | the frame source, fragment tracker, capture counters; copies each payload's first bytes into the batch's arena | frames from the source; empty batches back from `flow-in` (`INGEST_QUEUE` + 2) | `IngestMsg` to `flow-in` (`INGEST_QUEUE` = 128) |
//! | `flow-in` | [`ingest`] | the flow-table session (it classifies), pending DNS events and first-message metadata, tick clock | `IngestMsg` | `SweepMsg` to `flow-sweep` (1); replay waits for the ack (1) |
//! | `flow-sweep` | [`sweep`] | the record buffer, epoch issuer, save clock, first-message metadata of live flows ([`flow_meta`]), the asset [`inventory`] | `SweepMsg` | `WorkerMsg` to each `det-i` (`pipeline.worker_queue`); ended flows and inventory records to `alert-out`; inventory saves to `inventory-out` (1) |
//! | `det-0..N` | [`workers`] | the detectors of one shard of hosts | `WorkerMsg` | one `Reply` per epoch to `alert-out` (`pipeline.writer_queue`); state parts to `state-out` (2 × workers) |
//! | `alert-out` | [`writer`] | the alert and flow logs, suppressor, the incidents stage (`tapsentry-incidents`: each written alert in, its `incident` records written right after it), [`epoch::EpochCollector`] | `WriterMsg` | files |
//! | `stats` | [`stats`] | the stats log | a stop queue (1) | a [`StatsRecord`] every interval |
//! | `state-out` | [`crate::state`] | the state file | `StatePart` | the file |
//! | `inventory-out` | [`inventory`] | the inventory file | encoded saves | the file |
//! | `metrics` | [`metrics`] | the `[metrics] listen` socket | a stop queue (1); one HTTP request at a time | the stats record in the Prometheus text format |
//!
//! Reading and decoding (`cap-rx`) and the flow-table ingest (`flow-in`) are
//! two threads because together they were three quarters of a replay's
//! samples on one core while the other core idled; the ingest thread sees
//! the frames in read order, so everything after it is as if one thread did
//! both.
//!
//! Time is capture time throughout. In replay the ingest thread hands each
//! tick to the sweeper and waits for its ack before reading on, and the
//! sweeper, workers and writer follow the [`epoch`] protocol (every worker
//! gets every epoch, replies once, the writer releases whole epochs in
//! order, sorted): one capture gives byte-identical alert logs at any speed
//! and any worker count. Live, nothing after the ingest thread waits: full
//! queues drop and the drop is counted by reason; `cap-rx` does wait for
//! `flow-in`, so an ingest that falls behind shows as kernel drops.
//!
//! Stopping: each stage ends when its input disconnects, so the threads are
//! joined upstream to downstream; the final sweep drains the flow table
//! through the detectors before the workers stop.

pub mod admin;
pub mod epoch;
pub mod flow_meta;
pub mod ingest;
pub mod inventory;
pub mod metrics;
pub mod reader;
pub mod stats;
pub mod sweep;
pub mod workers;
pub mod writer;

use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::bounded;
use tapsentry_capture::FrameSource;
use tapsentry_detect::HomeNet;
use tapsentry_flow::FlowTable;
use tapsentry_incidents::Incidents;
use tapsentry_output::{JsonlSink, Suppressor};

pub use crate::control::{Control, IntelHandle};
pub use stats::StatsRecord;

use crate::config::{configured, SensorConfig};
use crate::state::{self, StatePart};
use epoch::EpochCollector;
use ingest::{
    IngestBatch, IngestMsg, IngestStage, IngestStep, SweepTicks, TickEvents, INGEST_QUEUE,
};
use reader::{FrameStep, Reader};
use stats::{lock, SharedStats, StatsStage};
use sweep::{Router, SaveClock, Sweep, SweepMsg};
use workers::{build_workers, DetectorStage, WorkerMsg};
use writer::{WriterMsg, WriterStage};

/// How fast a replay reads its files. The result never depends on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as possible.
    Max,
    /// Paced by packet timestamps, `factor` times real time (1.0 = realtime).
    Factor(f64),
}

/// Replay (deterministic, lossless) or live (never blocks capture).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Files: backpressure waits, alerts are ordered per epoch.
    Replay(Speed),
    /// An interface: full queues drop and count.
    Live,
}

/// The outcome of a run, for the summary and the exit status.
#[derive(Debug)]
pub struct RunReport {
    /// The final stats record (also written to the stats log).
    pub stats: StatsRecord,
    /// Capture problems that did not stop the run but make it exit 1
    /// (a corrupt or unreadable file among several).
    pub capture_errors: Vec<String>,
    /// A fatal problem (e.g. the alert log became unwritable).
    pub fatal: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// The hosts most alerts were about (`src_ip`), most first, at most
    /// ten (ties by address).
    pub top_alerted: Vec<(std::net::IpAddr, u64)>,
}

/// How far a run is, for a progress display.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    /// Packets read.
    pub packets: u64,
    /// Alerts written.
    pub alerts: u64,
    /// Flows created.
    pub flows: u64,
}

/// Everything a run needs, opened by the caller (so open errors are
/// reported before any thread starts).
pub struct Pipeline {
    /// The validated configuration.
    pub cfg: SensorConfig,
    /// Replay or live.
    pub mode: Mode,
    /// The frame source, already open.
    pub source: Box<dyn FrameSource>,
    /// The alert log, already open.
    pub alerts: JsonlSink,
    /// The flow log, if configured, already open.
    pub flows: Option<JsonlSink>,
    /// The stats log, if configured, already open.
    pub stats: Option<JsonlSink>,
    /// The metrics endpoint's socket (`[metrics] listen`), already bound,
    /// so an address in use is an error before any thread starts.
    pub metrics: Option<std::net::TcpListener>,
}

fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>> {
    thread::Builder::new()
        .name(name.to_string())
        .spawn(f)
        .with_context(|| format!("cannot start thread {name}"))
}

fn join<T>(h: JoinHandle<T>) -> Result<T> {
    let name = h.thread().name().unwrap_or("?").to_string();
    h.join().map_err(|_| anyhow!("thread {name} panicked"))
}

impl Pipeline {
    /// Runs until the source ends (replay) or `control.stop` is set, then
    /// flushes every live flow through the detectors and returns.
    pub fn run(self, control: &Control) -> Result<RunReport> {
        self.run_observed(control, &mut |_| {})
    }

    /// [`run`](Self::run), calling `observe` about five times a second
    /// (wall time) with the counts so far while the capture is read, and
    /// once at the end. For a display only: detection never sees it.
    pub fn run_observed(
        self,
        control: &Control,
        observe: &mut dyn FnMut(&Progress),
    ) -> Result<RunReport> {
        let Pipeline {
            cfg,
            mode,
            source,
            alerts,
            flows,
            stats,
            metrics,
        } = self;
        let workers = cfg.pipeline.workers.max(1);
        let live = mode == Mode::Live;
        let home = Arc::new(
            HomeNet::parse(&cfg.network.home_net).map_err(|e| anyhow!("network.home_net: {e}"))?,
        );
        // Replay writes whole epochs in order; live writes as replies come.
        let epochs = (!live)
            .then(|| EpochCollector::new(workers))
            .transpose()
            .map_err(|e| anyhow!("pipeline.workers: {e}"))?;
        let table = Arc::new(FlowTable::new(cfg.flow.clone()));
        let host = cfg.output.sensor_host();
        let mut shared = SharedStats::with_host(&host);
        shared.files = Arc::clone(&control.files);
        let _ = shared.intel.set(Arc::clone(&control.intel));
        let shared = Arc::new(shared);
        // Baselines from the state file go into the workers before any
        // packet; saves are gathered by their own thread, off the alert path.
        let state_path = configured(&cfg.detect.state_file).map(Path::to_path_buf);
        let built = build_workers(
            &cfg,
            workers,
            &home,
            &control.intel,
            state_path.as_deref(),
            &control.files,
        );

        // The queues, upstream to downstream (see the table above).
        let (ingest_tx, ingest_rx) = bounded::<IngestMsg>(INGEST_QUEUE);
        let (recycle_tx, recycle_rx) = bounded::<IngestBatch>(INGEST_QUEUE + 2);
        let (tick_tx, tick_rx) = bounded::<SweepMsg>(1);
        let (ack_tx, ack_rx) = bounded::<TickEvents>(1);
        let (worker_txs, worker_rxs): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| bounded::<WorkerMsg>(cfg.pipeline.worker_queue))
            .unzip();
        let (writer_tx, writer_rx) = bounded::<WriterMsg>(cfg.pipeline.writer_queue);
        let (state_tx, state_rx) = bounded::<StatePart>(workers.saturating_mul(2));
        let (stats_stop_tx, stats_stop_rx) = bounded::<()>(1);
        // The asset inventory, loaded before any packet (a broken file is
        // one warning and an empty start).
        let inventory_path = configured(&cfg.output.inventory).map(Path::to_path_buf);
        let (inv_save_tx, inv_save_rx) = bounded::<Vec<u8>>(1);
        let files = Arc::clone(&control.files);
        let inventory_out = match inventory_path.clone() {
            Some(path) => Some(spawn("inventory-out", move || {
                inventory::save_loop(&inv_save_rx, path, &files)
            })?),
            None => None,
        };
        let inventory_feed = inventory_path.as_deref().map(|path| {
            inventory::InventoryFeed::new(
                inventory::load(&cfg.inventory, path, &control.files),
                cfg.inventory.save_interval_secs,
                Arc::clone(&home),
                Arc::clone(&control.intel),
                inv_save_tx.clone(),
                live,
                Arc::clone(&shared),
            )
        });
        drop(inv_save_tx);

        // The threads, downstream first.
        let state_out = match built.saver {
            Some(saver) => Some(spawn("state-out", move || {
                state::state_loop(&state_rx, saver, workers)
            })?),
            None => None,
        };
        let state_tx = state_out.is_some().then_some(state_tx);
        let mut worker_handles = Vec::with_capacity(workers);
        for (i, (worker, rx)) in built.workers.into_iter().zip(worker_rxs).enumerate() {
            let stage = DetectorStage {
                worker,
                out: writer_tx.clone(),
                intel: Arc::clone(&control.intel),
                shared: Arc::clone(&shared),
                live,
                state: state_tx.clone(),
            };
            worker_handles.push(spawn(&format!("det-{i}"), move || stage.run(&rx))?);
        }
        drop(state_tx);
        let writer = WriterStage {
            alerts: alerts.with_backlog(
                usize::try_from(cfg.output.alert_backlog_mb.saturating_mul(1 << 20))
                    .unwrap_or(usize::MAX),
            ),
            flows,
            suppressor: Suppressor::new(
                cfg.output.suppression_window_secs,
                cfg.output.suppression_max_entries,
            ),
            incidents: cfg.incidents.enabled.then(|| {
                let home = Arc::clone(&home);
                Incidents::new(
                    cfg.incidents.clone(),
                    &host,
                    Box::new(move |ip| home.contains(ip)),
                )
            }),
            host: host.clone(),
            epochs,
            reopen: Arc::clone(&control.reopen),
            shared: Arc::clone(&shared),
        };
        let flow_log = writer.flows.is_some().then(|| writer_tx.clone());
        let inventory_writer = inventory_feed.is_some().then(|| writer_tx.clone());
        drop(writer_tx);
        let writer = spawn("alert-out", move || writer.run(&writer_rx))?;
        let ingest_home = inventory_feed.is_some().then(|| Arc::clone(&home));
        let mut router = Router::new(home, worker_txs, flow_log, live, Arc::clone(&shared));
        if let (Some(feed), Some(tx)) = (inventory_feed, inventory_writer) {
            router = router.with_inventory(feed, tx);
        }
        let sweep = Sweep {
            table: Arc::clone(&table),
            router,
            saves: state_out
                .is_some()
                .then(|| SaveClock::new(cfg.detect.state_interval_secs.0)),
        };
        let sweeper = spawn("flow-sweep", move || sweep.run(&tick_rx, &ack_tx))?;
        let stats_thread = match stats {
            Some(sink) => {
                let stage = StatsStage {
                    sink,
                    every: Duration::from_secs(cfg.output.stats_interval_secs.max(1)),
                    shared: Arc::clone(&shared),
                    table: Arc::clone(&table),
                    reopen: Arc::clone(&control.reopen),
                };
                Some(spawn("stats", move || stage.run(&stats_stop_rx))?)
            }
            None => None,
        };
        let (metrics_stop_tx, metrics_stop_rx) = bounded::<()>(1);
        let metrics_thread = match metrics {
            Some(listener) => {
                let stage = metrics::MetricsStage {
                    listener,
                    shared: Arc::clone(&shared),
                    table: Arc::clone(&table),
                };
                Some(spawn("metrics", move || stage.run(&metrics_stop_rx))?)
            }
            None => None,
        };
        let ingest = IngestStage {
            step: match ingest_home.clone() {
                Some(home) => {
                    IngestStep::new(&cfg.pipeline, live).with_macs(home, cfg.inventory.max_hosts)
                }
                None => IngestStep::new(&cfg.pipeline, live),
            },
            table: Arc::clone(&table),
            shared: Arc::clone(&shared),
            ticks: SweepTicks {
                live,
                tx: tick_tx,
                acks: ack_rx,
                spare: TickEvents {
                    dns: Vec::with_capacity(1024),
                    first: Vec::with_capacity(1024),
                    macs: Vec::with_capacity(if ingest_home.is_some() { 1024 } else { 0 }),
                    admin: Vec::with_capacity(64),
                },
            },
        };
        let ingest = spawn("flow-in", move || ingest.run(&ingest_rx, &recycle_tx))?;
        let reader = Reader {
            source,
            step: if ingest_home.is_some() {
                FrameStep::new(cfg.flow.max_fragments).with_macs()
            } else {
                FrameStep::new(cfg.flow.max_fragments)
            },
            shared: Arc::clone(&shared),
            stop: Arc::clone(&control.stop),
            mode,
        };
        let capture = spawn("cap-rx", move || reader.run(&ingest_tx, &recycle_rx))?;

        let progress = || Progress {
            packets: lock(&shared.capture).packets,
            alerts: lock(&shared.writer).written,
            flows: table.counters().created,
        };
        while !capture.is_finished() {
            observe(&progress());
            thread::sleep(Duration::from_millis(200));
        }
        // Upstream to downstream: each stage ends when its input disconnects.
        let capture_errors = join(capture)?;
        join(ingest)?;
        join(sweeper)?;
        // The sweeper sent the exit save; the file is written.
        if let Some(h) = inventory_out {
            join(h)?;
        }
        for h in worker_handles {
            join(h)?;
        }
        // Workers sent their exit share of the state; the file is written.
        if let Some(h) = state_out {
            join(h)?;
        }
        // The writer returns its sink so the file closes only after the last line.
        drop(join(writer)?);
        drop(stats_stop_tx);
        let mut stats_sink = stats_thread.map(join).transpose()?;
        let stats = shared.record(&table.counters());
        if let Some(sink) = stats_sink.as_mut() {
            sink.write_record(&stats)
                .with_context(|| format!("cannot write stats log {}", sink.path()))?;
        }
        // Scrapes see the counters up to the end of the run.
        drop(metrics_stop_tx);
        if let Some(h) = metrics_thread {
            join(h)?;
        }
        observe(&progress());
        let fatal = lock(&shared.writer).write_error.clone();
        let mut top_alerted: Vec<(std::net::IpAddr, u64)> = lock(&shared.writer)
            .by_src
            .iter()
            .map(|(ip, n)| (*ip, *n))
            .collect();
        top_alerted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        top_alerted.truncate(10);
        Ok(RunReport {
            top_alerted,
            stats,
            capture_errors,
            fatal,
            elapsed: shared.started.elapsed(),
        })
    }
}

/// Inputs the stages' unit tests share, made the way the pipeline makes
/// them (decoded frames, flow-table records).
#[cfg(test)]
pub(crate) mod test_util {
    use std::net::IpAddr;

    use tapsentry_decode::{decode, dns};
    use tapsentry_flow::{FlowConfig, FlowTable};
    use tapsentry_testkit::{tcp_v4, udp_v4, DnsMessage};
    use tapsentry_types::{DnsEvent, FlowRecord, Frame, LinkType, Timestamp};

    /// A DNS query for `a.example` A.
    pub fn dns_query() -> Vec<u8> {
        DnsMessage::query(0x1234, "a.example", 1).encode()
    }

    fn frame(data: &[u8], ts: Timestamp) -> Frame<'_> {
        Frame {
            ts,
            wire_len: data.len() as u32,
            link: LinkType::ETHERNET,
            data,
        }
    }

    /// The DNS summary of a query from `client`, as the reader takes it.
    pub fn dns_event(client: [u8; 4]) -> DnsEvent {
        let data = udp_v4(client, 5353, [10, 0, 0, 53], 53, &dns_query());
        let m = decode(&frame(&data, Timestamp::from_micros(1_000))).unwrap();
        dns::event(&m).unwrap().unwrap()
    }

    /// The record of an answered TCP flow (SYN, SYN-ACK), drained from a
    /// flow table.
    pub fn flow_record(
        client: IpAddr,
        cport: u16,
        server: IpAddr,
        sport: u16,
        t: Timestamp,
    ) -> FlowRecord {
        let (IpAddr::V4(c), IpAddr::V4(s)) = (client, server) else {
            panic!("IPv4 only")
        };
        let table = FlowTable::new(FlowConfig::default());
        let mut session = table.session();
        let syn = tcp_v4(c.octets(), cport, s.octets(), sport, 0x02, &[]);
        let syn_ack = tcp_v4(s.octets(), sport, c.octets(), cport, 0x12, &[]);
        session.ingest(&decode(&frame(&syn, t)).unwrap());
        let t1 = Timestamp::from_micros(t.micros() + 1_000);
        session.ingest(&decode(&frame(&syn_ack, t1)).unwrap());
        drop(session);
        let mut out = Vec::new();
        table.drain(&mut out);
        out.pop().unwrap()
    }
}
