//! The real captures of the shared corpus, checked against capinfos.

use std::path::Path;
use std::process::Command;

use tapsentry_capture::{CaptureWarning, LinkType};

use crate::common::*;

/// capinfos' view of one file: packets, sum of original lengths, earliest
/// and latest time in microseconds (truncated like our timestamps).
#[derive(Debug, PartialEq, Eq)]
struct Capinfos {
    packets: u64,
    data_size: u64,
    start_micros: i64,
    end_micros: i64,
}

fn parse_time(s: &str) -> i64 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs
        .parse()
        .unwrap_or_else(|_| panic!("capinfos time {s:?}"));
    let mut digits: String = frac.chars().take(6).collect();
    while digits.len() < 6 {
        digits.push('0');
    }
    secs * 1_000_000
        + digits
            .parse::<i64>()
            .unwrap_or_else(|_| panic!("capinfos time {s:?}"))
}

/// Runs capinfos, or returns None when the comparison is to be skipped.
fn capinfos(path: &Path) -> Option<Capinfos> {
    let out = Command::new("capinfos")
        .args(["-T", "-m", "-r", "-c", "-d", "-a", "-e", "-S"])
        .arg(path)
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if std::env::var("TAPSENTRY_SKIP_TSHARK").as_deref() == Ok("1") => {
            eprintln!("capinfos not runnable ({e}); skipped because TAPSENTRY_SKIP_TSHARK=1");
            return None;
        }
        Err(e) => panic!(
            "capinfos is needed to check the reader against Wireshark ({e}): \
             install it with `apt-get install tshark`, or set TAPSENTRY_SKIP_TSHARK=1 to skip"
        ),
    };
    assert!(
        out.status.success(),
        "capinfos failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // The file name comes first and contains no comma in this corpus.
    let fields: Vec<&str> = line.rsplitn(5, ',').collect();
    assert_eq!(fields.len(), 5, "unexpected capinfos output {line:?}");
    Some(Capinfos {
        packets: fields[3].parse().expect("packet count"),
        data_size: fields[2].parse().expect("data size"),
        start_micros: parse_time(fields[1]),
        end_micros: parse_time(fields[0]),
    })
}

fn compare_with_capinfos(folder: &str) {
    let mut compared = 0;
    for path in corpus(folder) {
        let Some(expected) = capinfos(&path) else {
            return;
        };
        let r = read_paths(std::slice::from_ref(&path));
        assert!(r.errors.is_empty(), "{}: {:?}", path.display(), r.errors);
        assert_eq!(r.skipped, 0, "{}: frames skipped", path.display());
        let ours = Capinfos {
            packets: r.frames.len() as u64,
            data_size: r.frames.iter().map(|f| u64::from(f.wire_len)).sum(),
            start_micros: r.frames.iter().map(|f| f.ts_micros).min().unwrap_or(0),
            end_micros: r.frames.iter().map(|f| f.ts_micros).max().unwrap_or(0),
        };
        eprintln!(
            "{folder}/{}: {} packets, {} bytes, {}..{} µs",
            path.file_name().unwrap().to_string_lossy(),
            ours.packets,
            ours.data_size,
            ours.start_micros,
            ours.end_micros
        );
        assert_eq!(ours, expected, "{}: ours vs capinfos", path.display());
        assert_eq!(r.files_read, 1);
        compared += 1;
    }
    assert!(compared > 0);
}

#[test]
fn linktypes_match_capinfos() {
    compare_with_capinfos("linktypes");
}

#[test]
fn benign_match_capinfos() {
    compare_with_capinfos("benign");
}

#[test]
fn attacks_read_cleanly() {
    for path in corpus("attacks") {
        let r = read_paths(std::slice::from_ref(&path));
        assert!(r.errors.is_empty(), "{}: {:?}", path.display(), r.errors);
        assert!(!r.frames.is_empty(), "{}", path.display());
    }
}

#[test]
fn nanosecond_pcap_keeps_microseconds() {
    // capinfos: 1418145369.924505488 .. 1418145370.052115157
    let r = read_paths(&[pcaps().join("linktypes/pcap-nanosecond-sll-tcp.pcap")]);
    assert_eq!(r.frames.len(), 3);
    assert_eq!(r.frames[0].ts_micros, 1_418_145_369_924_505);
    assert_eq!(r.frames[2].ts_micros, 1_418_145_370_052_115);
    assert!(r.frames.iter().all(|f| f.link == LinkType::LINUX_SLL));
}

#[test]
fn big_endian_pcap() {
    let r = read_paths(&[pcaps().join("linktypes/pcap-bigendian-nfs.pcap")]);
    assert_eq!(r.frames.len(), 128);
    assert_eq!(r.frames[0].ts_micros, 944_207_397_280_000);
    assert!(r.frames.iter().all(|f| f.link == LinkType::ETHERNET));
    // Ethernet destination and source MACs, then an EtherType: sane bytes.
    assert_eq!(&r.frames[0].data[12..14], &[0x08, 0x00]);
}

/// The merged file is the six single-link-type files one after another, one
/// pcapng interface each: the frames must be exactly theirs, in order.
#[test]
fn mixed_linktypes_merged_is_the_concatenation() {
    let parts = [
        ("ethernet-http-get.pcap", LinkType::ETHERNET),
        ("linux-sll2-http.pcap", LinkType::LINUX_SLL2),
        ("raw-linktype-raw-101-ipv4-dns.pcap", LinkType::RAW),
        ("bsd-null-ipv4-http.pcap", LinkType::NULL),
        ("linux-sll-tcp-fastopen.pcap", LinkType::LINUX_SLL),
        ("raw-linktype-ipv6-229-dns.pcap", LinkType::IPV6),
    ];
    let merged = read_paths(&[pcaps().join("linktypes/mixed-linktypes-merged.pcapng")]);
    assert!(merged.errors.is_empty(), "{:?}", merged.errors);
    assert_eq!(merged.frames.len(), 53);

    let mut expected = Vec::new();
    for (name, link) in parts {
        let r = read_paths(&[pcaps().join("linktypes").join(name)]);
        assert!(r.frames.iter().all(|f| f.link == link), "{name}");
        expected.extend(r.frames);
    }
    assert_eq!(merged.frames, expected);

    // Runs of one link type: six interfaces, in file order.
    let mut runs: Vec<LinkType> = Vec::new();
    for f in &merged.frames {
        if runs.last() != Some(&f.link) {
            runs.push(f.link);
        }
    }
    assert_eq!(runs, parts.map(|(_, l)| l).to_vec());
    let mut distinct = runs.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "link types 1, 276, 101, 0, 113, 229");
}

#[test]
fn pcapng_with_126_interfaces_and_mixed_tsresol() {
    let r = read_paths(&[pcaps().join("linktypes/pcapng-126-idbs-mixed-linktypes.pcapng")]);
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.frames.len(), 17);
    assert!(r.frames.iter().all(|f| f.link == LinkType::ETHERNET));
    // No frame on the unsupported interfaces, so no warning either.
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

/// Files whose damage must be reported, with the number of frames that are
/// readable before it (libpcap's reading of the same bytes).
const KNOWN_CORRUPT: &[(&str, usize, &str)] = &[
    (
        "derived-bad-magic.pcap",
        0,
        "not a pcap or pcapng file (magic 0xdeadbeef)",
    ),
    ("derived-caplen-exceeds-snaplen.pcap", 1, "truncated"),
    ("derived-caplen-huge.pcap", 0, "record too large"),
    (
        "derived-cut-in-packet-data.pcap",
        4,
        "truncated: cut mid-record after 4 packets",
    ),
    (
        "derived-cut-in-record-header.pcap",
        2,
        "truncated: cut mid-record after 2 packets",
    ),
    ("derived-empty-file.pcap", 0, "not a pcap or pcapng file"),
    ("derived-pcapng-bad-block-length.pcapng", 1, "block length"),
    (
        "derived-pcapng-block-length-huge.pcapng",
        1,
        "record too large",
    ),
    ("derived-pcapng-cut-mid-block.pcapng", 1, "truncated"),
    ("derived-pcapng-epb-caplen-overflow.pcapng", 0, "overruns"),
    (
        "derived-pcapng-epb-unknown-interface.pcapng",
        0,
        "interface 7",
    ),
    ("derived-trailing-garbage.pcap", 14, "record too large"),
    ("derived-truncated-global-header.pcap", 0, "header"),
    ("ndpi-fuzz-2021-10-13.pcap", 0, "record too large"),
    (
        "suricata-bug-1450-04-tls_DER-incomplete-header.pcap",
        6,
        "4325376",
    ),
    ("suricata-bug-6875-01-fuzz.pcap", 1, "record too large"),
    (
        "suricata-smtp-to-comma-10.7.29.101_49898-178.63.41.150_25.pcap",
        18,
        "3925868813",
    ),
    ("zeek-trunc-mpls-6in6-broken.pcap.gz", 0, "gzip"),
];

#[test]
fn malformed_never_panic_or_hang() {
    let files = corpus("malformed");
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let r = read_paths(std::slice::from_ref(path));
        let known = KNOWN_CORRUPT.iter().find(|(n, _, _)| *n == name);
        match known {
            Some((_, frames, needle)) => {
                assert_eq!(r.errors.len(), 1, "{name}: {:?}", r.errors);
                let msg = &r.errors[0];
                assert!(
                    msg.contains(&name),
                    "{name}: message does not name the file: {msg}"
                );
                assert!(msg.contains(needle), "{name}: {msg:?} lacks {needle:?}");
                assert_eq!(r.frames.len(), *frames, "{name}: frames before the damage");
                assert!(
                    r.warnings.iter().any(
                        |w| matches!(w, CaptureWarning::FileError { message } if message == msg)
                    ),
                    "{name}: file error not in warnings"
                );
            }
            None => assert!(r.errors.is_empty(), "{name}: unexpected {:?}", r.errors),
        }
    }
    for (name, _, _) in KNOWN_CORRUPT {
        assert!(
            files.iter().any(|p| p.ends_with(name)),
            "{name} missing from the corpus"
        );
    }
}

#[test]
fn unsupported_link_type_is_skipped_and_warned_once() {
    let r = read_paths(&[pcaps().join("malformed/tcpdump-brcm-tag.pcap")]);
    assert!(r.frames.is_empty());
    assert!(r.errors.is_empty());
    assert_eq!(r.skipped, 23);
    assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
    assert!(matches!(
        &r.warnings[0],
        CaptureWarning::UnsupportedLinkType { link: LinkType(281), interface: 0, source }
            if source.ends_with("tcpdump-brcm-tag.pcap")
    ));

    // Twice the same file: once per file, so two warnings.
    let p = pcaps().join("malformed/tcpdump-brcm-tag.pcap");
    let r = read_paths(&[p.clone(), p]);
    assert_eq!(r.skipped, 46);
    assert_eq!(r.warnings.len(), 2);
}

#[test]
fn flag_bits_in_the_link_type_field_are_ignored() {
    // Link-type field 0x30000001: FCS flags in the upper bits, Ethernet below.
    let r = read_paths(&[pcaps().join("malformed/tcpdump-bad-ipv4-version-pgm-heapoverflow.pcap")]);
    assert_eq!(r.frames.len(), 1);
    assert_eq!(r.frames[0].link, LinkType::ETHERNET);
}

#[test]
fn caplen_greater_than_orig_len_trusts_caplen() {
    let good = read_paths(&[pcaps().join("linktypes/ethernet-http-get.pcap")]);
    let bad = read_paths(&[pcaps().join("malformed/derived-caplen-gt-origlen.pcap")]);
    assert!(bad.errors.is_empty());
    assert_eq!(bad.frames.len(), 14);
    // The 4th record claims 10 bytes fewer on the wire than it captured.
    assert_eq!(bad.frames[3].data, good.frames[3].data);
    assert_eq!(bad.frames[3].wire_len as usize, bad.frames[3].data.len());
}

#[test]
fn caplen_zero_record_is_an_empty_frame() {
    let r = read_paths(&[pcaps().join("malformed/derived-caplen-zero-record.pcap")]);
    assert!(r.errors.is_empty());
    assert_eq!(r.frames.len(), 15);
    assert!(r.frames[2].data.is_empty());
    assert_eq!(r.frames[2].wire_len, 0);
}
