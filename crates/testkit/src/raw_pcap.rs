//! Classic pcap headers as bytes, for what [`PcapWriter`](crate::PcapWriter)
//! (libpcap's dumper) cannot write or cannot write fast enough: nanosecond
//! or big-endian files, records with chosen lengths and fractions, and the
//! bench generators that write millions of records through a `BufWriter`.
//!
//! ```
//! use tapsentry_testkit::raw_pcap::PcapFormat;
//! use tapsentry_types::LinkType;
//!
//! // A little-endian nanosecond file of raw IP with one 3-byte record.
//! let f = PcapFormat::micros(LinkType::RAW).nanos();
//! let mut file = f.file_header().to_vec();
//! file.extend_from_slice(&f.record_header(1_700_000_000, 999_999_999, 3, 40));
//! file.extend_from_slice(b"abc");
//! assert_eq!(file[..4], [0x4d, 0x3c, 0xb2, 0xa1]);
//! assert_eq!(file.len(), 24 + 16 + 3);
//! ```

use tapsentry_types::LinkType;

/// Magic of a microsecond file, written in the file's byte order.
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// Magic of a nanosecond file.
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

/// How a classic pcap file is laid out: byte order, timestamp resolution,
/// link type and snap length. Version 2.4, no time zone or accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapFormat {
    /// Multi-byte fields big-endian (as a big-endian host writes them).
    pub big_endian: bool,
    /// Record fractions in nanoseconds rather than microseconds.
    pub nanos: bool,
    /// The link type of every record.
    pub link: LinkType,
    /// The snap length stated in the file header.
    pub snaplen: u32,
}

impl PcapFormat {
    /// Little-endian, microseconds, snap length 65535: what libpcap writes
    /// on the machines these tests run on.
    pub const fn micros(link: LinkType) -> Self {
        PcapFormat {
            big_endian: false,
            nanos: false,
            link,
            snaplen: 65_535,
        }
    }

    /// The same with nanosecond fractions.
    pub const fn nanos(self) -> Self {
        PcapFormat {
            nanos: true,
            ..self
        }
    }

    /// The same in big-endian byte order.
    pub const fn big_endian(self) -> Self {
        PcapFormat {
            big_endian: true,
            ..self
        }
    }

    fn u16(&self, v: u16) -> [u8; 2] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    fn u32(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// The 24-byte file header.
    pub fn file_header(&self) -> [u8; 24] {
        let mut h = [0u8; 24];
        let magic = if self.nanos {
            MAGIC_NANOS
        } else {
            MAGIC_MICROS
        };
        h[0..4].copy_from_slice(&self.u32(magic));
        h[4..6].copy_from_slice(&self.u16(2));
        h[6..8].copy_from_slice(&self.u16(4));
        h[16..20].copy_from_slice(&self.u32(self.snaplen));
        h[20..24].copy_from_slice(&self.u32(self.link.0));
        h
    }

    /// A 16-byte record header: seconds, the fraction in the file's
    /// resolution (given as is, so out-of-range fractions can be written),
    /// captured and wire lengths.
    pub fn record_header(&self, secs: u32, frac: u32, caplen: u32, wire_len: u32) -> [u8; 16] {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&self.u32(secs));
        h[4..8].copy_from_slice(&self.u32(frac));
        h[8..12].copy_from_slice(&self.u32(caplen));
        h[12..16].copy_from_slice(&self.u32(wire_len));
        h
    }

    /// A record header for a frame captured whole at `ts_micros`
    /// (microseconds since the Unix epoch, before 2106).
    pub fn record_header_at(&self, ts_micros: i64, len: usize) -> [u8; 16] {
        let secs = ts_micros.div_euclid(1_000_000) as u32;
        let micros = ts_micros.rem_euclid(1_000_000) as u32;
        let frac = if self.nanos { micros * 1_000 } else { micros };
        let len = u32::try_from(len).unwrap_or(u32::MAX);
        self.record_header(secs, frac, len, len)
    }

    /// A whole file: the header, then each frame captured whole at its
    /// time (microseconds since the Unix epoch).
    pub fn file(&self, frames: &[(i64, &[u8])]) -> Vec<u8> {
        let mut out = self.file_header().to_vec();
        for (ts, frame) in frames {
            out.extend_from_slice(&self.record_header_at(*ts, frame.len()));
            out.extend_from_slice(frame);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_micros_header() {
        let h = PcapFormat::micros(LinkType::ETHERNET).file_header();
        let mut want = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&[0xff, 0xff, 0, 0, 1, 0, 0, 0]);
        assert_eq!(h[..], want[..]);
    }

    #[test]
    fn big_endian_nanos_header_and_record() {
        let f = PcapFormat::micros(LinkType::RAW).nanos().big_endian();
        let h = f.file_header();
        assert_eq!(h[..8], [0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4]);
        assert_eq!(h[20..], [0, 0, 0, 101]);
        let r = f.record_header_at(1_500_001, 60);
        assert_eq!(
            r,
            [0, 0, 0, 1, 0x1d, 0xcd, 0x68, 0xe8, 0, 0, 0, 60, 0, 0, 0, 60]
        );
    }

    #[test]
    fn whole_file() {
        let f = PcapFormat::micros(LinkType::ETHERNET);
        let file = f.file(&[(2_000_003, b"ab"), (3_000_000, b"")]);
        assert_eq!(file.len(), 24 + 16 + 2 + 16);
        assert_eq!(file[24..40], f.record_header(2, 3, 2, 2));
        assert_eq!(file[40..42], *b"ab");
    }
}
