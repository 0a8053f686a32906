//! A generated week as the sensor's frame source, so a week runs through
//! the whole pipeline in-process without writing a capture (a week of a
//! 60-host office is 6.9 GB of pcap). Shared by the integration tests and
//! the `week-replay` example.

use tapsentry_capture::{CaptureError, CaptureWarning, FrameSource, KernelStats, Next};
use tapsentry_testkit::week::Week;
use tapsentry_types::{Frame, LinkType, Timestamp};

/// The week's frames, in capture-time order, as Ethernet frames.
pub struct WeekSource {
    week: Week,
    buf: Vec<u8>,
}

impl WeekSource {
    /// Frames of `week` from where it stands.
    pub fn new(week: Week) -> WeekSource {
        WeekSource {
            week,
            buf: Vec::with_capacity(2048),
        }
    }
}

impl FrameSource for WeekSource {
    fn next_frame(&mut self) -> Result<Next<'_>, CaptureError> {
        Ok(match self.week.next_into(&mut self.buf) {
            Some((ts, wire_len)) => Next::Frame(Frame {
                ts: Timestamp::from_micros(ts),
                wire_len,
                link: LinkType::ETHERNET,
                data: &self.buf,
            }),
            None => Next::End,
        })
    }

    fn kernel_stats(&mut self) -> Option<KernelStats> {
        None
    }

    fn warnings(&mut self) -> Vec<CaptureWarning> {
        Vec::new()
    }

    fn skipped_frames(&self) -> u64 {
        0
    }
}
