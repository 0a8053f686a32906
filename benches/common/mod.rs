//! Shared fixture of the detector and alert-writer benches: a testkit
//! office capture replayed through decode and the flow table into the
//! detector batches the pipeline would hand a single worker.
//!
//! The replay follows the pipeline's rules in a simple form: capture time
//! comes from the packets, the table is swept at every whole second, DNS
//! messages on port 53 become [`DnsEvent`]s for the same step, and each
//! record is routed with [`route_flow`] (one worker, so every host is ours).
//! Everything here runs once, outside the timed loops. Each bench uses a
//! part of it.

#![allow(
    dead_code,
    reason = "each bench binary uses a part of this module and compiles it alone"
)]

use std::mem;
use std::path::PathBuf;
use std::sync::Arc;

use tapsentry_capture::{FileSource, FrameSource, Next};
use tapsentry_decode::{decode, dns};
use tapsentry_detect::{route_flow, Batch, HomeNet};
use tapsentry_flow::{FlowConfig, FlowTable};
use tapsentry_testkit::office::{self, OfficeSpec};
use tapsentry_types::{DnsEvent, Timestamp};

/// The office's home network.
pub const OFFICE_HOME: &str = "10.20.0.0/16";

/// One replayed office: its detector batches in capture order.
pub struct Replay {
    /// The office's home network.
    pub home: Arc<HomeNet>,
    /// One batch per one-second sweep (and a last one for the final drain).
    pub batches: Vec<Batch>,
    /// Packets read from the capture.
    pub packets: u64,
}

impl Replay {
    /// Flow records plus DNS events in `batches`: the elements a detector is
    /// handed (a record routed to two hosts counts twice, as it is judged
    /// twice).
    pub fn elements(batches: &[Batch]) -> u64 {
        batches
            .iter()
            .map(|b| (b.flows.len() + b.dns.len()) as u64)
            .sum()
    }

    /// Splits the batches at `secs` seconds after the capture start.
    pub fn split_at_secs(&self, secs: u64) -> (&[Batch], &[Batch]) {
        let Some(first) = self.batches.first() else {
            return (&[], &[]);
        };
        let cut = first.capture_start.plus_secs(secs);
        let i = self.batches.partition_point(|b| b.now < cut);
        self.batches.split_at(i)
    }
}

/// The first whole second strictly after `t`.
fn next_second(t: Timestamp) -> Timestamp {
    Timestamp::from_micros((t.micros().div_euclid(1_000_000) + 1) * 1_000_000)
}

/// Writes the office of `spec` to a temporary file and replays it.
pub fn replay_office(spec: &OfficeSpec) -> Replay {
    let dir = tempfile::tempdir().expect("create a temporary directory for the office capture");
    let path: PathBuf = dir.path().join("office.pcap");
    office::generate(spec, &path).expect("write the office capture");
    let home =
        Arc::new(HomeNet::parse(&[OFFICE_HOME.to_string()]).expect("the office home net parses"));
    let table = FlowTable::new(FlowConfig::default());
    let mut src = FileSource::open(&[path]).expect("open the office capture");

    let mut batches = Vec::new();
    let mut dns_buf: Vec<DnsEvent> = Vec::new();
    let mut recs = Vec::new();
    let mut capture_start = None;
    let mut next_tick = None;
    let mut last_ts = Timestamp::ZERO;
    let mut packets = 0u64;

    let close_step = |now: Timestamp,
                      start: Timestamp,
                      dns: &mut Vec<DnsEvent>,
                      recs: &mut Vec<_>,
                      batches: &mut Vec<Batch>| {
        let mut b = Batch {
            epoch: batches.len() as u64 + 1,
            now,
            capture_start: start,
            dns: mem::take(dns),
            admin: Vec::new(),
            flows: Vec::with_capacity(recs.len()),
            last: false,
        };
        for rec in recs.drain(..) {
            for host in route_flow(&rec, &home).into_iter().flatten() {
                b.flows.push((host, rec));
            }
        }
        if !b.is_empty() {
            batches.push(b);
        }
    };

    loop {
        let frame = match src.next_frame().expect("read the office capture") {
            Next::Frame(f) => f,
            Next::Idle => continue,
            Next::End => break,
        };
        packets += 1;
        last_ts = last_ts.max(frame.ts);
        let start = *capture_start.get_or_insert(frame.ts);
        if let Ok(m) = decode(&frame) {
            table.ingest(&m);
            if let Some(Ok(event)) = dns::event(&m) {
                dns_buf.push(event);
            }
        }
        match next_tick {
            None => next_tick = Some(next_second(last_ts)),
            Some(t) if last_ts >= t || table.needs_sweep() => {
                table.sweep(last_ts, &mut recs);
                close_step(last_ts, start, &mut dns_buf, &mut recs, &mut batches);
                next_tick = Some(next_second(last_ts));
            }
            Some(_) => {}
        }
    }
    table.drain(&mut recs);
    if let Some(start) = capture_start {
        close_step(last_ts, start, &mut dns_buf, &mut recs, &mut batches);
    }
    Replay {
        home,
        batches,
        packets,
    }
}
