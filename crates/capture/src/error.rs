use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while opening or reading a frame source.
///
/// Each variant names the file, interface or user at fault, so the message
/// alone is enough for the one-line error the CLI prints before exiting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The file does not exist, is a directory or cannot be read.
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// An I/O error while reading a file that opened fine.
    #[error("{}: read error after {packets} packets: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Records read before the error.
        packets: u64,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The first bytes are not a pcap or pcapng magic number.
    #[error("{}: not a pcap or pcapng file (magic 0x{magic:08x}){hint}", path.display())]
    NotCapture {
        /// The file.
        path: PathBuf,
        /// The first four bytes, in file order.
        magic: u32,
        /// Extra advice, e.g. that the file is gzip-compressed (may be empty).
        hint: &'static str,
    },
    /// The file is shorter than any capture header.
    #[error("{}: not a pcap or pcapng file (only {len} bytes)", path.display())]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its length in bytes.
        len: u64,
    },
    /// The file header (pcap global header or first pcapng section header)
    /// is cut short or invalid.
    #[error("{}: bad capture file header: {detail}", path.display())]
    BadHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The file ends in the middle of a record; every complete record before
    /// the cut was yielded.
    #[error("{}: truncated: cut mid-record after {packets} packets", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Records read before the cut.
        packets: u64,
    },
    /// A record or block claims a length beyond the reader's limit; reading
    /// that file stops there (no allocation of the claimed size is made).
    #[error(
        "{}: record too large: {len} bytes claimed after {packets} packets (limit {limit})",
        path.display()
    )]
    RecordTooLarge {
        /// The file.
        path: PathBuf,
        /// Records read before the bad one.
        packets: u64,
        /// The length the record claims.
        len: u64,
        /// The largest length accepted.
        limit: u64,
    },
    /// A record or block is internally inconsistent; reading that file stops.
    #[error("{}: corrupt after {packets} packets: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Records read before the bad one.
        packets: u64,
        /// What is wrong.
        detail: String,
    },
    /// The reader stopped making progress (a guard against hanging forever
    /// on input the parser can neither accept nor reject).
    #[error("{}: reader made no progress after {packets} packets", path.display())]
    Stalled {
        /// The file.
        path: PathBuf,
        /// Records read before the reader stalled.
        packets: u64,
    },
    /// The interface does not exist.
    #[error("{interface}: no such interface ({detail})")]
    NoSuchInterface {
        /// The interface name as given.
        interface: String,
        /// libpcap's message.
        detail: String,
    },
    /// Capturing on the interface was refused by the operating system.
    #[error("{interface}: permission denied: capturing needs root or CAP_NET_RAW ({detail})")]
    Permission {
        /// The interface name as given.
        interface: String,
        /// libpcap's message.
        detail: String,
    },
    /// libpcap could not open or configure the interface for another reason.
    #[error("{interface}: cannot open for capture: {detail}")]
    LiveOpen {
        /// The interface name as given.
        interface: String,
        /// libpcap's message.
        detail: String,
    },
    /// The BPF filter does not compile.
    #[error("{interface}: invalid BPF filter {filter:?}: {detail}")]
    BadFilter {
        /// The interface name as given.
        interface: String,
        /// The filter expression.
        filter: String,
        /// libpcap's message.
        detail: String,
    },
    /// A read error on a live capture.
    #[error("{interface}: capture error: {detail}")]
    Live {
        /// The interface name as given.
        interface: String,
        /// libpcap's message.
        detail: String,
    },
    /// Giving up root failed, or the process is still root afterwards.
    #[error("cannot drop privileges to user {user:?}: {detail}")]
    Privileges {
        /// The user to switch to.
        user: String,
        /// What failed.
        detail: String,
    },
}
