//! [`ResilientLive`]: a live capture that outlives its interface going down
//! or disappearing.

use std::time::Duration;

use crate::{CaptureError, CaptureWarning, FrameSource, KernelStats, LiveSource, LiveSpec, Next};

/// First wait before reopening a lost interface; doubled after each failed
/// attempt up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts to reopen.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What happened to the interface, for the stats record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterfaceOutages {
    /// Times the capture was lost (a read failed: the interface went down
    /// or disappeared).
    pub outages: u64,
    /// Attempts to open it again.
    pub reopen_attempts: u64,
    /// Attempts that worked.
    pub reopened: u64,
    /// True while the capture is lost.
    pub down: bool,
}

/// A [`LiveSource`] that, when a read fails (the interface went down, was
/// deleted, its driver reset), closes the handle and opens the interface
/// again, with a backoff doubling from [`FIRST_BACKOFF`] to [`MAX_BACKOFF`],
/// returning [`Next::Idle`] meanwhile so the pipeline keeps ticking and
/// stopping. The loss and the return are one warning each; the counts are
/// in [`ResilientLive::outages`]. Kernel counters add up across handles.
///
/// Reopening needs what opening needed (CAP_NET_RAW): after
/// `drop_privileges` to a user without it, a lost interface cannot be
/// reopened, and the warning says so each outage.
pub struct ResilientLive {
    spec: LiveSpec,
    source: Option<LiveSource>,
    /// A read error met on the last call, acted on at the next.
    failed: Option<CaptureError>,
    /// Waiting left before the next attempt.
    wait: Duration,
    backoff: Duration,
    /// An outage not yet ended by a frame (a reopened handle may fail
    /// again at once, e.g. on an interface still down).
    in_outage: bool,
    counts: InterfaceOutages,
    /// Kernel counters of handles already closed.
    kernel_base: KernelStats,
    warnings: Vec<CaptureWarning>,
    skipped_base: u64,
}

impl ResilientLive {
    /// Wraps an open source; `spec` is what reopening uses.
    pub fn new(source: LiveSource, spec: LiveSpec) -> ResilientLive {
        ResilientLive {
            spec,
            source: Some(source),
            failed: None,
            wait: Duration::ZERO,
            backoff: FIRST_BACKOFF,
            in_outage: false,
            counts: InterfaceOutages::default(),
            kernel_base: KernelStats::default(),
            warnings: Vec::new(),
            skipped_base: 0,
        }
    }

    /// The outage counters so far.
    pub fn outages(&self) -> InterfaceOutages {
        InterfaceOutages {
            down: self.source.is_none(),
            ..self.counts
        }
    }

    /// Closes the failed handle, keeping its counters.
    fn lose(&mut self, e: &CaptureError) {
        if let Some(mut s) = self.source.take() {
            if let Some(k) = s.kernel_stats() {
                self.kernel_base = add(self.kernel_base, k);
            }
            self.skipped_base += s.skipped_unsupported_frames();
            self.warnings.append(&mut s.warnings());
        }
        if !self.in_outage {
            self.in_outage = true;
            self.counts.outages += 1;
            self.backoff = FIRST_BACKOFF;
            self.warnings.push(CaptureWarning::InterfaceLost {
                interface: self.spec.interface.clone(),
                detail: e.to_string(),
            });
        }
        self.wait = self.backoff;
    }

    /// One attempt to open the interface again.
    fn reopen(&mut self) {
        self.counts.reopen_attempts += 1;
        match LiveSource::open(&self.spec) {
            Ok(s) => {
                self.counts.reopened += 1;
                self.source = Some(s);
            }
            Err(e) => {
                if self.counts.reopen_attempts == 1
                    || matches!(e, CaptureError::Permission { .. }) && self.backoff == FIRST_BACKOFF
                {
                    self.warnings.push(CaptureWarning::InterfaceLost {
                        interface: self.spec.interface.clone(),
                        detail: format!("reopening failed: {e}; retrying"),
                    });
                }
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                self.wait = self.backoff;
            }
        }
    }
}

fn add(a: KernelStats, b: KernelStats) -> KernelStats {
    KernelStats {
        received: a.received.saturating_add(b.received),
        dropped: a.dropped.saturating_add(b.dropped),
        if_dropped: a.if_dropped.saturating_add(b.if_dropped),
    }
}

impl FrameSource for ResilientLive {
    fn next_frame(&mut self) -> Result<Next<'_>, CaptureError> {
        if let Some(e) = self.failed.take() {
            self.lose(&e);
        }
        if self.source.is_none() {
            // Sleep in slices of the read timeout, so a stop request is
            // seen as quickly as on a quiet link.
            let slice = Duration::from_millis(u64::from(self.spec.read_timeout_ms.max(10)));
            let step = slice.min(self.wait);
            std::thread::sleep(step);
            self.wait = self.wait.saturating_sub(step);
            if self.wait.is_zero() {
                self.reopen();
            }
            return Ok(Next::Idle);
        }
        let Some(source) = self.source.as_mut() else {
            return Ok(Next::Idle);
        };
        match source.next_frame() {
            Ok(Next::Frame(f)) => {
                if self.in_outage {
                    self.in_outage = false;
                    self.warnings.push(CaptureWarning::InterfaceBack {
                        interface: self.spec.interface.clone(),
                        attempts: self.counts.reopen_attempts,
                    });
                }
                Ok(Next::Frame(f))
            }
            Ok(other) => Ok(other),
            Err(e) => {
                // Acted on at the next call: the handle cannot be dropped
                // while this call's borrow of it may be returned.
                self.failed = Some(e);
                Ok(Next::Idle)
            }
        }
    }

    fn kernel_stats(&mut self) -> Option<KernelStats> {
        let now = self.source.as_mut().and_then(FrameSource::kernel_stats);
        Some(add(self.kernel_base, now.unwrap_or_default()))
    }

    fn warnings(&mut self) -> Vec<CaptureWarning> {
        if let Some(s) = self.source.as_mut() {
            self.warnings.append(&mut s.warnings());
        }
        std::mem::take(&mut self.warnings)
    }

    fn skipped_frames(&self) -> u64 {
        self.skipped_base
            + self
                .source
                .as_ref()
                .map_or(0, LiveSource::skipped_unsupported_frames)
    }

    fn interface_outages(&self) -> Option<InterfaceOutages> {
        Some(self.outages())
    }
}
