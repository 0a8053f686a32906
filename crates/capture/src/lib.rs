//! Frame sources for tapsentry: capture files and live interfaces.
//!
//! A [`FrameSource`] yields raw frames ([`Frame`]: capture time, length on the
//! wire, link type, borrowed bytes) one at a time. Two implementations:
//!
//! * [`FileSource`] replays pcap and pcapng files, several in a row as one
//!   capture. It is a pure-Rust streaming reader (on `pcap-parser`) with a
//!   fixed 1 MiB buffer, because libpcap refuses pcapng files whose interfaces
//!   have different link types. Damaged files never panic, allocate without
//!   bound or hang: whatever is readable is yielded, the damage is recorded in
//!   [`FileSource::file_errors`] and the next file is read.
//! * [`LiveSource`] captures on an interface through libpcap.
//!
//! ```no_run
//! use std::path::PathBuf;
//! use tapsentry_capture::{FileSource, FrameSource, Next};
//!
//! let mut src = FileSource::open(&[PathBuf::from("capture.pcapng")])?;
//! let mut bytes = 0u64;
//! loop {
//!     match src.next_frame()? {
//!         Next::Frame(frame) => bytes += u64::from(frame.wire_len),
//!         Next::Idle => continue,
//!         Next::End => break,
//!     }
//! }
//! for e in src.file_errors() {
//!     eprintln!("warning: {e}");
//! }
//! println!("{bytes} bytes on the wire");
//! # Ok::<(), tapsentry_capture::CaptureError>(())
//! ```
//!
//! This crate does not parse packets: it never looks past the link-layer
//! framing of the capture format, so it knows nothing of Ethernet, IP or
//! ports. Frames whose link type the decoder cannot handle
//! ([`is_supported_link_type`]) are skipped here, counted and reported once
//! per interface; everything else is handed on untouched.

mod error;
mod file;
mod live;
mod privileges;

pub use error::CaptureError;
pub use file::{FileSource, MAX_RECORD_LEN};
pub use live::{check_filter, interface_names, LiveSource, LiveSpec};
pub use privileges::drop_privileges;
pub use tapsentry_types::{Frame, LinkType, Timestamp};

use std::fmt;

/// What a [`FrameSource`] has for the caller next.
#[derive(Debug)]
pub enum Next<'a> {
    /// One frame, borrowing the source's buffer until the next call.
    Frame(Frame<'a>),
    /// A live read timed out with nothing to deliver; call again.
    Idle,
    /// The source is exhausted (end of the last file).
    End,
}

/// A source of raw frames.
pub trait FrameSource: Send {
    /// The next frame, [`Next::Idle`] when a live read timed out, or
    /// [`Next::End`]. Errors are fatal for the source (a file source records
    /// per-file damage in its file errors instead of returning it here).
    fn next_frame(&mut self) -> Result<Next<'_>, CaptureError>;
    /// Kernel packet counters; `None` for file sources.
    fn kernel_stats(&mut self) -> Option<KernelStats>;
    /// Warnings raised since the last call (the list is drained).
    fn warnings(&mut self) -> Vec<CaptureWarning>;
    /// Frames skipped so far because their link type is not supported.
    fn skipped_frames(&self) -> u64;
}

/// Kernel capture counters of a live source, as libpcap reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelStats {
    /// Packets the kernel handed to the capture.
    pub received: u64,
    /// Packets dropped because the capture buffer was full.
    pub dropped: u64,
    /// Packets dropped by the interface or its driver.
    pub if_dropped: u64,
}

/// Something worth telling the operator that does not stop the source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaptureWarning {
    /// Frames on this interface have a link type the decoder does not
    /// handle; they are skipped and counted. Raised once per file and
    /// interface (once per live interface).
    UnsupportedLinkType {
        /// The file path or the interface name.
        source: String,
        /// pcapng interface index (0 for pcap files and live interfaces).
        interface: u32,
        /// The link type.
        link: LinkType,
    },
    /// Reading a file stopped early or the file was skipped; the error is
    /// also in [`FileSource::file_errors`].
    FileError {
        /// The error message (it names the file).
        message: String,
    },
}

impl fmt::Display for CaptureWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureWarning::UnsupportedLinkType {
                source,
                interface,
                link,
            } => write!(
                f,
                "{source}: interface {interface} has unsupported link type {}; its frames are skipped",
                link.0
            ),
            CaptureWarning::FileError { message } => write!(f, "{message}"),
        }
    }
}

/// True for the link types the decoder handles: NULL (0), Ethernet (1),
/// PPP (9), raw IP (12, 14, 101), LOOP (108), Linux SLL (113), raw IPv4
/// (228), raw IPv6 (229) and Linux SLL2 (276).
pub fn is_supported_link_type(lt: LinkType) -> bool {
    LinkType::DECODED.contains(&lt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_link_types() {
        for lt in [0, 1, 9, 12, 14, 101, 108, 113, 228, 229, 276] {
            assert!(is_supported_link_type(LinkType(lt)), "{lt}");
        }
        for lt in [2, 8, 105, 127, 195, 274, 281, 65000] {
            assert!(!is_supported_link_type(LinkType(lt)), "{lt}");
        }
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    /// libpcap's own compiler decides: good filters pass, a typo and an
    /// unknown protocol name fail with libpcap's message and the filter.
    #[test]
    fn filters_compile_against_a_dead_handle() {
        for good in ["tcp port 22", "not (udp and port 53)", "vlan and ip6"] {
            check_filter("eth1", good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in ["tcp prot 22", "port 70000", "ip and (", "frobnicate"] {
            let e = check_filter("eth1", bad).expect_err(bad).to_string();
            assert!(e.contains("invalid BPF filter") && e.contains(bad), "{e}");
        }
    }

    /// The loopback interface exists on every Linux machine, and a made-up
    /// name is not listed.
    #[test]
    fn interfaces_are_listed() {
        let names = interface_names().unwrap();
        assert!(names.iter().any(|n| n == "lo"), "{names:?}");
        assert!(!names.iter().any(|n| n == "tapsentry-no-such0"));
    }
}
