//! Read-mostly intelligence: Tor exit lists and MaxMind GeoIP databases.
//!
//! * [`TorExitList`] reads both public list formats (one address a line, and
//!   Tor's `exit-addresses` document), IPv4 and IPv6. Bad lines go into a
//!   [`LoadReport`] with their line numbers; a file with no valid address,
//!   that is not UTF-8 text or that is over the size limit is an
//!   [`IntelError`].
//! * [`GeoIp`] answers country, city and autonomous system from optional
//!   City and ASN databases, degrading to "unknown" (never a panic) on
//!   addresses they do not know and on corrupt records.
//!
//! Both are loaded off the hot path into an immutable [`IntelSnapshot`]
//! that workers share behind an `Arc`; a reload (SIGHUP) builds a new
//! snapshot and swaps it in, so a broken new file is an error for the
//! caller to report while the good old snapshot stays in use.
//!
//! ```
//! use std::net::IpAddr;
//! use std::sync::Arc;
//! use tapsentry_intel::{GeoIp, IntelSnapshot, TorExitList, TorListFormat};
//!
//! let text = "# exits\n203.0.113.7\nExitAddress 198.51.100.9 2024-03-01 10:02:13\nbogus\n";
//! let (tor, report) = TorExitList::parse(text, "inline");
//! assert_eq!((report.entries, report.bad_total), (2, 1));
//! assert_eq!(report.bad_lines, [(4, "'bogus' is not an IP address".to_string())]);
//! assert_eq!(report.format, TorListFormat::Mixed);
//!
//! let snap = Arc::new(IntelSnapshot { tor, geo: GeoIp::none() });
//! let exit: IpAddr = "198.51.100.9".parse().unwrap();
//! assert!(snap.tor.contains(exit));
//! assert!(snap.geo.lookup(exit).is_none()); // no database configured
//! ```
//!
//! This crate does not download lists or databases, watch files, swap
//! snapshots, log, or decide what a listed address means: the sensor
//! reloads on SIGHUP and detectors interpret the answers.

mod geo;
mod tor;

pub use geo::{GeoIp, MAX_GEOIP_BYTES};
pub use tor::{LoadReport, TorExitList, TorListFormat, MAX_LIST_BYTES};

use std::path::PathBuf;

/// A failure to load intel; every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum IntelError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than the limit.
    #[error("{path}: {size} bytes is over the {limit}-byte limit for a Tor exit list")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The file is not UTF-8 text.
    #[error("{path}: not a text file (invalid UTF-8 at byte {offset})")]
    NotText {
        /// The file.
        path: PathBuf,
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// Lines were present but none held an address.
    #[error("{path}: no valid address in {lines} lines ({example})")]
    NoAddresses {
        /// The file.
        path: PathBuf,
        /// Non-comment lines seen.
        lines: usize,
        /// The first bad line and why.
        example: String,
    },
    /// A MaxMind database could not be opened or is corrupt.
    #[error("{path}: not a usable MaxMind database: {reason}")]
    GeoDb {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        reason: String,
    },
}

/// Everything detectors look up, as of one load. Immutable: share it as
/// `Arc<IntelSnapshot>` and replace the `Arc` to reload.
#[derive(Debug, Default)]
pub struct IntelSnapshot {
    /// Tor exit addresses.
    pub tor: TorExitList,
    /// GeoIP databases (possibly none).
    pub geo: GeoIp,
}

impl IntelSnapshot {
    /// No Tor list, no GeoIP.
    pub fn empty() -> IntelSnapshot {
        IntelSnapshot::default()
    }
}
