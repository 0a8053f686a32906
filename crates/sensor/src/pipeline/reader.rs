//! The reader stage (thread `cap-rx`): frames from the source, decoded,
//! fragments attributed and DNS messages summarised, handed on to the
//! ingest thread in batches of [`INGEST_BATCH`](super::ingest::INGEST_BATCH).
//!
//! Decoding and reading are half the per-packet work; doing them on their
//! own core overlaps them with the flow-table ingest. The per-frame work is
//! [`FrameStep::on_frame`], which `tests/alloc.rs` measures as it is.
//!
//! The reader waits for the ingest thread when its queue is full: in replay
//! that slows the file read, live it shows as kernel drops.

use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use tapsentry_capture::{CaptureWarning, FrameSource, Next};
use tapsentry_decode::{decode, dns, ethernet_addrs};
use tapsentry_flow::FragmentTracker;
use tapsentry_telemetry::wall;
use tapsentry_types::{Fragment, Frame, PacketMeta, Timestamp};

use super::ingest::{Ingest, IngestBatch, IngestMsg};
use super::stats::{lock, CaptureStats, SharedStats};
use super::{Mode, Speed};

/// A live batch is handed on after this much wall time even if not full, so
/// a trickle of packets is not held back behind a half-empty batch.
const LIVE_BATCH_MAX_AGE: Duration = Duration::from_millis(5);

/// The reader's work on one frame, with the state it keeps between frames:
/// its counters and the fragment tracker.
#[doc(hidden)]
pub struct FrameStep {
    st: CaptureStats,
    frags: FragmentTracker,
    n: u64,
    /// Keep each frame's Ethernet addresses (for the inventory's MACs).
    keep_macs: bool,
}

/// Hands on the frame's Ethernet addresses (zero for other link types),
/// one entry per frame. Out of line: with the inventory off the reader's
/// per-frame path keeps only the test of the flag.
#[inline(never)]
fn keep_macs(frame: &Frame<'_>, batch: &mut IngestBatch) {
    let mut addrs = [0; 12];
    if let Some((dst, src)) = ethernet_addrs(frame) {
        addrs[..6].copy_from_slice(&dst);
        addrs[6..].copy_from_slice(&src);
    }
    batch.macs.push(addrs);
}

impl FrameStep {
    /// A step remembering at most `max_fragments` first fragments.
    pub fn new(max_fragments: usize) -> FrameStep {
        FrameStep {
            st: CaptureStats::new(),
            frags: FragmentTracker::new(max_fragments),
            n: 0,
            keep_macs: false,
        }
    }

    /// Also hands on each Ethernet frame's addresses (the inventory's MACs).
    pub fn with_macs(mut self) -> FrameStep {
        self.keep_macs = true;
        self
    }

    /// Counts `frame`, decodes it, attributes a later fragment to its
    /// flow, summarises a DNS message, and appends the result to `batch`
    /// (its DNS summary to the batch's list). One frame in 64 is timed.
    #[inline]
    pub fn on_frame(&mut self, frame: &Frame<'_>, batch: &mut IngestBatch) {
        self.n += 1;
        let st = &mut self.st;
        let t0 = (self.n & 63 == 0).then(wall::instant);
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
            payload: (0, 0),
            dns: false,
            decode_ns: None,
        };
        if self.keep_macs {
            keep_macs(frame, batch);
        }
        match decode(frame) {
            Ok(mut m) => {
                st.ip_bytes += u64::from(m.ip_len);
                if m.fragment != Fragment::None {
                    self.frags.resolve(&mut m);
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
                // A later fragment's payload is the middle of a datagram:
                // nothing a classifier can read.
                if !m.payload.is_empty()
                    && matches!(m.fragment, Fragment::None | Fragment::First { .. })
                    && matches!(m.proto, 6 | 17)
                {
                    item.payload = batch.keep_payload(m.payload, m.proto == 17);
                }
                item.meta = Some(PacketMeta { payload: &[], ..m });
            }
            Err(e) => st.decode_errors.bump(e.index()),
        }
        if let Some(t0) = t0 {
            item.decode_ns = Some(u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX));
        }
        batch.frames.push(item);
    }

    /// Frames seen so far.
    pub fn frames(&self) -> u64 {
        self.n
    }

    /// Takes the source's counters and publishes everything to `shared`.
    fn publish(&mut self, source: &mut dyn FrameSource, shared: &SharedStats) {
        self.st.fragments_unattributed = self.frags.unattributed();
        self.st.fragments_not_remembered = self.frags.not_remembered();
        self.st.unsupported_link_frames = source.skipped_frames();
        self.st.publish_to(&mut lock(&shared.capture));
    }
}

/// The reader stage: the source, the queues to and from the ingest thread,
/// and what it needs to know about the run.
pub(crate) struct Reader {
    pub source: Box<dyn FrameSource>,
    pub step: FrameStep,
    pub shared: Arc<SharedStats>,
    pub stop: Arc<AtomicBool>,
    pub mode: Mode,
}

impl Reader {
    /// Reads until the source ends, `stop` is set or the ingest thread is
    /// gone; returns the file errors met on the way (for the exit status).
    pub fn run(self, out: &Sender<IngestMsg>, recycle: &Receiver<IngestBatch>) -> Vec<String> {
        let Reader {
            mut source,
            mut step,
            shared,
            stop,
            mode,
        } = self;
        let live = mode == Mode::Live;
        let mut errors = Vec::new();
        let pace = match mode {
            Mode::Replay(Speed::Factor(f)) if f > 0.0 => Some(f),
            _ => None,
        };
        let mut pace_origin: Option<(Timestamp, Instant)> = None;
        let mut batch = IngestBatch::empty();
        let mut batch_started = wall::instant();
        // Hands the batch on (blocking: backpressure reaches the kernel ring
        // live, and the file read in replay) and takes a recycled one.
        let ship = |batch: &mut IngestBatch| -> bool {
            let next = recycle.try_recv().unwrap_or_else(|_| IngestBatch::empty());
            out.send(IngestMsg::Frames(mem::replace(batch, next)))
                .is_ok()
        };

        loop {
            // One relaxed load per 256 packets at full speed; a paced replay
            // sleeps between packets, so it checks every time.
            if (step.n & 255 == 0 || pace.is_some()) && stop.load(Ordering::Relaxed) {
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
                    if !batch.is_empty() && !ship(&mut batch) {
                        break;
                    }
                    if out
                        .send(IngestMsg::Idle(wall::timestamp().max(step.st.last_ts)))
                        .is_err()
                    {
                        break;
                    }
                    step.st.kernel = source.kernel_stats();
                    take_warnings(source.as_mut(), &mut errors);
                    step.st.publish_to(&mut lock(&shared.capture));
                    continue;
                }
                Next::Frame(frame) => {
                    if let Some(factor) = pace {
                        pace_to(frame.ts, factor, &mut pace_origin, &stop);
                    }
                    if batch.is_empty() && live {
                        batch_started = wall::instant();
                    }
                    step.on_frame(&frame, &mut batch);
                    // A paced replay sleeps before each frame: hand each one
                    // on at once, as a live link at that rate would see it.
                    let full = batch.is_full()
                        || pace.is_some()
                        || (live && batch_started.elapsed() >= LIVE_BATCH_MAX_AGE);
                    if full && !ship(&mut batch) {
                        break;
                    }
                    // A paced replay publishes every frame (it sleeps
                    // between them anyway), so stats and /metrics move
                    // as they would on a live link.
                    if step.n & 4095 == 0 || pace.is_some() {
                        take_warnings(source.as_mut(), &mut errors);
                        step.publish(source.as_mut(), &shared);
                    }
                }
            }
        }
        if !batch.is_empty() {
            ship(&mut batch);
        }
        take_warnings(source.as_mut(), &mut errors);
        step.st.kernel = source.kernel_stats();
        step.publish(source.as_mut(), &shared);
        errors
    }
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

/// Sleeps so that packet `ts` is handed on `factor` times faster than it
/// was captured, in slices short enough to notice a stop request. Only
/// pacing; no result depends on it.
fn pace_to(
    ts: Timestamp,
    factor: f64,
    origin: &mut Option<(Timestamp, Instant)>,
    stop: &AtomicBool,
) {
    let (t0, w0) = *origin.get_or_insert((ts, wall::instant()));
    let capture_us = ts.micros_since(t0) as f64 / factor;
    let target = w0 + Duration::from_micros(capture_us.min(1e15) as u64);
    loop {
        let now = wall::instant();
        if target <= now || stop.load(Ordering::Relaxed) {
            return;
        }
        thread::sleep((target - now).min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::ingest::INGEST_BATCH;
    use crossbeam_channel::bounded;
    use tapsentry_capture::FileSource;
    use tapsentry_testkit::{tcp_v4, udp_v4, PcapWriter};
    use tapsentry_types::LinkType;

    /// 1,100 frames of a pcap file (two batches and a bit), one of them a
    /// DNS query and one not IP, through the real reader thread and
    /// channels: everything arrives in order, counted once.
    /// A replay reader of the file at `path`, stopped before it starts
    /// when `stopped`, and the stats it publishes to.
    fn replay_reader(path: std::path::PathBuf, stopped: bool) -> (Reader, Arc<SharedStats>) {
        let shared = Arc::new(SharedStats::new());
        let reader = Reader {
            source: Box::new(FileSource::open(&[path]).unwrap()),
            step: FrameStep::new(16),
            shared: Arc::clone(&shared),
            stop: Arc::new(AtomicBool::new(stopped)),
            mode: Mode::Replay(Speed::Max),
        };
        (reader, shared)
    }

    #[test]
    fn reader_decodes_a_pcap_into_batches_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.pcap");
        let base = 1_700_000_000_000_000i64;
        let mut w = PcapWriter::create(&path, LinkType::ETHERNET).unwrap();
        let mut wire = 0u64;
        for i in 0..1_100u32 {
            let ts = Timestamp::from_micros(base + i64::from(i) * 1_000);
            let f = match i {
                500 => udp_v4(
                    [10, 0, 0, 5],
                    5353,
                    [10, 0, 0, 53],
                    53,
                    &crate::pipeline::test_util::dns_query(),
                ),
                // An ARP-sized frame of EtherType 0x0806: not IP.
                700 => {
                    let mut f = vec![0u8; 42];
                    f[12] = 0x08;
                    f[13] = 0x06;
                    f
                }
                _ => tcp_v4([10, 0, 0, 1], 40_000, [10, 0, 0, 2], 443, 0x10, &[]),
            };
            wire += f.len() as u64;
            w.write(ts, &f);
        }
        w.finish().unwrap();

        let (reader, shared) = replay_reader(path, false);
        let (tx, rx) = bounded::<IngestMsg>(8);
        let (_recycle_tx, recycle_rx) = bounded::<IngestBatch>(8);
        let errors = reader.run(&tx, &recycle_rx);
        drop(tx);
        assert!(errors.is_empty(), "{errors:?}");

        let mut sizes = Vec::new();
        let mut ts = Vec::new();
        let mut dns = Vec::new();
        let mut undecoded = 0;
        for msg in rx.iter() {
            let IngestMsg::Frames(b) = msg else {
                panic!("a replay sends no idle ticks")
            };
            sizes.push(b.len());
            undecoded += b.len() - b.decoded();
            ts.extend(b.frames.iter().map(|f| f.ts.micros()));
            dns.extend(b.dns().iter().map(|e| e.client));
            assert_eq!(
                b.frames.iter().filter(|f| f.dns).count(),
                b.dns().len(),
                "one DNS flag per DNS summary"
            );
        }
        assert_eq!(
            sizes,
            [INGEST_BATCH, INGEST_BATCH, 1_100 - 2 * INGEST_BATCH]
        );
        assert!(ts.windows(2).all(|p| p[0] < p[1]), "capture order kept");
        assert_eq!(dns, [std::net::IpAddr::from([10, 0, 0, 5])]);
        assert_eq!(undecoded, 1);

        let cap = lock(&shared.capture);
        assert_eq!(cap.packets, 1_100);
        assert_eq!(cap.wire_bytes, wire);
        assert_eq!(cap.dns_messages, 1);
        assert_eq!(cap.decode_errors.total(), 1);
        assert_eq!(cap.first_ts, Some(Timestamp::from_micros(base)));
        assert_eq!(cap.last_ts, Timestamp::from_micros(base + 1_099_000));
    }

    /// A stop request ends the read before the file does.
    #[test]
    fn reader_stops_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.pcap");
        let mut w = PcapWriter::create(&path, LinkType::ETHERNET).unwrap();
        for i in 0..100i64 {
            let f = tcp_v4([10, 0, 0, 1], 40_000, [10, 0, 0, 2], 443, 0x10, &[]);
            w.write(Timestamp::from_micros(i), &f);
        }
        w.finish().unwrap();
        let (reader, shared) = replay_reader(path, true);
        let (tx, rx) = bounded::<IngestMsg>(8);
        let (_r, recycle_rx) = bounded::<IngestBatch>(8);
        reader.run(&tx, &recycle_rx);
        drop(tx);
        assert_eq!(rx.iter().count(), 0);
        assert_eq!(lock(&shared.capture).packets, 0);
    }
}
