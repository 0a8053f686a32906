//! The writer stage (thread `alert-out`): writes alerts to the alert log
//! (suppressing repeats), feeds each written alert to the incidents stage
//! and writes the incident records it returns right after the alert, and
//! writes ended flows to the flow log. Every record carries the sensor's
//! name (`host`).
//!
//! In replay it releases alerts through an [`EpochCollector`]: an epoch is
//! written only when every worker replied, epochs in order, each sorted, so
//! the log does not depend on the worker count or on which worker finished
//! first. Live, each reply is written as it arrives (sorted within itself).
//! The incidents stage sees the alerts in exactly the order they are
//! written, so in replay its records are as reproducible as the alerts.
//! The flow-log layout is [`FlowLogRecord`].
//!
//! A log that stops taking lines (disk full, permissions) does not stop
//! the sensor: lines wait in the sink's backlog (`output.alert_backlog_mb`
//! for the alert log, none for the flow log), the writer says so once on
//! stderr, retries every second (`RETRY_EVERY`) and at each SIGHUP, and says how
//! the outage ended (lines written from the backlog, lines lost). Lines
//! still waiting at exit are lost, and the run then exits 1 saying how
//! many.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapsentry_telemetry::wall;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use serde::Serialize;
use tapsentry_incidents::Incidents;
use tapsentry_inventory::InventoryRecord;
use tapsentry_output::{AlertUpdateRecord, Delivery, JsonlSink, Suppressor};
use tapsentry_types::{
    alert_id, community_id_v1, proto_name, Alert, AlertRecord, AppProto, EndReason, FlowRecord,
    FlowState, RecordKind, Timestamp,
};

use super::epoch::{alert_order, EpochCollector, Released, Reply};
use super::flow_meta::{AppMetaLog, LoggedFlow};
use super::stats::{lock, SharedStats, WriterStats, MAX_TALLIED_HOSTS};

/// How often (wall clock) the writer tries a failing log again. Wall time
/// decides only when lines get in, never which lines or in what order.
pub(crate) const RETRY_EVERY: Duration = Duration::from_secs(1);

/// What the workers and the sweeper send the writer.
pub(crate) enum WriterMsg {
    /// A worker's reply to one epoch.
    Alerts(Reply),
    /// Ended flows, for the flow log.
    Flows(Vec<LoggedFlow>),
    /// The asset inventory's records of one epoch (from the sweeper,
    /// before the epoch's batches went out).
    Inventory {
        epoch: u64,
        records: Vec<InventoryRecord>,
    },
}

/// The writer stage: its sinks, the suppressor, and (replay) the epoch
/// collector.
pub(crate) struct WriterStage {
    pub alerts: JsonlSink,
    pub flows: Option<JsonlSink>,
    pub suppressor: Suppressor,
    /// The incidents stage (`None` when `incidents.enabled` is false).
    pub incidents: Option<Incidents>,
    /// The `host` field of every record (`output.host`).
    pub host: String,
    /// Replay: releases epochs whole and in order. Live: `None`.
    pub epochs: Option<EpochCollector>,
    pub reopen: Arc<AtomicU64>,
    pub shared: Arc<SharedStats>,
}

impl WriterStage {
    /// Writes until every sender has hung up; returns the alert log so it
    /// closes only after the last line.
    pub fn run(self, input: &Receiver<WriterMsg>) -> JsonlSink {
        let WriterStage {
            alerts,
            flows,
            suppressor,
            incidents,
            host,
            mut epochs,
            reopen,
            shared,
        } = self;
        let mut w = Sinks {
            alerts,
            flows,
            suppressor,
            incidents,
            host,
            st: WriterStats::default(),
            last_error: [None, None],
        };
        let mut seen_reopen = reopen.load(Ordering::Acquire);
        let mut last_retry = wall::instant();
        loop {
            let msg = input.recv_timeout(Duration::from_millis(200));
            let r = reopen.load(Ordering::Acquire);
            if r != seen_reopen {
                seen_reopen = r;
                w.reopen();
                w.retry();
                last_retry = wall::instant();
            } else if w.in_outage() && last_retry.elapsed() >= RETRY_EVERY {
                w.retry();
                last_retry = wall::instant();
            }
            match msg {
                Ok(WriterMsg::Alerts(reply)) => match epochs.as_mut() {
                    Some(c) => {
                        if let Err(refused) = c.accept(reply) {
                            // A protocol bug; its alerts are still written.
                            eprintln!("tapsentry: warning: {}", refused.error);
                            let (mut alerts, emitted) = refused.reply.into_parts();
                            alerts.sort_by(alert_order);
                            w.write_alerts(alerts, emitted);
                        }
                        while let Some(r) = c.release() {
                            w.write_released(r);
                        }
                    }
                    None => {
                        let (mut alerts, emitted) = reply.into_parts();
                        alerts.sort_by(alert_order);
                        w.write_alerts(alerts, emitted);
                    }
                },
                Ok(WriterMsg::Flows(recs)) => w.write_flows(&recs),
                Ok(WriterMsg::Inventory { epoch, records }) => match epochs.as_mut() {
                    Some(c) => {
                        if let Err(records) = c.attach(epoch, records, wall::instant()) {
                            w.write_inventory(&records);
                        }
                    }
                    None => w.write_inventory(&records),
                },
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            w.report_outages();
            w.st.publish_to(&mut lock(&shared.writer));
        }
        // Epochs a worker never completed (it died): write what arrived, in order.
        if let Some(c) = epochs {
            for r in c.finish() {
                w.write_released(r);
            }
        }
        // One last try for what waits; what still cannot go in is lost.
        w.retry();
        w.report_outages();
        w.abandon();
        w.st.publish_to(&mut lock(&shared.writer));
        w.alerts
    }
}

/// The open logs and what was written to them.
struct Sinks {
    alerts: JsonlSink,
    flows: Option<JsonlSink>,
    suppressor: Suppressor,
    incidents: Option<Incidents>,
    host: String,
    st: WriterStats,
    /// The error of each log's (alerts, flows) latest outage, for the exit
    /// message when lines were lost.
    last_error: [Option<String>; 2],
}

/// A record of another stage with the sensor's name added (last: the
/// record's own fields keep their order).
#[derive(Serialize)]
struct Hosted<'a, T> {
    #[serde(flatten)]
    record: &'a T,
    host: &'a str,
}

impl Sinks {
    fn sinks(&mut self) -> impl Iterator<Item = &mut JsonlSink> {
        std::iter::once(&mut self.alerts).chain(self.flows.as_mut())
    }

    fn reopen(&mut self) {
        for sink in self.sinks() {
            if let Err(e) = sink.reopen() {
                // The old handle is kept (the sink says so); a log that
                // cannot be reopened is not lost, so not fatal.
                eprintln!("tapsentry: error: {e}; still writing to the file already open");
            }
        }
    }

    fn in_outage(&self) -> bool {
        self.alerts.in_outage() || self.flows.as_ref().is_some_and(JsonlSink::in_outage)
    }

    fn retry(&mut self) {
        for sink in self.sinks() {
            sink.retry();
        }
    }

    /// Says once when a log's outage begins and once when it ends, and
    /// copies the outage counters into the stats.
    fn report_outages(&mut self) {
        let Sinks {
            alerts,
            flows,
            st,
            last_error,
            ..
        } = self;
        for (i, sink) in std::iter::once(alerts).chain(flows.as_mut()).enumerate() {
            if let Some(e) = sink.take_outage() {
                let backlog = if sink.outage_stats().backlog > 0 {
                    "keeping lines in memory and retrying"
                } else {
                    "retrying; lines are lost until it works again"
                };
                eprintln!("tapsentry: error: {e}; capture goes on, {backlog}");
                if let Some(slot) = last_error.get_mut(i) {
                    *slot = Some(e.to_string());
                }
            }
            if let Some(r) = sink.take_recovery() {
                eprintln!(
                    "tapsentry: {} {} writable again: {} lines written from memory, {} lost",
                    if i == 0 { "alert log" } else { "flow log" },
                    sink.path(),
                    r.written,
                    r.lost
                );
            }
            let stats = sink.outage_stats();
            if i == 0 {
                st.alert_log = stats;
            } else {
                st.flow_log = stats;
            }
        }
    }

    /// At exit: what still waits is lost; a log that lost lines makes the
    /// run fail, naming the log, the error and the count.
    fn abandon(&mut self) {
        let Sinks {
            alerts,
            flows,
            st,
            last_error,
            ..
        } = self;
        for (i, sink) in std::iter::once(alerts).chain(flows.as_mut()).enumerate() {
            sink.abandon_backlog();
            let stats = sink.outage_stats();
            if i == 0 {
                st.alert_log = stats;
            } else {
                st.flow_log = stats;
            }
            if stats.lost > 0 && st.write_error.is_none() {
                let e = last_error
                    .get(i)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| format!("cannot write {}", sink.path()));
                st.write_error = Some(format!(
                    "{e}; {} lines lost in {} outages",
                    stats.lost, stats.outages
                ));
            }
        }
    }

    /// A record that cannot be serialised (a bug): said once.
    fn serialise_error(st: &mut WriterStats, e: &tapsentry_output::OutputError) {
        if st.write_error.is_none() {
            eprintln!("tapsentry: error: {e}");
            st.write_error = Some(e.to_string());
        }
    }

    fn write_released(&mut self, r: Released) {
        self.write_alerts(r.alerts, r.emitted);
        self.write_inventory(&r.inventory);
    }

    /// Inventory records: rate-limited by the inventory itself, so not
    /// through the alert suppressor.
    fn write_inventory(&mut self, records: &[InventoryRecord]) {
        for r in records {
            let line = Hosted {
                record: r,
                host: &self.host,
            };
            match self.alerts.deliver(&line) {
                Ok(Delivery::Written | Delivery::Queued) => self.st.inventory_written += 1,
                Ok(Delivery::Lost) => {}
                Err(e) => Self::serialise_error(&mut self.st, &e),
            }
        }
    }

    /// Writes `alerts`, already in [`alert_order`]. An `alert_update` is
    /// not a repeat of its alert: it bypasses the suppressor and names the
    /// line written for its finding.
    fn write_alerts(&mut self, alerts: Vec<Alert>, emitted: Instant) {
        let st = &mut self.st;
        for a in alerts {
            if let Some(first) = a.updates {
                // The alert it updates, or (when that one was suppressed as
                // a repeat) the earlier line of the same finding.
                let named = match self.suppressor.written_at(&a) {
                    Some(w) if w <= first => w,
                    _ => first,
                };
                let id = alert_id(&self.host, a.alert.signature, a.src_ip, a.dest_ip, named);
                // Through the same backlog as alerts, so an update never
                // lands before the alert it names.
                let update = AlertUpdateRecord::of(&a, id);
                let line = Hosted {
                    record: &update,
                    host: &self.host,
                };
                match self.alerts.deliver(&line) {
                    Ok(Delivery::Written | Delivery::Queued) => {}
                    Ok(Delivery::Lost) => st.lost += 1,
                    Err(e) => Self::serialise_error(st, &e),
                }
                continue;
            }
            if !self.suppressor.admit(&a) {
                st.suppressed += 1;
                continue;
            }
            let line = AlertRecord::new(&a, &self.host);
            let alert_id = line.alert.alert_id;
            match self.alerts.deliver(&line) {
                // Waiting in the backlog counts as written: it goes in, in
                // order, when the log takes lines again (or is counted in
                // `alert_log.lost` at exit).
                Ok(Delivery::Written | Delivery::Queued) => {
                    st.written += 1;
                    *st.by_category.entry(a.alert.category.as_str()).or_default() += 1;
                    if st.by_src.len() < MAX_TALLIED_HOSTS || st.by_src.contains_key(&a.src_ip) {
                        *st.by_src.entry(a.src_ip).or_default() += 1;
                    }
                    st.alert_latency
                        .record_ns(u64::try_from(emitted.elapsed().as_nanos()).unwrap_or(u64::MAX));
                }
                // An alert that is not in the log is no incident's member.
                Ok(Delivery::Lost) => {
                    st.lost += 1;
                    continue;
                }
                Err(e) => {
                    Self::serialise_error(st, &e);
                    continue;
                }
            }
            let Some(inc) = self.incidents.as_mut() else {
                continue;
            };
            for rec in inc.observe(&a, alert_id) {
                match self.alerts.deliver(&rec) {
                    Ok(Delivery::Written | Delivery::Queued) => {}
                    Ok(Delivery::Lost) => st.lost += 1,
                    Err(e) => Self::serialise_error(st, &e),
                }
            }
            st.incidents = inc.stats();
        }
    }

    fn write_flows(&mut self, flows: &[LoggedFlow]) {
        let Some(sink) = self.flows.as_mut() else {
            return;
        };
        for f in flows {
            let mut record = FlowLogRecord::new(&f.rec, &self.host);
            if let Some(meta) = &f.meta {
                record.app = AppMetaLog::new(meta);
            }
            match sink.deliver(&record) {
                Ok(Delivery::Written | Delivery::Queued) => self.st.flow_records_logged += 1,
                Ok(Delivery::Lost) => {}
                Err(e) => Self::serialise_error(&mut self.st, &e),
            }
        }
    }
}

/// One ended flow in the flow log (field names follow Suricata's EVE flow
/// records where they overlap).
#[derive(Debug, Serialize)]
pub struct FlowLogRecord<'a> {
    /// The flow's last packet.
    pub timestamp: Timestamp,
    /// [`FlowRecord::flow_id`]: the same on every alert about the flow.
    pub flow_id: u64,
    /// Always `"flow"`.
    pub event_type: &'static str,
    /// The sensor's name (`output.host`).
    pub host: &'a str,
    /// The client (the side that spoke first).
    pub src_ip: IpAddr,
    /// Client port (TCP, UDP, SCTP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// The server.
    pub dest_ip: IpAddr,
    /// Server port (TCP, UDP, SCTP only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dest_port: Option<u16>,
    /// `"TCP"`, `"UDP"`, … or the protocol number.
    pub proto: String,
    /// 802.1Q VLAN id (omitted when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub vlan: u16,
    /// Community ID v1.
    pub community_id: String,
    /// The application protocol identified from the payload (Suricata's
    /// field and spelling; `unknown` when nothing matched, as Suricata's
    /// `failed` is not a protocol).
    pub app_proto: AppProto,
    /// What the first messages revealed (`tls`, `ssh`, `http`, `greeting`).
    #[serde(flatten)]
    pub app: AppMetaLog,
    /// Counters, state and end reason.
    pub flow: FlowLogBody,
}

/// The `flow` object of a flow-log record.
#[derive(Debug, Serialize)]
pub struct FlowLogBody {
    /// First packet.
    pub start: Timestamp,
    /// Last packet.
    pub end: Timestamp,
    /// Packets client to server.
    pub pkts_toserver: u64,
    /// Packets server to client.
    pub pkts_toclient: u64,
    /// Bytes client to server.
    pub bytes_toserver: u64,
    /// Bytes server to client.
    pub bytes_toclient: u64,
    /// Connection state at the end.
    pub state: FlowState,
    /// Why the flow ended.
    pub reason: EndReason,
    /// Whether the server ever answered.
    pub answered: bool,
    /// TCP flags the client sent (omitted when none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tcp_flags_ts: String,
    /// TCP flags the server sent (omitted when none).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tcp_flags_tc: String,
}

fn is_zero(v: &u16) -> bool {
    *v == 0
}

impl<'a> FlowLogRecord<'a> {
    /// The flow-log line of `r`, written by the sensor named `host`.
    pub fn new(r: &FlowRecord, host: &'a str) -> Self {
        let ports = matches!(r.proto, 6 | 17 | 132);
        FlowLogRecord {
            timestamp: r.last_seen,
            flow_id: r.flow_id(),
            event_type: "flow",
            host,
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
            app_proto: r.app_proto,
            app: AppMetaLog::default(),
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
                    RecordKind::Interim => EndReason::Shutdown,
                },
                answered: r.responder_answered,
                tcp_flags_ts: r.client_flags.letters(),
                tcp_flags_tc: r.server_flags.letters(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::epoch::tests::{alert, tickets};
    use crate::pipeline::test_util::flow_record;
    use crossbeam_channel::bounded;
    use serde_json::Value;
    use tapsentry_types::Timestamp;

    fn read(path: &std::path::Path) -> Vec<Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn stage(
        dir: &std::path::Path,
        epochs: Option<EpochCollector>,
    ) -> (WriterStage, Arc<SharedStats>) {
        let shared = Arc::new(SharedStats::new());
        let sink =
            |name: &str| JsonlSink::open_as(dir.join(name).to_str().unwrap(), "log").unwrap();
        (
            WriterStage {
                alerts: sink("alerts.jsonl"),
                flows: Some(sink("flows.jsonl")),
                suppressor: Suppressor::new(0, 1000),
                incidents: None,
                host: "test-sensor".into(),
                epochs,
                reopen: Arc::new(AtomicU64::new(0)),
                shared: Arc::clone(&shared),
            },
            shared,
        )
    }

    /// Two workers, two epochs, replies arriving epoch 2 first and out of
    /// worker order, through the real writer thread: the log holds epoch 1
    /// then epoch 2, each sorted; and the ended flow is in the flow log.
    #[test]
    fn writer_orders_alerts_of_two_epochs_arriving_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let (st, shared) = stage(dir.path(), Some(EpochCollector::new(2).unwrap()));
        let (tx, rx) = bounded::<WriterMsg>(16);
        let h = std::thread::spawn(move || st.run(&rx));

        let mut t = tickets(2, 2).into_iter();
        let (mut e1, mut e2) = (t.next().unwrap(), t.next().unwrap());
        let (e1w1, e1w0) = (e1.pop().unwrap(), e1.pop().unwrap());
        let (e2w1, e2w0) = (e2.pop().unwrap(), e2.pop().unwrap());
        tx.send(WriterMsg::Alerts(e2w1.reply(vec![alert(20, 2)])))
            .unwrap();
        tx.send(WriterMsg::Alerts(
            e2w0.reply(vec![alert(21, 0), alert(20, 1)]),
        ))
        .unwrap();
        tx.send(WriterMsg::Alerts(e1w1.reply(vec![alert(11, 0)])))
            .unwrap();
        let t = Timestamp::from_micros(1_700_000_000_000_000);
        let rec = flow_record([10, 0, 0, 1].into(), 40_000, [10, 0, 0, 2].into(), 22, t);
        tx.send(WriterMsg::Flows(vec![LoggedFlow { rec, meta: None }]))
            .unwrap();
        tx.send(WriterMsg::Alerts(
            e1w0.reply(vec![alert(12, 0), alert(10, 3)]),
        ))
        .unwrap();
        drop(tx);
        drop(h.join().unwrap());

        let descr: Vec<String> = read(&dir.path().join("alerts.jsonl"))
            .iter()
            .map(|a| a["alert"]["description"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            descr,
            [
                "alert 10/3",
                "alert 11/0",
                "alert 12/0",
                "alert 20/1",
                "alert 20/2",
                "alert 21/0"
            ]
        );
        let flows = read(&dir.path().join("flows.jsonl"));
        assert_eq!(flows.len(), 1);
        assert_eq!(flows[0]["event_type"], "flow");
        assert_eq!(flows[0]["dest_port"], 22);
        let w = lock(&shared.writer);
        assert_eq!((w.written, w.flow_records_logged), (6, 1));
        assert_eq!(w.by_category.get("port_scan"), Some(&6));
    }

    /// Live: no collector, each reply is written as it comes.
    #[test]
    fn live_writer_writes_replies_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let (st, _) = stage(dir.path(), None);
        let (tx, rx) = bounded::<WriterMsg>(16);
        let mut t = tickets(2, 2).into_iter();
        let (e1, e2) = (t.next().unwrap(), t.next().unwrap());
        let (e2w0, e1w0) = (
            e2.into_iter().next().unwrap(),
            e1.into_iter().next().unwrap(),
        );
        tx.send(WriterMsg::Alerts(
            e2w0.reply(vec![alert(20, 1), alert(20, 0)]),
        ))
        .unwrap();
        tx.send(WriterMsg::Alerts(e1w0.reply(vec![alert(10, 0)])))
            .unwrap();
        drop(tx);
        drop(st.run(&rx));
        let descr: Vec<String> = read(&dir.path().join("alerts.jsonl"))
            .iter()
            .map(|a| a["alert"]["description"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(descr, ["alert 20/0", "alert 20/1", "alert 10/0"]);
    }
}

#[cfg(test)]
mod incident_tests {
    use super::*;
    use crate::pipeline::epoch::tests::tickets;
    use crossbeam_channel::bounded;
    use serde_json::Value;
    use tapsentry_incidents::IncidentsConfig;
    use tapsentry_testkit::scenario::ip;
    use tapsentry_testkit::AlertBuilder;

    /// Through the real writer thread, two workers, epochs arriving out of
    /// order: each incident record follows the alert that made it, lists
    /// the alerts' written ids, and every line carries `host`.
    #[test]
    fn incident_records_follow_their_alert_in_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.jsonl");
        let shared = Arc::new(SharedStats::new());
        let inside = |a: IpAddr| matches!(a, IpAddr::V4(v) if v.octets()[0] == 10);
        let stage = WriterStage {
            alerts: JsonlSink::open_as(path.to_str().unwrap(), "log").unwrap(),
            flows: None,
            suppressor: Suppressor::new(3600, 1000),
            incidents: Some(Incidents::new(
                IncidentsConfig::default(),
                "w-test",
                Box::new(inside),
            )),
            host: "w-test".into(),
            epochs: Some(EpochCollector::new(2).unwrap()),
            reopen: Arc::new(AtomicU64::new(0)),
            shared: Arc::clone(&shared),
        };
        let (tx, rx) = bounded::<WriterMsg>(16);
        let h = std::thread::spawn(move || stage.run(&rx));
        let (x, a, y) = (ip("203.0.113.7"), ip("10.0.0.5"), ip("198.51.100.1"));
        let login = AlertBuilder::new(0.0, "external_login.unusual_source", "TA0001", x)
            .dest(a)
            .build();
        let scan = AlertBuilder::new(10.0, "port_scan.horizontal", "TA0007", a).build();
        let exfil = AlertBuilder::new(20.0, "exfiltration.volume", "TA0010", a)
            .dest(y)
            .severity(1)
            .build();
        // A repeat of the scan: suppressed, so no member.
        let repeat = AlertBuilder::new(30.0, "port_scan.horizontal", "TA0007", a).build();
        let mut t = tickets(2, 2).into_iter();
        let (mut e1, mut e2) = (t.next().unwrap(), t.next().unwrap());
        let (e1w1, e1w0) = (e1.pop().unwrap(), e1.pop().unwrap());
        let (e2w1, e2w0) = (e2.pop().unwrap(), e2.pop().unwrap());
        tx.send(WriterMsg::Alerts(e2w1.reply(vec![repeat])))
            .unwrap();
        tx.send(WriterMsg::Alerts(e2w0.reply(vec![exfil.clone()])))
            .unwrap();
        tx.send(WriterMsg::Alerts(e1w1.reply(vec![scan.clone()])))
            .unwrap();
        tx.send(WriterMsg::Alerts(e1w0.reply(vec![login.clone()])))
            .unwrap();
        drop(tx);
        drop(h.join().unwrap());
        let lines: Vec<Value> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<&str> = lines
            .iter()
            .map(|l| l["event_type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["alert", "alert", "alert", "incident"], "{lines:#?}");
        assert!(lines.iter().all(|l| l["host"] == "w-test"));
        let ids: Vec<u64> = [&login, &scan, &exfil]
            .iter()
            .map(|a| a.alert_id("w-test"))
            .collect();
        for (l, id) in lines.iter().zip(&ids) {
            assert_eq!(l["alert"]["alert_id"], *id);
        }
        assert_eq!(lines[3]["incident"]["alert_ids"], serde_json::json!(ids));
        assert_eq!(
            lines[3]["incident"]["stages"],
            serde_json::json!(["TA0001", "TA0007", "TA0010"])
        );
        let w = lock(&shared.writer);
        assert_eq!((w.written, w.suppressed), (3, 1));
        assert_eq!((w.incidents.reported, w.incidents.records), (1, 1));
    }
}
