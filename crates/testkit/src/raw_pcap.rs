//! Capture files as bytes, for what [`PcapWriter`](crate::PcapWriter)
//! (libpcap's dumper) cannot write or cannot write fast enough: classic
//! pcap in nanoseconds or big-endian with records of chosen lengths and
//! fractions ([`PcapFormat`]), pcapng with several sections, resolutions
//! and block kinds ([`Pcapng`]), and the bench generators that write
//! millions of records through a `BufWriter`.
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

/// A pcapng file built block by block, in the byte order of the current
/// section: section headers, interfaces with their time resolution and
/// offset options, enhanced, simple and obsolete packet blocks, and
/// blocks of unknown type.
///
/// ```
/// use tapsentry_testkit::raw_pcap::Pcapng;
///
/// let mut ng = Pcapng::new();
/// ng.shb(false)
///     .idb(1, Some(9), None) // Ethernet, nanoseconds
///     .epb(0, 1_700_000_000_123_456_789, b"frame", 60);
/// assert_eq!(ng.bytes[..4], [0x0a, 0x0d, 0x0d, 0x0a]);
/// ```
#[derive(Debug, Clone, Default)]
pub struct Pcapng {
    /// The file so far; tests may append damaged blocks by hand.
    pub bytes: Vec<u8>,
    be: bool,
}

impl Pcapng {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    fn u16(&mut self, v: u16) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }

    fn u32(&mut self, v: u32) {
        let b = if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.bytes.extend_from_slice(&b);
    }

    /// A block: type, total length, the body padded to 32 bits, the total
    /// length again.
    fn block(&mut self, block_type: u32, body: &[u8]) {
        let padded = body.len().div_ceil(4) * 4;
        let total = (12 + padded) as u32;
        self.u32(block_type);
        self.u32(total);
        self.bytes.extend_from_slice(body);
        self.bytes.resize(self.bytes.len() + padded - body.len(), 0);
        self.u32(total);
    }

    fn body(&self, f: impl FnOnce(&mut Pcapng)) -> Vec<u8> {
        let mut b = Pcapng {
            bytes: Vec::new(),
            be: self.be,
        };
        f(&mut b);
        b.bytes
    }

    /// A section header block (version 1.0, length unknown) opening a
    /// section in big-endian (`be`) or little-endian byte order.
    pub fn shb(&mut self, be: bool) -> &mut Self {
        self.be = be;
        let body = self.body(|b| {
            b.u32(0x1a2b_3c4d);
            b.u16(1);
            b.u16(0);
            b.bytes.extend_from_slice(&[0xff; 8]);
        });
        self.block(0x0a0d_0d0a, &body);
        self
    }

    /// An interface description block of link type `link`, snap length
    /// 262144, with optional if_tsresol and if_tsoffset options.
    pub fn idb(&mut self, link: u16, tsresol: Option<u8>, tsoffset: Option<i64>) -> &mut Self {
        let be = self.be;
        let body = self.body(|b| {
            b.u16(link);
            b.u16(0);
            b.u32(262_144);
            if let Some(r) = tsresol {
                b.u16(9);
                b.u16(1);
                b.bytes.extend_from_slice(&[r, 0, 0, 0]);
            }
            if let Some(o) = tsoffset {
                b.u16(14);
                b.u16(8);
                b.bytes
                    .extend_from_slice(&if be { o.to_be_bytes() } else { o.to_le_bytes() });
            }
            b.u16(0);
            b.u16(0);
        });
        self.block(1, &body);
        self
    }

    /// An enhanced packet block on interface `if_id` at `ts` units of that
    /// interface's resolution, `data` captured of `orig` bytes.
    pub fn epb(&mut self, if_id: u32, ts: u64, data: &[u8], orig: u32) -> &mut Self {
        let body = self.body(|b| {
            b.u32(if_id);
            b.u32((ts >> 32) as u32);
            b.u32(ts as u32);
            b.u32(data.len() as u32);
            b.u32(orig);
            b.bytes.extend_from_slice(data);
            b.bytes.resize(b.bytes.len().div_ceil(4) * 4, 0);
        });
        self.block(6, &body);
        self
    }

    /// A simple packet block (interface 0, no timestamp) of `orig` bytes.
    pub fn spb(&mut self, data: &[u8], orig: u32) -> &mut Self {
        let body = self.body(|b| {
            b.u32(orig);
            b.bytes.extend_from_slice(data);
        });
        self.block(3, &body);
        self
    }

    /// The obsolete packet block (type 2).
    pub fn pb(&mut self, if_id: u16, ts: u64, data: &[u8], orig: u32) -> &mut Self {
        let body = self.body(|b| {
            b.u16(if_id);
            b.u16(0);
            b.u32((ts >> 32) as u32);
            b.u32(ts as u32);
            b.u32(data.len() as u32);
            b.u32(orig);
            b.bytes.extend_from_slice(data);
        });
        self.block(2, &body);
        self
    }

    /// A block type nobody knows, which readers skip.
    pub fn unknown(&mut self) -> &mut Self {
        self.block(0x0bad_0001, &[1, 2, 3, 4, 5]);
        self
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

    #[test]
    fn pcapng_blocks_are_framed_and_padded() {
        let mut ng = Pcapng::new();
        ng.shb(true).spb(b"abcde", 5);
        // Section header: type, length 28, BOM in the section's order.
        assert_eq!(
            ng.bytes[..12],
            [0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28, 0x1a, 0x2b, 0x3c, 0x4d]
        );
        assert_eq!(ng.bytes[24..28], [0, 0, 0, 28]);
        // Simple packet block: 4-byte length + 5 bytes padded to 8, framed.
        let spb = &ng.bytes[28..];
        assert_eq!(spb.len(), 24);
        assert_eq!(spb[..8], [0, 0, 0, 3, 0, 0, 0, 24]);
        assert_eq!(spb[12..20], *b"abcde\0\0\0");
        assert_eq!(spb[20..], [0, 0, 0, 24]);
    }
}
