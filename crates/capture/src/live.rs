use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use pcap::{Active, Capture};
use tapsentry_types::{Frame, LinkType, Timestamp};

use crate::{is_supported_link_type, CaptureError, CaptureWarning, FrameSource, KernelStats, Next};

/// How to open a live capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveSpec {
    /// Interface name, e.g. `eth1`.
    pub interface: String,
    /// Put the interface in promiscuous mode (needed on a SPAN port).
    pub promiscuous: bool,
    /// Bytes captured per frame.
    pub snaplen: u32,
    /// Kernel capture buffer size in bytes.
    pub buffer_size_bytes: u32,
    /// How long one read waits before returning [`Next::Idle`]; 0 waits
    /// until a packet arrives. Also libpcap's batching timeout.
    pub read_timeout_ms: u32,
    /// A BPF filter expression applied in the kernel.
    pub bpf_filter: Option<String>,
    /// Deliver packets as they arrive instead of in batches.
    pub immediate: bool,
}

impl LiveSpec {
    /// Defaults for a sensor on a SPAN port: promiscuous, 256 KiB snap
    /// length, 64 MiB buffer, 100 ms read timeout, no filter.
    pub fn new(interface: impl Into<String>) -> Self {
        LiveSpec {
            interface: interface.into(),
            promiscuous: true,
            snaplen: 262_144,
            buffer_size_bytes: 64 << 20,
            read_timeout_ms: 100,
            bpf_filter: None,
            immediate: false,
        }
    }
}

/// Live capture on one interface through libpcap.
///
/// An interface whose link type the decoder does not handle still opens:
/// one warning is raised and every frame is skipped and counted.
///
/// The handle is non-blocking and waits in `poll(2)`: libpcap's own read
/// timeout does not expire on Linux (TPACKET_V3) while no packet at all
/// arrives, and [`Next::Idle`] must come back on a silent link too.
pub struct LiveSource {
    interface: String,
    cap: Capture<Active>,
    /// A duplicate of the capture descriptor, so waiting on it does not
    /// borrow `cap`.
    wait_fd: OwnedFd,
    wait: PollTimeout,
    link: LinkType,
    supported: bool,
    warnings: Vec<CaptureWarning>,
    skipped: u64,
}

fn to_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// libpcap reports causes only as text (the status code is lost in the
/// `pcap` crate), so the kind is recognised from the message.
fn open_error(interface: &str, e: &pcap::Error) -> CaptureError {
    let detail = e.to_string();
    let lower = detail.to_ascii_lowercase();
    let interface = interface.to_string();
    if lower.contains("permission") || lower.contains("not permitted") {
        CaptureError::Permission { interface, detail }
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        CaptureError::NoSuchInterface { interface, detail }
    } else {
        CaptureError::LiveOpen { interface, detail }
    }
}

impl LiveSource {
    /// Opens and activates the capture and applies the filter. Errors name
    /// the interface and say when the cause is missing privileges.
    pub fn open(spec: &LiveSpec) -> Result<Self, CaptureError> {
        let iface = spec.interface.as_str();
        if iface.is_empty() {
            return Err(CaptureError::NoSuchInterface {
                interface: String::new(),
                detail: "empty interface name".into(),
            });
        }
        let mut cap = Capture::from_device(iface)
            .map_err(|e| open_error(iface, &e))?
            .promisc(spec.promiscuous)
            .snaplen(to_i32(spec.snaplen))
            .buffer_size(to_i32(spec.buffer_size_bytes))
            .timeout(to_i32(spec.read_timeout_ms))
            .immediate_mode(spec.immediate)
            .open()
            .and_then(Capture::setnonblock)
            .map_err(|e| open_error(iface, &e))?;
        if let Some(filter) = &spec.bpf_filter {
            cap.filter(filter, true)
                .map_err(|e| CaptureError::BadFilter {
                    interface: iface.to_string(),
                    filter: filter.clone(),
                    detail: e.to_string(),
                })?;
        }
        let link = LinkType(cap.get_datalink().0 as u32);
        let supported = is_supported_link_type(link);
        let mut warnings = Vec::new();
        if !supported {
            warnings.push(CaptureWarning::UnsupportedLinkType {
                source: iface.to_string(),
                interface: 0,
                link,
            });
        }
        let wait_fd = cap
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| CaptureError::LiveOpen {
                interface: iface.to_string(),
                detail: format!("cannot duplicate the capture descriptor: {e}"),
            })?;
        let wait = if spec.read_timeout_ms == 0 {
            PollTimeout::NONE
        } else {
            PollTimeout::try_from(spec.read_timeout_ms).unwrap_or(PollTimeout::MAX)
        };
        Ok(LiveSource {
            interface: iface.to_string(),
            cap,
            wait_fd,
            wait,
            link,
            supported,
            warnings,
            skipped: 0,
        })
    }

    /// The interface's link type.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// The interface name.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Frames skipped because the link type is not supported.
    pub fn skipped_unsupported_frames(&self) -> u64 {
        self.skipped
    }

    /// Waits until the descriptor is readable or the timeout passes. A
    /// signal ends the wait early, so the caller sees its stop flag at once.
    fn wait(fd: &OwnedFd, timeout: PollTimeout, interface: &str) -> Result<(), CaptureError> {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(CaptureError::Live {
                interface: interface.to_string(),
                detail: format!("poll: {e}"),
            }),
        }
    }

    fn read_error(interface: &str, e: &pcap::Error) -> CaptureError {
        CaptureError::Live {
            interface: interface.to_string(),
            detail: e.to_string(),
        }
    }
}

impl FrameSource for LiveSource {
    fn next_frame(&mut self) -> Result<Next<'_>, CaptureError> {
        if !self.supported {
            // Bounded, so a busy interface of the wrong type still lets the
            // caller look at its stop flag between reads.
            for _ in 0..64 {
                match self.cap.next_packet() {
                    Ok(_) => self.skipped += 1,
                    Err(pcap::Error::TimeoutExpired) => {
                        Self::wait(&self.wait_fd, self.wait, &self.interface)?;
                        return Ok(Next::Idle);
                    }
                    Err(pcap::Error::NoMorePackets) => return Ok(Next::End),
                    Err(e) => return Err(Self::read_error(&self.interface, &e)),
                }
            }
            return Ok(Next::Idle);
        }
        let link = self.link;
        let (interface, wait_fd, wait) = (&self.interface, &self.wait_fd, self.wait);
        // Idle is returned after the wait even when it ended because data
        // arrived: reading again here would have to borrow `cap` twice.
        match self.cap.next_packet() {
            Ok(p) => {
                #[allow(
                    clippy::unnecessary_cast,
                    reason = "time_t and suseconds_t vary by platform"
                )]
                let micros = (p.header.ts.tv_sec as i64)
                    .saturating_mul(1_000_000)
                    .saturating_add(p.header.ts.tv_usec as i64);
                let caplen = u32::try_from(p.data.len()).unwrap_or(u32::MAX);
                Ok(Next::Frame(Frame {
                    ts: Timestamp::from_micros(micros),
                    wire_len: p.header.len.max(caplen),
                    link,
                    data: p.data,
                }))
            }
            Err(pcap::Error::TimeoutExpired) => {
                Self::wait(wait_fd, wait, interface)?;
                Ok(Next::Idle)
            }
            Err(pcap::Error::NoMorePackets) => Ok(Next::End),
            Err(e) => Err(Self::read_error(interface, &e)),
        }
    }

    fn kernel_stats(&mut self) -> Option<KernelStats> {
        self.cap.stats().ok().map(|s| KernelStats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        })
    }

    fn skipped_frames(&self) -> u64 {
        self.skipped_unsupported_frames()
    }

    fn warnings(&mut self) -> Vec<CaptureWarning> {
        std::mem::take(&mut self.warnings)
    }
}

/// Compiles `filter` as `tapsentry run` would apply it on an Ethernet
/// interface, without opening one: `check-config` finds a filter that does
/// not compile while nothing is running (and without capture rights).
/// libpcap compiles against a dead handle of the link type; a filter naming
/// another link type's fields fails here as it would on a live Ethernet
/// port, which is what a SPAN port is.
pub fn check_filter(interface: &str, filter: &str) -> Result<(), CaptureError> {
    let bad = |e: pcap::Error| CaptureError::BadFilter {
        interface: interface.to_string(),
        filter: filter.to_string(),
        detail: e.to_string(),
    };
    let dead = Capture::dead(pcap::Linktype::ETHERNET).map_err(bad)?;
    dead.compile(filter, true).map(drop).map_err(bad)
}

/// The names of the interfaces libpcap can capture on (what `run` could
/// open), for `check-config`'s host checks. Listing needs no capture rights.
pub fn interface_names() -> Result<Vec<String>, CaptureError> {
    pcap::Device::list()
        .map(|devs| devs.into_iter().map(|d| d.name).collect())
        .map_err(|e| CaptureError::LiveOpen {
            interface: "(listing interfaces)".into(),
            detail: e.to_string(),
        })
}
