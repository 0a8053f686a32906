//! Capture files built byte by byte (testkit's `raw_pcap`) for what the
//! corpus lacks: pcapng with big-endian sections, several sections,
//! power-of-two and nanosecond resolutions, if_tsoffset, Simple Packet
//! Blocks and the obsolete Packet Block; a nanosecond classic pcap.

use tapsentry_capture::LinkType;
use tapsentry_testkit::raw_pcap::{PcapFormat, Pcapng};

use crate::common::*;

pub fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(bytes).expect("write");
    f.flush().expect("flush");
    f
}

const T0: u64 = 1_700_000_000;

#[test]
fn sections_resolutions_and_packet_block_kinds() {
    let mut ng = Pcapng::new();
    ng.shb(false)
        .idb(1, None, None) // default microseconds
        .idb(101, Some(9), None) // nanoseconds
        .unknown()
        .epb(0, T0 * 1_000_000 + 250_000, b"frame-a", 60)
        .epb(1, T0 * 1_000_000_000 + 123_456_789, b"frame-b", 7)
        .spb(b"simple-c", 8)
        // A new big-endian section resets the interfaces.
        .shb(true)
        .idb(228, Some(0x80 | 10), Some(100)) // 1/1024 s, +100 s
        .idb(113, None, None)
        .epb(0, 5 * 1024 + 512, b"frame-d", 7)
        .pb(1, T0 * 1_000_000 + 1, b"old-e", 5)
        .spb(b"simple-f-longer", 6);
    let f = write_temp(&ng.bytes);
    let r = read_paths(&[f.path().to_path_buf()]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let got: Vec<(i64, u32, LinkType, &[u8])> = r
        .frames
        .iter()
        .map(|s| (s.ts_micros, s.wire_len, s.link, s.data.as_slice()))
        .collect();
    let t0 = T0 as i64 * 1_000_000;
    assert_eq!(
        got,
        vec![
            (t0 + 250_000, 60, LinkType::ETHERNET, &b"frame-a"[..]),
            (t0 + 123_456, 7, LinkType::RAW, &b"frame-b"[..]),
            // No timestamp of its own: the last one seen.
            (t0 + 123_456, 8, LinkType::ETHERNET, &b"simple-c"[..]),
            (105_500_000, 7, LinkType::IPV4, &b"frame-d"[..]),
            (t0 + 1, 5, LinkType::LINUX_SLL, &b"old-e"[..]),
            // Captured bytes cut at the original length, padding dropped.
            (t0 + 1, 6, LinkType::IPV4, &b"simple"[..]),
        ]
    );
}

#[test]
fn epb_on_unsupported_interface_is_skipped_once_per_interface() {
    let mut ng = Pcapng::new();
    ng.shb(false)
        .idb(1, None, None)
        .idb(147, None, None)
        .epb(1, 1, b"x", 1)
        .epb(0, 2, b"y", 1)
        .epb(1, 3, b"z", 1);
    let f = write_temp(&ng.bytes);
    let r = read_paths(&[f.path().to_path_buf()]);
    assert_eq!(r.frames.len(), 1);
    assert_eq!(r.skipped, 2);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(r.warnings[0]
        .to_string()
        .contains("interface 1 has unsupported link type 147"));
}

#[test]
fn epb_caplen_beyond_the_limit_is_refused_without_allocating() {
    // A block claiming 300 MB must be refused from its header alone.
    let mut ng = Pcapng::new();
    ng.shb(false).idb(1, None, None).epb(0, 1, b"ok", 2);
    ng.bytes.extend_from_slice(&6u32.to_le_bytes());
    ng.bytes.extend_from_slice(&300_000_000u32.to_le_bytes());
    ng.bytes.extend_from_slice(&[0; 64]);
    let f = write_temp(&ng.bytes);
    let r = read_paths(&[f.path().to_path_buf()]);
    assert_eq!(r.frames.len(), 1);
    assert_eq!(r.errors.len(), 1);
    assert!(
        r.errors[0].contains("record too large: 300000000 bytes"),
        "{}",
        r.errors[0]
    );
}

#[test]
fn modified_and_nanosecond_legacy_magic() {
    // Little-endian nanosecond pcap: one record, its fraction one
    // nanosecond short of the next second.
    let format = PcapFormat::micros(LinkType::RAW).nanos();
    let mut b = format.file_header().to_vec();
    b.extend_from_slice(&format.record_header(T0 as u32, 999_999_999, 3, 40));
    b.extend_from_slice(b"abc");
    assert_eq!(b[..4], [0x4d, 0x3c, 0xb2, 0xa1]);
    let f = write_temp(&b);
    let r = read_paths(&[f.path().to_path_buf()]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.frames.len(), 1);
    assert_eq!(r.frames[0].ts_micros, T0 as i64 * 1_000_000 + 999_999);
    assert_eq!(r.frames[0].wire_len, 40);
    assert_eq!(r.frames[0].link, LinkType::RAW);
}
