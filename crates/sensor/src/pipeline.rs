//! The running sensor: threads, channels and the order they stop in.
//!
//! ```text
//!           frames        Frames(512)          Tick(now, dns)         Batch (per shard)       Alerts(epoch)
//!  source ──> cap-rx ───────────────> flow-in ───────────────> flow-sweep ──────────────> det-0..N ────────────> alert-out ──> alert log
//!  (file or   read, decode, bounded   flow-table  bounded(1)  sweep/drain the  bounded     detectors, one  bounded   sort per epoch,
//!   libpcap)  fragments,    (128)     ingest,     replay      flow table,      (worker_    shard of hosts  (writer_  suppress, write,
//!             DNS summaries           sweep ticks waits for   route records    queue)      each            queue)    flow log
//!                                                 the ack              └──────────── Flows(ended) ────────────────────┘
//!  side threads: signals (SIGINT/SIGTERM stop, SIGHUP reload + reopen), stats (stats log every interval),
//!  state-out (baseline state file: workers export at one capture time, it writes)
//! ```
//!
//! Reading and decoding (`cap-rx`) and the flow-table ingest (`flow-in`) are
//! two threads because together they were three quarters of a replay's
//! samples on one core while the other core idled; the ingest thread sees
//! the frames in read order, so everything after it is as if one thread did
//! both. It counts a batch through one flow-table session: the shards stay
//! locked for the batch, and each group of eight frames is looked up back to
//! back before it is counted, so that the table's cache misses overlap.
//!
//! Time is capture time throughout. In replay the ingest thread hands each
//! tick to the sweeper and waits for its ack before reading on, every worker
//! receives every epoch (even empty), and the writer orders alerts within an
//! epoch before writing: one capture gives byte-identical alert logs at any
//! speed and any worker count. Live, nothing after the ingest thread waits:
//! full queues drop and the drop is counted by reason; `cap-rx` does wait
//! for `flow-in`, so an ingest that falls behind shows as kernel drops.

use std::collections::BTreeMap;
use std::mem;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use serde::Serialize;
use serde_json::json;
use tapsentry_capture::{CaptureWarning, FrameSource, KernelStats, Next};
use tapsentry_decode::{decode, dns, DecodeError};
use tapsentry_detect::{route_flow, shard_for, Batch, HomeNet, Worker};
use tapsentry_flow::{FlowCounters, FlowTable, FragmentTracker, IngestSession, PROBE_GROUP};
use tapsentry_intel::IntelSnapshot;
use tapsentry_output::{JsonlSink, Suppressor};
use tapsentry_telemetry::{DropReason, Drops, LatencyHist, LatencySummary, ReasonCounts};
use tapsentry_types::{
    community_id_v1, proto_name, Alert, DnsEvent, FlowRecord, Fragment, PacketMeta, RecordKind,
    Timestamp,
};

use crate::config::{configured, SensorConfig};
use crate::state::{self, SaveReq, StatePart};

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

/// The intel snapshot every worker reads, swapped whole on SIGHUP.
pub struct IntelHandle {
    current: RwLock<Arc<IntelSnapshot>>,
    generation: AtomicU64,
}

impl IntelHandle {
    /// A handle holding `snap`.
    pub fn new(snap: IntelSnapshot) -> IntelHandle {
        IntelHandle {
            current: RwLock::new(Arc::new(snap)),
            generation: AtomicU64::new(0),
        }
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<IntelSnapshot> {
        self.current
            .read()
            .map(|g| Arc::clone(&g))
            .unwrap_or_else(|p| Arc::clone(&p.into_inner()))
    }

    /// Replaces the snapshot; workers pick it up before their next batch.
    pub fn replace(&self, snap: IntelSnapshot) {
        let mut g = self.current.write().unwrap_or_else(|p| p.into_inner());
        *g = Arc::new(snap);
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// What the signal thread can ask of a running pipeline.
#[derive(Clone)]
pub struct Control {
    /// Set on SIGINT/SIGTERM: stop capture, flush everything, exit.
    pub stop: Arc<AtomicBool>,
    /// Bumped on SIGHUP: the writer and stats threads reopen their files.
    pub reopen: Arc<AtomicU64>,
    /// The intel snapshot, replaced on SIGHUP.
    pub intel: Arc<IntelHandle>,
}

impl Control {
    /// A control block around an initial intel snapshot.
    pub fn new(intel: IntelSnapshot) -> Control {
        Control {
            stop: Arc::new(AtomicBool::new(false)),
            reopen: Arc::new(AtomicU64::new(0)),
            intel: Arc::new(IntelHandle::new(intel)),
        }
    }
}

/// Counters of the reader thread (`cap-rx`), published a batch at a time;
/// `packet_time` is filled by the ingest thread.
#[derive(Debug, Clone)]
struct CaptureStats {
    packets: u64,
    wire_bytes: u64,
    ip_bytes: u64,
    decode_errors: ReasonCounts,
    dns_messages: u64,
    dns_errors: ReasonCounts,
    fragments_unattributed: u64,
    fragments_not_remembered: u64,
    unsupported_link_frames: u64,
    first_ts: Option<Timestamp>,
    last_ts: Timestamp,
    kernel: Option<KernelStats>,
    packet_time: LatencyHist,
}

impl CaptureStats {
    fn new() -> Self {
        CaptureStats {
            packets: 0,
            wire_bytes: 0,
            ip_bytes: 0,
            decode_errors: ReasonCounts::new(&DecodeError::ALL_REASONS),
            dns_messages: 0,
            dns_errors: ReasonCounts::new(&dns::DnsError::ALL_REASONS),
            fragments_unattributed: 0,
            fragments_not_remembered: 0,
            unsupported_link_frames: 0,
            first_ts: None,
            last_ts: Timestamp::ZERO,
            kernel: None,
            packet_time: LatencyHist::new(),
        }
    }
}

/// Counters of the alert writer.
#[derive(Debug, Clone, Default)]
struct WriterStats {
    written: u64,
    suppressed: u64,
    by_category: BTreeMap<&'static str, u64>,
    flow_records_logged: u64,
    alert_latency: LatencyHist,
    write_error: Option<String>,
}

/// Counters every thread publishes into, read by the stats thread.
struct SharedStats {
    capture: Mutex<CaptureStats>,
    writer: Mutex<WriterStats>,
    drops: Drops,
    started: Instant,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The outcome of a run, for the summary and the exit status.
#[derive(Debug)]
pub struct RunReport {
    /// The final stats record (also written to the stats log).
    pub stats: serde_json::Value,
    /// Packets read.
    pub packets: u64,
    /// Alerts written.
    pub alerts_written: u64,
    /// Capture problems that did not stop the run but make it exit 1
    /// (a corrupt or unreadable file among several).
    pub capture_errors: Vec<String>,
    /// A fatal problem (e.g. the alert log became unwritable).
    pub fatal: Option<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

enum SweepMsg {
    Tick { now: Timestamp, dns: Vec<DnsEvent> },
    Final { now: Timestamp, dns: Vec<DnsEvent> },
}

struct WorkerMsg {
    batch: Batch,
    emitted: Instant,
    /// Export the worker's baselines after this batch, for a state save.
    save: Option<SaveReq>,
}

enum WriterMsg {
    Alerts {
        epoch: u64,
        alerts: Vec<Alert>,
        emitted: Instant,
    },
    Flows(Vec<FlowRecord>),
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
        let Pipeline {
            cfg,
            mode,
            source,
            alerts,
            flows,
            stats,
        } = self;
        let workers = cfg.pipeline.workers.max(1);
        let home = Arc::new(
            HomeNet::parse(&cfg.network.home_net).map_err(|e| anyhow!("network.home_net: {e}"))?,
        );
        let table = Arc::new(FlowTable::new(cfg.flow.clone()));
        let shared = Arc::new(SharedStats {
            capture: Mutex::new(CaptureStats::new()),
            writer: Mutex::new(WriterStats::default()),
            drops: Drops::default(),
            started: Instant::now(),
        });
        let live = mode == Mode::Live;
        let flow_log_on = flows.is_some();

        let (tick_tx, tick_rx) = bounded::<SweepMsg>(1);
        let (ack_tx, ack_rx) = bounded::<Vec<DnsEvent>>(1);
        let (writer_tx, writer_rx) = bounded::<WriterMsg>(cfg.pipeline.writer_queue);
        let mut detect_workers: Vec<Worker> = (0..workers)
            .map(|_| Worker::new(&cfg.detect, Arc::clone(&home), control.intel.current()))
            .collect();
        // Baselines from the state file go into the workers before any
        // packet; saves are gathered by their own thread, off the alert path.
        let state_path = configured(&cfg.detect.state_file).map(std::path::Path::to_path_buf);
        let mut state_tx = None;
        let mut state_out = None;
        if let Some(path) = &state_path {
            let loaded = state::load(path, &mut detect_workers);
            for w in &loaded.warnings {
                eprintln!("tapsentry: warning: {w}");
            }
            if let Some(info) = &loaded.info {
                eprintln!("tapsentry: {info}");
            }
            for w in detect_workers.iter_mut() {
                for (det, secs) in &loaded.prior_learning {
                    w.set_prior_learning(det, *secs);
                }
            }
            let names = detect_workers
                .first()
                .map(Worker::persisted_detectors)
                .unwrap_or_default();
            let saver = state::Saver::new(path.clone(), names, loaded.prior_learning);
            let (tx, rx) = bounded::<StatePart>(workers.saturating_mul(2));
            state_tx = Some(tx);
            state_out = Some(spawn("state-out", move || {
                state::state_loop(&rx, saver, workers)
            })?);
        }
        let save_every = state_path
            .is_some()
            .then_some(cfg.detect.state_interval_secs.0.max(1));
        let mut worker_txs = Vec::with_capacity(workers);
        let mut worker_handles = Vec::with_capacity(workers);
        for (i, mut worker) in detect_workers.into_iter().enumerate() {
            let (tx, rx) = bounded::<WorkerMsg>(cfg.pipeline.worker_queue);
            worker_txs.push(tx);
            let intel = Arc::clone(&control.intel);
            let out = writer_tx.clone();
            let shared = Arc::clone(&shared);
            let state_tx = state_tx.clone();
            worker_handles.push(spawn(&format!("det-{i}"), move || {
                detector_loop(
                    &mut worker,
                    &rx,
                    &out,
                    &intel,
                    &shared,
                    live,
                    state_tx.as_ref(),
                )
            })?);
        }
        drop(state_tx);
        let sweep_tx_writer = flow_log_on.then(|| writer_tx.clone());
        drop(writer_tx);

        let writer = {
            let shared = Arc::clone(&shared);
            let reopen = Arc::clone(&control.reopen);
            let suppressor = Suppressor::new(
                cfg.output.suppression_window_secs,
                cfg.output.suppression_max_entries,
            );
            spawn("alert-out", move || {
                writer_loop(
                    writer_rx, alerts, flows, suppressor, workers, !live, &reopen, &shared,
                )
            })?
        };

        let sweeper = {
            let table = Arc::clone(&table);
            let home = Arc::clone(&home);
            let shared = Arc::clone(&shared);
            spawn("flow-sweep", move || {
                sweep_loop(
                    &tick_rx,
                    &ack_tx,
                    &table,
                    &home,
                    worker_txs,
                    sweep_tx_writer,
                    &shared,
                    live,
                    save_every,
                )
            })?
        };

        let (stats_stop_tx, stats_stop_rx) = bounded::<()>(1);
        let stats_thread = match stats {
            Some(sink) => {
                let shared = Arc::clone(&shared);
                let table = Arc::clone(&table);
                let reopen = Arc::clone(&control.reopen);
                let every = Duration::from_secs(cfg.output.stats_interval_secs.max(1));
                Some(spawn("stats", move || {
                    stats_loop(sink, &stats_stop_rx, every, &shared, &table, &reopen)
                })?)
            }
            None => None,
        };

        let (ingest_tx, ingest_rx) = bounded::<IngestMsg>(INGEST_QUEUE);
        let (recycle_tx, recycle_rx) = bounded::<IngestBatch>(INGEST_QUEUE + 2);
        let ingest = {
            let table = Arc::clone(&table);
            let shared = Arc::clone(&shared);
            let pcfg = cfg.pipeline.clone();
            spawn("flow-in", move || {
                ingest_loop(
                    &ingest_rx,
                    &recycle_tx,
                    &table,
                    &tick_tx,
                    &ack_rx,
                    &shared,
                    live,
                    &pcfg,
                )
            })?
        };

        let capture = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&control.stop);
            let max_fragments = cfg.flow.max_fragments;
            spawn("cap-rx", move || {
                read_loop(
                    source,
                    &ingest_tx,
                    &recycle_rx,
                    &shared,
                    &stop,
                    mode,
                    max_fragments,
                )
            })?
        };

        // Upstream to downstream: each stage ends when its input disconnects.
        let capture_errors = join(capture)?;
        join(ingest)?;
        join(sweeper)?;
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
        let stats = stats_record(&shared, &table.counters());
        if let Some(sink) = stats_sink.as_mut() {
            sink.write_record(&stats)
                .with_context(|| format!("cannot write stats log {}", sink.path()))?;
        }
        let cap = lock(&shared.capture);
        let w = lock(&shared.writer);
        Ok(RunReport {
            packets: cap.packets,
            alerts_written: w.written,
            capture_errors,
            fatal: w.write_error.clone(),
            elapsed: shared.started.elapsed(),
            stats,
        })
    }
}

/// Capture-time tick boundaries are aligned to the interval, so the sweep
/// points depend only on packet timestamps.
fn next_boundary(ts: Timestamp, interval_s: u32) -> Timestamp {
    let step = i64::from(interval_s.max(1)) * 1_000_000;
    Timestamp::from_micros((ts.micros().div_euclid(step) + 1).saturating_mul(step))
}

/// Frames per batch from the reader to the ingest thread: large enough that
/// the channel hand-off (a few hundred ns) is noise per packet, small enough
/// (about 80 KB of summaries) to stay in cache between the two cores.
const INGEST_BATCH: usize = 512;

/// Batches in flight between reader and ingest (about 10 MB at most, 65,536
/// frames): lets the reader decode on while the ingest thread waits for a
/// replay's sweep, which on a 200,000-flow table takes longer than 32
/// batches last. 32, 64 and 128 measured 2.30, 2.10 and 1.94 s on the 5M
/// replay in one hyperfine run (docs/performance.md).
const INGEST_QUEUE: usize = 128;

/// A live batch is handed on after this much wall time even if not full, so
/// a trickle of packets is not held back behind a half-empty batch.
const LIVE_BATCH_MAX_AGE: Duration = Duration::from_millis(5);

/// One frame as the reader hands it to the ingest thread: its capture time
/// and, when it decoded, the packet summary (the payload is dropped: the DNS
/// summary was taken from it on the reader side).
#[derive(Clone, Copy)]
struct Ingest {
    ts: Timestamp,
    meta: Option<PacketMeta<'static>>,
    /// The next event of the batch's `dns` list came from this frame.
    dns: bool,
    /// Decode time of a sampled frame (1 in 64), in ns; the ingest thread
    /// adds its own part (an eighth of its group's lookups, then the count)
    /// and records the sum as the packet's processing time.
    decode_ns: Option<u32>,
}

/// Frames in capture order plus the DNS summaries taken from them.
struct IngestBatch {
    frames: Vec<Ingest>,
    dns: Vec<DnsEvent>,
}

impl IngestBatch {
    /// An empty batch with room for a full one.
    fn empty() -> Self {
        IngestBatch {
            frames: Vec::with_capacity(INGEST_BATCH),
            dns: Vec::with_capacity(64),
        }
    }
}

enum IngestMsg {
    Frames(IngestBatch),
    /// Live and quiet: the wall clock (never behind the last packet) is
    /// capture time until the next packet.
    Idle(Timestamp),
}

/// The reader stage (thread `cap-rx`): frames from the source, decoded,
/// fragments attributed and DNS messages summarised, handed on in batches.
/// Decoding and reading are half the per-packet work; doing them on their
/// own core overlaps them with the flow-table ingest.
fn read_loop(
    mut source: Box<dyn FrameSource>,
    out: &Sender<IngestMsg>,
    recycle: &Receiver<IngestBatch>,
    shared: &SharedStats,
    stop: &AtomicBool,
    mode: Mode,
    max_fragments: usize,
) -> Vec<String> {
    let live = mode == Mode::Live;
    let mut st = CaptureStats::new();
    let mut frags = FragmentTracker::new(max_fragments);
    let mut errors = Vec::new();
    let pace = match mode {
        Mode::Replay(Speed::Factor(f)) if f > 0.0 => Some(f),
        _ => None,
    };
    let mut pace_origin: Option<(Timestamp, Instant)> = None;
    let mut batch = IngestBatch::empty();
    let mut batch_started = Instant::now();
    // Hands the batch on (blocking: backpressure reaches the kernel ring
    // live, and the file read in replay) and takes a recycled one.
    let ship = |batch: &mut IngestBatch| -> bool {
        let next = recycle.try_recv().unwrap_or_else(|_| IngestBatch::empty());
        out.send(IngestMsg::Frames(mem::replace(batch, next)))
            .is_ok()
    };

    let mut n: u64 = 0;
    loop {
        // One relaxed load per 256 packets at full speed; a paced replay
        // sleeps between packets, so it checks every time.
        if (n & 255 == 0 || pace.is_some()) && stop.load(Ordering::Relaxed) {
            break;
        }
        let next = match source.next_frame() {
            Ok(next) => next,
            Err(e) => {
                errors.push(e.to_string());
                break;
            }
        };
        match next {
            Next::End => break,
            Next::Idle => {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if !batch.frames.is_empty() && !ship(&mut batch) {
                    break;
                }
                if out
                    .send(IngestMsg::Idle(wall_now().max(st.last_ts)))
                    .is_err()
                {
                    break;
                }
                st.kernel = source.kernel_stats();
                take_warnings(source.as_mut(), &mut errors);
                publish(&mut st, shared);
                continue;
            }
            Next::Frame(frame) => {
                n += 1;
                if let Some(factor) = pace {
                    pace_to(frame.ts, factor, &mut pace_origin, stop);
                }
                let t0 = (n & 63 == 0).then(Instant::now);
                st.packets += 1;
                st.wire_bytes += u64::from(frame.wire_len);
                if frame.ts > st.last_ts {
                    st.last_ts = frame.ts;
                }
                if st.first_ts.is_none() {
                    st.first_ts = Some(frame.ts);
                }
                let mut item = Ingest {
                    ts: frame.ts,
                    meta: None,
                    dns: false,
                    decode_ns: None,
                };
                match decode(&frame) {
                    Ok(mut m) => {
                        st.ip_bytes += u64::from(m.ip_len);
                        if m.fragment != Fragment::None {
                            frags.resolve(&mut m);
                        }
                        match dns::event(&m) {
                            Some(Ok(event)) => {
                                st.dns_messages += 1;
                                batch.dns.push(event);
                                item.dns = true;
                            }
                            Some(Err(e)) => st.dns_errors.bump(e.index()),
                            None => {}
                        }
                        item.meta = Some(PacketMeta { payload: &[], ..m });
                    }
                    Err(e) => st.decode_errors.bump(e.index()),
                }
                if let Some(t0) = t0 {
                    item.decode_ns =
                        Some(u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX));
                }
                if batch.frames.is_empty() && live {
                    batch_started = Instant::now();
                }
                batch.frames.push(item);
                // A paced replay sleeps before each frame: hand each one on
                // at once, as a live link at that rate would see it.
                let full = batch.frames.len() >= INGEST_BATCH
                    || pace.is_some()
                    || (live && batch_started.elapsed() >= LIVE_BATCH_MAX_AGE);
                if full && !ship(&mut batch) {
                    break;
                }
                if n & 4095 == 0 {
                    st.fragments_unattributed = frags.unattributed();
                    st.fragments_not_remembered = frags.not_remembered();
                    st.unsupported_link_frames = source.skipped_frames();
                    take_warnings(source.as_mut(), &mut errors);
                    publish(&mut st, shared);
                }
            }
        }
    }
    if !batch.frames.is_empty() {
        ship(&mut batch);
    }
    take_warnings(source.as_mut(), &mut errors);
    st.fragments_unattributed = frags.unattributed();
    st.fragments_not_remembered = frags.not_remembered();
    st.unsupported_link_frames = source.skipped_frames();
    st.kernel = source.kernel_stats();
    publish(&mut st, shared);
    errors
}

/// The ingest stage (thread `flow-in`): counts each frame on its flow, in
/// capture order, and cuts the stream into sweep ticks on capture-time
/// boundaries. It sees the frames in exactly the order the reader read
/// them, so the ticks and what each carries are those of a single thread.
#[allow(clippy::too_many_arguments)]
fn ingest_loop(
    input: &Receiver<IngestMsg>,
    recycle: &Sender<IngestBatch>,
    table: &FlowTable,
    tick_tx: &Sender<SweepMsg>,
    ack_rx: &Receiver<Vec<DnsEvent>>,
    shared: &SharedStats,
    live: bool,
    pcfg: &crate::config::PipelineConfig,
) {
    let mut dns_buf: Vec<DnsEvent> = Vec::with_capacity(1024);
    let mut spare: Vec<DnsEvent> = Vec::with_capacity(1024);
    let mut next_tick: Option<Timestamp> = None;
    let mut last_ts = Timestamp::ZERO;
    let mut packet_time = LatencyHist::new();
    let mut since_publish = 0usize;
    // Holds the table's shards locked while a batch is counted.
    let mut session = table.session();

    // Sends a tick. Replay: wait for the sweep to finish, so flow expiry
    // never races with ingest. Live: skip if the sweeper is busy. Either
    // way the sweeper needs the shards this thread holds.
    let tick = |now: Timestamp,
                session: &mut IngestSession<'_>,
                dns_buf: &mut Vec<DnsEvent>,
                spare: &mut Vec<DnsEvent>|
     -> bool {
        session.release();
        if live {
            match tick_tx.try_send(SweepMsg::Tick {
                now,
                dns: mem::take(dns_buf),
            }) {
                Ok(()) => {
                    mem::swap(dns_buf, spare);
                    true
                }
                Err(TrySendError::Full(SweepMsg::Tick { dns, .. })) => {
                    *dns_buf = dns;
                    true
                }
                Err(_) => false,
            }
        } else {
            let dns = mem::replace(dns_buf, mem::take(spare));
            if tick_tx.send(SweepMsg::Tick { now, dns }).is_err() {
                return false;
            }
            match ack_rx.recv() {
                Ok(v) => {
                    *spare = v;
                    true
                }
                Err(_) => false,
            }
        }
    };

    'stream: while let Ok(msg) = input.recv() {
        let mut batch = match msg {
            IngestMsg::Idle(now) => {
                if next_tick.is_some_and(|t| now >= t) {
                    if !tick(now, &mut session, &mut dns_buf, &mut spare) {
                        break;
                    }
                    next_tick = Some(next_boundary(now, pcfg.sweep_interval_secs));
                }
                continue;
            }
            IngestMsg::Frames(batch) => batch,
        };
        let mut events = batch.dns.drain(..);
        for group in batch.frames.chunks(PROBE_GROUP) {
            // The group's lookups are work done for each of its frames: a
            // sampled frame's processing time carries its share of them.
            let probe_start = group
                .iter()
                .any(|f| f.decode_ns.is_some())
                .then(Instant::now);
            let probes = session.probe(group.iter().map(|f| f.meta.as_ref()));
            let probe_share_ns = probe_start.map_or(0, |t| {
                u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX) / group.len() as u64
            });
            for (item, probe) in group.iter().zip(probes) {
                let t0 = item.decode_ns.map(|ns| (ns, Instant::now()));
                if item.ts > last_ts {
                    last_ts = item.ts;
                }
                if let (Some(m), Some(probe)) = (&item.meta, probe) {
                    session.ingest_probed(m, &probe);
                }
                if item.dns {
                    if let Some(event) = events.next() {
                        if dns_buf.len() < pcfg.max_pending_dns {
                            dns_buf.push(event);
                        } else {
                            shared.drops.add(DropReason::DnsBufferFull, 1);
                        }
                    }
                }
                if let Some((decode_ns, t0)) = t0 {
                    let ingest_ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    packet_time.record_ns(
                        u64::from(decode_ns)
                            .saturating_add(probe_share_ns)
                            .saturating_add(ingest_ns),
                    );
                }
                let due = match next_tick {
                    None => {
                        next_tick = Some(next_boundary(last_ts, pcfg.sweep_interval_secs));
                        false
                    }
                    Some(t) => last_ts >= t,
                };
                // Replay must not drop evicted-flow records or DNS events:
                // sweep early when either piles up (live drops them, counted).
                let backlog = table.needs_sweep() || dns_buf.len() >= pcfg.max_pending_dns;
                if due || (!live && backlog) {
                    if !tick(last_ts, &mut session, &mut dns_buf, &mut spare) {
                        break 'stream;
                    }
                    next_tick = Some(next_boundary(last_ts, pcfg.sweep_interval_secs));
                }
            }
        }
        // The sweeper may want the shards while this thread waits for frames.
        session.release();
        drop(events);
        since_publish += batch.frames.len();
        if since_publish >= 4096 {
            since_publish = 0;
            lock(&shared.capture).packet_time.merge(&packet_time);
            packet_time.reset();
        }
        batch.frames.clear();
        let _ = recycle.try_send(batch);
    }
    // The final sweep drains the table.
    drop(session);
    lock(&shared.capture).packet_time.merge(&packet_time);
    let _ = tick_tx.send(SweepMsg::Final {
        now: last_ts,
        dns: dns_buf,
    });
}

/// Prints warnings as they come; keeps file errors for the exit status.
fn take_warnings(source: &mut dyn FrameSource, errors: &mut Vec<String>) {
    for w in source.warnings() {
        match w {
            CaptureWarning::FileError { message } => {
                eprintln!("tapsentry: warning: {message}; continuing with the next file");
                errors.push(message);
            }
            other => eprintln!("tapsentry: warning: {other}"),
        }
    }
}

fn wall_now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::from_secs_nanos(
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    )
}

/// Sleeps so that packet `ts` is handed on `factor` times faster than it
/// was captured, in slices short enough to notice a stop request. Only
/// pacing; no result depends on it.
fn pace_to(
    ts: Timestamp,
    factor: f64,
    origin: &mut Option<(Timestamp, Instant)>,
    stop: &AtomicBool,
) {
    let (t0, w0) = *origin.get_or_insert((ts, Instant::now()));
    let capture_us = ts.micros_since(t0) as f64 / factor;
    let target = w0 + Duration::from_micros(capture_us.min(1e15) as u64);
    loop {
        let now = Instant::now();
        if target <= now || stop.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep((target - now).min(Duration::from_millis(50)));
    }
}

/// Copies the reader thread's counters out (the ingest thread merges the
/// per-packet latency samples itself).
fn publish(st: &mut CaptureStats, shared: &SharedStats) {
    let mut g = lock(&shared.capture);
    g.packets = st.packets;
    g.wire_bytes = st.wire_bytes;
    g.ip_bytes = st.ip_bytes;
    g.decode_errors.copy_from(&st.decode_errors);
    g.dns_messages = st.dns_messages;
    g.dns_errors.copy_from(&st.dns_errors);
    g.fragments_unattributed = st.fragments_unattributed;
    g.fragments_not_remembered = st.fragments_not_remembered;
    g.unsupported_link_frames = st.unsupported_link_frames;
    g.first_ts = st.first_ts;
    g.last_ts = st.last_ts;
    g.kernel = st.kernel;
}

#[allow(clippy::too_many_arguments)]
fn sweep_loop(
    tick_rx: &Receiver<SweepMsg>,
    ack_tx: &Sender<Vec<DnsEvent>>,
    table: &FlowTable,
    home: &HomeNet,
    worker_txs: Vec<Sender<WorkerMsg>>,
    flow_log: Option<Sender<WriterMsg>>,
    shared: &SharedStats,
    live: bool,
    save_every: Option<u64>,
) {
    let mut recs: Vec<FlowRecord> = Vec::new();
    let mut epoch = 0u64;
    let mut capture_start: Option<Timestamp> = None;
    let mut last_now = Timestamp::ZERO;
    let mut next_save: Option<Timestamp> = None;
    let mut save_seq = 0u64;
    loop {
        let (now, mut dns, last) = match tick_rx.recv() {
            Ok(SweepMsg::Tick { now, dns }) => (now, dns, false),
            Ok(SweepMsg::Final { now, dns }) => (now, dns, true),
            // The ingest thread is gone without saying goodbye: flush anyway.
            Err(_) => (Timestamp::ZERO, Vec::new(), true),
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
        };
        // State saves fall on capture-time boundaries, so a replay saves
        // the same states at any speed and worker count; and at the end.
        last_now = last_now.max(now);
        let save = save_every.and_then(|every| {
            let due = last || next_save.is_some_and(|t| last_now >= t);
            if due || next_save.is_none() {
                next_save = Some(next_save_boundary(last_now, every));
            }
            due.then(|| {
                save_seq += 1;
                SaveReq {
                    seq: save_seq,
                    now: last_now,
                    elapsed_secs: last_now.micros_since(step.capture_start) / 1_000_000,
                    last,
                }
            })
        });
        dispatch(
            step,
            &dns,
            &recs,
            home,
            &worker_txs,
            flow_log.as_ref(),
            shared,
            live,
            &mut epoch,
            save,
        );
        if last {
            break;
        }
        dns.clear();
        if !live && ack_tx.send(dns).is_err() {
            break;
        }
    }
}

/// The first multiple of `every` seconds (since the epoch) after `t`.
fn next_save_boundary(t: Timestamp, every: u64) -> Timestamp {
    let step = i64::try_from(every.max(1))
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000);
    Timestamp::from_micros((t.micros().div_euclid(step) + 1).saturating_mul(step))
}

/// The capture times a batch is stamped with.
#[derive(Clone, Copy)]
struct Step {
    now: Timestamp,
    capture_start: Timestamp,
}

/// Flow records per detector batch. A sweep that ends many flows at once
/// (the end of a replay, the expiry after a flood) goes out in epochs of
/// this many, so the first alerts are written while later records are still
/// being judged: one batch of 200,000 records held the flow-end-to-alert
/// p99 at 236 ms. Chunks are cut from the global record order before
/// sharding, so every worker count sees the same epochs.
const RECORDS_PER_EPOCH: usize = 4096;

#[allow(clippy::too_many_arguments)]
fn dispatch(
    step: Step,
    dns: &[DnsEvent],
    recs: &[FlowRecord],
    home: &HomeNet,
    worker_txs: &[Sender<WorkerMsg>],
    flow_log: Option<&Sender<WriterMsg>>,
    shared: &SharedStats,
    live: bool,
    epoch: &mut u64,
    save: Option<SaveReq>,
) {
    if recs.len() <= RECORDS_PER_EPOCH {
        dispatch_epoch(
            step, dns, recs, home, worker_txs, flow_log, shared, live, epoch, save,
        );
        return;
    }
    let chunks = recs.chunks(RECORDS_PER_EPOCH);
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.enumerate() {
        // DNS goes with the first chunk (it was handed out before these
        // records before too); the save waits for the last.
        dispatch_epoch(
            step,
            if i == 0 { dns } else { &[] },
            chunk,
            home,
            worker_txs,
            flow_log,
            shared,
            live,
            epoch,
            if i == last { save } else { None },
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn dispatch_epoch(
    step: Step,
    dns: &[DnsEvent],
    recs: &[FlowRecord],
    home: &HomeNet,
    worker_txs: &[Sender<WorkerMsg>],
    flow_log: Option<&Sender<WriterMsg>>,
    shared: &SharedStats,
    live: bool,
    epoch: &mut u64,
    save: Option<SaveReq>,
) {
    // A save goes out even with nothing to process: every worker must
    // export at the same capture time.
    if dns.is_empty() && recs.is_empty() && save.is_none() {
        return;
    }
    *epoch += 1;
    let emitted = Instant::now();
    let n = worker_txs.len();
    let mut batches: Vec<Batch> = (0..n)
        .map(|_| Batch {
            epoch: *epoch,
            now: step.now,
            capture_start: step.capture_start,
            ..Batch::default()
        })
        .collect();
    for ev in dns {
        if let Some(b) = batches.get_mut(shard_for(ev.client, n)) {
            b.dns.push(*ev);
        }
    }
    for rec in recs {
        for host in route_flow(rec, home).into_iter().flatten() {
            if let Some(b) = batches.get_mut(shard_for(host, n)) {
                b.flows.push((host, *rec));
            }
        }
    }
    // The exit batch (and its save) is never dropped: capture has stopped.
    let wait = !live || save.is_some_and(|s| s.last);
    for (tx, batch) in worker_txs.iter().zip(batches) {
        let msg = WorkerMsg {
            batch,
            emitted,
            save,
        };
        if wait {
            let _ = tx.send(msg);
        } else {
            let items = (msg.batch.dns.len() + msg.batch.flows.len()) as u64;
            if let Err(TrySendError::Full(_)) = tx.try_send(msg) {
                shared.drops.add(DropReason::DetectorQueueFull, items);
            }
        }
    }
    if let Some(tx) = flow_log {
        let ended: Vec<FlowRecord> = recs
            .iter()
            .filter(|r| matches!(r.kind, RecordKind::End(_)))
            .copied()
            .collect();
        if !ended.is_empty() {
            let count = ended.len() as u64;
            if live {
                if let Err(TrySendError::Full(_)) = tx.try_send(WriterMsg::Flows(ended)) {
                    shared.drops.add(DropReason::FlowLogQueueFull, count);
                }
            } else {
                let _ = tx.send(WriterMsg::Flows(ended));
            }
        }
    }
}

fn detector_loop(
    worker: &mut Worker,
    rx: &Receiver<WorkerMsg>,
    out: &Sender<WriterMsg>,
    intel: &IntelHandle,
    shared: &SharedStats,
    live: bool,
    state_tx: Option<&Sender<StatePart>>,
) {
    let mut seen_generation = intel.generation();
    for msg in rx {
        let g = intel.generation();
        if g != seen_generation {
            worker.set_intel(intel.current());
            seen_generation = g;
        }
        let mut alerts = Vec::new();
        worker.process(&msg.batch, &mut alerts);
        if let (Some(req), Some(tx)) = (msg.save, state_tx) {
            let part = state::export(worker, req);
            // Live, a periodic save is skipped rather than stall detection
            // (the next one comes); the exit save always waits.
            if live && !req.last {
                let _ = tx.try_send(part);
            } else {
                let _ = tx.send(part);
            }
        }
        let m = WriterMsg::Alerts {
            epoch: msg.batch.epoch,
            alerts,
            emitted: msg.emitted,
        };
        if live {
            if let Err(TrySendError::Full(WriterMsg::Alerts { alerts, .. })) = out.try_send(m) {
                shared
                    .drops
                    .add(DropReason::AlertQueueFull, alerts.len() as u64);
            }
        } else if out.send(m).is_err() {
            break;
        }
    }
}

/// A total order on alerts, so an epoch's alerts are written the same way
/// whichever worker raised them first.
fn alert_order(a: &Alert, b: &Alert) -> std::cmp::Ordering {
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

struct Writer {
    alerts: JsonlSink,
    flows: Option<JsonlSink>,
    suppressor: Suppressor,
}

impl Writer {
    fn write_alerts(&mut self, mut alerts: Vec<Alert>, emitted: Instant, stats: &mut WriterStats) {
        alerts.sort_by(alert_order);
        for a in alerts {
            if !self.suppressor.admit(&a) {
                stats.suppressed += 1;
                continue;
            }
            match self.alerts.write_record(&a) {
                Ok(()) => {
                    stats.written += 1;
                    *stats
                        .by_category
                        .entry(a.alert.category.as_str())
                        .or_default() += 1;
                    stats
                        .alert_latency
                        .record_ns(u64::try_from(emitted.elapsed().as_nanos()).unwrap_or(u64::MAX));
                }
                Err(e) => {
                    if stats.write_error.is_none() {
                        eprintln!("tapsentry: error: {e}");
                        stats.write_error = Some(e.to_string());
                    }
                }
            }
        }
    }

    fn write_flows(&mut self, recs: &[FlowRecord], stats: &mut WriterStats) {
        let Some(sink) = self.flows.as_mut() else {
            return;
        };
        for r in recs {
            match sink.write_record(&FlowLogRecord::from(r)) {
                Ok(()) => stats.flow_records_logged += 1,
                Err(e) => {
                    if stats.write_error.is_none() {
                        eprintln!("tapsentry: error: {e}");
                        stats.write_error = Some(e.to_string());
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn writer_loop(
    rx: Receiver<WriterMsg>,
    alerts: JsonlSink,
    flows: Option<JsonlSink>,
    suppressor: Suppressor,
    workers: usize,
    ordered: bool,
    reopen: &AtomicU64,
    shared: &SharedStats,
) -> JsonlSink {
    let mut w = Writer {
        alerts,
        flows,
        suppressor,
    };
    let mut st = WriterStats::default();
    let mut seen_reopen = reopen.load(Ordering::Acquire);
    // epoch -> (workers reported, alerts, earliest emit time)
    let mut pending: BTreeMap<u64, (usize, Vec<Alert>, Instant)> = BTreeMap::new();
    let mut next_epoch = 1u64;
    loop {
        let msg = rx.recv_timeout(Duration::from_millis(200));
        let r = reopen.load(Ordering::Acquire);
        if r != seen_reopen {
            seen_reopen = r;
            for sink in std::iter::once(&mut w.alerts).chain(w.flows.as_mut()) {
                if let Err(e) = sink.reopen() {
                    eprintln!("tapsentry: error: {e}");
                    st.write_error.get_or_insert(e.to_string());
                }
            }
        }
        match msg {
            Ok(WriterMsg::Alerts {
                epoch,
                alerts,
                emitted,
            }) => {
                if ordered {
                    let e = pending.entry(epoch).or_insert((0, Vec::new(), emitted));
                    e.0 += 1;
                    e.1.extend(alerts);
                    while pending.get(&next_epoch).is_some_and(|e| e.0 >= workers) {
                        if let Some((_, a, t)) = pending.remove(&next_epoch) {
                            w.write_alerts(a, t, &mut st);
                        }
                        next_epoch += 1;
                    }
                } else {
                    w.write_alerts(alerts, emitted, &mut st);
                }
            }
            Ok(WriterMsg::Flows(recs)) => w.write_flows(&recs, &mut st),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        publish_writer(&mut st, shared);
    }
    // Epochs a worker never completed (it died): write what arrived, in order.
    for (_, (_, a, t)) in mem::take(&mut pending) {
        w.write_alerts(a, t, &mut st);
    }
    publish_writer(&mut st, shared);
    w.alerts
}

fn publish_writer(st: &mut WriterStats, shared: &SharedStats) {
    let mut g = lock(&shared.writer);
    g.written = st.written;
    g.suppressed = st.suppressed;
    g.by_category.clone_from(&st.by_category);
    g.flow_records_logged = st.flow_records_logged;
    g.alert_latency.merge(&st.alert_latency);
    st.alert_latency.reset();
    if g.write_error.is_none() {
        g.write_error.clone_from(&st.write_error);
    }
}

fn stats_loop(
    mut sink: JsonlSink,
    stop: &Receiver<()>,
    every: Duration,
    shared: &SharedStats,
    table: &FlowTable,
    reopen: &AtomicU64,
) -> JsonlSink {
    let mut seen_reopen = reopen.load(Ordering::Acquire);
    loop {
        match stop.recv_timeout(every) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return sink,
        }
        let r = reopen.load(Ordering::Acquire);
        if r != seen_reopen {
            seen_reopen = r;
            if let Err(e) = sink.reopen() {
                eprintln!("tapsentry: error: {e}");
            }
        }
        if let Err(e) = sink.write_record(&stats_record(shared, &table.counters())) {
            eprintln!("tapsentry: error: {e}");
        }
    }
}

#[derive(Serialize)]
struct StatsLatency {
    packet_processing: LatencySummary,
    flow_end_to_alert: LatencySummary,
}

/// The stats record: counters, drops by reason and latency percentiles.
fn stats_record(shared: &SharedStats, flows: &FlowCounters) -> serde_json::Value {
    let cap = lock(&shared.capture).clone();
    let w = lock(&shared.writer).clone();
    let mut by_category = serde_json::Map::new();
    for c in tapsentry_detect::categories() {
        by_category.insert(
            c.as_str().into(),
            json!(w.by_category.get(c.as_str()).copied().unwrap_or(0)),
        );
    }
    let kernel_dropped = cap.kernel.map_or(0, |k| k.dropped + k.if_dropped);
    json!({
        "timestamp": wall_now(),
        "event_type": "stats",
        "uptime_secs": shared.started.elapsed().as_secs_f64(),
        "capture_time": {
            "first": cap.first_ts,
            "last": cap.last_ts,
        },
        "capture": {
            "packets": cap.packets,
            "wire_bytes": cap.wire_bytes,
            "ip_bytes": cap.ip_bytes,
            "decode_errors": cap.decode_errors,
            "decode_errors_total": cap.decode_errors.total(),
            "dns_messages": cap.dns_messages,
            "dns_errors": cap.dns_errors,
            "fragments_unattributed": cap.fragments_unattributed,
            "fragments_not_remembered": cap.fragments_not_remembered,
            "unsupported_link_frames": cap.unsupported_link_frames,
            "kernel": cap.kernel.map(|k| json!({"received": k.received, "dropped": k.dropped, "if_dropped": k.if_dropped})),
        },
        "flows": flows,
        "drops": {
            "kernel": kernel_dropped,
            "queues": &shared.drops,
            "flow_records": flows.records_dropped,
        },
        "alerts": {
            "written": w.written,
            "suppressed": w.suppressed,
            "by_category": by_category,
        },
        "flow_log_records": w.flow_records_logged,
        "latency": StatsLatency {
            packet_processing: cap.packet_time.summary(),
            flow_end_to_alert: w.alert_latency.summary(),
        },
    })
}

/// One ended flow in the flow log (field names follow Suricata's EVE flow
/// records where they overlap).
#[derive(Serialize)]
struct FlowLogRecord {
    timestamp: Timestamp,
    event_type: &'static str,
    src_ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    src_port: Option<u16>,
    dest_ip: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    dest_port: Option<u16>,
    proto: String,
    #[serde(skip_serializing_if = "is_zero")]
    vlan: u16,
    community_id: String,
    flow: FlowLogBody,
}

#[derive(Serialize)]
struct FlowLogBody {
    start: Timestamp,
    end: Timestamp,
    pkts_toserver: u64,
    pkts_toclient: u64,
    bytes_toserver: u64,
    bytes_toclient: u64,
    state: tapsentry_types::FlowState,
    reason: tapsentry_types::EndReason,
    answered: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    tcp_flags_ts: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    tcp_flags_tc: String,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

impl From<&FlowRecord> for FlowLogRecord {
    fn from(r: &FlowRecord) -> Self {
        let ports = matches!(r.proto, 6 | 17 | 132);
        FlowLogRecord {
            timestamp: r.last_seen,
            event_type: "flow",
            src_ip: r.client,
            src_port: ports.then_some(r.client_port),
            dest_ip: r.server,
            dest_port: ports.then_some(r.server_port),
            proto: proto_name(r.proto).into_owned(),
            vlan: r.vlan,
            community_id: community_id_v1(
                r.client,
                r.client_port,
                r.server,
                r.server_port,
                r.proto,
                0,
            ),
            flow: FlowLogBody {
                start: r.first_seen,
                end: r.last_seen,
                pkts_toserver: r.to_server.packets,
                pkts_toclient: r.to_client.packets,
                bytes_toserver: r.to_server.bytes,
                bytes_toclient: r.to_client.bytes,
                state: r.state,
                reason: match r.kind {
                    RecordKind::End(reason) => reason,
                    RecordKind::Interim => tapsentry_types::EndReason::Shutdown,
                },
                answered: r.responder_answered,
                tcp_flags_ts: r.client_flags.letters(),
                tcp_flags_tc: r.server_flags.letters(),
            },
        }
    }
}
