//! The counters every stage publishes into, the stats record built from
//! them, and the stats stage (thread `stats`) that writes one every
//! `output.stats_interval_secs`.
//!
//! Stages count in plain locals on their hot paths and copy them into
//! `SharedStats` a batch (or a few thousand packets) at a time; the stats
//! thread and the end of the run read the shared copy into a
//! [`StatsRecord`], whose field names are the stats log's keys.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::Serialize;
use tapsentry_capture::{InterfaceOutages, KernelStats};
use tapsentry_decode::{dns, DecodeError};
use tapsentry_flow::{FlowCounters, FlowTable};
use tapsentry_incidents::IncidentStats;
use tapsentry_inventory::InventoryCounters;
use tapsentry_output::{JsonlSink, OutageStats};

use crate::control::{FileFaults, FileFaultsRecord};
use tapsentry_telemetry::{wall, Drops, LatencyHist, LatencySummary, ReasonCounts};
use tapsentry_types::Timestamp;

/// Counters of the reader thread (`cap-rx`), published a batch at a time;
/// `packet_time` is filled by the ingest thread.
#[derive(Debug, Clone)]
pub(crate) struct CaptureStats {
    pub packets: u64,
    pub wire_bytes: u64,
    pub ip_bytes: u64,
    pub decode_errors: ReasonCounts,
    pub dns_messages: u64,
    /// Filled by the ingest thread, like `packet_time`.
    pub dns_messages_other_ports: u64,
    /// Filled by the ingest thread, like `packet_time`.
    pub macs_not_tracked: u64,
    pub dns_errors: ReasonCounts,
    pub fragments_unattributed: u64,
    pub fragments_not_remembered: u64,
    pub unsupported_link_frames: u64,
    pub first_ts: Option<Timestamp>,
    pub last_ts: Timestamp,
    pub kernel: Option<KernelStats>,
    /// Losses of the live interface and reopen attempts (live only).
    pub interface: Option<InterfaceOutages>,
    pub packet_time: LatencyHist,
}

impl CaptureStats {
    pub fn new() -> Self {
        CaptureStats {
            packets: 0,
            wire_bytes: 0,
            ip_bytes: 0,
            decode_errors: ReasonCounts::new(&DecodeError::ALL_REASONS),
            dns_messages: 0,
            dns_messages_other_ports: 0,
            macs_not_tracked: 0,
            dns_errors: ReasonCounts::new(&dns::DnsError::ALL_REASONS),
            fragments_unattributed: 0,
            fragments_not_remembered: 0,
            unsupported_link_frames: 0,
            first_ts: None,
            last_ts: Timestamp::ZERO,
            kernel: None,
            interface: None,
            packet_time: LatencyHist::new(),
        }
    }

    /// Copies the reader's counters into `to` (the ingest thread merges the
    /// per-packet latency samples itself).
    pub fn publish_to(&self, to: &mut CaptureStats) {
        to.packets = self.packets;
        to.wire_bytes = self.wire_bytes;
        to.ip_bytes = self.ip_bytes;
        to.decode_errors.copy_from(&self.decode_errors);
        to.dns_messages = self.dns_messages;
        to.dns_errors.copy_from(&self.dns_errors);
        to.fragments_unattributed = self.fragments_unattributed;
        to.fragments_not_remembered = self.fragments_not_remembered;
        to.unsupported_link_frames = self.unsupported_link_frames;
        to.first_ts = self.first_ts;
        to.last_ts = self.last_ts;
        to.kernel = self.kernel;
        to.interface = self.interface;
    }
}

/// Counters of the alert writer.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriterStats {
    pub written: u64,
    pub suppressed: u64,
    pub by_category: BTreeMap<&'static str, u64>,
    pub flow_records_logged: u64,
    pub inventory_written: u64,
    /// The incidents stage's counters (it lives in the writer).
    pub incidents: IncidentStats,
    pub alert_latency: LatencyHist,
    pub write_error: Option<String>,
    /// Alerts neither written nor kept: the log failed and its backlog was full.
    pub lost: u64,
    pub alert_log: OutageStats,
    pub flow_log: OutageStats,
    /// Alerts written per `src_ip`, for the replay summary's top hosts: at
    /// most [`MAX_TALLIED_HOSTS`] hosts (later new hosts are not tallied).
    pub by_src: BTreeMap<std::net::IpAddr, u64>,
}

/// Hosts the writer tallies alerts for (see `WriterStats::by_src`).
pub(crate) const MAX_TALLIED_HOSTS: usize = 4096;

impl WriterStats {
    /// Copies the writer's counters into `to` and hands its latency
    /// samples over.
    pub fn publish_to(&mut self, to: &mut WriterStats) {
        // The tally changes only with a written alert.
        if to.written != self.written {
            to.by_src.clone_from(&self.by_src);
        }
        to.written = self.written;
        to.suppressed = self.suppressed;
        to.by_category.clone_from(&self.by_category);
        to.flow_records_logged = self.flow_records_logged;
        to.inventory_written = self.inventory_written;
        to.lost = self.lost;
        to.alert_log = self.alert_log;
        to.flow_log = self.flow_log;
        to.incidents = self.incidents;
        to.alert_latency.merge(&self.alert_latency);
        self.alert_latency.reset();
        if to.write_error.is_none() {
            to.write_error.clone_from(&self.write_error);
        }
    }
}

/// Counters every thread publishes into, read by the stats thread.
pub(crate) struct SharedStats {
    pub capture: Mutex<CaptureStats>,
    pub writer: Mutex<WriterStats>,
    /// The asset inventory's counters, published by the sweeper.
    pub inventory: Mutex<InventoryCounters>,
    pub drops: Drops,
    pub started: Instant,
    /// The sensor's name (`output.host`), on every stats record.
    pub host: String,
    /// The intel snapshot in use, set once at start: the record reports
    /// how many Tor exits it holds (0 is Tor detection matching nothing).
    pub intel: OnceLock<Arc<crate::control::IntelHandle>>,
    /// Files that failed to load or save (shared with the signal thread).
    pub files: Arc<FileFaults>,
}

impl SharedStats {
    pub fn new() -> SharedStats {
        SharedStats {
            capture: Mutex::new(CaptureStats::new()),
            writer: Mutex::new(WriterStats::default()),
            inventory: Mutex::new(InventoryCounters::default()),
            drops: Drops::default(),
            started: wall::instant(),
            host: String::new(),
            intel: OnceLock::new(),
            files: Arc::default(),
        }
    }

    /// Counters for the sensor named `host` (the stats records' `host`).
    pub fn with_host(host: &str) -> SharedStats {
        SharedStats {
            host: host.to_string(),
            ..SharedStats::new()
        }
    }

    /// The stats record as of now.
    pub fn record(&self, flows: &FlowCounters) -> StatsRecord {
        let cap = lock(&self.capture).clone();
        let w = lock(&self.writer).clone();
        let kernel_dropped = cap.kernel.map_or(0, |k| k.dropped + k.if_dropped);
        StatsRecord {
            timestamp: wall::timestamp(),
            event_type: "stats",
            host: self.host.clone(),
            uptime_secs: self.started.elapsed().as_secs_f64(),
            capture_time: CaptureTime {
                first: cap.first_ts,
                last: cap.last_ts,
            },
            capture: CaptureRecord {
                packets: cap.packets,
                wire_bytes: cap.wire_bytes,
                ip_bytes: cap.ip_bytes,
                decode_errors_total: cap.decode_errors.total(),
                decode_errors: cap.decode_errors,
                dns_messages: cap.dns_messages,
                dns_messages_other_ports: cap.dns_messages_other_ports,
                macs_not_tracked: cap.macs_not_tracked,
                dns_errors: cap.dns_errors,
                fragments_unattributed: cap.fragments_unattributed,
                fragments_not_remembered: cap.fragments_not_remembered,
                unsupported_link_frames: cap.unsupported_link_frames,
                interface: cap.interface.map(|i| InterfaceRecord {
                    outages: i.outages,
                    reopen_attempts: i.reopen_attempts,
                    reopened: i.reopened,
                    down: i.down,
                }),
                kernel: cap.kernel.map(|k| KernelRecord {
                    received: k.received,
                    dropped: k.dropped,
                    if_dropped: k.if_dropped,
                }),
            },
            flows: *flows,
            drops: DropsRecord {
                kernel: kernel_dropped,
                queues: QueueDrops::from(&self.drops),
                flow_records: flows.records_dropped,
            },
            alerts: AlertsRecord {
                written: w.written,
                suppressed: w.suppressed,
                lost: w.lost,
                by_category: by_category(&w.by_category),
            },
            flow_log_records: w.flow_records_logged,
            alert_log: w.alert_log,
            flow_log: w.flow_log,
            files: self.files.record(),
            inventory: InventoryStats {
                counters: *lock(&self.inventory),
                written: w.inventory_written,
            },
            incidents: w.incidents,
            latency: LatencyRecord {
                packet_processing: cap.packet_time.summary(),
                flow_end_to_alert: w.alert_latency.summary(),
            },
            intel: IntelStats {
                tor_exit_addresses: self.intel.get().map_or(0, |h| h.current().tor.len() as u64),
            },
        }
    }
}

/// Alerts written by category, every category present (zero included) so
/// a dashboard sees each key from the first record.
fn by_category(written: &BTreeMap<&'static str, u64>) -> BTreeMap<&'static str, u64> {
    tapsentry_detect::categories()
        .map(|c| (c.as_str(), written.get(c.as_str()).copied().unwrap_or(0)))
        .collect()
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One line of the stats log (`event_type: "stats"`): counters, drops by
/// reason and latency percentiles, written every interval and at exit.
#[derive(Debug, Clone, Serialize)]
pub struct StatsRecord {
    /// Wall-clock time of the record.
    pub timestamp: Timestamp,
    /// Always `"stats"`.
    pub event_type: &'static str,
    /// The sensor's name (`output.host`).
    pub host: String,
    /// Seconds since the pipeline started.
    pub uptime_secs: f64,
    /// Capture time of the first and latest packets.
    pub capture_time: CaptureTime,
    /// What was read and decoded.
    pub capture: CaptureRecord,
    /// The flow table's counters.
    pub flows: FlowCounters,
    /// Everything dropped, by where.
    pub drops: DropsRecord,
    /// Alerts written and suppressed.
    pub alerts: AlertsRecord,
    /// Ended flows written to the flow log.
    pub flow_log_records: u64,
    /// Outages of the alert log: outages begun, failed writes, lines
    /// waiting in memory (and their bytes), lines lost (all record types).
    pub alert_log: OutageStats,
    /// The same for the flow log (no backlog: a line it refuses is lost).
    pub flow_log: OutageStats,
    /// Intel, state and inventory files that failed to load or save.
    pub files: FileFaultsRecord,
    /// The asset inventory: its size, what its bounds refused, its records.
    pub inventory: InventoryStats,
    /// The incidents stage: open, opened, reported, records, merged, and
    /// what its bounds refused (`evicted` at `incidents.max_open`,
    /// `alerts_not_listed` and `hosts_not_linked` at
    /// `incidents.max_alerts`).
    pub incidents: IncidentStats,
    /// Latency percentiles.
    pub latency: LatencyRecord,
    /// The intel in use.
    pub intel: IntelStats,
}

/// The stats log's `intel` object.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct IntelStats {
    /// Addresses in the Tor exit list in use (after the latest SIGHUP);
    /// 0 when no usable list is loaded, so Tor detection matches nothing.
    pub tor_exit_addresses: u64,
}

/// The stats log's `inventory` object (all zero when `output.inventory`
/// is off).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct InventoryStats {
    /// The inventory's own counters (hosts, refusals at each bound,
    /// records raised and rate-limited).
    #[serde(flatten)]
    pub counters: InventoryCounters,
    /// Inventory records written to the alert log.
    pub written: u64,
}

/// Capture time covered so far.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CaptureTime {
    /// The first packet's capture time (`null` before any packet).
    pub first: Option<Timestamp>,
    /// The latest capture time seen.
    pub last: Timestamp,
}

/// What the reader read and decoded.
#[derive(Debug, Clone, Serialize)]
pub struct CaptureRecord {
    /// Frames read.
    pub packets: u64,
    /// Bytes on the wire of the frames read.
    pub wire_bytes: u64,
    /// Bytes of the IP packets, from their headers.
    pub ip_bytes: u64,
    /// Frames not decoded, by reason (non-zero reasons only).
    pub decode_errors: ReasonCounts,
    /// Frames not decoded, in total.
    pub decode_errors_total: u64,
    /// DNS messages summarised (on port 53, by the reader).
    pub dns_messages: u64,
    /// DNS messages summarised on other ports, in flows the classifier
    /// named `dns` (by the ingest thread).
    pub dns_messages_other_ports: u64,
    /// Inside addresses whose MAC the inventory was not told because the
    /// ingest thread's memory of them (`inventory.max_hosts`) was full.
    pub macs_not_tracked: u64,
    /// DNS messages not parsed, by reason (non-zero reasons only).
    pub dns_errors: ReasonCounts,
    /// Later IP fragments whose first fragment was never seen.
    pub fragments_unattributed: u64,
    /// First fragments not remembered (the fragment table was full).
    pub fragments_not_remembered: u64,
    /// Frames of a link type the reader skips.
    pub unsupported_link_frames: u64,
    /// libpcap's counters, live only (`null` in replay).
    pub kernel: Option<KernelRecord>,
    /// The live interface's losses (went down, disappeared) and reopen
    /// attempts; `null` in replay.
    pub interface: Option<InterfaceRecord>,
}

/// The stats record's `capture.interface` object.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct InterfaceRecord {
    /// Times the capture was lost.
    pub outages: u64,
    /// Attempts to open the interface again (backoff 0.5 s doubling to 30 s).
    pub reopen_attempts: u64,
    /// Attempts that worked.
    pub reopened: u64,
    /// True while the capture is lost.
    pub down: bool,
}

/// libpcap's counters of a live capture.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct KernelRecord {
    /// Packets the kernel handed to the capture.
    pub received: u64,
    /// Packets dropped because the capture buffer was full.
    pub dropped: u64,
    /// Packets dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// Drops by where they happened.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct DropsRecord {
    /// Dropped by the kernel or the interface (live).
    pub kernel: u64,
    /// Dropped between stages, by reason.
    pub queues: QueueDrops,
    /// Records of evicted flows dropped because the sweeper fell behind.
    pub flow_records: u64,
}

/// Items dropped between stages (live only), by
/// [`DropReason`](tapsentry_telemetry::DropReason).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct QueueDrops {
    /// Flow records and DNS events of batches a full worker queue refused.
    pub detector_queue_full: u64,
    /// DNS events beyond `pipeline.max_pending_dns`.
    pub dns_buffer_full: u64,
    /// Alerts a full writer queue refused.
    pub alert_queue_full: u64,
    /// Ended flows a full writer queue refused for the flow log.
    pub flow_log_queue_full: u64,
    /// First-message metadata beyond `pipeline.max_pending_dns` waiting
    /// for a sweep (live only).
    pub flow_meta_buffer_full: u64,
    /// First-message metadata the sweeper's table of live flows had no
    /// room for (`FLOW_META_MAX` flows).
    pub flow_meta_table_full: u64,
    /// Administration events (SMB2/DCE-RPC operations) beyond
    /// `pipeline.max_pending_dns` waiting for a sweep (live only).
    pub admin_event_buffer_full: u64,
    /// SMB and DCE-RPC flows not followed: the inspector's table
    /// (`pipeline.max_admin_flows`) was full.
    pub admin_table_full: u64,
}

impl From<&Drops> for QueueDrops {
    fn from(d: &Drops) -> Self {
        use tapsentry_telemetry::DropReason as R;
        QueueDrops {
            detector_queue_full: d.get(R::DetectorQueueFull),
            dns_buffer_full: d.get(R::DnsBufferFull),
            alert_queue_full: d.get(R::AlertQueueFull),
            flow_log_queue_full: d.get(R::FlowLogQueueFull),
            flow_meta_buffer_full: d.get(R::FlowMetaBufferFull),
            flow_meta_table_full: d.get(R::FlowMetaTableFull),
            admin_event_buffer_full: d.get(R::AdminBufferFull),
            admin_table_full: d.get(R::AdminTableFull),
        }
    }
}

/// Alerts written and suppressed.
#[derive(Debug, Clone, Serialize)]
pub struct AlertsRecord {
    /// Alerts written to the alert log, or waiting in memory while it
    /// cannot be written (`alert_log.backlog`).
    pub written: u64,
    /// Repeats within the suppression window, not written.
    pub suppressed: u64,
    /// Alerts lost: the log could not be written and its backlog was full.
    pub lost: u64,
    /// Alerts written, by category (every category, zero included).
    pub by_category: BTreeMap<&'static str, u64>,
}

/// Latency percentiles.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencyRecord {
    /// Decode plus flow-table ingest of one packet in 64.
    pub packet_processing: LatencySummary,
    /// From the sweep handing a record out to its alert being written.
    pub flow_end_to_alert: LatencySummary,
}

/// The stats stage (thread `stats`): a record every `every` until told to
/// stop; the final record is written by the pipeline after the writer ends.
pub(crate) struct StatsStage {
    pub sink: JsonlSink,
    pub every: Duration,
    pub shared: Arc<SharedStats>,
    pub table: Arc<FlowTable>,
    pub reopen: Arc<AtomicU64>,
}

impl StatsStage {
    /// Runs until `stop` disconnects (or sends); returns the sink for the
    /// final record.
    pub fn run(mut self, stop: &Receiver<()>) -> JsonlSink {
        let mut seen_reopen = self.reopen.load(Ordering::Acquire);
        loop {
            match stop.recv_timeout(self.every) {
                Err(RecvTimeoutError::Timeout) => {}
                _ => return self.sink,
            }
            let r = self.reopen.load(Ordering::Acquire);
            if r != seen_reopen {
                seen_reopen = r;
                if let Err(e) = self.sink.reopen() {
                    eprintln!("tapsentry: error: {e}");
                }
            }
            let record = self.shared.record(&self.table.counters());
            if let Err(e) = self.sink.write_record(&record) {
                eprintln!("tapsentry: error: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::bounded;
    use serde_json::Value;
    use tapsentry_flow::FlowConfig;
    use tapsentry_telemetry::DropReason;

    /// Every key path of a JSON value, `a.b.c`, sorted.
    fn paths(v: &Value, prefix: &str, out: &mut Vec<String>) {
        if let Value::Object(m) = v {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                paths(v, &p, out);
                out.push(p);
            }
        }
    }

    #[test]
    fn stats_record_keeps_the_stats_log_layout() {
        let shared = SharedStats::new();
        {
            let mut c = lock(&shared.capture);
            c.packets = 7;
            c.wire_bytes = 900;
            c.decode_errors.bump(DecodeError::NotIp.index());
            c.decode_errors.bump(DecodeError::NotIp.index());
            c.kernel = Some(KernelStats {
                received: 10,
                dropped: 2,
                if_dropped: 1,
            });
        }
        {
            let mut w = lock(&shared.writer);
            w.written = 3;
            w.by_category.insert("tor", 3);
        }
        shared.drops.add(DropReason::AlertQueueFull, 4);
        let flows = FlowCounters {
            created: 5,
            records_dropped: 6,
            ..FlowCounters::default()
        };
        let v = serde_json::to_value(shared.record(&flows)).unwrap();
        let mut got = Vec::new();
        paths(&v, "", &mut got);
        got.sort();
        // The layout of the stats log before it was a struct (the json!
        // literal), key for key, with the keys added since (compatible
        // additions): `alerts.lost`, `alert_log`, `flow_log`, `files`,
        // `capture.interface` (issue 16's faults) and the `flood` category.
        let want = [
            "alert_log",
            "alert_log.backlog",
            "alert_log.backlog_bytes",
            "alert_log.failed_writes",
            "alert_log.lost",
            "alert_log.outages",
            "alerts",
            "alerts.by_category",
            "alerts.by_category.data_collection",
            "alerts.by_category.exfiltration",
            "alerts.by_category.external_login",
            "alerts.by_category.flood",
            "alerts.by_category.lateral_movement",
            "alerts.by_category.port_scan",
            "alerts.by_category.spambot",
            "alerts.by_category.tor",
            "alerts.by_category.unusual_protocol",
            "alerts.lost",
            "alerts.suppressed",
            "alerts.written",
            "capture",
            "capture.decode_errors",
            "capture.decode_errors.not_ip",
            "capture.decode_errors_total",
            "capture.dns_errors",
            "capture.dns_messages",
            "capture.dns_messages_other_ports",
            "capture.fragments_not_remembered",
            "capture.fragments_unattributed",
            "capture.interface",
            "capture.ip_bytes",
            "capture.kernel",
            "capture.kernel.dropped",
            "capture.kernel.if_dropped",
            "capture.kernel.received",
            "capture.macs_not_tracked",
            "capture.packets",
            "capture.unsupported_link_frames",
            "capture.wire_bytes",
            "capture_time",
            "capture_time.first",
            "capture_time.last",
            "drops",
            "drops.flow_records",
            "drops.kernel",
            "drops.queues",
            "drops.queues.admin_event_buffer_full",
            "drops.queues.admin_table_full",
            "drops.queues.alert_queue_full",
            "drops.queues.detector_queue_full",
            "drops.queues.dns_buffer_full",
            "drops.queues.flow_log_queue_full",
            "drops.queues.flow_meta_buffer_full",
            "drops.queues.flow_meta_table_full",
            "event_type",
            "files",
            "files.intel_load_failures",
            "files.intel_reloads",
            "files.inventory_load_failures",
            "files.inventory_save_failures",
            "files.state_load_failures",
            "files.state_save_failures",
            "flow_log",
            "flow_log.backlog",
            "flow_log.backlog_bytes",
            "flow_log.failed_writes",
            "flow_log.lost",
            "flow_log.outages",
            "flow_log_records",
            "flows",
            "flows.active",
            "flows.created",
            "flows.evicted",
            "flows.eviction_scans",
            "flows.expired",
            "flows.flushed",
            "flows.ftp_announcements_refused",
            "flows.ftp_data_named",
            "flows.icmp_rejections",
            "flows.interim_records",
            "flows.records_dropped",
            "flows.refused",
            "host",
            "incidents",
            "incidents.alerts_not_listed",
            "incidents.evicted",
            "incidents.hosts_not_linked",
            "incidents.merged",
            "incidents.open",
            "incidents.opened",
            "incidents.records",
            "incidents.reported",
            "intel",
            "intel.tor_exit_addresses",
            "inventory",
            "inventory.asns_refused",
            "inventory.clients_not_counted",
            "inventory.countries_refused",
            "inventory.hosts",
            "inventory.hosts_expired",
            "inventory.hosts_refused",
            "inventory.macs_refused",
            "inventory.macs_unattached_dropped",
            "inventory.names_refused",
            "inventory.names_unattached_dropped",
            "inventory.records",
            "inventory.records_suppressed",
            "inventory.services_refused",
            "inventory.written",
            "latency",
            "latency.flow_end_to_alert",
            "latency.flow_end_to_alert.count",
            "latency.flow_end_to_alert.max_ns",
            "latency.flow_end_to_alert.p50_ns",
            "latency.flow_end_to_alert.p999_ns",
            "latency.flow_end_to_alert.p99_ns",
            "latency.packet_processing",
            "latency.packet_processing.count",
            "latency.packet_processing.max_ns",
            "latency.packet_processing.p50_ns",
            "latency.packet_processing.p999_ns",
            "latency.packet_processing.p99_ns",
            "timestamp",
            "uptime_secs",
        ];
        assert_eq!(got, want);
        assert_eq!(v["event_type"], "stats");
        assert_eq!(v["capture"]["packets"], 7);
        assert_eq!(v["capture"]["decode_errors"]["not_ip"], 2);
        assert_eq!(v["capture"]["decode_errors_total"], 2);
        assert_eq!(v["capture_time"]["first"], Value::Null);
        assert_eq!(v["drops"]["kernel"], 3);
        assert_eq!(v["drops"]["queues"]["alert_queue_full"], 4);
        assert_eq!(v["drops"]["flow_records"], 6);
        assert_eq!(v["flows"]["created"], 5);
        assert_eq!(v["alerts"]["by_category"]["tor"], 3);
        assert_eq!(v["alerts"]["by_category"]["spambot"], 0);
        // The queue drops are the telemetry crate's reasons, one for one.
        assert_eq!(
            serde_json::to_value(QueueDrops::from(&shared.drops)).unwrap(),
            serde_json::to_value(&shared.drops).unwrap()
        );
    }

    #[test]
    fn stats_stage_writes_a_record_per_interval_until_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.jsonl");
        let shared = Arc::new(SharedStats::new());
        lock(&shared.capture).packets = 42;
        let stage = StatsStage {
            sink: JsonlSink::open_as(path.to_str().unwrap(), "stats log").unwrap(),
            every: Duration::from_millis(20),
            shared,
            table: Arc::new(FlowTable::new(FlowConfig::default())),
            reopen: Arc::new(AtomicU64::new(0)),
        };
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let h = std::thread::spawn(move || stage.run(&stop_rx));
        std::thread::sleep(Duration::from_millis(150));
        drop(stop_tx);
        let sink = h.join().unwrap();
        drop(sink);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(
            lines.len() >= 2,
            "{} records in 150 ms at 20 ms",
            lines.len()
        );
        for v in &lines {
            assert_eq!(v["event_type"], "stats");
            assert_eq!(v["capture"]["packets"], 42);
        }
    }
}
