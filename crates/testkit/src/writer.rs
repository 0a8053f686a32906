use std::path::Path;

use pcap::{Capture, Dead, Linktype, Packet, PacketHeader, Savefile};
use tapsentry_types::{LinkType, Timestamp};

/// Writes a classic microsecond pcap file through libpcap's savefile code,
/// so the files tests read are the files real tools write.
pub struct PcapWriter {
    file: Savefile,
    // The handle the dumper was opened from; kept for the dumper's lifetime.
    _dead: Capture<Dead>,
}

impl PcapWriter {
    /// Creates (or truncates) `path` with the given link type.
    ///
    /// libpcap takes the platform's DLT value and writes the matching
    /// LINKTYPE into the file; they differ only for raw IP here, so
    /// [`LinkType::RAW`] (101) is handed over as DLT_RAW. Link types 12 and
    /// 14 are written as libpcap maps them (101 on Linux).
    pub fn create(path: &Path, link: LinkType) -> Result<Self, pcap::Error> {
        let dlt = if link == LinkType::RAW { 12 } else { link.0 };
        let lt = i32::try_from(dlt).map_err(|_| pcap::Error::InvalidLinktype)?;
        let dead = Capture::dead(Linktype(lt))?;
        let file = dead.savefile(path)?;
        Ok(PcapWriter { file, _dead: dead })
    }

    /// Appends one frame, captured whole.
    pub fn write(&mut self, ts: Timestamp, frame: &[u8]) {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        self.write_with_wire_len(ts, frame, len);
    }

    /// Appends one frame that was `wire_len` bytes on the wire, of which
    /// `frame` was captured (a snap-length cut when shorter).
    pub fn write_with_wire_len(&mut self, ts: Timestamp, frame: &[u8], wire_len: u32) {
        let micros = ts.micros();
        let header = PacketHeader {
            ts: libc::timeval {
                tv_sec: micros.div_euclid(1_000_000) as libc::time_t,
                tv_usec: micros.rem_euclid(1_000_000) as libc::suseconds_t,
            },
            caplen: u32::try_from(frame.len()).unwrap_or(u32::MAX),
            len: wire_len,
        };
        self.file.write(&Packet::new(&header, frame));
    }

    /// Flushes and closes the file.
    pub fn finish(mut self) -> Result<(), pcap::Error> {
        self.file.flush()
    }
}

/// Writes `frames` to a new pcap file at `path`.
pub fn write_pcap(
    path: &Path,
    link: LinkType,
    frames: &[(Timestamp, Vec<u8>)],
) -> Result<(), pcap::Error> {
    let mut w = PcapWriter::create(path, link)?;
    for (ts, frame) in frames {
        w.write(*ts, frame);
    }
    w.finish()
}
